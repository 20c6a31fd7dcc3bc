"""Content that does not fit its parent is refused before pycrdt sees it (issue 47, point 1).

pycrdt 0.14.13 counts string content in UTF-16 units and iterates a ``Y.Array`` up to that
count, which never ends when the array holds a string with an astral character: one small
update from any writer hung the whole server. The codec now refuses such content with the
table of :mod:`crdt_server.codec.shapes`; the room's :class:`~crdt_server.core.kinds.KindIndex`
gives the parent of an item that names only its origin.

Every server-level test here runs the server as a child process: on code that hangs, the
request times out and the child is killed; the test run itself never hangs.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from crdt_server.codec.items import read_items
from crdt_server.codec.protocol import encode_update
from crdt_server.codec.shapes import (
    GONE,
    KEYED,
    ROOT,
    SEQUENCE,
    ShapeError,
    fit,
    table_markdown,
)
from crdt_server.codec.updates import inspect_update
from crdt_server.core.crdt import RoomDocument
from crdt_server.core.kinds import KindIndex
from tests import hostile_shapes as h
from tests.core.test_shape_properties import EDITS, apply, refused_or_summary
from tests.core.test_shapes import produced
from tests.server import ServerProcess
from tests.tier import examples
from tests.yclient import YClient

HOSTILE = {
    "nested insert": h.nested_insert(),
    "origin insert": h.origin_insert(),
    "gc origin insert": h.gc_origin_insert(),
    "one update": h.one_update(),
    "unknown root": h.unknown_root_update(),
}


def _index_of(*updates: bytes) -> KindIndex:
    index = KindIndex()
    for update in updates:
        fitted = fit(read_items(update), index)
        assert not fitted.misfits
        index.add(fitted)
    return index


@pytest.mark.timeout(10)
@pytest.mark.parametrize("update", HOSTILE.values(), ids=HOSTILE.keys())
def test_the_codec_refuses_string_content_under_a_nested_array(update: bytes) -> None:
    inspect_update(update)  # well-formed: the structure alone does not tell
    misfits = fit(read_items(update), _index_of(h.base_document())).misfits
    assert misfits
    assert all(m.content == 4 for m in misfits)
    assert "string" in misfits[0].describe()


@pytest.mark.timeout(10)
@pytest.mark.parametrize("update", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_room_document_refuses_it_before_pycrdt_sees_it(update: bytes) -> None:
    document = RoomDocument()
    document.apply(h.base_document(), inspect_update(h.base_document()))
    before = document.doc.get_update()
    with pytest.raises(ShapeError, match="does not fit"):
        document.apply(update, inspect_update(update))
    assert document.doc.get_update() == before
    assert document.doc.get("guests", type=Map).to_py() == {"g1": {"tags": [1.0]}}


@pytest.mark.timeout(10)
def test_an_index_of_one_document_stays_small() -> None:
    """Runs of one client in one parent are one entry: typing a long text costs one."""
    doc: Doc[Map[Any]] = Doc(client_id=5)
    guests = doc.get("guests", type=Map)
    tags: Array[int] = Array([1])
    with doc.transaction():
        guests["g1"] = Map({"tags": tags})
    updates = [doc.get_update()]
    for n in range(200):
        state = doc.get_state()
        tags.append(n)
        updates.append(doc.get_update(state))
    index = _index_of(*updates)
    assert index.runs() <= 3


async def _hostile_server(tmp_path: Path) -> ServerProcess:
    return await ServerProcess(tmp_path / "data").start()


async def _base(server: ServerProcess, room: str) -> int:
    """Writes ``guests.g1 = {tags: [1]}`` into ``room``; returns the writer's client id."""
    async with YClient(server.ws_url, room) as writer:
        await writer.wait(writer.synced.is_set)
        with writer.doc.transaction():
            writer.doc.get("guests", type=Map)["g1"] = Map({"tags": Array([1])})
        await writer.flush()
        await writer.wait(writer.is_confirmed)
        return int(writer.doc.client_id)


async def _healthy(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        assert (await http.get("/healthz")).status_code == 200


VARIANTS = ["nested insert", "origin insert", "gc origin insert", "one update", "unknown root"]


def _variant(name: str, client: int) -> bytes:
    return {
        "nested insert": h.nested_insert(client),
        "origin insert": h.origin_insert(client),
        "gc origin insert": h.gc_origin_insert(client),
        "one update": h.one_update(),
        "unknown root": h.unknown_root_update(),
    }[name]


@pytest.mark.timeout(90)
@pytest.mark.asyncio
async def test_over_http_it_is_a_400_and_the_server_keeps_answering(tmp_path: Path) -> None:
    server = await _hostile_server(tmp_path)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
            for name in VARIANTS:
                room = f"shape-{uuid.uuid4().hex[:10]}"
                client = await _base(server, f"{room}/guests")
                before = (await http.get(f"/api/weddings/{room}/docs/guests")).json()
                answer = await http.post(
                    f"/api/weddings/{room}/docs/guests/update",
                    content=_variant(name, client),
                    headers={"Content-Type": "application/octet-stream"},
                )
                assert answer.status_code == 400, (name, answer.text)
                assert "does not fit" in answer.text
                view = await http.get(f"/api/weddings/{room}/docs/guests")
                assert view.status_code == 200
                assert view.json() == before, name
        await _healthy(server)
    finally:
        await server.stop(timeout=3)


@pytest.mark.timeout(90)
@pytest.mark.asyncio
async def test_over_the_socket_it_is_a_1007_and_the_server_keeps_answering(
    tmp_path: Path,
) -> None:
    server = await _hostile_server(tmp_path)
    try:
        for name in VARIANTS:
            room = f"shape-{uuid.uuid4().hex[:10]}/guests"
            client = await _base(server, room)
            async with YClient(server.ws_url, room) as attacker:
                await attacker.wait(attacker.synced.is_set)
                await attacker.send_raw(encode_update(_variant(name, client)))
                await asyncio.wait_for(attacker.closed.wait(), 5)
                assert attacker.close_code == 1007, name
            await _healthy(server)
    finally:
        await server.stop(timeout=3)


# -- the table is what stock producers write ---------------------------------------------

SCENARIOS = ["prosemirror", "tiptap", "yjs14", "roots", "yjs13all", "yjs14all"]
Pair = tuple[int, bool, int]
"""(parent kind, keyed, content ref)."""


def _pairs(updates: list[bytes]) -> tuple[set[Pair], list[str]]:
    """Every (parent kind, keyed, content) the updates write, integrated in order, and the
    misfits among them."""
    index = KindIndex()
    pairs: set[Pair] = set()
    misfits: list[str] = []
    for update in updates:
        fitted = fit(read_items(update), index)
        misfits += [m.describe() for m in fitted.misfits]
        index.add(fitted)
        for _, _, (parent, keyed), ref, _ in fitted.placed:
            if parent is None or ref == 0:
                continue
            kind = ROOT if isinstance(parent, str) else index.parent_kind(parent)
            assert kind is not None
            if kind != GONE:
                pairs.add((kind, keyed, ref))
    return pairs, misfits


def _with_state(updates: list[bytes]) -> tuple[set[Pair], list[str]]:
    """:func:`_pairs` of the updates, and of pycrdt's encoding of the document they make
    (deleted content, as a joiner receives it)."""
    pairs, misfits = _pairs(updates)
    doc: Doc[Any] = Doc()
    for update in updates:
        doc.apply_update(update)
    state_pairs, state_misfits = _pairs([doc.get_update()])
    return pairs | state_pairs, misfits + state_misfits


def _pycrdt_scenario() -> list[bytes]:
    """pycrdt writing every type it has: arrays of values, binary, subdocuments and nested
    types; maps of the same; text with formats and embeds; XML elements, attributes and
    text; deletions of each."""
    doc: Doc[Any] = Doc(client_id=106)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    items = doc.get("list", type=Array)
    items.extend([1, "two", {"three": [3]}, None, b"\x01\x02", Doc()])
    nested: Array[Any] = Array([1])
    fields: Map[Any] = Map({"a": 1})
    text = Text("nested 👋 text")
    items.extend([nested, fields, text])
    nested.extend([b"\x03", Map({"m": 1}), "x"])
    fields["bytes"] = b"\x04"
    fields["sub"] = Doc()
    fields["arr"] = Array([2])
    text.format(0, 3, {"bold": True})
    text.insert_embed(2, {"image": "z.png"})
    del nested[0]
    del text[0:2]
    del fields["a"]
    del items[1]
    notes = doc.get("notes", type=Text)
    notes.insert(0, "hello 👰🏽", {"italic": True})
    notes.insert_embed(1, {"hr": True})
    fragment = doc.get("runofshow", type=XmlFragment)
    element = fragment.children.append(XmlElement("p", {"class": "lead"}))
    inner = element.children.append(XmlText("para 👋 graph"))
    inner.format(0, 4, {"strong": {}})
    inner.insert_embed(2, {"hr": True})
    element.attributes["id"] = "x"
    fragment.children.append(XmlText("loose"))
    del inner[0:2]
    del element.attributes["class"]
    return updates


@pytest.mark.js
@pytest.mark.timeout(60)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_item_a_stock_producer_writes_fits_the_table(scenario: str) -> None:
    updates, _ = produced(scenario)
    _, misfits = _with_state(updates)
    assert not misfits


@pytest.mark.timeout(60)
def test_every_item_pycrdt_writes_in_every_type_fits_the_table() -> None:
    _, misfits = _with_state(_pycrdt_scenario())
    assert not misfits


@settings(max_examples=examples(200, 25), deadline=None)
@given(st.lists(st.lists(EDITS, min_size=1, max_size=3), min_size=1, max_size=6))
@pytest.mark.timeout(120)
def test_every_update_pycrdt_writes_fits_the_table(batches: list[list[Any]]) -> None:
    doc: Doc[Any] = Doc(client_id=11)
    updates: list[bytes] = []
    for batch in batches:
        state = doc.get_state()
        with doc.transaction():
            for edit in batch:
                apply(doc, edit)
        update = doc.get_update(state)
        refused_or_summary(update)
        updates.append(update)
    _, misfits = _with_state(updates)
    assert not misfits


@pytest.mark.js
@pytest.mark.timeout(120)
def test_the_table_allows_nothing_no_producer_writes() -> None:
    """Each list-item pair of the table, and each keyed content, is written by some stock
    producer: the table is derived from them, not invented."""
    seen: set[Pair] = set()
    for scenario in SCENARIOS:
        seen |= _with_state(produced(scenario)[0])[0]
    seen |= _with_state(_pycrdt_scenario())[0]
    allowed = {(kind, False, ref) for kind, refs in SEQUENCE.items() for ref in refs}
    assert allowed - seen == set()
    assert KEYED == {ref for _, keyed, ref in seen if keyed}
    assert {pair for pair in seen if not pair[1]} <= allowed


def test_the_clients_guide_prints_the_table() -> None:
    guide = (Path(__file__).parents[2] / "docs" / "guides" / "clients.md").read_text()
    assert table_markdown() in guide


@pytest.mark.timeout(10)
def test_nothing_fits_under_a_parent_that_is_not_a_shared_type() -> None:
    """A keyed value or a list item whose parent is a JSON value (the array's ``1``)."""
    index = _index_of(h.base_document())
    for update in (
        h.update([h.item(8, ["x"], parent=(1, 2), key="k")]),
        h.update([h.item(8, ["x"], parent=(1, 2))]),
    ):
        (misfit,) = fit(read_items(update), index).misfits
        assert "not a shared type" in misfit.describe()


@pytest.mark.timeout(10)
def test_an_item_placed_by_another_clients_item_of_the_same_update_is_checked_there() -> None:
    """Client 900's string names as its origin an item of client 901 that the same update
    puts in the nested array, encoded after it: placed once that item is."""

    def run(client: int, struct: bytes) -> bytes:
        return h.uint(1) + h.uint(client) + h.uint(0) + struct

    update = (
        h.uint(2)
        + run(900, h.item(4, "a\U0001f600", origin=(901, 0)))
        + run(901, h.item(8, ["x"], parent=(1, 1)))
        + h.uint(0)
    )
    inspect_update(update)
    (misfit,) = fit(read_items(update), _index_of(h.base_document())).misfits
    assert misfit.id == (900, 0) and misfit.parent == (1, 1)


@pytest.mark.timeout(10)
def test_an_update_held_for_missing_content_is_checked_for_what_can_be_placed() -> None:
    """Held content is relayed before it integrates: what it puts where it does not fit
    is refused at once, not once released."""
    document = RoomDocument()
    document.apply(h.base_document(), inspect_update(h.base_document()))
    waits = h.update([h.item(4, "a\U0001f600", parent=(1, 1)), h.item(8, ["x"], origin=(555, 3))])
    summary = inspect_update(waits)
    assert document.would_hold(summary)
    with pytest.raises(ShapeError, match="does not fit"):
        document.apply(waits, summary)
    assert not document.held
    honest = h.update([h.item(8, ["x"], origin=(555, 3))])
    document.apply(honest, inspect_update(honest))
    assert len(document.held) == 1
