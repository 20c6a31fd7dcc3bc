"""Where the SQLite store commits (``commits``): on the event loop's own thread where the
disk is fast, so a quiet wedding's commit under overload is done in its caller's turn of
the loop; on the writer thread where it is slow. Either way every commit is durable before
it is acknowledged (the kill -9 tests run the server on its default, ``auto``)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from crdt_server.storage import NewUpdate, SqliteStore, StoreError, _sqlite_schema
from crdt_server.storage.gateway import statements
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


@pytest.mark.asyncio
@pytest.mark.parametrize(("fast", "on_loop"), [(10.0, True), (0.0, False)])
async def test_auto_commits_on_the_loop_only_where_an_fsync_is_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: float, on_loop: bool
) -> None:
    # What counts as fast, moved so that this disk is fast (10 s) or slow (0 s).
    monkeypatch.setattr(_sqlite_schema, "FAST_FSYNC", fast)
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        assert store.commits_on_loop is on_loop
        assert len(await store.append([_row("a/guests", 1)], first=True)) == 1
    finally:
        await store.close()
    # The probe left nothing beside the file.
    assert not list(tmp_path.glob(".fsync*"))  # noqa: ASYNC240 (a test's own directory)


def test_the_fsync_probe_measures_and_cleans_up(tmp_path: Path) -> None:
    seconds = _sqlite_schema.fsync_seconds(tmp_path)
    assert 0 < seconds < 10
    assert list(tmp_path.iterdir()) == []


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
