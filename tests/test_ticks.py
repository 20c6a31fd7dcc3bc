"""One timer for many members (:class:`crdt_server.ticks.SpreadTicks`): the wire's
WebSocket pings and the ``/sync`` sessions' keepalive are both this schedule."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import pytest

from crdt_server.ticks import SpreadTicks

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]

DEADLINE = 10.0
LOG = logging.getLogger("tests.ticks")


async def test_members_are_ticked_once_an_interval_spread_over_it() -> None:
    """Each member is ticked within an interval of joining and then once per interval;
    no loop turn ticks more than a slot's share of them (18,000 connections pinged in one
    loop turn held every delivery back by hundreds of milliseconds, issue 22); one removed
    is ticked no more, and the timer stops once none is left."""
    loop = asyncio.get_running_loop()
    log: list[int] = []  # member numbers; -1 marks a new loop iteration
    ticked: dict[int, list[float]] = {}

    @dataclass(eq=False)
    class Member:
        number: int

        def tick(self) -> None:
            log.append(self.number)
            ticked.setdefault(self.number, []).append(loop.time())

    interval, count = 1.0, 1_000
    ticks: SpreadTicks[Member] = SpreadTicks(interval, Member.tick, LOG)
    started = loop.time()
    members = [Member(n) for n in range(count)]
    slots = [ticks.add(member) for member in members]
    assert len(ticks) == count
    until = started + 2.5 * interval
    while loop.time() < until:
        log.append(-1)
        await asyncio.sleep(0)
    batches: list[int] = [0]
    for entry in log:
        if entry == -1:
            batches.append(0)
        else:
            batches[-1] += 1
    assert max(batches) <= count // 8, max(batches)
    assert sorted(ticked) == list(range(count))  # everyone, within the first interval
    for times in ticked.values():
        assert times[0] - started <= interval + 0.3
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert gaps and all(0.7 * interval <= gap <= 1.5 * interval for gap in gaps), gaps
    for slot, member in zip(slots, members, strict=True):
        ticks.remove(member, slot)
    assert len(ticks) == 0
    log.clear()
    await asyncio.sleep(0.3)
    assert log == []
    assert ticks._timer is None


async def test_one_members_failing_tick_does_not_stop_the_others() -> None:
    """A tick that raises is logged; the others in its slot are ticked, and the timer goes
    on."""
    seen: list[None] = []
    twice = asyncio.Event()

    class Member:
        def tick(self) -> None:
            raise NotImplementedError

    class Failing(Member):
        def tick(self) -> None:
            raise RuntimeError("boom")

    class Fine(Member):
        def tick(self) -> None:
            seen.append(None)
            if len(seen) == 2:
                twice.set()

    # One slot: both are ticked in the same turn.
    ticks: SpreadTicks[Member] = SpreadTicks(0.1, lambda member: member.tick(), LOG)
    ticks.add(Failing())
    ticks.add(Fine())
    try:
        async with asyncio.timeout(DEADLINE):
            await twice.wait()
    finally:
        ticks.close()
