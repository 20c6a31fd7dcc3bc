"""Where the SQLite store commits (``commits``): by default (``auto``, ``thread``) on the
writer thread, leader/follower: an append with nothing in flight is handed to the thread
at once, the appends that arrive during its fsync share the next transaction, and the
loop never waits for an fsync; on the event loop's own thread only where ``loop`` is asked
for. Either way every commit is durable before it is acknowledged (the kill -9 tests run
the server on its default, ``auto``)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from crdt_server.storage import NewUpdate, SqliteStore, StoreError
from crdt_server.storage._group_commit import MAX_SHARED_UPDATES
from crdt_server.storage.gateway import Sql, statements
from tests.storage.conftest import finished_at_once

pytestmark = [pytest.mark.timeout(30)]


def _row(doc: str, n: int) -> NewUpdate:
    return NewUpdate(doc=doc, data=bytes([0, 0, n % 256]), origin="test")


@pytest.mark.asyncio
async def test_on_the_loop_a_first_append_commits_without_suspending(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db", commits="loop")
    await store.open()
    try:
        assert store.commits_on_loop
        busy = [asyncio.ensure_future(store.append([_row("busy/guests", i)])) for i in range(20)]
        seqs = finished_at_once(store.append([_row("quiet/guests", 1)], first=True))
        assert seqs is not None, "the quiet wedding's append waited for a turn of the loop"
        await asyncio.gather(*busy)
        # Committed, durable and readable, in the order acknowledged.
        log = await store.load("quiet/guests")
        assert log is not None and log.last_seq == seqs[0] and len(log.updates) == 1
        assert len((await store.load("busy/guests") or log).updates) == 20
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_on_the_writer_thread_every_append_waits_for_the_writer(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db", commits="thread")
    await store.open()
    try:
        assert not store.commits_on_loop
        call = store.append([_row("quiet/guests", 1)], first=True)
        task = asyncio.ensure_future(call)
        assert not task.done()
        assert len(await task) == 1
    finally:
        await store.close()


def _held_until(opened: threading.Event, release: threading.Event) -> Generator[Sql, Any, None]:
    """A feature's step that holds its transaction open (on whichever thread runs it)
    until ``release`` is set, having said so on ``opened``."""
    yield Sql("SELECT 1", ())
    opened.set()
    assert release.wait(10), "never released"


@pytest.mark.asyncio
@pytest.mark.parametrize("commits", ["auto", "thread"])
async def test_a_leader_commits_on_the_thread_at_once_and_followers_share_the_next(
    tmp_path: Path, commits: Any
) -> None:
    store = SqliteStore(tmp_path / "s.db", commits=commits)
    await store.open()
    try:
        assert not store.commits_on_loop
        before = store.commits
        opened, release = threading.Event(), threading.Event()
        leader = asyncio.ensure_future(
            store.append([_row("a/guests", 0)], steps=[_held_until(opened, release)])
        )
        await asyncio.sleep(0)  # the leader's turn: its transaction goes to the thread
        # It began on the writer thread with no further turn of the loop (this wait
        # blocks the loop on purpose: a writer task would never wake to start it) ...
        assert opened.wait(5), "the leader's transaction waited for a turn of the loop"
        # ... and while it is open (as during a long fsync) the loop goes on turning.
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(5):
            await asyncio.sleep(0.01)
        assert loop.time() - started < 1.0
        # Followers arrive meanwhile: they wait for it, then share one transaction.
        followers = [
            asyncio.ensure_future(store.append([_row(f"w{i}/guests", i)])) for i in range(20)
        ]
        await asyncio.sleep(0.05)
        assert not leader.done() and not any(f.done() for f in followers)
        release.set()
        first = await leader
        seqs = [s for f in followers for s in await f]
        assert seqs == list(range(first[0] + 1, first[0] + 21))  # in the order they came
        assert store.commits - before == 2  # the leader's transaction, then one shared
        # Nothing in flight again: the next append leads.
        assert await store.append([_row("a/guests", 1)]) == [first[0] + 21]
        assert store.commits - before == 3
    finally:
        await store.close()


def _on_thread(seen: list[str]) -> Generator[Sql, Any, None]:
    """A feature's step that records which thread runs its transaction."""
    seen.append(threading.current_thread().name)
    yield Sql("SELECT 1", ())


@pytest.mark.asyncio
@pytest.mark.parametrize("commits", ["auto", "thread"])
async def test_a_writer_that_is_behind_commits_on_the_loop_where_auto(
    tmp_path: Path, commits: Any
) -> None:
    """Past saturation (a whole shared transaction's worth queued behind the one being
    carried out) ``auto`` carries out the writer task's transactions on the loop's thread:
    on the writer thread behind a loop that runs Python without pause, each statement
    waits for the interpreter (50 updates took up to 1.2 s in the product scenario at
    4,000/s). ``thread`` keeps them on the thread; below saturation both do."""
    store = SqliteStore(tmp_path / "s.db", commits=commits)
    await store.open()
    try:
        seen: list[str] = []
        opened, release = threading.Event(), threading.Event()
        leader = asyncio.ensure_future(
            store.append([_row("a/guests", 0)], steps=[_held_until(opened, release)])
        )
        await asyncio.sleep(0)
        assert opened.wait(5)
        count = MAX_SHARED_UPDATES * 3
        queued = [
            asyncio.ensure_future(store.append([_row(f"w{i}/guests", i)], steps=[_on_thread(seen)]))
            for i in range(count)
        ]
        await asyncio.sleep(0.05)
        release.set()
        first = await leader
        seqs = [s for f in queued for s in await f]
        assert seqs == list(range(first[0] + 1, first[0] + count + 1))  # in order, all
        main = threading.main_thread().name
        on_loop = sum(name == main for name in seen)
        # Taken 50 at a time. The first 50 were taken while the leader's transaction was
        # on the thread: they follow it there (the one connection is used by one thread
        # at a time). The next 50 had 50 more behind them: on the loop's thread where
        # ``auto``. The last had nothing behind.
        assert on_loop == (MAX_SHARED_UPDATES if commits == "auto" else 0)
        # Below saturation, every commit is the thread's again.
        seen.clear()
        await store.append([_row("a/guests", 1)], steps=[_on_thread(seen)])
        assert seen and main not in seen
        log = await store.load("w0/guests")
        assert log is not None and len(log.updates) == 1
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_a_failed_leader_fails_alone_and_the_next_append_leads(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        broken = statements([("INSERT INTO no_such_table VALUES (?)", [1])])
        with pytest.raises(StoreError, match="no_such_table"):
            await store.append([_row("kept/guests", 1)], steps=[broken])
        assert await store.load("kept/guests") is None
        assert len(await store.append([_row("kept/guests", 2)])) == 1
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_a_cancelled_leader_still_keeps_the_writes_in_order(tmp_path: Path) -> None:
    # The caller of a leader stops waiting; its transaction goes on on the thread, and
    # the next append neither overlaps it nor passes it.
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        opened, release = threading.Event(), threading.Event()
        leader = asyncio.ensure_future(
            store.append([_row("a/guests", 0)], steps=[_held_until(opened, release)])
        )
        assert await asyncio.to_thread(opened.wait, 5)
        leader.cancel()
        later = asyncio.ensure_future(store.append([_row("a/guests", 1)]))
        await asyncio.sleep(0.05)
        assert not later.done()
        release.set()
        assert await later == [2]  # behind the cancelled leader's row, which committed
        log = await store.load("a/guests")
        assert log is not None and len(log.updates) == 2
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_a_scrub_waits_its_turn_beside_commits_on_the_loop(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db", commits="loop")
    await store.open()
    try:
        appends = [asyncio.ensure_future(store.append([_row("a/guests", i)])) for i in range(50)]
        scrubbed = asyncio.ensure_future(store.scrub())
        firsts = [
            asyncio.ensure_future(store.append([_row("q/guests", i)], first=True)) for i in range(5)
        ]
        await asyncio.gather(*appends, *firsts)
        assert await scrubbed
        log = await store.load("a/guests")
        assert log is not None and len(log.updates) == 50
    finally:
        await store.close()


def test_commits_must_be_auto_loop_or_thread(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="auto, loop or thread"):
        SqliteStore(tmp_path / "s.db", commits="elsewhere")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_a_failed_commit_on_the_loop_is_a_store_error_and_commits_nothing(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "s.db", commits="loop")
    await store.open()
    try:
        # A feature's step that fails inside the transaction (no such table).
        broken = statements([("INSERT INTO no_such_table VALUES (?)", [1])])
        call = store.append([_row("kept/guests", 1)], steps=[broken], first=True)
        with pytest.raises(StoreError, match="no_such_table"):
            finished_at_once(call)
        assert await store.load("kept/guests") is None
        assert len(await store.append([_row("kept/guests", 2)], first=True)) == 1
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_a_lock_held_elsewhere_never_stops_the_loop(tmp_path: Path) -> None:
    # Another connection (a second worker's, a command-line tool's) holds the write lock.
    store = SqliteStore(tmp_path / "s.db", commits="loop")
    await store.open()
    other = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        # A quiet wedding's append does not wait for it on the loop: it is queued.
        quiet = asyncio.ensure_future(store.append([_row("quiet/guests", 1)], first=True))
        busy = asyncio.ensure_future(store.append([_row("busy/guests", 1)]))
        # Meanwhile the loop turns: each sleep ends on time, not after the lock.
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(10):
            await asyncio.sleep(0.01)
        assert loop.time() - started < 0.5
        assert not quiet.done() and not busy.done()
        other.execute("COMMIT")  # the writer thread, waiting for the lock, gets it
        assert len(await quiet) == 1 and len(await busy) == 1
        # And once the lock is free, the commits are on the loop's thread again.
        assert finished_at_once(store.append([_row("quiet/guests", 2)], first=True))
    finally:
        other.close()
        await store.close()
