"""The core knows no domain: change records come from the domain the extensions name."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pytest
import pytest_asyncio
from pycrdt import Doc, Map

from crdt_server.actor import Actor
from crdt_server.cluster.bus import LocalBus
from crdt_server.codec.protocol import decode_message
from crdt_server.codec.updates import inspect_update
from crdt_server.core import room_remote
from crdt_server.core.domain import ChangeRecord
from crdt_server.core.hooks import CommitBatch, Extension, Hooks, RoomView, Sender
from crdt_server.core.room import Room, RoomServices
from crdt_server.documents.changes import EntryChange, entry_changes
from crdt_server.documents.domain import WEDDINGS, WeddingDomain
from crdt_server.settings import Settings
from crdt_server.storage import NewEvent, NewUpdate, SqliteStore
from crdt_server.testing.waits import until

ANN = Sender(Actor("ann", "couple"), "c1")


class Recording(Extension):
    """Keeps the change records of every committed update."""

    name = "recording"
    wants_changes = True

    def __init__(self) -> None:
        self.seen: list[tuple[Sender, Sequence[ChangeRecord]]] = []

    def on_commit(self, room: RoomView, batch: CommitBatch) -> Sequence[NewEvent]:
        for update in batch.updates:
            self.seen += update.changes
        return ()


class WeddingRecording(Recording):
    domain = WEDDINGS


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    sqlite = SqliteStore(tmp_path / "seam.sqlite3")
    await sqlite.open()
    yield sqlite
    await sqlite.close()


async def _room(store: SqliteStore, *extensions: Extension, name: str = "w1/guests") -> Room:
    """The room ``name`` loaded from ``store`` with ``extensions``' hooks, on a local bus."""
    services = RoomServices(store, Settings(), LocalBus(), hooks=Hooks(list(extensions)))
    return await Room.load(name, services, lambda _: None)


async def _add_guest(store: SqliteStore, extension: Recording, room_name: str) -> None:
    room = await _room(store, extension, name=room_name)
    doc = Doc()
    doc.get("guests", type=Map)["g1"] = Map({"name": "Ann"})
    update = doc.get_update()
    await room.wait_committed(await room.apply(update, inspect_update(update), ANN))


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_the_named_domain_records_what_each_update_changed(store: SqliteStore) -> None:
    extension = WeddingRecording()
    await _add_guest(store, extension, "w1/guests")
    [(sender, records)] = extension.seen
    assert sender == ANN
    [change] = entry_changes(records)
    assert isinstance(change, EntryChange)
    assert (change.root, change.id, change.action) == ("guests", "g1", "added")


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_without_a_domain_or_outside_its_kinds_nothing_is_recorded(
    store: SqliteStore,
) -> None:
    bare = Recording()  # wants changes, names no domain: the core cannot record any
    await _add_guest(store, bare, "w1/guests")
    assert bare.seen == []
    other = WeddingRecording()  # a room of no kind of the domain
    await _add_guest(store, other, "w1/scratchpad")
    assert other.seen == []


@pytest.mark.timeout(10)
def test_the_extensions_of_one_server_name_one_domain() -> None:
    class Elsewhere(Extension):
        domain = WeddingDomain()  # another value: a second domain

    assert Hooks([WeddingRecording(), WeddingRecording()]).domain is WEDDINGS
    with pytest.raises(ValueError, match="different domains"):
        Hooks([WeddingRecording(), Elsewhere()])


@pytest.mark.timeout(10)
def test_hooks_find_the_first_extension_of_a_kind_once() -> None:
    @runtime_checkable
    class Greets(Protocol):
        def greet(self) -> str: ...

    class Greeter(Extension):
        def greet(self) -> str:
            return "hello"

    plain, first, second = Extension(), Greeter(), Greeter()
    hooks = Hooks([plain, first, second])
    assert hooks.first(Greets) is first  # type: ignore[type-abstract]
    assert hooks.first(Greeter) is first
    assert Hooks([plain]).first(Greeter) is None
    # Remembered: the answer is the same object without asking the extensions again.
    hooks.extensions = ()
    assert hooks.first(Greets) is first  # type: ignore[type-abstract]


def test_the_domain_says_where_a_guest_is_for_the_erasure() -> None:
    """The core's erasure asks the domain to forget a guest in each of its documents."""
    docs = {kind: Doc() for kind in WEDDINGS.kinds}
    docs["guests"].get("guests", type=Map)["g1"] = Map({"name": "Ann"})
    docs["seating"].get("assignments", type=Map)["g1"] = "t1"
    docs["seating"].get("assignments", type=Map)["g2"] = "t1"
    forgot = {kind: WEDDINGS.forget(doc, kind, "g1") for kind, doc in docs.items()}
    assert forgot == {
        "timeline": False,
        "budget": False,
        "guests": True,
        "seating": True,
        "tasks": False,
    }
    assert dict(docs["guests"].get("guests", type=Map)) == {}
    assert dict(docs["seating"].get("assignments", type=Map)) == {"g2": "t1"}
    assert not WEDDINGS.forget(docs["guests"], "guests", "g1")  # nothing left to forget


def test_forgetting_a_guest_unlinks_their_named_plus_one() -> None:
    doc: Doc[Any] = Doc()
    guests = doc.get("guests", type=Map)
    guests["g1"] = Map({"name": "Ann", "plus_one": True})
    guests["g2"] = Map({"name": "Bo", "plus_one_of": "g1"})
    assert WEDDINGS.forget(doc, "guests", "g1")
    assert guests.to_py() == {"g2": {"name": "Bo"}}


def test_forgetting_a_household_s_last_guest_clears_its_note() -> None:
    """The note the household wrote to the couple goes with the last of its people; the
    entry (the couple's name and address for it) stays, and other households keep theirs."""
    doc: Doc[Any] = Doc()
    households = doc.get("households", type=Map)
    noted = {"rsvp_note": "Sam is allergic to nuts", "rsvp_note_at": "2026-04-01T10:00:00Z"}
    households["h1"] = Map({"name": "Lees", "mailing_address": "1 Main St", **noted})
    households["h2"] = Map({"name": "Kims", **noted})
    guests = doc.get("guests", type=Map)
    guests["g1"] = Map({"name": "Ann", "household_id": "h1"})
    guests["g2"] = Map({"name": "Bo", "household_id": "h1"})
    guests["k1"] = Map({"name": "Jo", "household_id": "h2"})
    assert WEDDINGS.forget(doc, "guests", "g1")
    assert households.to_py()["h1"]["rsvp_note"] == "Sam is allergic to nuts", "Bo is left"
    assert WEDDINGS.forget(doc, "guests", "g2")
    assert households.to_py() == {
        "h1": {"name": "Lees", "mailing_address": "1 Main St"},
        "h2": {"name": "Kims", **noted},
    }


class Batches(Extension):
    """Keeps what each commit-side hook was given, in order."""

    name = "batches"

    def __init__(self) -> None:
        self.calls: list[tuple[str, CommitBatch]] = []

    async def on_prepare(self, room: RoomView, batch: CommitBatch) -> None:
        self.calls.append(("prepare", batch))

    def on_commit(self, room: RoomView, batch: CommitBatch) -> Sequence[NewEvent]:
        self.calls.append(("commit", batch))
        return [NewEvent(room.wedding_id, "test.seen", "{}", room.kind, sub="ann")]

    def on_stored(self, room: RoomView, batch: CommitBatch) -> None:
        self.calls.append(("stored", batch))

    def on_change(self, room: RoomView, batch: CommitBatch) -> None:
        self.calls.append(("change", batch))


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_the_commit_side_hooks_receive_one_batch_in_order(store: SqliteStore) -> None:
    """prepare, commit, stored, change: the same updates; once stored, with their seqs and
    events, and on_change is given the batch on_stored was; content another process
    committed comes as a remote batch, with its seqs and no updates."""
    batches = Batches()
    room = await _room(store, batches)
    doc = Doc()
    doc.get("guests", type=Map)["g1"] = Map({"name": "Ann"})
    update = doc.get_update()
    await room.wait_committed(await room.apply(update, inspect_update(update), ANN))
    assert [step for step, _ in batches.calls] == ["prepare", "commit", "stored", "change"]
    prepared, committed, stored, changed = (batch for _, batch in batches.calls)
    assert prepared is committed
    assert [u.data for u in prepared.updates] == [update]
    assert (prepared.seqs, prepared.events, prepared.remote) == ((), (), False)
    assert stored.updates == prepared.updates
    assert list(stored.seqs) == [room.last_seq]
    assert [e.type for e in stored.events] == ["test.seen"]
    assert changed is stored
    batches.calls.clear()
    other = Doc()
    other.get("guests", type=Map)["g2"] = Map({"name": "Bo"})
    room.apply_remote([room.last_seq + 1], [other.get_update()])
    [(step, remote)] = batches.calls
    assert step == "change"
    assert remote.remote
    assert list(remote.updates) == []
    assert list(remote.seqs) == [room.last_seq]
    assert remote.changes == []


@pytest.mark.asyncio
@pytest.mark.timeout(30)
@pytest.mark.parametrize("arrives", ["bus", "catch-up"])
async def test_a_held_update_released_by_another_process_is_credited_to_its_writer(
    store: SqliteStore, arrives: str
) -> None:
    """A writer's answer to a guest that another process added (its commit not heard of
    here yet) waits, held; once that guest arrives (on the bus, or read back from the
    store), the answer is integrated and its change credited to its writer, in a commit
    of its own: the events of the fault campaign's answers that ended ``pending``."""
    extension = WeddingRecording()
    room = await _room(store, extension)
    elsewhere = Doc()
    elsewhere.get("guests", type=Map)["g1"] = Map({"name": "Ann", "rsvp": "pending"})
    added = elsewhere.get_update()
    phone: Doc[Any] = Doc()
    phone.apply_update(added)
    seen = phone.get_state()
    phone.get("guests", type=Map)["g1"]["rsvp"] = "accepted"
    answer = phone.get_update(seen)
    await room.wait_committed(await room.apply(answer, inspect_update(answer), ANN))
    assert extension.seen == []  # held: nothing changed yet
    if arrives == "bus":
        room.apply_remote([room.last_seq + 1], [added])
    else:
        await store.append([NewUpdate("w1/guests", added, "elsewhere")])
        await room.catch_up()

    async def credited() -> list[tuple[Sender, Sequence[ChangeRecord]]]:
        return extension.seen

    [(sender, records)] = await until(credited, 10)
    assert sender == ANN
    [change] = entry_changes(records)
    assert isinstance(change, EntryChange)
    assert (change.root, change.id, change.action) == ("guests", "g1", "updated")
    assert (change.before, change.after) == ({"rsvp": "pending"}, {"rsvp": "accepted"})
    assert room.doc.get("guests", type=Map).to_py()["g1"]["rsvp"] == "accepted"


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_catch_up_lets_the_loop_turn_and_relays_only_what_it_read(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catch-up reading a long log from the store lets other tasks run between its rows
    (here after every row), and what it relays is the rows it read, never an update a
    local writer applied meanwhile that is not committed yet."""
    monkeypatch.setattr(room_remote, "TURN_EVERY", 0.0)
    room = await _room(store)
    sent: list[bytes] = []
    monkeypatch.setattr(room.members, "broadcast", sent.append)
    elsewhere = Doc()
    rows = []
    for n in range(50):
        elsewhere.get("guests", type=Map)[f"g{n}"] = Map({"name": f"Guest {n}"})
        rows.append(NewUpdate("w1/guests", elsewhere.get_update(), "elsewhere"))
    await store.append(rows)
    turns = 0

    async def ticker() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    local = Doc()
    local.get("guests", type=Map)["mine"] = Map({"name": "Uncommitted"})
    mine = local.get_update()

    async def writer() -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        room.document.apply(mine, inspect_update(mine))  # applied here, not committed

    ticking = asyncio.create_task(ticker())
    try:
        await asyncio.gather(room.catch_up(), writer())
    finally:
        ticking.cancel()
    assert turns >= 50
    assert len(room.doc.get("guests", type=Map)) == 51
    relayed = Doc()
    for frame in sent:
        relayed.apply_update(decode_message(frame).update)  # type: ignore[union-attr]
    assert sorted(relayed.get("guests", type=Map).keys()) == sorted(f"g{n}" for n in range(50))
