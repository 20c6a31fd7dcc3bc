"""The server's own edits (HTTP operations, :meth:`WeddingService.edit`) run on the room's
own document, with no copy of it: what they write enters the room like a client's update
(the change records and races credited to the sender, committed, stored), every refused
operation leaves the room's document as it was (the same object, the same state vector and
content), and an edit refused after it wrote (its change raised, or it would pass a limit)
is rolled back by rebuilding the document without it (issue 52, point 4). The edits that
keep a copy (``copy=True``: an integration's batch of operations and a delay's ripple of
moves, each operation checked against what the ones before it wrote) are checked in
``tests/features/integrations/test_inbound.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pycrdt import Doc, Map

from crdt_server.actor import Actor
from crdt_server.cluster.bus import LocalBus
from crdt_server.codec.updates import decode_state_vector
from crdt_server.core.crdt import replay
from crdt_server.core.domain import ChangeRecord
from crdt_server.core.hooks import Extension, Hooks, Sender
from crdt_server.core.overwrites import Found
from crdt_server.core.payloads import CommitBatch
from crdt_server.core.registry import RoomRegistry
from crdt_server.core.services import RoomServices
from crdt_server.core.views import RoomView
from crdt_server.core.weddings import JSON_OFF_LOOP_BYTES, WeddingService
from crdt_server.documents import DOCUMENT_KINDS, OPERATIONS, OperationError
from crdt_server.documents.changes import entry_changes
from crdt_server.documents.domain import WEDDINGS
from crdt_server.edge.problems import OPERATION_STATUS
from crdt_server.errors import DocumentTooLarge
from crdt_server.settings import Settings
from crdt_server.storage import NewEvent, SqliteStore
from tests.documents.test_refusals_write_nothing import CASES, TEXT_CASES, _wedding

pytestmark = [pytest.mark.timeout(60), pytest.mark.asyncio]

AUNT = Sender(Actor("aunt", "family"), "http:aunt")


class Recording(Extension):
    """What the commit hooks are given of each committed update."""

    name = "recording"
    domain = WEDDINGS
    wants_changes = True
    wants_overwrites = True

    def __init__(self) -> None:
        self.changes: list[tuple[Sender, Sequence[ChangeRecord]]] = []
        self.found: list[tuple[Sender, Found]] = []
        self.stored: list[CommitBatch] = []

    def on_commit(self, room: RoomView, batch: CommitBatch) -> Sequence[NewEvent]:
        for update in batch.updates:
            self.changes += update.changes
            self.found += update.found
        return ()

    def on_stored(self, room: RoomView, batch: CommitBatch) -> None:
        self.stored.append(batch)


@dataclass
class Setup:
    store: SqliteStore
    services: RoomServices
    registry: RoomRegistry
    weddings: WeddingService
    recording: Recording


async def _setup(tmp_path: Path, **settings: Any) -> AsyncIterator[Setup]:
    config = Settings(data_dir=tmp_path / "data", **settings)
    store = SqliteStore(config.sqlite_path)
    await store.open()
    recording = Recording()
    services = RoomServices(store, config, LocalBus(), hooks=Hooks([recording]))
    registry = RoomRegistry(services)
    weddings = WeddingService(registry, store, WEDDINGS)
    try:
        yield Setup(store, services, registry, weddings, recording)
    finally:
        await registry.close()
        await store.close()


@pytest_asyncio.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    async for found in _setup(tmp_path):
        yield found


async def _filled(setup: Setup) -> None:
    """The rooms of w1 hold the wedding of the refusal catalogue (sent as a client would)."""
    for kind, doc in _wedding().items():
        await setup.weddings.apply_update(f"w1/{kind}", doc.get_update(), AUNT)


async def test_an_operation_runs_on_the_rooms_own_document(setup: Setup) -> None:
    await _filled(setup)
    async with setup.weddings.room("w1/guests") as room:
        document = room.document
        before = decode_state_vector(room.doc.get_state())
    setup.recording.changes.clear()
    result = await setup.weddings.operate(
        "w1", "guests", {"op": "add_guest", "guest_id": "g7", "name": "Gus"}, AUNT
    )
    assert result["changed"] is True
    async with setup.weddings.room("w1/guests") as room:
        assert room.document is document  # the room's own, not a copy put in its place
        after = decode_state_vector(room.doc.get_state())
        assert room.doc.client_id == setup.weddings.client_id == setup.services.client_id
    # one new entry in the state vector: the server's own client id, whoever asked
    assert {c: n for c, n in after.items() if before.get(c) != n}.keys() == {
        setup.weddings.client_id
    }
    # the commit hooks saw it as a client's update: its changes and races credited to the
    # sender, then stored
    [(sender, records)] = setup.recording.changes
    assert sender == AUNT
    assert [(c.root, c.id, c.action) for c in entry_changes(records)] == [("guests", "g7", "added")]
    assert any(s == AUNT and ("guests", "g7") in f.written for s, f in setup.recording.found)
    assert setup.recording.stored[-1].updates[-1].sender == AUNT
    # it is in the store: a replay shows it
    stored = await setup.store.load("w1/guests")
    assert stored is not None
    assert "g7" in replay(stored.updates)[0].doc.get("guests", type=Map)


async def test_every_refused_operation_leaves_the_room_as_it_was(setup: Setup) -> None:
    """Every operation's refusals of the domain's catalogue, through the service on the
    rooms' own documents: nothing written, nothing rebuilt."""
    await _filled(setup)
    cases = [(op, OPERATIONS[op], status, fields) for op, status, fields in CASES]
    cases += TEXT_CASES
    for op, kind, status, fields in cases:
        async with AsyncRooms(setup) as rooms:
            documents = {k: r.document for k, r in rooms.items()}
            states = {k: r.doc.get_state() for k, r in rooms.items()}
            views = {k: WEDDINGS.to_json(r.doc, k) for k, r in rooms.items()}
            with pytest.raises(OperationError) as info:
                await setup.weddings.operate("w1", kind, {"op": op, **fields}, AUNT)
            assert OPERATION_STATUS[info.value.reason] == status, (op, fields, info.value)
            assert {k: r.document for k, r in rooms.items()} == documents, (op, fields)
            assert {k: r.doc.get_state() for k, r in rooms.items()} == states, (op, fields)
            assert {k: WEDDINGS.to_json(r.doc, k) for k, r in rooms.items()} == views
    assert setup.services.metrics.edits_rolled_back._value.get() == 0


class AsyncRooms:
    """The four rooms of w1, held while a case runs."""

    def __init__(self, setup: Setup) -> None:
        self._registry = setup.registry
        self._rooms: dict[str, Any] = {}

    async def __aenter__(self) -> dict[str, Any]:
        for kind in DOCUMENT_KINDS:
            self._rooms[kind] = await self._registry.acquire(f"w1/{kind}")
        return self._rooms

    async def __aexit__(self, *exc: object) -> None:
        for room in self._rooms.values():
            self._registry.release(room)


async def test_a_change_that_raises_after_writing_leaves_no_trace(setup: Setup) -> None:
    await _filled(setup)
    async with setup.weddings.room("w1/guests") as room:
        state = room.doc.get_state()
        view = WEDDINGS.to_json(room.doc, "guests")

    def half_way(doc: Doc[Any]) -> None:
        doc.get("guests", type=Map)["g8"] = Map({"name": "Half"})
        raise RuntimeError("a bug after the first write")

    with pytest.raises(RuntimeError):
        await setup.weddings.edit("w1/guests", half_way, AUNT)
    assert setup.services.metrics.edits_rolled_back._value.get() == 1
    async with setup.weddings.room("w1/guests") as room:
        assert room.doc.get_state() == state
        assert WEDDINGS.to_json(room.doc, "guests") == view
        # the rebuilt document edits under another client id: the refused edit's ids are
        # never given to other content
        assert room.doc.client_id != setup.services.client_id
    await setup.weddings.operate(
        "w1", "guests", {"op": "add_guest", "guest_id": "g9", "name": "Nine"}, AUNT
    )
    stored = await setup.store.load("w1/guests")  # what was kept
    assert stored is not None
    guests = replay(stored.updates)[0].doc.get("guests", type=Map)
    assert "g9" in guests and "g8" not in guests


async def test_an_edit_past_the_document_limit_is_refused_and_leaves_no_trace(
    tmp_path: Path,
) -> None:
    async for setup in _setup(tmp_path, max_document_bytes=4096):
        await setup.weddings.operate(
            "w1", "guests", {"op": "add_guest", "guest_id": "g1", "name": "Ann"}, AUNT
        )
        async with setup.weddings.room("w1/guests") as room:
            state = room.doc.get_state()
        big = {"op": "add_guest", "guest_id": "g2", "name": "B" * 100}
        big["notes"] = "n" * 5000
        with pytest.raises(DocumentTooLarge):
            await setup.weddings.operate("w1", "guests", big, AUNT)
        async with setup.weddings.room("w1/guests") as room:
            assert room.doc.get_state() == state
            assert "g2" not in room.doc.get("guests", type=Map)
        assert setup.services.metrics.edits_rolled_back._value.get() == 1


async def test_a_large_documents_json_view_is_made_on_a_copy_and_reads_the_same(
    setup: Setup,
) -> None:
    """A document past JSON_OFF_LOOP_BYTES is shown from a copy on a worker thread: the same
    view and state vector as the room's own document gives."""
    guests = Doc()
    with guests.transaction():
        entries = guests.get("guests", type=Map)
        for i in range(1000):
            entries[f"g{i}"] = Map({"name": f"Guest number {i:04d}", "rsvp": "pending"})
    assert len(guests.get_update()) >= JSON_OFF_LOOP_BYTES
    await setup.weddings.apply_update("w1/guests", guests.get_update(), AUNT)
    data, state = await setup.weddings.read_json_at("w1", "guests", rich=True)
    async with setup.weddings.room("w1/guests") as room:
        assert data == WEDDINGS.to_json(room.doc, "guests", rich=True)
        assert state == room.doc.get_state()
    assert len(data["guests"]) == 1000
