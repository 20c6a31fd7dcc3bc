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


class Gated(Transactions):
    """A backend whose transactions end when the test says, each handed over at once (as
    to a writer thread, which carries them out in the order given)."""

    def __init__(self) -> None:
        super().__init__()
        self.handed: list[list[str]] = []
        self.gates: list[asyncio.Event] = []

    async def commit_rows(
        self, updates: list[NewUpdate], steps: list[Tx[Any]], rows: list[FeatureRow]
    ) -> list[int]:
        self.handed.append([u.origin for u in updates])
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        return await super().commit_rows(updates, steps, rows)

    def pipelined(self) -> GroupCommitter[str]:
        writer: GroupCommitter[str] = GroupCommitter(
            "test",
            self.commit_rows,
            self.run_write,
            self.run_shared,
            self.commit_parts,
            pipelined=True,
        )
        writer.start()
        return writer


async def _turns(until: Any, turns: int = 100) -> None:
    """Let the loop turn until ``until()`` holds (at most ``turns`` turns)."""
    for _ in range(turns):
        if until():
            return
        await asyncio.sleep(0)
    raise AssertionError("not reached in time")


async def test_pipelined_the_next_transaction_is_handed_over_before_the_one_ahead_ends() -> None:
    """The writer thread goes from one transaction to the next without waiting for the
    writer task: the next is handed over while the one ahead is carried out, never more
    than one behind it, in queue order; a write of another kind waits for both."""
    tx = Gated()
    writer = tx.pipelined()
    first = [asyncio.create_task(writer.append(_one(f"a{i}"))) for i in range(MAX_SHARED_UPDATES)]
    await _turns(lambda: len(tx.handed) == 1)
    second = [asyncio.create_task(writer.append(_one(f"b{i}"))) for i in range(3)]
    await _turns(lambda: len(tx.handed) == 2)  # while the first is not done
    third = asyncio.create_task(writer.append(_one("c")))
    compaction = asyncio.create_task(writer.write("compaction"))
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(tx.handed) == 2 and tx.done == []  # at most two handed over
    tx.gates[0].set()
    await _turns(lambda: len(tx.handed) == 3)
    assert tx.handed[2] == ["c"] and "compaction" not in (o for t in tx.done for o in t)
    tx.gates[1].set()
    tx.gates[2].set()
    seqs = await asyncio.gather(*first, *second, third, compaction)
    await writer.stop()
    assert tx.done == [
        [f"a{i}" for i in range(MAX_SHARED_UPDATES)],
        ["b0", "b1", "b2"],
        ["c"],
        ["compaction"],
    ]
    assert [s[0] for s in seqs[:-1]] == list(range(1, MAX_SHARED_UPDATES + 5))


async def test_pipelined_an_append_asked_to_go_first_is_handed_over_before_its_batch() -> None:
    tx = Gated()
    writer = tx.pipelined()
    busy = [asyncio.create_task(writer.append(_one(f"r{i}"))) for i in range(5)]
    quiet = asyncio.create_task(writer.append(_one("quiet"), first=True))
    await _turns(lambda: len(tx.handed) == 2)
    assert tx.handed == [["quiet"], [f"r{i}" for i in range(5)]]
    for gate in tx.gates:
        gate.set()
    await asyncio.gather(*busy, quiet)
    await writer.stop()
    assert tx.done == [["quiet"], [f"r{i}" for i in range(5)]]
