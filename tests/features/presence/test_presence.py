"""Presence squatting (issue 15, item 11): a client id stays bound to the principal that
introduced it, after its connection left, for a bounded time and number of ids. And the
relay that folds a busy room's presence into fewer messages (issue 22, target 4)."""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from crdt_server.cluster.bus import LocalBus
from crdt_server.codec.awareness import AwarenessEntry, encode_awareness_entries
from crdt_server.core.presence import AwarenessRegistry, PresenceRelay
from crdt_server.core.registry import RoomRegistry
from crdt_server.core.services import RoomServices
from crdt_server.settings import Settings
from crdt_server.storage import SqliteStore
from crdt_server.testing.waits import until

pytestmark = pytest.mark.timeout(10)


def entry(client_id: int, clock: int, name: str | None) -> AwarenessEntry:
    return AwarenessEntry(client_id, clock, json.dumps(None if name is None else {"name": name}))


def test_a_departed_users_client_id_cannot_be_taken_by_another_principal() -> None:
    registry = AwarenessRegistry()
    alice, mallory = object(), object()
    registry.apply(alice, "alice", [entry(7, 1, "alice")])
    assert [e.client_id for e in registry.remove_owner(alice)] == [7]
    assert registry.apply(mallory, "mallory", [entry(7, 9, "alice (really mallory)")]) == []
    assert registry.rejected == 1
    assert registry.states() == []
    # Alice reconnecting with her client id gets it back.
    back = entry(7, 3, "alice")
    assert registry.apply(object(), "alice", [back]) == [back]


def test_an_expired_presence_stays_bound_too() -> None:
    registry = AwarenessRegistry()
    remote = ("remote", "p1")
    registry.apply(remote, "process:p1", [entry(5, 1, "bob")])
    assert registry.expire(float("inf"), lambda owner: owner == remote)
    assert registry.apply(object(), "mallory", [entry(5, 2, "bob")]) == []


def test_bindings_are_bounded_in_time_and_number() -> None:
    registry = AwarenessRegistry(binding_seconds=0.0, binding_entries=2)
    conn = object()
    registry.apply(conn, "alice", [entry(1, 1, "a")])
    registry.remove_owner(conn)
    # Past the binding time anyone may use the id.
    claim = entry(1, 2, "m")
    assert registry.apply(object(), "mallory", [claim]) == [claim]

    sized = AwarenessRegistry(binding_entries=2)
    owner = object()
    sized.apply(owner, "alice", [entry(i, 1, "a") for i in (1, 2, 3)])
    sized.remove_owner(owner)
    # Only the two newest bindings are kept: id 1 (the oldest) is free, 2 and 3 are not.
    assert len(sized.apply(object(), "mallory", [entry(i, 2, "m") for i in (1, 2, 3)])) == 1


WINDOW = 0.01
FOLD_WINDOW = 0.1
"""Long enough that the calls the test makes one after the other land in one window even
when a loaded machine takes the process off the core between two of them."""


async def flushed(sent: list[Any], count: int) -> None:
    """Until the relay has sent ``count`` frames (its window's timer fired)."""

    async def sent_enough() -> bool:
        return len(sent) >= count

    await until(sent_enough, 5.0, every=FOLD_WINDOW / 10)


@pytest.mark.asyncio
async def test_a_quiet_room_relays_at_once_a_busy_one_folds_a_window_into_one_message() -> None:
    sent: list[tuple[list[AwarenessEntry], object]] = []

    def broadcast(entries: Iterable[AwarenessEntry], exclude: object) -> None:
        sent.append((list(entries), exclude))

    relay = PresenceRelay(broadcast, FOLD_WINDOW)
    alice, bob = object(), object()
    relay.relay([entry(1, 1, "a")], exclude=alice)
    assert sent == [([entry(1, 1, "a")], alice)]  # at once
    relay.relay([entry(1, 2, "a2")], exclude=alice)
    relay.relay([entry(1, 3, "a3")], exclude=alice)
    assert len(sent) == 1  # folded until the window ends
    await flushed(sent, 2)
    assert sent[1] == ([entry(1, 3, "a3")], alice)  # the newest state; one sender skipped
    # A window follows that flush: once it is over (the flush's timer may fire late on a
    # loaded machine, so it is timed from when the flush was seen), the room is quiet.
    await asyncio.sleep(FOLD_WINDOW * 1.5)
    relay.relay([entry(1, 4, "a4")], exclude=alice)  # quiet again: at once
    assert len(sent) == 3
    relay.relay([entry(2, 1, "b")], exclude=bob)
    relay.relay([entry(1, 5, "a5")], exclude=alice)
    await flushed(sent, 4)
    assert sent[2:] == [
        ([entry(1, 4, "a4")], alice),
        ([entry(2, 1, "b"), entry(1, 5, "a5")], None),  # two senders: one frame for everyone
    ]


@pytest.mark.asyncio
async def test_a_window_of_zero_relays_every_change_at_once() -> None:
    sent: list[list[AwarenessEntry]] = []
    relay = PresenceRelay(lambda entries, exclude: sent.append(list(entries)), 0)
    for clock in (1, 2, 3):
        relay.relay([entry(1, clock, "a")])
    assert sent == [[entry(1, clock, "a")] for clock in (1, 2, 3)]
    assert not relay.folding


@pytest.mark.asyncio
async def test_a_closed_relay_sends_nothing_more_and_holds_no_timer() -> None:
    sent: list[list[AwarenessEntry]] = []
    relay = PresenceRelay(lambda entries, exclude: sent.append(list(entries)), WINDOW)
    relay.relay([entry(1, 1, "a")])
    relay.relay([entry(1, 2, "a2")])
    assert relay.folding
    relay.close()
    assert not relay.folding
    await asyncio.sleep(WINDOW * 3)
    assert sent == [[entry(1, 1, "a")]]


@pytest.mark.asyncio
async def test_an_unloaded_room_is_freed_while_its_presence_was_folding(tmp_path: Path) -> None:
    # The fold's timer referred to the room: an unloaded room lived on until the window
    # ended (the fuzz run's "rooms alive after unload", under load).
    settings = Settings(data_dir=tmp_path / "data", presence_batch_seconds=60.0)
    store = SqliteStore(settings.sqlite_path)
    await store.open()
    registry = RoomRegistry(RoomServices(store, settings, LocalBus()))
    try:
        room = await registry.acquire("w1/guests")
        for clock in (1, 2):
            payload = encode_awareness_entries([entry(9, clock, "remote")])
            room.apply_remote_awareness("p2", payload)
        assert room.presence_folding
        registry.release(room)
        freed = weakref.ref(room)
        del room
    finally:
        await registry.close()
        await store.close()
    gc.collect()
    assert freed() is None
