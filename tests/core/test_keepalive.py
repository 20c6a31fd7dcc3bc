"""The ``/sync`` sessions' keepalive: one timer for all of them, each ticked once per
interval, the ticks spread over it (issue 76: a timer per session was about 600 bytes on
every idle connection); a session silent for a tick is sent an empty awareness update."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from crdt_server.codec.awareness import encode_awareness_entries
from crdt_server.codec.protocol import encode_awareness
from crdt_server.core.keepalive import Keepalive, Ticked
from crdt_server.testing.inprocess import in_process_server

pytestmark = pytest.mark.asyncio

DEADLINE = 10.0


async def test_sessions_are_ticked_once_an_interval_spread_over_it() -> None:
    """Each session is ticked within an interval of joining and then once per interval;
    no loop turn ticks more than a slot's share of them; one removed is ticked no more,
    and the timer stops once none is left."""
    loop = asyncio.get_running_loop()
    log: list[int] = []  # member numbers; -1 marks a new loop iteration
    ticked: dict[int, list[float]] = {}

    @dataclass(eq=False)
    class Member:
        number: int

        def keepalive_tick(self) -> None:
            log.append(self.number)
            ticked.setdefault(self.number, []).append(loop.time())

    interval, count = 1.0, 1_000
    keepalive = Keepalive(interval)
    started = loop.time()
    members = [Member(n) for n in range(count)]
    slots = [keepalive.add(member) for member in members]
    assert len(keepalive) == count
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
        keepalive.remove(member, slot)
    assert len(keepalive) == 0
    log.clear()
    await asyncio.sleep(0.3)
    assert log == []
    assert keepalive._timer is None


async def test_one_sessions_failing_tick_does_not_stop_the_others() -> None:
    """A tick that raises is logged; the others in its slot are ticked, and the timer goes
    on."""
    ticks: list[None] = []
    twice = asyncio.Event()

    class Failing:
        def keepalive_tick(self) -> None:
            raise RuntimeError("boom")

    class Fine:
        def keepalive_tick(self) -> None:
            ticks.append(None)
            if len(ticks) == 2:
                twice.set()

    keepalive = Keepalive(0.1)  # one slot: both are ticked in the same turn
    keepalive.add(Failing())
    keepalive.add(Fine())
    try:
        async with asyncio.timeout(DEADLINE):
            await twice.wait()
    finally:
        keepalive.close()


class _Kept(Keepalive):
    """Never ticks by itself (the test ticks): remembers every session added."""

    def __init__(self) -> None:
        super().__init__(3600.0)
        self.sessions: list[Ticked] = []

    def add(self, session: Ticked) -> int:
        self.sessions.append(session)
        return super().add(session)


async def test_a_sync_session_silent_for_a_tick_is_sent_an_empty_awareness_update() -> None:
    """A ``/sync`` connection that was sent nothing since the last tick is sent an empty
    awareness update (y-websocket drops a socket silent for 30 s); one that was sent
    something is not. A session that ends leaves the keepalive."""
    async with in_process_server() as server:
        keepalive = server.registry.keepalive = _Kept()
        client = await server.client()
        (room,) = server.registry.rooms.values()
        (conn,) = room.connections
        (session,) = keepalive.sessions
        assert len(keepalive) == 1
        session.keepalive_tick()  # the greeting went out since it joined: nothing
        sent = conn.frames_sent
        session.keepalive_tick()  # nothing since the last tick: the empty update
        assert conn.frames_sent == sent + 1
        conn.send(encode_awareness(encode_awareness_entries(())))  # any frame
        session.keepalive_tick()
        assert conn.frames_sent == sent + 2
        session.keepalive_tick()
        assert conn.frames_sent == sent + 3
        await client.close()
        await server.settle()
        assert len(keepalive) == 0
