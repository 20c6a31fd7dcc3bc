"""Hostile updates that put content where no stock producer does (issue 47).

Built byte by byte (lib0 v1), because no Yjs producer writes them: string content under a
nested ``Y.Array`` (pycrdt 0.14.13 then iterates the array by a UTF-16 count that never
ends), the same under an unknown root, reached through an origin instead of a parent, or
through a garbage-collected origin. :func:`hostile_update` draws any such shape for the
property test of every reader.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

__all__ = [
    "HOSTILE_CLIENT",
    "base_document",
    "gc_origin_insert",
    "item",
    "nested_insert",
    "one_update",
    "origin_insert",
    "uint",
    "unknown_root_update",
    "update",
]

HOSTILE_CLIENT = 777
EMOJI_TEXT = "a\U0001f600"


def uint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def string(text: str) -> bytes:
    raw = text.encode()
    return uint(len(raw)) + raw


def content(ref: int, value: object) -> bytes:
    """The content bytes of an item: ``value`` a str for 4/5, ``(key, json)`` for 6, a type
    ref for 7, a list of str for 8 (Any strings), bytes for 3."""
    if ref == 4 or ref == 5:
        assert isinstance(value, str)
        return string(value)
    if ref == 6:
        assert isinstance(value, tuple)
        return string(value[0]) + string(value[1])
    if ref == 7:
        assert isinstance(value, int)
        return bytes([value]) + (string("p") if value == 3 else b"")
    if ref == 8:
        assert isinstance(value, list)
        return uint(len(value)) + b"".join(b"\x77" + string(str(v)) for v in value)
    if ref == 3:
        assert isinstance(value, bytes)
        return uint(len(value)) + value
    if ref == 1:
        assert isinstance(value, int)
        return uint(value)
    raise ValueError(ref)


def item(
    ref: int,
    value: object,
    *,
    parent: str | tuple[int, int] | None = None,
    key: str | None = None,
    origin: tuple[int, int] | None = None,
    right: tuple[int, int] | None = None,
) -> bytes:
    """One item struct (info byte, origins, parent, key, content)."""
    info = ref | (0x80 if origin else 0) | (0x40 if right else 0)
    out = bytearray()
    if origin is None and right is None and key is not None:
        info |= 0x20
    out.append(info)
    if origin is not None:
        out += uint(origin[0]) + uint(origin[1])
    if right is not None:
        out += uint(right[0]) + uint(right[1])
    if origin is None and right is None:
        if isinstance(parent, str):
            out += uint(1) + string(parent)
        else:
            assert parent is not None
            out += uint(0) + uint(parent[0]) + uint(parent[1])
        if key is not None:
            out += string(key)
    return bytes(out + content(ref, value))


def gc(length: int) -> bytes:
    return b"\x00" + uint(length)


def update(
    structs: Sequence[bytes], *, client: int = HOSTILE_CLIENT, clock: int = 0, deletes: bytes = b""
) -> bytes:
    """One client's structs from ``clock``, then a delete set (empty by default)."""
    return (
        uint(1)
        + uint(len(structs))
        + uint(client)
        + uint(clock)
        + b"".join(structs)
        + (deletes or uint(0))
    )


def base_document(client_id: int = 1) -> bytes:
    """``guests.g1 = {tags: [1]}`` by client ``client_id``: the map item is its clock 0, the
    nested array its clock 1, the array's one value its clock 2."""
    from pycrdt import Array, Doc, Map

    doc: Doc[Map[object]] = Doc(client_id=client_id)
    guests = doc.get("guests", type=Map)
    with doc.transaction():
        guests["g1"] = Map({"tags": Array([1])})
    return doc.get_update()


def nested_insert(base_client: int = 1, text: str = EMOJI_TEXT) -> bytes:
    """The 23-byte stored variant: string content under the nested array of
    :func:`base_document`."""
    return update([item(4, text, parent=(base_client, 1))])


def origin_insert(base_client: int = 1, text: str = EMOJI_TEXT) -> bytes:
    """The same string, placed after the array's value by its origin (no parent on the wire)."""
    return update([item(4, text, origin=(base_client, 2))])


def gc_origin_insert(base_client: int = 1, text: str = EMOJI_TEXT) -> bytes:
    """The same string with a garbage-collected origin and the array's value as its right
    origin: yrs takes the parent from the right origin and integrates it."""
    return update([gc(1), item(4, text, origin=(HOSTILE_CLIENT, 0), right=(base_client, 2))])


def one_update(root: str = "guests", text: str = EMOJI_TEXT) -> bytes:
    """The 76-byte shape: a map entry holding a nested array, and the string in it, in one
    update."""
    return update(
        [
            item(7, 1, parent=root, key="hostile-entry"),
            item(7, 0, parent=(HOSTILE_CLIENT, 0), key="tags"),
            item(4, text, parent=(HOSTILE_CLIENT, 1)),
        ]
    )


def unknown_root_update(text: str = EMOJI_TEXT) -> bytes:
    """:func:`one_update` under a root no wedding document has."""
    return one_update("zz-unknown", text)


# -- any hostile shape, for the property test of every reader -----------------------------

_TYPE_REFS = (0, 1, 2, 3, 4, 6)


def _base_rich(client_id: int = 1) -> bytes:
    """A guest list with an entry holding every nested type, and roots of other names."""
    from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

    doc: Doc[object] = Doc(client_id=client_id)
    guests = doc.get("guests", type=Map)
    with doc.transaction():
        guests["g1"] = Map(
            {
                "name": "Ann",
                "rsvp": "accepted",
                "tags": Array([1, "x"]),
                "notes": Text("vegan 👋"),
                "fields": Map({"a": 1}),
            }
        )
        doc.get("zz", type=Array).extend([1, Map({"k": Array([2])})])
        doc.get("prose", type=Text).insert(0, "hello")
    fragment = doc.get("runofshow", type=XmlFragment)
    element = fragment.children.append(XmlElement("p"))
    element.children.append(XmlText("para"))
    return doc.get_update()


def hostile_rows() -> object:
    """A hypothesis strategy: stored rows (a base document, then one to three hostile
    updates of client 777) putting any content anywhere, by parent, origin or a collected
    origin, as an older release may have stored them."""
    from hypothesis import strategies as st

    from crdt_server.codec.items import read_items

    base = _base_rich()
    items = read_items(base).items
    types = [i.id for i in items if i.content.ref == 7]
    # What hangs pycrdt is text in an array: drawn most often.
    arrays = [i.id for i in items if i.content.ref == 7 and i.content.value[0] == 0]
    values = [(i.id[0], i.id[1] + i.length - 1) for i in items if i.content.ref != 7]
    roots = ["guests", "zz", "prose", "runofshow", "zz-new", "a", "m", "t"]
    texts = st.one_of(
        st.just(EMOJI_TEXT), st.text(alphabet="ab é😀👰🏽\U0001f600", min_size=1, max_size=6)
    )

    @st.composite
    def one(draw: st.DrawFn, clock: int, own_types: list[tuple[int, int]]) -> tuple[bytes, int]:
        ref = draw(st.sampled_from([4, 4, 4, 3, 5, 6, 7, 8]))
        value: object
        if ref == 4:
            value = draw(texts)
        elif ref == 5:
            value = json.dumps(draw(texts))  # an embed is JSON text
        elif ref == 6:
            value = ("bold", "true")
        elif ref == 7:
            value = draw(st.sampled_from(_TYPE_REFS))
        elif ref == 8:
            value = draw(st.lists(texts, min_size=1, max_size=3))
        else:
            value = b"\x01"
        how = draw(st.sampled_from(["parent", "origin", "right", "gc"]))
        key = draw(st.sampled_from([None, None, "k", "name", "tags"]))
        gc_first = b""
        if how == "parent":
            parent = draw(st.sampled_from([*arrays, *roots, *types, *own_types]))
            struct = item(ref, value, parent=parent, key=key)
        elif how == "origin":
            struct = item(ref, value, origin=draw(st.sampled_from(values)))
        elif how == "right":
            struct = item(ref, value, right=draw(st.sampled_from(values)))
        else:
            gc_first = gc(1)
            struct = item(
                ref, value, origin=(HOSTILE_CLIENT, clock), right=draw(st.sampled_from(values))
            )
        length = (
            len(value.encode("utf-16-le")) // 2
            if ref == 4
            # type: ignore[union-attr]
            else (
                len(value) if ref == 8 else 1  # type: ignore[arg-type]
            )
        )
        if gc_first:
            return gc_first + struct, 1 + length
        if ref == 7:
            own_types.append((HOSTILE_CLIENT, clock))
        return struct, length

    @st.composite
    def rows(draw: st.DrawFn) -> list[bytes]:
        out = [base]
        clock = 0
        own_types: list[tuple[int, int]] = []
        for _ in range(draw(st.integers(1, 3))):
            structs = []
            start = clock
            for _ in range(draw(st.integers(1, 3))):
                struct, length = draw(one(clock, own_types))
                structs.append(struct)
                clock += length
            count = sum(1 + s.startswith(b"\x00") for s in structs)
            out.append(
                uint(1)
                + uint(count)
                + uint(HOSTILE_CLIENT)
                + uint(start)
                + b"".join(structs)
                + uint(0)
            )
        return out

    return rows()
