"""The writer's queue (storage._group_commit) by itself: how queued appends are grouped into
transactions. What a store commits is the conformance suite's (tests/storage/test_conformance.py,
on SQLite and PostgreSQL); these count the transactions, which no store shows."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from crdt_server.storage import NewUpdate, StoreError
from crdt_server.storage._group_commit import MAX_SHARED_UPDATES, GroupCommitter, Part
from crdt_server.storage.base import FeatureRow
from crdt_server.storage.gateway import Tx
from tests.storage.conftest import finished_at_once

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(10)]


class Transactions:
    """What the writer asked to commit, one list of update origins per transaction."""

    def __init__(self) -> None:
        self.seq = 0
        self.done: list[list[str]] = []
        self.writes: list[str] = []

    async def commit_rows(
        self, updates: list[NewUpdate], steps: list[Tx[Any]], rows: list[FeatureRow]
    ) -> list[int]:
        await asyncio.sleep(0)  # a transaction takes a turn or more, as a thread's does
        self.done.append([u.origin for u in updates])
        start, self.seq = self.seq, self.seq + len(updates)
        return list(range(start + 1, self.seq + 1))

    async def run_write(self, job: str) -> str:
        self.done.append([job])
        return job

    async def run_shared(self, txs: list[Tx[Any]]) -> list[tuple[bool, Any]]:
        raise AssertionError("no gateway transactions here")

    async def commit_parts(self, parts: list[Part]) -> list[Any]:
        raise AssertionError("no gateway transactions here")

    def writer(self) -> GroupCommitter[str]:
        writer: GroupCommitter[str] = GroupCommitter(
            "test", self.commit_rows, self.run_write, self.run_shared, self.commit_parts
        )
        writer.start()
        return writer


def _one(origin: str) -> list[NewUpdate]:
    return [NewUpdate(doc=f"{origin}/guests", data=b"\x00\x00", origin=origin)]


async def test_a_shared_transaction_takes_at_most_its_bound_of_updates_in_queue_order() -> None:
    tx = Transactions()
    writer = tx.writer()
    count = MAX_SHARED_UPDATES * 2 + 10
    seqs = await asyncio.gather(*(writer.append(_one(f"r{i}")) for i in range(count)))
    await writer.stop()
    assert [len(t) for t in tx.done] == [MAX_SHARED_UPDATES, MAX_SHARED_UPDATES, 10]
    assert [o for t in tx.done for o in t] == [f"r{i}" for i in range(count)]
    assert [s[0] for s in seqs] == list(range(1, count + 1))


async def test_an_append_asked_to_go_first_passes_the_shared_jobs_but_no_other_write() -> None:
    tx = Transactions()
    writer = tx.writer()
    # Queued in one turn: a full transaction's worth, then more appends, a first one among
    # them; then a write of another kind, and a first append behind it.
    busy = [writer.append(_one(f"r{i}")) for i in range(MAX_SHARED_UPDATES + 5)]
    quiet = writer.append(_one("quiet"), first=True)
    compaction = writer.write("compaction")
    late = writer.append(_one("late"), first=True)
    await asyncio.gather(*busy, quiet, compaction, late)
    await writer.stop()
    # The quiet append waited for no busy one past the first transaction's bound: it was
    # taken with that transaction and committed on its own, ahead of it.
    assert tx.done[0] == ["quiet"]
    assert tx.done[1] == [f"r{i}" for i in range(MAX_SHARED_UPDATES)]
    assert tx.done[2] == [f"r{i}" for i in range(MAX_SHARED_UPDATES, MAX_SHARED_UPDATES + 5)]
    # The one behind the compaction did not pass it.
    assert tx.done[3:] == [["compaction"], ["late"]]


async def test_appends_asked_to_go_first_share_transactions_of_the_bound_at_most() -> None:
    """Under overload many quiet weddings' appends go first at once (1,000 or more queued
    at the start of the product scenario's 4,000/s step): taken all together, they made
    one transaction of up to 55,294 statements, ten seconds on the writer thread while
    every room waited. They go ahead in transactions of the shared bound, in queue order,
    and appends with no update (a remote room's events) count one each."""
    tx = Transactions()
    writer = tx.writer()
    busy = [writer.append(_one(f"r{i}")) for i in range(MAX_SHARED_UPDATES)]
    quiet = [writer.append(_one(f"q{i}"), first=True) for i in range(MAX_SHARED_UPDATES * 2)]
    empty = [writer.append([], first=True) for _ in range(MAX_SHARED_UPDATES * 2)]
    await asyncio.gather(*busy, *quiet, *empty)
    await writer.stop()
    firsts = [t for t in tx.done if not t or t[0].startswith("q")]
    assert [o for t in firsts for o in t] == [f"q{i}" for i in range(MAX_SHARED_UPDATES * 2)]
    assert max(len(t) for t in tx.done) <= MAX_SHARED_UPDATES
    assert len(tx.done) >= 2 + 2 + 1  # the quiet ones in two, the empty ones in two or more
    assert tx.done[0] == [f"q{i}" for i in range(MAX_SHARED_UPDATES)]


class CommitsOnTheLoop(Transactions):
    """A backend that also commits on the loop's thread (SQLite on a fast disk): its
    ``commit_now`` commits in the caller's turn; a write of another kind waits for
    ``release`` (it runs on a thread meanwhile)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.writing = asyncio.Event()

    def commit_now(
        self, updates: list[NewUpdate], steps: list[Tx[Any]], rows: list[FeatureRow]
    ) -> list[int]:
        if any(u.origin == "broken" for u in updates):
            raise StoreError("the disk is full")
        self.done.append(["now"] + [u.origin for u in updates])
        start, self.seq = self.seq, self.seq + len(updates)
        return list(range(start + 1, self.seq + 1))

    async def run_write(self, job: str) -> str:
        self.writing.set()
        await self.release.wait()
        return await super().run_write(job)

    def writer(self) -> GroupCommitter[str]:
        writer: GroupCommitter[str] = GroupCommitter(
            "test", self.commit_rows, self.run_write, self.run_shared, self.commit_parts
        )
        writer.start(self.commit_now)
        return writer


async def test_a_first_append_commits_in_its_callers_turn_where_the_backend_can() -> None:
    tx = CommitsOnTheLoop()
    writer = tx.writer()
    busy = [asyncio.ensure_future(writer.append(_one(f"r{i}"))) for i in range(3)]
    # Queued and not taken yet: the quiet wedding's append passes them, in this turn.
    assert finished_at_once(writer.append(_one("quiet"), first=True)) == [1]
    assert tx.done == [["now", "quiet"]]
    assert [await b for b in busy] == [[2], [3], [4]]
    # An append that does not ask to go first is queued as ever.
    assert await writer.append(_one("later")) == [5]
    assert tx.done[1:] == [["r0", "r1", "r2"], ["later"]]
    # A failed commit fails its caller alone, having committed nothing.
    with pytest.raises(StoreError, match="disk is full"):
        finished_at_once(writer.append(_one("broken"), first=True))
    assert await writer.append(_one("after"), first=True) == [6]
    await writer.stop()


async def test_a_first_append_never_runs_beside_a_write_or_passes_one() -> None:
    tx = CommitsOnTheLoop()
    writer = tx.writer()
    # A compaction under way (on the writer's thread): the connection is taken.
    compaction = asyncio.ensure_future(writer.write("compaction"))
    await tx.writing.wait()
    during = asyncio.ensure_future(writer.append(_one("during"), first=True))
    # A deletion queued behind it: a first append does not pass it either.
    deletion = asyncio.ensure_future(writer.write("deletion"))
    await asyncio.sleep(0)
    assert tx.done == []
    tx.release.set()
    assert list(await asyncio.gather(compaction, during, deletion)) == [
        "compaction",
        [1],
        "deletion",
    ]
    assert tx.done == [["compaction"], ["during"], ["deletion"]]
    await writer.stop()
