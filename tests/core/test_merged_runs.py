"""A writer's updates that arrive together are taken in as one: merged, applied once,
stored as one row and echoed as one frame (``Room.apply_run``), so that the more a server
is behind, the less each update costs it. Only where the merge ends where applying them one
by one would; an update refused among them is refused alone, those before it taken."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map, Text

from crdt_server.actor import Actor
from crdt_server.cluster.bus import LocalBus
from crdt_server.codec.protocol import (
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_sync_step1,
    encode_update,
)
from crdt_server.codec.updates import UpdateSummary, inspect_update
from crdt_server.core.crdt import RoomDocument
from crdt_server.core.hooks import Sender
from crdt_server.core.room import Room, RoomServices
from crdt_server.errors import ProtocolError
from crdt_server.settings import Settings
from crdt_server.storage import DocumentStore, SqliteStore
from crdt_server.testing import strategies
from crdt_server.testing.edits import content
from tests.core.test_commit_batches import _cycle
from tests.server import ServerProcess
from tests.stores import RecordingStore
from tests.tier import examples
from tests.wire.test_wire import BINARY, client_frame, fresh_room, ws_connect

N = 8
WRITER = Sender(Actor("u1", "couple"), "c1")


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[RecordingStore]:
    sqlite = RecordingStore(tmp_path / "runs.sqlite3")
    await sqlite.open()
    yield sqlite
    await sqlite.close()


async def _room(store: DocumentStore) -> Room:
    return await Room.load("w1/guests", RoomServices(store, Settings(), LocalBus()), print)


def _typed(doc: Doc[Any], edit: Any) -> list[bytes]:
    """The updates ``edit(doc)`` makes, one per transaction it opens."""
    made: list[bytes] = []
    subscription = doc.observe(lambda event: made.append(event.update))
    edit(doc)
    doc.unobserve(subscription)
    return made


def _notes(count: int, start: int = 0, doc: Doc[Any] | None = None) -> list[bytes]:
    """``count`` one-character inserts into the ``notes`` text, one update each."""
    doc = doc if doc is not None else Doc()

    def edit(d: Doc[Any]) -> None:
        notes = d.get("notes", type=Text)
        for n in range(start, start + count):
            notes.insert(n, "x")

    return _typed(doc, edit)


def _batches(text: str) -> tuple[float, float]:
    """How many room commits there were, and how many updates they held in all."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("crdt_commit_batch_size_count", "crdt_commit_batch_size_sum"):
            found[name] = float(value)
    assert len(found) == 2, "no batch-size histogram in metrics"
    return found["crdt_commit_batch_size_count"], found["crdt_commit_batch_size_sum"]


def _run(updates: list[bytes]) -> list[tuple[bytes, UpdateSummary]]:
    return [(u, inspect_update(u)) for u in updates]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_run_is_one_update_one_row_and_counts_every_update(
    store: RecordingStore,
) -> None:
    room = await _room(store)
    updates = _notes(N)
    await room.apply_run(_run(updates), WRITER)
    await room.wait_committed()

    [(rows, _, _)] = store.appends
    assert len(rows) == 1 and rows[0].sub == "u1"
    assert str(room.doc.get("notes", type=Text)) == "x" * N
    reloaded = await _room(store)
    assert str(reloaded.doc.get("notes", type=Text)) == "x" * N
    assert room._metrics.updates_accepted == N
    room._backlog._roll()
    assert room._backlog._window == {"w1": N}  # the wedding's rate counts each update


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_an_update_refused_in_a_run_is_refused_alone_and_those_before_it_taken(
    store: RecordingStore,
) -> None:
    room = await _room(store)
    good, later = _notes(2), _notes(1, start=2)
    bad = _cycle()
    with pytest.raises(ProtocolError):
        await room.apply_run(_run([*good, bad, *later]), WRITER)
    await room.wait_committed()

    assert [r.data for rows, _, _ in store.appends for r in rows] == good
    assert str(room.doc.get("notes", type=Text)) == "xx"


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_an_update_the_document_would_hold_is_not_merged_with_the_others(
    store: RecordingStore,
) -> None:
    """The third update follows on a clock the room has not seen: merged, it would keep
    back the two before it, which the room can take in now."""
    room = await _room(store)
    doc: Doc[Any] = Doc()
    first = _notes(2, doc=doc)
    _notes(1, start=2, doc=doc)  # never sent: the gap
    gapped = _notes(1, start=3, doc=doc)
    await room.apply_run(_run([*first, *gapped]), WRITER)
    await room.wait_committed()

    assert str(room.doc.get("notes", type=Text)) == "xx"
    [(rows, _, _)] = store.appends
    assert [r.data for r in rows][1:] == gapped  # stored and held, after the two merged
    assert len(rows) == 2
    assert [held for held, _ in room.document.held] == gapped


async def _applied(updates: list[bytes], *, run: bool) -> tuple[Any, dict[int, int], list[bytes]]:
    """A fresh room's content, state vector and held updates once it took ``updates`` in,
    as one run or one by one (and what a store reloaded from its commits holds)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "store.sqlite3", inline=True)
        await store.open()
        try:
            room = await _room(store)
            pairs = _run(updates)
            if run:
                await room.apply_run(pairs, WRITER)
            else:
                for update, summary in pairs:
                    await room.apply(update, summary, WRITER)
            await room.wait_committed()
            reloaded = await _room(store)
            assert content(reloaded.doc) == content(room.doc)
            held = [update for update, _ in room.document.held]
            return content(room.doc), dict(room.document.state()), held
        finally:
            await store.close()


@settings(max_examples=examples(60, 15), deadline=None)
@given(st.data())
def test_a_run_ends_where_its_updates_applied_one_by_one_end(data: st.DataObject) -> None:
    """Two clients' real updates (nested types, text, deletes), delivered in any order and
    with duplicates, as one writer's run: the same content, state vector and held updates
    as the same updates applied one by one, and the same once reloaded from the store."""
    first = data.draw(strategies.update_sequences(client_id=1))
    second = data.draw(strategies.update_sequences(client_id=2))
    updates = data.draw(strategies.out_of_order(first + second))
    merged = asyncio.run(_applied(updates, run=True))
    alone = asyncio.run(_applied(updates, run=False))
    assert merged[:2] == alone[:2]
    assert sorted(merged[2]) == sorted(alone[2])


def test_a_run_stops_before_an_update_whose_parent_is_no_shared_type_known() -> None:
    """An update whose items name a parent that is no shared type (no Yjs client writes
    one) starts a run of its own; one that names a type an earlier update made joins."""
    document = RoomDocument()
    doc: Doc[Any] = Doc()

    def nest(d: Doc[Any]) -> None:
        d.get("guests", type=Map)["g1"] = Map({"name": "Ada"})

    def fill(d: Doc[Any]) -> None:
        d.get("guests", type=Map)["g1"]["rsvp"] = "yes"

    made, filled = _typed(doc, nest), _typed(doc, fill)
    summaries = [inspect_update(u) for u in [*made, *filled]]
    assert summaries[-1].parents and summaries[-1].parents <= set(summaries[0].types)
    assert document.one_transaction(summaries) == len(summaries)

    stray = UpdateSummary({}, {}, 0, True, {}, {}, parents=frozenset({(99, 0)}))
    assert document.one_transaction([summaries[0], stray, summaries[-1]]) == 1
    assert document.one_transaction([stray, summaries[0]]) == 2


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_frames_read_in_one_go_from_a_socket_are_one_update_and_one_commit(
    tmp_path: Path,
) -> None:
    """A writer's frames that reach the server together (one TCP write) are merged into
    one update, committed in one batch (of N of the writer's updates) and echoed as one
    frame. (A root the wedding domain does not read: nothing else commits meanwhile.)"""
    async with ServerProcess(tmp_path / "data") as server:
        async with httpx.AsyncClient() as http:
            before = _batches((await http.get(f"{server.url}/metrics")).text)
        updates = _notes(N)
        async with await ws_connect(server.port, fresh_room()) as ws:
            await ws.greeting()
            await ws.send_raw(b"".join(client_frame(BINARY, encode_update(u)) for u in updates))
            while True:
                decoded = decode_message((await ws.read_message()).payload)
                if isinstance(decoded, SyncUpdate):
                    break
            echoed: Doc[Any] = Doc()
            echoed.apply_update(decoded.update)
            assert str(echoed.get("notes", type=Text)) == "x" * N  # all of them, one frame
        async with httpx.AsyncClient() as http:
            page = (await http.get(f"{server.url}/metrics")).text
        after = _batches(page)
        assert (after[0] - before[0], after[1] - before[1]) == (1, N)  # one commit of N


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_malformed_update_behind_a_run_closes_after_the_run_is_taken(
    tmp_path: Path,
) -> None:
    async with ServerProcess(tmp_path / "data") as server:
        room = fresh_room()
        updates = _notes(3)
        malformed = encode_update(b"\x01\x02\x03")
        async with await ws_connect(server.port, room) as ws:
            await ws.greeting()
            frames = [encode_update(u) for u in updates] + [malformed]
            await ws.send_raw(b"".join(client_frame(BINARY, f) for f in frames))
            code, reason = await ws.read_close()
            assert code == ProtocolError.close_code and "malformed update" in reason
        async with await ws_connect(server.port, room) as ws:
            await ws.greeting()
            await ws.send_raw(client_frame(BINARY, encode_sync_step1(b"\x00")))
            while True:
                decoded = decode_message((await ws.read_message()).payload)
                if isinstance(decoded, SyncStep2):
                    break
            stored: Doc[Any] = Doc()
            stored.apply_update(decoded.update)
            assert str(stored.get("notes", type=Text)) == "xxx"
