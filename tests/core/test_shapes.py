"""Every Yjs shape syncs: the domain observes, it never gates.

Stock producers (yjs 13 with y-websocket 2 and 3, @y/y 14, y-prosemirror, Tiptap's Yjs
binding) write nested maps, arrays and texts edited in place, XML fragments, unknown roots
and deletes; every such update is accepted, committed, relayed and kept across a restart, and
the JSON view shows every root. A failure of what the domain derives (an observer, a commit
hook) is counted and logged, never a refusal.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import subprocess
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import pytest_asyncio
from pycrdt import Doc, Map, Text
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from crdt_server.actor import Actor
from crdt_server.cluster.bus import LocalBus
from crdt_server.codec.protocol import encode_update
from crdt_server.codec.updates import decode_state_vector, inspect_update
from crdt_server.core.hooks import (
    DERIVATION_FAILED,
    CommitBatch,
    Core,
    Extension,
    Hooks,
    RoomView,
    Sender,
)
from crdt_server.core.metrics import Metrics
from crdt_server.core.registry import RoomRegistry
from crdt_server.core.room import Room, RoomServices
from crdt_server.documents.shapes import nests_deeper_than
from crdt_server.errors import CloseCode
from crdt_server.features.events import read_events
from crdt_server.features.events.extension import EventLog
from crdt_server.features.events.tables import SCHEMA as EVENTS
from crdt_server.settings import Settings
from crdt_server.storage import Gateway, NewEvent, SqliteStore
from crdt_server.testing.inprocess import in_process_server
from crdt_server.testing.waits import until
from tests.codec.test_updates import one_item, vs
from tests.jsclient import (
    JS_DIR,
    JsClient,
    JsClientGroup,
    map_delete,
    map_set,
    text_delete,
    text_insert,
    ymap,
    ytext,
)
from tests.server import ServerProcess
from tests.tier import needs_node

pytestmark = pytest.mark.asyncio

FIXTURES = Path(__file__).parents[1] / "fixtures"
ANN = Sender(Actor("ann", "couple"), "c1")
BOB = Sender(Actor("bob", "planner"), "c2")


# -- helpers --------------------------------------------------------------------------------


def node_json(script: str, *args: str, stdin: dict[str, Any] | None = None) -> Any:
    """Run one of the Node scripts of tests/js and read the JSON it prints."""
    needs_node(f"tests/js/{script}")
    done = subprocess.run(
        ["node", str(JS_DIR / script), *args],
        input=json.dumps(stdin).encode() if stdin is not None else None,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def produced(scenario: str) -> tuple[list[bytes], dict[str, Any]]:
    """The updates a stock producer wrote in ``scenario`` (tests/js/producers.mjs)."""
    found = node_json("producers.mjs", scenario)
    return [base64.b64decode(u) for u in found["updates"]], found["roots"]


def yjs_views(*states: bytes) -> dict[str, Any]:
    """What stock yjs sees in each state: canonical views and state vectors."""
    encoded = [base64.b64encode(s).decode() for s in states]
    result: dict[str, Any] = node_json("canonical.mjs", stdin={"updates": encoded})
    return result


def assert_converged(*states: bytes) -> dict[str, Any]:
    """Equal state vectors, and equal toJSON/toDelta of every root in a fresh yjs doc."""
    seen = yjs_views(*states)
    vectors, views = seen["stateVectors"], seen["views"]
    assert all(v == vectors[0] for v in vectors), vectors
    assert all(v == views[0] for v in views), json.dumps(views, indent=1)[:4000]
    view: dict[str, Any] = views[0]
    return view


def guest_update(*edits: tuple[str, Any]) -> tuple[Doc[Any], bytes]:
    doc: Doc[Any] = Doc()
    guests = doc.get("guests", type=Map)
    with doc.transaction():
        for key, value in edits:
            guests[key] = value
    return doc, doc.get_update()


# -- the room: derivation failures never refuse an update -----------------------------------


class RaisingObserver(Extension):
    """An extension whose document observer raises on every change."""

    name = "raising-observer"

    def __init__(self) -> None:
        self.subscriptions: list[object] = []  # a dropped subscription stops observing

    async def on_load(self, room: RoomView) -> None:
        def boom(events: object) -> None:
            raise RuntimeError("an observer that fails")

        self.subscriptions.append(room.doc.get("guests", type=Map).observe_deep(boom))


class RaisingCommitHook(Extension):
    """An extension whose on_commit raises for the updates of ``fails_for`` (a sub; None:
    every update)."""

    name = "raiser"

    def __init__(self, fails_for: str | None = "bob") -> None:
        self.fails_for = fails_for

    def on_commit(self, room: RoomView, batch: CommitBatch) -> Sequence[NewEvent]:
        if any(self.fails_for in (None, update.sender.actor.sub) for update in batch.updates):
            raise KeyError("no content here")
        return [
            NewEvent(room.wedding_id, "test.committed", "{}", room.kind, sub=u.sender.actor.sub)
            for u in batch.updates
        ]


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    sqlite = SqliteStore(tmp_path / "shapes.sqlite3")
    await sqlite.open()
    await sqlite.install(EVENTS)  # the rooms run EventLog, which stores events there
    yield sqlite
    await sqlite.close()


async def load_room(store: SqliteStore, extensions: Sequence[Extension], metrics: Metrics) -> Room:
    """The room ``w1/guests`` running ``extensions``, then the event log."""
    failures: list[Room] = []
    hooks = Hooks(extensions)
    services = RoomServices(store, Settings(), LocalBus(), hooks=hooks, metrics=metrics)
    core = Core(services.settings, store, RoomRegistry(services), cast(Any, None))
    hooks.add([EventLog(core)])
    room = await Room.load("w1/guests", services, failures.append)
    return room


@pytest.mark.timeout(30)
async def test_an_observer_that_raises_keeps_the_update(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    room = await load_room(store, [RaisingObserver()], metrics)
    document = room.document
    _, update = guest_update(("g1", Map({"name": "Ann", "dietary": Text("veg")})))
    with caplog.at_level(logging.WARNING):
        index = await room.apply(update, inspect_update(update), ANN)
        assert index is not None
        await room.wait_committed(index)
        # Once more: counted every time, logged once per kind.
        _, second = guest_update(("g2", Map({"name": "Bob"})))
        await room.wait_committed(await room.apply(second, inspect_update(second), ANN))
    assert room.document is document, "the room reloaded its document"
    assert room.doc.get("guests", type=Map).to_py() == {
        "g1": {"name": "Ann", "dietary": "veg"},
        "g2": {"name": "Bob"},
    }
    stored = await store.load("w1/guests")
    assert stored is not None and stored.updates == [update, second]
    assert metrics.derivation_failures.labels("observer")._value.get() == 2
    logged = [r for r in caplog.records if "observer failed" in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in caplog.records]
    assert "RuntimeError" in logged[0].getMessage() and "fails" not in logged[0].getMessage()
    # The event log still derived its events from what it could read.
    events = await read_events(Gateway.of(store), "w1")
    assert [e.type for e in events] == ["guest.added", "guest.added"]


@pytest.mark.timeout(30)
async def test_a_commit_hook_that_raises_commits_the_update_with_a_derivation_failed_event(
    store: SqliteStore,
) -> None:
    metrics = Metrics()
    room = await load_room(store, [RaisingCommitHook()], metrics)
    _, from_ann = guest_update(("g1", Map({"name": "Ann"})))
    doc, from_bob = guest_update(("g2", Map({"name": "Bob"})))
    # Both in one batch: the hook raises for the batch, then for Bob's update alone.
    first = await room.apply(from_ann, inspect_update(from_ann), ANN)
    second = await room.apply(from_bob, inspect_update(from_bob), BOB)
    assert first is not None and second is not None
    await room.wait_committed(second)
    stored = await store.load("w1/guests")
    assert stored is not None and stored.updates == [from_ann, from_bob]
    events = [
        (e.type, e.sub, json.loads(e.data)) for e in await read_events(Gateway.of(store), "w1")
    ]
    assert ("test.committed", "ann", {}) in events
    assert (
        DERIVATION_FAILED,
        "bob",
        {"step": "on_commit:raiser", "doc": "guests", "error": "KeyError"},
    ) in events
    assert not any(t == "test.committed" and sub == "bob" for t, sub, _ in events)
    # The other extensions' rows for both updates are there.
    assert sorted(sub for t, sub, _ in events if t == "guest.added") == ["ann", "bob"]
    assert metrics.derivation_failures.labels("on_commit:raiser")._value.get() == 1
    assert room.failed is None
    # And the room goes on.
    g3 = doc.get("guests", type=Map)
    state = doc.get_state()
    g3["g3"] = Map({"name": "Cy"})
    third = doc.get_update(state)
    await room.wait_committed(await room.apply(third, inspect_update(third), BOB))


@pytest.mark.timeout(30)
async def test_nested_texts_arrays_and_xml_edited_in_place_are_recorded_without_failing(
    store: SqliteStore,
) -> None:
    """The change recorder reads every event kind: edits below a field are not field changes,
    field changes in the same update still are, and nothing is counted as a failure."""
    metrics = Metrics()
    room = await load_room(store, [], metrics)
    doc: Doc[Any] = Doc()
    guests = doc.get("guests", type=Map)
    guests["g1"] = Map({"name": "Ann", "dietary": Text("veg"), "tags": Map({"a": Text("x")})})
    updates = [doc.get_update()]
    state = doc.get_state()
    with doc.transaction():
        dietary = guests["g1"]["dietary"]
        dietary.insert(3, "an")
        dietary.format(0, 3, {"bold": True})
        guests["g1"]["tags"]["a"].insert(1, "yz")
        guests["g1"]["name"] = "Ann B"
    updates.append(doc.get_update(state))
    for update in updates:
        await room.wait_committed(await room.apply(update, inspect_update(update), ANN))
    events = [(e.type, json.loads(e.data)) for e in await read_events(Gateway.of(store), "w1")]
    assert events[-1] == (
        "guest.updated",
        {"id": "g1", "changes": {"name": {"from": "Ann", "to": "Ann B"}}},
    ), events
    assert metrics.derivation_failures.labels("changes")._value.get() == 0


# -- stock clients against the real server --------------------------------------------------


def new_wedding() -> str:
    return f"w{uuid.uuid4().hex[:10]}"


async def server_state(server: ServerProcess, room: str) -> bytes:
    wedding, _, doc = room.partition("/")
    async with httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.get(
            f"/api/weddings/{wedding}/docs/{doc}", headers={"accept": "application/octet-stream"}
        )
    assert answer.status_code == 200, answer.text
    return answer.content


async def view(server: ServerProcess, room: str, **params: str) -> dict[str, Any]:
    wedding, _, doc = room.partition("/")
    async with httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.get(f"/api/weddings/{wedding}/docs/{doc}", params=params)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def closes(client: JsClient) -> list[dict[str, Any]]:
    return [e for e in client.events if e.get("event") == "close"]


async def full_state(client: JsClient) -> bytes:
    return base64.b64decode((await client.state())["update"])


@pytest.mark.js
@pytest.mark.timeout(90)
@pytest.mark.parametrize("version", [2, 3])
async def test_stock_clients_edit_nested_texts_and_arrays_in_place(
    server: ServerProcess, version: int
) -> None:
    room = f"{new_wedding()}/guests"
    async with JsClientGroup() as group:
        a = await group.start(version=version)
        b = await group.start(version=5 - version)
        for c in (a, b):
            await c.connect(server.ws_url, room)
            await c.wait_synced()
        await a.edit(
            map_set(
                "guests",
                "g1",
                ymap(
                    {
                        "name": "Ann",
                        "dietary": ytext("veg"),
                        "tags": {"$ytype": "array", "value": ["a"]},
                    }
                ),
            )
        )
        await b.wait_for(
            {"guests": {"g1": {"name": "Ann", "dietary": "veg", "tags": ["a"]}}},
            roots={"guests": "map"},
        )
        # In place, from both sides, several times: every one of these was refused with 1007.
        for _ in range(3):
            await a.edit(text_insert("guests", 0, "x", path=["g1", "dietary"]))
            await b.edit(
                {"type": "array.push", "name": "guests", "path": ["g1", "tags"], "values": ["b"]}
            )
        await b.edit(text_delete("guests", 0, 1, path=["g1", "dietary"]))
        await a.edit(
            {
                "type": "text.format",
                "name": "guests",
                "path": ["g1", "dietary"],
                "index": 0,
                "length": 2,
                "attributes": {"bold": True},
            }
        )
        await a.edit(
            map_delete("guests", "g1"),
            map_set("guests", "g2", ymap({"name": "Bob", "notes": ytext("hi")})),
        )
        await b.wait_for(
            {"guests": {"g2": {"name": "Bob", "notes": "hi"}}}, roots={"guests": "map"}
        )
        await b.edit(text_insert("guests", 2, " there", path=["g2", "notes"]))
        expected = {"guests": {"g2": {"name": "Bob", "notes": "hi there"}}}
        for c in (a, b):
            await c.wait_for(expected, roots={"guests": "map"})
        state = await server_state(server, room)
        assert_converged(await full_state(a), await full_state(b), state)
        assert closes(a) == [] and closes(b) == []
    shown = await view(server, room)
    assert shown["guests"]["g2"]["name"] == "Bob"
    assert "g1" not in shown["guests"]


@pytest.mark.js
@pytest.mark.timeout(90)
async def test_the_update_a_wedged_client_kept_resending_is_accepted_and_it_catches_up(
    server: ServerProcess,
) -> None:
    """Captured from the 1007 loop of the server before the fix (tests/fixtures): the edit
    every reconnect re-sent. The client holding it connects and syncs with no user action."""
    captured = json.loads((FIXTURES / "wedged-nested-text.json").read_text())
    assert captured["loop"]["codes"] == [1007]
    room = f"{new_wedding()}/guests"
    async with httpx.AsyncClient(base_url=server.url) as http:
        wedding, _, doc = room.partition("/")
        base = base64.b64decode(captured["base"])
        answer = await http.post(f"/api/weddings/{wedding}/docs/{doc}/update", content=base)
        assert answer.status_code == 200, answer.text
    async with JsClientGroup() as group:
        wedged = await group.start(version=3)
        # A reloaded app (its content kept offline, e.g. by y-indexeddb) gets a new clientID.
        await wedged.connect(server.ws_url, room, connect=False, client_id=4243)
        await wedged.apply_update(captured["base"])
        await wedged.apply_update(captured["edit"])
        await wedged.reconnect()
        await wedged.wait_synced()
        other = await group.start(version=2)
        await other.connect(server.ws_url, room)
        await other.wait_for(
            {"guests": {"g1": {"name": "Ann", "dietary": "vegan"}}}, roots={"guests": "map"}
        )
        assert closes(wedged) == []
        assert_converged(
            await full_state(wedged), await full_state(other), await server_state(server, room)
        )


@pytest.mark.js
@pytest.mark.timeout(120)
@pytest.mark.parametrize("scenario", ["prosemirror", "tiptap", "yjs14", "roots"])
async def test_what_stock_producers_write_is_accepted_relayed_kept_and_shown(
    tmp_path: Path, scenario: str
) -> None:
    updates, roots = produced(scenario)
    room = f"{new_wedding()}/{'timeline' if scenario in ('prosemirror', 'tiptap') else 'guests'}"
    async with ServerProcess(tmp_path / "data") as server, JsClientGroup() as group:
        writer = await group.start(version=3)
        reader = await group.start(version=2)
        for c in (writer, reader):
            await c.connect(server.ws_url, room)
            await c.wait_synced()
        for update in updates:  # one frame each, as the producer's provider sends them
            await writer.apply_update(base64.b64encode(update).decode())
        expected: Doc[Any] = Doc()
        for update in updates:
            expected.apply_update(update)

        async def stored() -> bytes | None:
            state = await server_state(server, room)
            return state if _covers(state, expected) else None

        async def relayed() -> bool:
            return _covers(await full_state(reader), expected)

        state = await until(stored, 20)
        await until(relayed, 20)
        before = await view(server, room)
        rich = await view(server, room, format="rich")
        if scenario == "yjs14":  # its fields are read as a yjs-13 map's, events included
            async with httpx.AsyncClient(base_url=server.url) as http:
                wedding = room.partition("/")[0]
                found = (await http.get(f"/api/weddings/{wedding}/events")).json()["events"]
            typed = [(e["type"], e["data"].get("id")) for e in found]
            assert ("guest.added", "g1") in typed and ("guest.rsvp_changed", "g1") in typed
        assert_converged(await full_state(writer), await full_state(reader), state)
        assert closes(writer) == [] and closes(reader) == []
        await server.restart()
        assert_converged(await server_state(server, room), state)
        assert await view(server, room) == before
    _check_view(scenario, before, rich, roots)


def _covers(state: bytes, expected: Doc[Any]) -> bool:
    probe: Doc[Any] = Doc()
    probe.apply_update(state)
    have = decode_state_vector(probe.get_state())
    want = decode_state_vector(expected.get_state())
    return all(have.get(client, 0) >= clock for client, clock in want.items())


def _check_view(
    scenario: str, plain: dict[str, Any], rich: dict[str, Any], roots: dict[str, Any]
) -> None:
    if scenario in ("prosemirror", "tiptap"):
        assert "runofshow" not in plain.get("other", {})  # the schema's: shown as itself
        shown = plain["runofshow"]
        assert shown["prosemirror"] == roots["runofshow"]
        assert shown["text"].splitlines()[0] == "Run of show"
        assert "dinner at 19:00" in shown["text"] and "to be removed" not in shown["text"]
    elif scenario == "yjs14":
        guest = plain["guests"]["g1"]
        assert (guest["name"], guest["rsvp"], guest["plus_one"]) == ("Ann", "declined", False)
        assert plain["problems"] == [
            {
                "path": "guests/guests/g2",
                "message": "Guest 'g2' is a yjs-14 type whose fields this server cannot read,"
                " not an object.",
            }
        ]
    else:
        other = plain["other"]
        assert other["notes"] == "Welcome👋 everyone"
        assert rich["other"]["notes"]["delta"] == [
            {"insert": "Welcome", "attributes": {"bold": True}},
            {"insert": {"image": "https://example.test/logo.png"}},
            {"insert": "👋 everyone"},
        ]
        assert other["checklist"] == [{"nested": "deep"}, 2, {"done": False}]
        assert other["extras"] == roots["extras"]
        assert other["guests"] == ["alice", "bob"]
        assert any(p["path"] == "guests" for p in plain["problems"])


@pytest.mark.js
@pytest.mark.timeout(60)
@pytest.mark.parametrize("scenario", ["prosemirror", "tiptap", "yjs14", "roots"])
async def test_the_import_s_depth_walk_reaches_into_every_stock_shape(scenario: str) -> None:
    """``crdt-server import`` refuses content nested deeper than the views show: its walk
    goes where they go (XML, formatted text, yjs-14 attributes, untyped roots), and what
    stock producers write is well within the limit."""
    doc: Doc[Any] = Doc()
    for update in produced(scenario)[0]:
        doc.apply_update(update)
    assert nests_deeper_than(doc, 1)
    assert not nests_deeper_than(doc)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("update", "reason"),
    [
        (one_item(b"\x01" + vs("1"), info=0x02), "legacy JSON content is not supported"),
        (one_item(b"\x05" + vs("hook"), info=0x07), "XmlHook types are not supported"),
    ],
    ids=["ContentJSON", "XmlHook"],
)
async def test_the_two_encodings_refused_on_purpose_say_why_in_the_close_frame(
    server: ServerProcess, update: bytes, reason: str
) -> None:
    async with connect(f"{server.ws_url}/{new_wedding()}/guests") as websocket:
        await websocket.send(encode_update(update))
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(10):
                while True:
                    await websocket.recv()
    assert websocket.close_code == CloseCode.INVALID_PAYLOAD
    assert reason in (websocket.close_reason or ""), websocket.close_reason


@pytest.mark.timeout(120)
async def test_a_700_deep_map_in_a_guest_breaks_no_reader(tmp_path: Path) -> None:
    """A family member's 10 KB of 700 nested maps under a guest's dietary made the JSON
    view, the export, conflicts, the CSV and guest erasure answer 500 for everyone."""
    doc: Doc[Any] = Doc()
    guests = doc.get("guests", type=Map)
    deep: Map[Any] = Map({})
    guests["g1"] = Map({"name": "Deep", "dietary": deep})
    guests["g2"] = Map({"name": "Plain"})
    with doc.transaction():
        level = deep
        for _ in range(700):
            level["d"] = inner = Map({})
            level = inner
    update = doc.get_update()
    admin = {"authorization": "Bearer admin-key"}
    env = {"CRDT_SERVER_ADMIN_API_KEY": "admin-key"}
    async with ServerProcess(tmp_path / "data", env=env) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            sent = await http.post("/api/weddings/w1/docs/guests/update", content=update)
            assert sent.status_code == 200, sent.text
            shown = await http.get("/api/weddings/w1/docs/guests")
            assert shown.status_code == 200, shown.text
            assert shown.json()["guests"]["g2"]["name"] == "Plain"
            for path in ("/export", "/conflicts", "/guests.csv", "/events"):
                answer = await http.get(
                    f"/api/weddings/w1{path}", headers=admin if path == "/export" else {}
                )
                assert answer.status_code == 200, (path, answer.text)
            events = (await http.get("/api/weddings/w1/events")).json()["events"]
            added = next(e for e in events if e["data"]["id"] == "g1")
            assert len(json.dumps(added)) < 8 * 1024  # bounded, marker included
            erased = await http.post("/api/weddings/w1/guests/g1/erase", headers=admin)
            assert erased.status_code in (200, 202), erased.text
            after = (await http.get("/api/weddings/w1/docs/guests")).json()
            assert "g1" not in after["guests"] and "g2" in after["guests"]
        assert "Traceback" not in server.log_text()


@pytest.mark.timeout(60)
async def test_with_a_raising_observer_and_hook_the_update_is_echoed_relayed_and_counted() -> None:
    """Through real sessions: the writer gets its echo, the other client the update."""
    hooks = Hooks([RaisingObserver(), RaisingCommitHook(fails_for=None)])
    async with in_process_server(hooks=hooks) as server:
        hooks.add([EventLog(Core(server.settings, server.store, server.registry, cast(Any, None)))])
        writer = await server.client("w1/guests")
        reader = await server.client("w1/guests")
        writer.doc.get("guests", type=Map)["g1"] = Map({"name": "Ann", "notes": Text("x")})
        await writer.flush()
        await writer.wait(writer.is_confirmed)
        await reader.wait(lambda: "g1" in reader.doc.get("guests", type=Map))
        failures = server.metrics.derivation_failures
        assert failures.labels("observer")._value.get() >= 1
        assert failures.labels("on_commit:raiser")._value.get() >= 1
        assert set(server.closed_with) <= {CloseCode.NORMAL}, server.closed_with
        stored = await server.store.load("w1/guests")
        assert stored is not None and len(stored.updates) == 1
