"""No writer can poison a room: whatever updates a writer sends, stock clients that are in the
room, join it, or join after a restart integrate what the server sends them without an error.

The attack (issue 15.1): an update that waits on content the server lacks is held, and
before, it was relayed to every client (live, and to joiners after their step 2). A stock
client keeps such an update in its own pending store, and when the content it waits on
arrives, pycrdt raises (or panics) integrating the two; worse, the server refused that honest
content itself with 1007, so the room could never receive it. The server now relays only
what it integrated whole (held content goes out behind the update that releases it), and a
held update that fails once released is dropped, never the update that released it.

Clients here are stock: ``pycrdt.Doc.apply_update`` on every frame (:class:`StockReader`),
and Node's ``yjs`` + ``y-websocket`` (:mod:`tests.jsclient`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text, merge_updates
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from crdt_server.codec.protocol import (
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_sync_step1,
    encode_sync_step2,
    encode_update,
)
from crdt_server.codec.shapes import ShapeError
from crdt_server.codec.updates import UpdateError, inspect_update
from crdt_server.core.crdt import Applied, CrdtFailure, RoomDocument, replay
from tests.server import ServerProcess
from tests.tier import examples

DEADLINE = 10.0
ROOTS: dict[str, Any] = {"m": "map", "t": "text", "a": "array"}
_rooms = itertools.count()


def _room() -> tuple[str, str]:
    return f"p{next(_rooms)}", "guests"


# -- byte builders for hostile updates -----------------------------------------------------


def _uint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _str(text: str) -> bytes:
    raw = text.encode()
    return _uint(len(raw)) + raw


def _one_struct(client: int, clock: int, struct: bytes, deletes: bytes = b"\x00") -> bytes:
    return b"\x01\x01" + _uint(client) + _uint(clock) + struct + deletes


def text_under(client: int, parent: tuple[int, int], text: str = "z") -> bytes:
    """A string item whose parent is the item ``parent`` (a type, or not)."""
    return _one_struct(client, 0, b"\x04\x00" + _uint(parent[0]) + _uint(parent[1]) + _str(text))


def text_after(client: int, origin: tuple[int, int], text: str = "z") -> bytes:
    """A string item to the right of ``origin``."""
    return _one_struct(client, 0, b"\x84" + _uint(origin[0]) + _uint(origin[1]) + _str(text))


def root_entry(client: int, key: str = "k") -> bytes:
    """A map entry (``key`` = "v") in the root map ``m``, at clock 0."""
    return _one_struct(client, 0, b"\x28\x01" + _str("m") + _str(key) + b"\x01\x77" + _str("v"))


def entry_under(client: int, parent: tuple[int, int], key: str = "k") -> bytes:
    """A map entry (``key`` = "v") in the item ``parent``."""
    body = b"\x28\x00" + _uint(parent[0]) + _uint(parent[1]) + _str(key) + b"\x01\x77" + _str("v")
    return _one_struct(client, 0, body)


def map_under(client: int, parent: tuple[int, int], key: str = "k") -> bytes:
    """A nested map type under key ``key`` of the item ``parent``."""
    body = b"\x27\x00" + _uint(parent[0]) + _uint(parent[1]) + _str(key) + b"\x01"
    return _one_struct(client, 0, body)


def delete_range(client: int, start: int, length: int) -> bytes:
    """An update that only deletes ``length`` clocks of ``client`` from ``start``."""
    return b"\x00\x01" + _uint(client) + b"\x01" + _uint(start) + _uint(length)


def state_vector(state: dict[int, int]) -> bytes:
    return _uint(len(state)) + b"".join(_uint(c) + _uint(k) for c, k in state.items())


# The reproduction: client 8's string whose parent is 7#0, then 7#0 arrives as a map entry
# holding a string (no type). Held first, relayed to joiners, it made every stock pycrdt
# reader raise on the honest update, and the server refused the honest update with 1007.
POISON = text_under(8, (7, 0))
HONEST = _one_struct(7, 0, b"\x28\x01" + _str("m") + _str("q") + b"\x01\x77" + _str("v"))


# A released held update whose parent is not a type (2026-11-23, seed
# 109622630646920016599163635248501046125): 1001 writes m.k; the held update names 1000#0 as
# its parent; 1000#0 then arrives as m.k too, loses to 1001's and is deleted as it
# integrates. Integrated one by one (as the room does) the held update finds its parent
# deleted, which yrs accepts; merged into one frame with its releaser (as the room relayed
# them), yrs finds the parent not deleted yet (a deleted item's content is only replaced at
# the end of the transaction) and raises InvalidParent: every stock reader failed.
OVERWRITER = root_entry(1001)
ORPHAN = text_under(3000, (1000, 0))
LOSER = root_entry(1000)

# The same when a held update fails once released: the room rebuilt the document and
# relayed what the releaser released in arrival order, not in the order it integrated them.
# ``CUT_*`` are real updates of client 1000 from the property's history, cut (its 1000#2 is
# deleted by ``CUT_DELETE``); ``BAD`` names 1000#0, a live entry, so it fails once released.
CUT_ORPHAN = text_under(3001, (1000, 2))
BAD = text_under(3000, (1000, 0))
CUT = (
    b"\x01\x02\xe8\x07\x01\xa1\xe8\x07\x00\x01\xa8\xe8\x07\x01\x01|\x00\x00\x00\x00"
    b"\x01\xe8\x07\x01\x00\x02"
)
CUT_DELETE = delete_range(1000, 0, 3)
CUT_HISTORY = [
    b"\x01\x01\xe8\x07\x00(\x01\x01m\x02k0\x01|\x00\x00\x00\x00\x00",
    b"\x01\x01\xe8\x07\x01\xa8\xe8\x07\x00\x01|\x00\x00\x00\x00\x01\xe8\x07\x01\x00\x01",
    b"\x01\x01\xe8\x07\x02\xa8\xe8\x07\x01\x01|\x00\x00\x00\x00\x01\xe8\x07\x01\x01\x01",
]


def _relay(document: RoomDocument, update: bytes) -> list[bytes]:
    """Apply ``update`` as the room does; the frames the room relays for it."""
    summary = inspect_update(update)
    if document.apply(update, summary) is not Applied.CHANGED:
        return []
    return document.frames([(update, summary), *document.released])


def test_pycrdt_refuses_a_parent_deleted_in_the_same_transaction() -> None:
    """The root cause, in pycrdt alone: the same three updates apply one by one, not with
    the last two merged."""
    one_by_one: Doc[Any] = Doc()
    for update in (OVERWRITER, LOSER, ORPHAN):
        one_by_one.apply_update(update)
    reader: Doc[Any] = Doc()
    reader.apply_update(OVERWRITER)
    with pytest.raises(RuntimeError, match="must be deleted or shared ref type"):
        reader.apply_update(merge_updates(LOSER, ORPHAN))


def test_a_released_update_goes_out_as_the_room_integrated_it() -> None:
    document = RoomDocument()
    reader: Doc[Any] = Doc()
    for update in (OVERWRITER, ORPHAN, LOSER):
        for frame in _relay(document, update):
            reader.apply_update(frame)
    assert not document.held
    assert reader.get_state() == document.doc.get_state()
    assert _content(reader) == _content(document.doc) == {"m": {"k": "v"}, "t": "", "a": []}


def test_what_a_replay_released_goes_out_in_the_order_it_integrated() -> None:
    """The room's path when a held update fails once released: it replays the log with
    the releaser last and relays what that released."""
    rows = [CUT_ORPHAN, BAD, CUT, CUT_DELETE, CUT_HISTORY[0]]
    document, unreadable = replay(rows)
    assert unreadable == 1 and document.refused == {BAD} and not document.held
    reader: Doc[Any] = Doc()
    summary = inspect_update(CUT_HISTORY[0])
    for frame in document.frames([(CUT_HISTORY[0], summary), *document.released]):
        reader.apply_update(frame)
    assert reader.get_state() == document.doc.get_state()
    assert _content(reader) == _content(document.doc)


# -- stock clients -------------------------------------------------------------------------


class StockReader:
    """A stock pycrdt client: every update frame goes to ``Doc.apply_update`` as it comes.

    Whatever pycrdt raises (a ``PanicException`` included) is recorded in ``errors``.
    """

    def __init__(self, url: str, room: str) -> None:
        self.url = f"{url}/{room}"
        self.doc: Doc[Any] = Doc()
        self.errors: list[str] = []
        self.synced = False
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> StockReader:
        self._ws = await connect(self.url, max_size=None)
        self._task = asyncio.create_task(self._read())
        await self._ws.send(encode_sync_step1(self.doc.get_state()))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._ws is not None and self._task is not None
        await self._ws.close()
        await self._task

    async def _read(self) -> None:
        assert self._ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for frame in self._ws:
                assert isinstance(frame, bytes)
                message = decode_message(frame)
                if isinstance(message, SyncStep1):
                    reply = encode_sync_step2(self.doc.get_update(message.state_vector))
                    await self._ws.send(reply)
                elif isinstance(message, SyncStep2 | SyncUpdate):
                    try:
                        self.doc.apply_update(message.update)
                    except BaseException as exc:  # noqa: B036 - pyo3 panics are BaseException
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                    if isinstance(message, SyncStep2):
                        self.synced = True

    def content(self) -> dict[str, Any]:
        return _content(self.doc)


def _content(doc: Doc[Any]) -> dict[str, Any]:
    return {
        "m": doc.get("m", type=Map).to_py() or {},
        "t": str(doc.get("t", type=Text)),
        "a": doc.get("a", type=Array).to_py() or [],
    }


async def _server_content(server: ServerProcess, wedding: str, kind: str) -> dict[str, Any]:
    """The room's integrated document, as the HTTP API serves it (binary)."""
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{server.url}/api/weddings/{wedding}/docs/{kind}",
            headers={"accept": "application/octet-stream"},
        )
    assert response.status_code == 200, response.text
    doc: Doc[Any] = Doc()
    doc.apply_update(response.content)
    return _content(doc)


async def _until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Writer:
    """A raw writer: sends frames one at a time; after each, a step 1 whose step 2 answer
    proves the frame was processed (or the close code says it was refused)."""

    def __init__(self, url: str, room: str) -> None:
        self.url = f"{url}/{room}"
        self.codes: list[int | None] = []

    async def send_all(self, updates: list[bytes]) -> list[int | None]:
        ws: ClientConnection | None = None
        try:
            for update in updates:
                if ws is None:
                    ws = await connect(self.url, max_size=None)
                code = await self._send(ws, update)
                self.codes.append(code)
                if code is not None:
                    ws = None
        finally:
            if ws is not None:
                await ws.close()
        return self.codes

    async def _send(self, ws: ClientConnection, update: bytes) -> int | None:
        try:
            await ws.send(encode_update(update))
            await ws.send(encode_sync_step1(b"\x00"))
            async with asyncio.timeout(DEADLINE):
                async for frame in ws:
                    assert isinstance(frame, bytes)
                    if isinstance(decode_message(frame), SyncStep2):
                        return None
        except ConnectionClosed:
            pass
        await ws.wait_closed()
        rcvd = ws.protocol.close_rcvd
        return rcvd.code if rcvd is not None else 1006


# -- the reproduction ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_held_update_cannot_break_readers_nor_block_what_it_waits_on(
    server: ServerProcess,
) -> None:
    wedding, kind = _room()
    room = f"{wedding}/{kind}"
    async with StockReader(server.ws_url, room) as live:
        await _until(lambda: live.synced, "the live reader's step 2")
        assert await Writer(server.ws_url, room).send_all([POISON]) == [None]  # held, stored
        async with StockReader(server.ws_url, room) as joiner:
            await _until(lambda: joiner.synced, "the joiner's step 2")
            # The honest update the poison waits on is taken, not refused with 1007.
            assert await Writer(server.ws_url, room).send_all([HONEST]) == [None]
            expected = await _server_content(server, wedding, kind)
            assert expected["m"] == {"q": "v"}
            for reader in (live, joiner):
                await _until(lambda r=reader: r.content() == expected, "the honest content")  # type: ignore[misc]
            assert live.errors == [] and joiner.errors == []
    await server.restart()
    async with StockReader(server.ws_url, room) as late:
        await _until(lambda: late.synced and late.content() == expected, "the restarted room")
        assert late.errors == []


@pytest.mark.asyncio
async def test_a_room_holds_a_bounded_amount_then_refuses_with_1013(tmp_path: Any) -> None:
    async with ServerProcess(
        tmp_path / "data", env={"CRDT_SERVER_MAX_HELD_UPDATES": "3"}
    ) as server:
        room = "bounded/guests"
        held = [text_under(100 + i, (7, i)) for i in range(4)]
        assert await Writer(server.ws_url, room).send_all(held) == [None, None, None, 1013]
    held = [text_under(100 + i, (7, i), "x" * 15) for i in range(3)]
    limit = str(len(held[0]) + len(held[1]))
    async with ServerProcess(
        tmp_path / "data2", env={"CRDT_SERVER_MAX_HELD_BYTES": limit}
    ) as server:
        room = "bytes/guests"
        assert await Writer(server.ws_url, room).send_all(held) == [None, None, 1013]


# -- the property: real updates with their dependencies taken away -------------------------


def _history(ops: list[tuple[int, int, int]]) -> tuple[list[bytes], Doc[Any]]:
    """Real updates of three pycrdt replicas editing ``m``, ``t`` and ``a``, syncing now
    and then; returns every update (in the order they were made) and a replica holding
    all of them."""
    docs: list[Doc[Any]] = [Doc(client_id=1000 + i) for i in range(3)]
    updates: list[bytes] = []
    for doc in docs:
        doc.observe(lambda event: updates.append(event.update))
    for who, kind, arg in ops:
        doc = docs[who]
        text = doc.get("t", type=Text)
        if kind == 0:
            doc.get("m", type=Map)[f"k{arg % 4}"] = arg
        elif kind == 1:
            text.insert(arg % (len(str(text)) + 1), "ab")
        elif kind == 2 and len(str(text)) > 1:
            del text[arg % len(str(text)) : len(str(text))]
        elif kind == 3:
            doc.get("a", type=Array).append(Map({"x": arg}))
        elif kind == 4:
            m = doc.get("m", type=Map)
            if "n" in m and isinstance(m["n"], Text):
                m["n"].insert(0, "z")
            else:
                m["n"] = Text("hi")
        else:
            other = docs[arg % 3]
            if other is not doc:
                other.apply_update(doc.get_update(other.get_state()))
    whole: Doc[Any] = Doc()
    for update in updates:
        whole.apply_update(update)
    return updates, whole


OPS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 5), st.integers(0, 50)), max_size=14)


@st.composite
def attacks(draw: st.DrawFn) -> tuple[list[bytes], list[bytes]]:
    """(what the attacker sends, the honest history): the history with updates dropped,
    reordered, cut (sent from a clock past their start) and hostile items added that name
    real or missing content as parent or origin."""
    history, whole = _history(draw(OPS))
    sent = [u for u in history if draw(st.booleans())]
    sent = draw(st.permutations(sent))
    clocks = {1000 + i: 0 for i in range(3)}
    state = Doc()
    state.apply_update(whole.get_update())
    for client in clocks:
        clocks[client] = _state_of(state).get(client, 0)
    ids = [(c, k) for c, end in clocks.items() for k in range(end + 2)] + [(7, 0), (2000, 3)]
    for _ in range(draw(st.integers(0, 2))):  # cut: a client's content from clock k on
        client = draw(st.sampled_from(sorted(clocks)))
        start = draw(st.integers(1, max(1, clocks[client])))
        cut = whole.get_update(state_vector({client: start}))
        sent.insert(draw(st.integers(0, len(sent))), cut)
    for i in range(draw(st.integers(0, 3))):  # hostile items naming any id
        target = draw(st.sampled_from(ids))
        make = draw(st.sampled_from([text_under, text_after, entry_under, map_under]))
        sent.insert(draw(st.integers(0, len(sent))), make(3000 + i, target))
    if draw(st.booleans()):
        client = draw(st.sampled_from(sorted(clocks)))
        sent.append(delete_range(client, draw(st.integers(0, 5)), draw(st.integers(1, 5))))
    return sent, history


def _state_of(doc: Doc[Any]) -> dict[int, int]:
    from crdt_server.codec.updates import decode_state_vector

    return decode_state_vector(doc.get_state())


def _item_after(client: int, origin: tuple[int, int]) -> bytes:
    """One client's part of an update: a string item at clock 0 right of ``origin``."""
    return _uint(1) + _uint(client) + b"\x00\x84" + _uint(origin[0]) + _uint(origin[1]) + _str("z")


def test_an_update_whose_clients_wait_on_each_other_is_refused() -> None:
    """Two clients' items in one update, each to the right of the other's: yrs keeps both
    pending, which the document must not. Neither item can be placed (each is where the
    other is), so the shape rule refuses the update before pycrdt sees it (issue 47); the
    state decoded after an update with several clients' structs stays the check behind it."""
    cycle = _uint(2) + _item_after(11, (12, 0)) + _item_after(12, (11, 0)) + b"\x00"
    document = RoomDocument()
    with pytest.raises(ShapeError, match="does not have"):
        document.apply(cycle, inspect_update(cycle))
    assert document.doc.get_state() == b"\x00"


@settings(max_examples=examples(full=400, fast=60), deadline=None)
@given(attack=attacks())
def test_the_state_vector_kept_without_decoding_is_the_documents(
    attack: tuple[list[bytes], list[bytes]],
) -> None:
    """After an update of one client's structs the document advances its state vector from
    the update's summary instead of decoding yrs' (:meth:`RoomDocument._advance`): over
    hostile sequences (held, released, refused, cut and replayed content) it is always the
    state vector yrs reports."""
    sent, history = attack
    document = RoomDocument()
    for update in [*sent, *history]:
        try:
            document.apply(update, inspect_update(update))
        except UpdateError:
            continue
        except CrdtFailure:
            document = RoomDocument()  # it may hold part of the update: start over
            continue
        assert document.state() == _state_of(document.doc), update.hex()


@pytest_asyncio.fixture
async def node() -> AsyncIterator[Any]:
    from tests.jsclient import JsClientGroup

    async with JsClientGroup() as group:
        yield group


async def _check_room(server: ServerProcess, node: Any, wedding: str, kind: str) -> None:
    """A fresh pycrdt reader and a fresh Node Yjs client join cleanly and see the room."""
    room = f"{wedding}/{kind}"
    expected = await _server_content(server, wedding, kind)
    async with StockReader(server.ws_url, room) as fresh:
        await _until(lambda: fresh.synced and fresh.content() == expected, "a fresh joiner")
        assert fresh.errors == []
    js = await node.start(version=2)
    try:
        await js.connect(server.ws_url, room)
        await js.wait_synced()
        seen = await js.json(ROOTS)
        assert not [e for e in js.events if e.get("event") in ("fatal", "error")], js.events
        assert seen["m"] == expected["m"] and seen["t"] == expected["t"], (seen, expected)
        await js.destroy()
    finally:
        await js.close()


@pytest.mark.slow
@pytest.mark.js
@pytest.mark.timeout(300)
@pytest.mark.asyncio
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    # Fixed examples in CI (shrinking a failure can take longer than the time limit). The
    # random run that found a relayed merge a stock reader could not apply (seed
    # 109622630646920016599163635248501046125) is fixed; its shapes are the explicit
    # examples below and the unit tests above (OVERWRITER/ORPHAN/LOSER, CUT_*).
    derandomize=True,
)
@given(attack=attacks())
@example(attack=([ORPHAN, OVERWRITER], [LOSER]))
@example(attack=([CUT_ORPHAN, BAD, CUT, CUT_DELETE], CUT_HISTORY))
async def test_no_sequence_of_updates_breaks_a_stock_client(
    server: ServerProcess, node: Any, attack: tuple[list[bytes], list[bytes]]
) -> None:
    sent, history = attack
    wedding, kind = _room()
    room = f"{wedding}/{kind}"
    async with StockReader(server.ws_url, room) as live:
        await _until(lambda: live.synced, "the live reader's step 2")
        await Writer(server.ws_url, room).send_all(sent)
        async with StockReader(server.ws_url, room) as joiner:  # joins while content is held
            await _until(lambda: joiner.synced, "the joiner's step 2")
            await _check_room(server, node, wedding, kind)
            # The honest history arrives: nothing it holds may make it unacceptable.
            codes = await Writer(server.ws_url, room).send_all(history)
            assert set(codes) <= {None}, codes
            expected = await _server_content(server, wedding, kind)
            for reader in (live, joiner):
                await _until(lambda r=reader: r.content() == expected, "the relayed content")  # type: ignore[misc]
                assert reader.errors == [], reader.errors
    await _check_room(server, node, wedding, kind)
    _checked.append((wedding, kind))
    if len(_checked) % 5 == 0:  # now and then, everything so far after a restart
        await server.restart()
        for wedding, kind in _checked[-5:]:
            await _check_room(server, node, wedding, kind)


_checked: list[tuple[str, str]] = []
