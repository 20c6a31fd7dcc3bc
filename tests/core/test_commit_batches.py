"""A room works per batch: the updates it takes in before its commit task next runs (one
turn of the event loop) are committed in one store transaction, with the rows derived from
them, and each commit-side hook is called once with all of them; one update refused in
the middle of them is refused alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pycrdt import Doc, Map

from crdt_server.actor import Actor
from crdt_server.cluster.bus import LocalBus
from crdt_server.codec.updates import inspect_update
from crdt_server.core.hooks import CommitBatch, Extension, Hooks, RoomView, Sender
from crdt_server.core.room import Room, RoomServices
from crdt_server.errors import ProtocolError
from crdt_server.settings import Settings
from crdt_server.storage import NewEvent
from crdt_server.storage.gateway import Gateway, Tx, statements
from tests.stores import RecordingStore

N = 8


class Deriving(Extension):
    """Derives one event per update, stored in the commit's transaction (a table of the
    test's own); keeps what each commit-side hook was given."""

    name = "deriving"

    def __init__(self) -> None:
        self.calls: list[tuple[str, CommitBatch]] = []

    async def on_prepare(self, room: RoomView, batch: CommitBatch) -> None:
        self.calls.append(("prepare", batch))

    def on_commit(self, room: RoomView, batch: CommitBatch) -> Sequence[NewEvent]:
        self.calls.append(("commit", batch))
        return [
            NewEvent(room.wedding_id, "test.seen", "{}", room.kind, sub=u.sender.actor.sub)
            for u in batch.updates
        ]

    def events_step(self, events: Sequence[NewEvent]) -> Tx[list[Any]]:
        return statements([("INSERT INTO seen (sub) VALUES (?)", (e.sub,)) for e in events])

    def on_stored(self, room: RoomView, batch: CommitBatch) -> None:
        self.calls.append(("stored", batch))

    def on_change(self, room: RoomView, batch: CommitBatch) -> None:
        self.calls.append(("change", batch))


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[RecordingStore]:
    sqlite = RecordingStore(tmp_path / "batches.sqlite3")
    await sqlite.open()
    await Gateway.of(sqlite).run(statements([("CREATE TABLE seen (sub TEXT NOT NULL)", ())]))
    yield sqlite
    await sqlite.close()


def _guest(n: int) -> tuple[bytes, Sender]:
    """A writer's update adding guest ``g<n>`` (a client of its own), and its sender."""
    doc: Doc[Any] = Doc()
    doc.get("guests", type=Map)[f"g{n}"] = Map({"name": f"Guest {n}"})
    return doc.get_update(), Sender(Actor(f"u{n}", "couple"), f"c{n}")


def _uint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _cycle() -> bytes:
    """Two clients' items, each to the right of the other's: structurally readable, refused
    by the room's shape rule when applied (see tests/core/test_poisoning.py)."""

    def item_after(client: int, origin: tuple[int, int]) -> bytes:
        head = _uint(1) + _uint(client) + b"\x00\x84" + _uint(origin[0]) + _uint(origin[1])
        return head + _uint(1) + b"z"

    return _uint(2) + item_after(11, (12, 0)) + item_after(12, (11, 0)) + b"\x00"


async def _room(store: RecordingStore, ext: Deriving) -> Room:
    services = RoomServices(store, Settings(), LocalBus(), hooks=Hooks([ext]))
    return await Room.load("w1/guests", services, lambda _: None)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_updates_taken_in_one_loop_turn_commit_together_and_hooks_see_them_once(
    store: RecordingStore,
) -> None:
    ext = Deriving()
    room = await _room(store, ext)
    made = [_guest(n) for n in range(N)]
    indexes: list[int | None] = []
    for update, sender in made:  # no await suspends here: one turn of the loop
        indexes.append(await room.apply(update, inspect_update(update), sender))
    assert room.backlog_over is False
    assert store.appends == []  # nothing committed before the loop turns
    await room.wait_committed()

    [(rows, _, steps)] = store.appends  # one transaction...
    assert [r.data for r in rows] == [u for u, _ in made]
    assert steps == 1  # ...which stored the derived events too
    assert [step for step, _ in ext.calls] == ["prepare", "commit", "stored", "change"]
    prepared, committed, stored, changed = (batch for _, batch in ext.calls)
    assert prepared is committed and changed is stored
    assert [u.data for u in stored.updates] == [u for u, _ in made]
    assert [u.sender for u in stored.updates] == [s for _, s in made]
    assert len(stored.seqs) == N and list(stored.seqs) == sorted(stored.seqs)
    assert [e.sub for e in stored.events] == [f"u{n}" for n in range(N)]
    seen = await Gateway.of(store).run(statements([("SELECT sub FROM seen", ())]))
    assert sorted(r[0] for r in seen[0]) == sorted(f"u{n}" for n in range(N))
    assert indexes == list(range(N))
    assert room._backlog.of(room.name) == 0  # every one counted out once committed


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_an_update_refused_in_a_batch_is_refused_alone(store: RecordingStore) -> None:
    ext = Deriving()
    room = await _room(store, ext)
    first, second = _guest(1), _guest(2)
    bad = _cycle()
    await room.apply(first[0], inspect_update(first[0]), first[1])
    with pytest.raises(ProtocolError):
        await room.apply(bad, inspect_update(bad), Sender(Actor("eve", "friend"), "c9"))
    await room.apply(second[0], inspect_update(second[0]), second[1])
    await room.wait_committed()

    [(rows, _, _)] = store.appends
    assert [r.data for r in rows] == [first[0], second[0]]
    [(_, stored)] = [call for call in ext.calls if call[0] == "stored"]
    assert [u.sender.actor.sub for u in stored.updates] == ["u1", "u2"]
    guests = room.doc.get("guests", type=Map)
    assert sorted(guests.keys()) == ["g1", "g2"]
    loaded = await store.load(room.name)
    assert loaded is not None and loaded.updates == [first[0], second[0]]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_updates_taken_in_during_a_commit_share_the_next_one(
    store: RecordingStore,
) -> None:
    """What arrives while a batch is being committed is the next batch, whole."""
    ext = Deriving()
    room = await _room(store, ext)
    made = [_guest(n) for n in range(1 + N)]
    await room.apply(made[0][0], inspect_update(made[0][0]), made[0][1])
    first = room.wait_committed()
    for _ in range(1000):  # bounded: the commit task takes the first batch at once
        if store.appends:  # it took the first batch and is writing it
            break
        await asyncio.sleep(0)  # one loop turn
    assert store.appends
    for update, sender in made[1:]:
        await room.apply(update, inspect_update(update), sender)
    await first
    await room.wait_committed()
    assert [len(rows) for rows, _, _ in store.appends] == [1, N]
    stored = [batch for step, batch in ext.calls if step == "stored"]
    assert [len(b.updates) for b in stored] == [1, N]
