"""The writer's queue (storage._group_commit) by itself: how queued appends are grouped into
transactions. What a store commits is the conformance suite's (tests/storage/test_conformance.py,
on SQLite and PostgreSQL); these count the transactions, which no store shows."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from crdt_server.storage import NewUpdate
from crdt_server.storage._group_commit import MAX_SHARED_UPDATES, GroupCommitter, Part
from crdt_server.storage.base import FeatureRow
from crdt_server.storage.gateway import Tx

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
