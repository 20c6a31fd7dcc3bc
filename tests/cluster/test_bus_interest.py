"""A room's committed updates cross the bus only to the processes that have the room open;
every process still hears of every seq, and one that was not sent a room's updates it
needed catches the room up from the store. On a real Redis, with the real bus."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from crdt_server.cluster.redis_bus import RedisBus
from tests.cluster.conftest import Heard, Listener, RedisProcess, eventually

ROOM = "w7/guests"


@pytest_asyncio.fixture
async def buses(
    redis_server: RedisProcess,
) -> AsyncIterator[tuple[RedisBus, Heard, RedisBus, Heard]]:
    a, b = RedisBus(redis_server.url), RedisBus(redis_server.url)
    a_heard, b_heard = Heard(), Heard()
    await a.start(a_heard)
    await b.start(b_heard)
    try:
        yield a, a_heard, b, b_heard
    finally:
        await a.close()
        await b.close()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_room_open_in_one_process_sends_nothing_and_its_seqs_are_still_heard(
    buses: tuple[RedisBus, Heard, RedisBus, Heard], listener: Listener
) -> None:
    a, _, b, b_heard = buses
    a.watch(ROOM)
    for seq in range(1, 21):
        a.publish_updates(ROOM, [seq], [b"u%d" % seq])
    # B hears of every seq (no gap) without being sent a byte of the room.
    await eventually(lambda: all(b._tracker.heard(seq) for seq in range(1, 21)))
    assert b._tracker.gap_since is None
    assert await listener.drain() == []
    assert b_heard.updates == [] and b_heard.gaps == [] and b_heard.missed == []

    # Once B opens the room too, A's next commits are sent to B.
    b.watch(ROOM)
    await eventually(lambda: b.process_id in a._remote.get(ROOM, set()))
    a.publish_updates(ROOM, [21, 22], [b"u21", b"u22"])
    await b_heard.until(lambda: bool(b_heard.updates))
    assert b_heard.updates == [(ROOM, [21, 22], [b"u21", b"u22"])]
    assert b_heard.missed == []

    # After B closes it, they are not any more.
    b.unwatch(ROOM)
    await eventually(lambda: not a._remote.get(ROOM))
    before = len(await listener.drain())
    a.publish_updates(ROOM, [23], [b"u23"])
    await eventually(lambda: b._tracker.heard(23))
    assert len(await listener.drain()) == before


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_updates_never_sent_to_a_process_with_the_room_open_are_caught_up(
    buses: tuple[RedisBus, Heard, RedisBus, Heard],
) -> None:
    a, _, b, b_heard = buses
    b.watch(ROOM)
    await eventually(lambda: b.process_id in a._remote.get(ROOM, set()))
    # A forgets that B has the room open (its Interest message was lost): A's commit is
    # not sent to B, but its seq is listed, so B catches the room up from the store...
    a._remote.clear()
    a.publish_updates(ROOM, [5], [b"u5"])
    await b_heard.until(lambda: b_heard.missed == [ROOM])
    assert b_heard.updates == []
    # ... and says again that it has the room open: A's next commits are sent to B.
    await eventually(lambda: b.process_id in a._remote.get(ROOM, set()))
    a.publish_updates(ROOM, [6], [b"u6"])
    await b_heard.until(lambda: bool(b_heard.updates))
    assert b_heard.updates == [(ROOM, [6], [b"u6"])]
    assert b_heard.missed == [ROOM] and b_heard.gaps == []


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_process_that_joins_learns_which_rooms_are_open_and_a_closed_one_is_forgotten(
    redis_server: RedisProcess, buses: tuple[RedisBus, Heard, RedisBus, Heard]
) -> None:
    a, _, b, _ = buses
    b.watch(ROOM)
    b.watch("w8/seating")
    await eventually(lambda: len(a._remote) == 2)
    late = RedisBus(redis_server.url)
    late_heard = Heard()
    await late.start(late_heard)
    try:
        # It asked when it joined: it knows B's rooms without B opening them again.
        await eventually(lambda: set(late._remote) == {ROOM, "w8/seating"})
        assert late._remote[ROOM] == {b.process_id}
        late.watch(ROOM)
        await eventually(lambda: a._remote.get(ROOM) == {b.process_id, late.process_id})
    finally:
        await late.close()
    # A process that stops says so: its rooms are no longer open anywhere but B.
    await eventually(lambda: a._remote.get(ROOM) == {b.process_id})
    await b.close()
    await eventually(lambda: not a._remote)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_silent_process_is_forgotten(
    redis_server: RedisProcess,
) -> None:
    a = RedisBus(redis_server.url, heartbeat=0.2)
    a_heard = Heard()
    await a.start(a_heard)
    gone = RedisBus(redis_server.url, heartbeat=0.2)
    await gone.start(Heard())
    try:
        gone.watch(ROOM)
        await eventually(lambda: a._remote.get(ROOM) == {gone.process_id})
        # Killed (nothing said on the way out): after five silent heartbeats, its rooms
        # are no longer open anywhere.
        for task in gone._tasks:
            task.cancel()
        await eventually(lambda: not a._remote, timeout=5)
    finally:
        await a.close()
        await gone._redis.aclose()
