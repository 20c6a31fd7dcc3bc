"""Which content fits which parent: the shape rule, checked before pycrdt sees an update.

Yjs items carry content (a string, JSON values, a shared type...) and a parent (a root, or
the item of a shared type), with a key for map entries (``parentSub``). The wire format lets
any content go under any parent, but stock producers only ever write a few pairs, and
pycrdt 0.14.13 mis-reads others: string content under a ``Y.Array`` is counted in UTF-16
units and the array is then iterated up to that count, which never returns when the string
holds an astral character (issue 47). :data:`SEQUENCE` and :data:`KEYED` list the pairs
that yjs 13.6, ``@y/y`` 14, y-prosemirror, ``@tiptap/y-tiptap`` and pycrdt write
(``tests/codec/test_shape_rule.py`` checks every item they write against them); :func:`fit`
finds an update's items that fall outside them.

An item with an origin carries no parent on the wire: it is where its origin is (else where
its right origin is), as yrs places it. :func:`fit` asks a :class:`Lookup` (the room's
:class:`~crdt_server.core.kinds.KindIndex`) where the content an update names already is,
and places the update's own items among themselves.

A root's kind is not on the wire. ``@y/y`` 14's root type is one type for text, list and
map alike, so every root accepts any content; the readers never read a root as an array
while it holds text (:func:`crdt_server.documents.shapes.root_view` reads text first).
Content under a parent that is gone (garbage collected, or deleted content) is not checked:
yrs drops it, or keeps it where nothing reads it; nor is deleted content, wherever it is.
An item whose origin is gone but whose right origin is not is refused: yjs drops it, yrs
integrates it (``tests/core/test_pycrdt_trust.py``), and no producer writes one.

Pure functions over decoded items; no I/O.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from crdt_server.codec.items import ID, DecodedUpdate, Item, _deletes
from crdt_server.codec.protocol import write_var_uint
from crdt_server.codec.updates import UpdateError, _Reader
from crdt_server.threads import share_gil

__all__ = [
    "ARRAY",
    "CONTENT_NAMES",
    "GONE",
    "KEYED",
    "MAP",
    "PARENT_NAMES",
    "ROOT",
    "SEQUENCE",
    "TEXT",
    "XML_ELEMENT",
    "XML_FRAGMENT",
    "XML_TEXT",
    "Fitted",
    "Lookup",
    "Misfit",
    "Placement",
    "ShapeError",
    "delete_set_update",
    "deleted_in_place",
    "fit",
    "table_markdown",
]

ARRAY, MAP, TEXT, XML_ELEMENT, XML_FRAGMENT, XML_TEXT = 0, 1, 2, 3, 4, 6
"""Parent kinds: a shared type's type ref, as its item's content carries it."""
ROOT = -1
"""The kind of a root (a parent named by a string)."""
GONE = -2
"""The kind of a parent that is garbage collected or deleted content: nothing reads what
is under it."""

CONTENT_NAMES: Mapping[int, str] = {
    1: "deleted",
    3: "binary",
    4: "string",
    5: "embed",
    6: "format",
    7: "type",
    8: "any (JSON values)",
    9: "subdocument",
}
PARENT_NAMES: Mapping[int, str] = {
    ARRAY: "Y.Array",
    MAP: "Y.Map",
    TEXT: "Y.Text",
    XML_ELEMENT: "Y.XmlElement (@y/y 14: a named Y.Type)",
    XML_FRAGMENT: "Y.XmlFragment (@y/y 14: an unnamed Y.Type)",
    XML_TEXT: "Y.XmlText",
    ROOT: "a root (any name)",
}

_ANY_CONTENT = frozenset(CONTENT_NAMES)
SEQUENCE: Mapping[int, frozenset[int]] = {
    # Y.Array: push/insert of JSON values, binary, shared types, subdocuments.
    ARRAY: frozenset({1, 3, 7, 8, 9}),
    # Y.Map keeps everything under keys; nothing writes list items into one.
    MAP: frozenset(),
    # Y.Text and Y.XmlText: strings, embeds, formats, embedded shared types.
    TEXT: frozenset({1, 4, 5, 6, 7}),
    XML_TEXT: frozenset({1, 4, 5, 6, 7}),
    # XML children are XML types (yjs 13, y-prosemirror, Tiptap); @y/y 14 writes every
    # Y.Type as an XML type (3 when named, 4 when not), and one Y.Type holds text, formats
    # and list items alike (a guest's notes are text in a type 4). No one writes embeds or
    # binary content there (@y/y 14 keeps bytes in JSON values).
    XML_ELEMENT: frozenset({1, 4, 6, 7, 8, 9}),
    XML_FRAGMENT: frozenset({1, 4, 6, 7, 8, 9}),
    ROOT: _ANY_CONTENT,
}
"""Per parent kind, the content refs its list items (items without a key) may have."""

KEYED: frozenset[int] = frozenset({1, 3, 7, 8, 9})
"""The content refs a keyed item (a map entry, an XML attribute, a text's or a Y.Type's
attribute) may have, under any parent: every producer writes keyed content through one
function whatever the parent (yjs 13 ``typeMapSet``, @y/y 14 ``setAttr``), and pycrdt reads
keyed items only by key, never by a count."""

Placement = tuple[str | ID | None, bool]
"""Where an item is: its parent (a root's name, a shared type's item id, or ``None`` when
it is gone: garbage collected) and whether it is keyed."""


class ShapeError(UpdateError):
    """The update holds content that does not fit its parent (refused like any malformed
    update: 1007 on the socket, 400 over HTTP)."""


class Lookup(Protocol):
    """What a document already holds, as :func:`fit` needs it."""

    def placement(self, id_: ID) -> Placement | None:
        """Where the item (or GC struct) holding ``id_`` is; ``None`` if unknown."""
        ...

    def parent_kind(self, parent: ID) -> int | None:
        """The kind of the item ``parent`` as a parent: its type ref if it is a shared
        type, :data:`GONE` if it is deleted content or garbage collected, ``None`` if it is
        other content or unknown (no producer names such a parent)."""
        ...


@dataclass(frozen=True, slots=True)
class Misfit:
    """One item whose content does not fit where it is."""

    id: ID
    length: int
    content: int
    """Its content ref (see :data:`CONTENT_NAMES`)."""
    parent: str | ID | None
    parent_kind: int | None
    """See :data:`PARENT_NAMES`; ``None`` when its parent is not a shared type or it
    refers to content that is not there."""
    keyed: bool
    why: str = ""
    """Why it does not fit, when the table is not the reason."""

    def describe(self) -> str:
        """One line naming the item and the rule it breaks (no content)."""
        what = CONTENT_NAMES.get(self.content, f"content ref {self.content}")
        where = f"item {self.id[0]}#{self.id[1]}"
        if self.why:
            return f"{where}: {what} content does not fit: {self.why}"
        if self.parent_kind is None:
            if self.parent is None:
                return f"{where} refers to content this document does not have: does not fit"
            return f"{where}: {what} content does not fit a parent that is not a shared type"
        parent = PARENT_NAMES.get(self.parent_kind, f"type ref {self.parent_kind}")
        if self.keyed:
            return f"{where}: {what} content does not fit as a keyed value of {parent}"
        return f"{where}: {what} content does not fit as a list item of {parent}"


@dataclass(slots=True)
class Fitted:
    """An update's structs, placed (:func:`fit`)."""

    placed: list[tuple[ID, int, Placement, int, int]] = field(default_factory=list)
    """Each struct that could be placed: its id, length, placement, content ref (0 for a
    GC struct) and type ref (-1 unless a shared type), misfits included (yrs integrates
    them where they are placed)."""
    misfits: list[Misfit] = field(default_factory=list)

    def refuse(self) -> None:
        """Raise :class:`ShapeError` naming the misfits, if there are any."""
        if self.misfits:
            first = self.misfits[0].describe()
            more = f" (and {len(self.misfits) - 1} more)" if len(self.misfits) > 1 else ""
            raise ShapeError(f"content does not fit its parent: {first}{more}")


_UNKNOWN = -1


class _Own:
    """The update's own structs by id, for references among them."""

    def __init__(self, entries: Sequence[tuple[ID, int, Item | None]]) -> None:
        self.starts: dict[int, list[int]] = {}
        self.index: dict[int, list[int]] = {}
        for i, ((client, clock), _, _) in enumerate(entries):
            self.starts.setdefault(client, []).append(clock)
            self.index.setdefault(client, []).append(i)
        self.entries = entries

    def find(self, id_: ID) -> int:
        """The index of the entry holding ``id_``, or ``_UNKNOWN``."""
        client, clock = id_
        starts = self.starts.get(client)
        if not starts:
            return _UNKNOWN
        at = bisect_right(starts, clock) - 1
        if at < 0:
            return _UNKNOWN
        i = self.index[client][at]
        return i if clock < starts[at] + self.entries[i][1] else _UNKNOWN


def fit(update: DecodedUpdate, lookup: Lookup) -> Fitted:
    """Place every struct of ``update`` and list the items whose content does not fit.

    Runs in time proportional to the update (each struct is placed once; one waiting on an
    item of the same update is placed when that item is)."""
    entries: list[tuple[ID, int, Item | None]] = [(i.id, i.length, i) for i in update.items]
    entries += [(id_, length, None) for id_, length in update.gcs]
    entries.sort(key=lambda entry: entry[0])
    fitted = Fitted()
    placing = _Placing(entries, lookup)
    placing.place_all(fitted)
    placing.check(fitted)
    return fitted


class _Placing:
    """Where each of an update's structs is (sorted by id): placed among what the document
    holds (``lookup``) and among themselves, in one pass over them."""

    def __init__(self, entries: list[tuple[ID, int, Item | None]], lookup: Lookup) -> None:
        self.entries = entries
        self.lookup = lookup
        self.own = _Own(entries)
        self.placements: list[Placement | None] = [None] * len(entries)
        self.failed = [False] * len(entries)
        self.split: set[int] = set()
        """Items whose origin is gone but whose right origin is not: yjs drops such an item
        (it is garbage as soon as one neighbour is), yrs places it by its right origin; no
        producer writes one (in one document, an item's neighbours share its parent)."""

    def locate(self, id_: ID) -> Placement | int | None:
        """A known placement, the index of an own entry not placed yet, or ``None``."""
        known = self.lookup.placement(id_)
        if known is not None:
            return known
        i = self.own.find(id_)
        if i == _UNKNOWN or self.failed[i]:
            return None
        placed = self.placements[i]
        return placed if placed is not None else i

    def place(self, i: int) -> Placement | int | None:
        """Where entry ``i`` is, the own entry it waits on, or ``None`` if nowhere."""
        item = self.entries[i][2]
        if item is None:
            return (None, False)  # a GC struct: gone
        if item.parent is not None:
            return (item.parent, item.key is not None)
        gone = False
        for ref in (item.origin, item.right_origin):
            if ref is None:
                continue
            where = self.locate(ref)
            if where is None or isinstance(where, int):
                return where
            if where[0] is not None:
                if gone:
                    self.split.add(i)
                return where
            gone = True
        return (None, False)  # every origin is gone: yrs drops the item

    def place_all(self, fitted: Fitted) -> None:
        """Place every entry, each once: one waiting on another when that one is placed;
        those that cannot be (nowhere, or in a cycle) are misfits."""
        entries = self.entries
        waiting: dict[int, list[int]] = {}
        todo = list(range(len(entries) - 1, -1, -1))
        while todo:
            i = todo.pop()
            if not i & 1023:
                share_gil()  # a whole document's state on a worker thread
            where = self.place(i)
            if isinstance(where, int):
                waiting.setdefault(where, []).append(i)
                continue
            if where is None:
                self.failed[i] = True
                _unplaced(fitted, entries[i][2])
            else:
                self.placements[i] = where
            todo += waiting.pop(i, ())
        for stuck in waiting.values():  # a cycle among the update's own items
            for i in stuck:
                _unplaced(fitted, entries[i][2])

    def kind_of(self, parent: str | ID) -> int | None:
        """The kind of ``parent`` (see :meth:`Lookup.parent_kind`), in the document or
        among the update's own items."""
        if isinstance(parent, str):
            return ROOT
        known = self.lookup.parent_kind(parent)
        if known is not None or self.lookup.placement(parent) is not None:
            return known
        i = self.own.find(parent)
        if i == _UNKNOWN:
            return None
        id_, _, item = self.entries[i]
        if item is None or item.content.ref == 1:
            return GONE
        if item.content.ref == 7 and id_ == parent:
            return int(item.content.value[0])
        return None

    def check(self, fitted: Fitted) -> None:
        """List each placed struct, and as misfits the items whose content does not fit
        their parent."""
        for i, (id_, length, item) in enumerate(self.entries):
            where = self.placements[i]
            if where is None:
                continue
            ref = 0 if item is None else item.content.ref
            kind_made = int(item.content.value[0]) if item is not None and ref == 7 else -1
            fitted.placed.append((id_, length, where, ref, kind_made))
            if item is None or ref == 1:
                continue  # a GC struct, or deleted content: nothing reads it, wherever it is
            parent, keyed = where
            if i in self.split:
                why = "its origin is gone and its right origin is not (yjs drops it, yrs keeps it)"
                fitted.misfits.append(Misfit(id_, length, ref, parent, None, keyed, why))
                continue
            if parent is None:
                continue
            kind = self.kind_of(parent)
            if kind == GONE:
                continue
            if kind is None:  # a parent that is other content, or not there: nothing fits
                allowed: frozenset[int] = frozenset()
            else:
                allowed = KEYED if keyed else SEQUENCE.get(kind, frozenset())
            if ref not in allowed:
                fitted.misfits.append(Misfit(id_, length, ref, parent, kind, keyed))


def _unplaced(fitted: Fitted, item: Item | None) -> None:
    """``item`` could not be placed: a misfit with no parent."""
    assert item is not None  # a GC struct is always placed (as gone)
    fitted.misfits.append(Misfit(item.id, item.length, item.content.ref, None, None, False))


def deleted_in_place(update: bytes, targets: Iterable[tuple[ID, int]]) -> bytes:
    """``update`` with the items at ``targets`` (first id, length: whole structs) turned
    into deleted content of the same length, in the same place, and added to its delete
    set: what a room serves instead of content that does not fit (nothing reads deleted
    content, and the document keeps its state vector)."""
    wanted = dict(targets)
    r = _Reader(bytes(update), 64)
    data = r.data
    out = bytearray()
    try:
        start = r.pos
        for _ in range(r.count(3, "client count")):
            n_structs = r.uint()
            client = r.uint()
            clock = r.clock("start clock")
            out += data[start : r.pos]
            for _ in range(n_structs):
                at = r.pos
                info = data[at]
                r.pos += 1
                ref = info & 0x1F
                if ref == 0 or ref == 10:
                    length = r.uint()
                    out += data[at : r.pos]
                    clock += length
                    continue
                if info & 0x80:
                    r.item_id("origin")
                if info & 0x40:
                    r.item_id("right origin")
                if not info & 0xC0:
                    if r.uint() == 1:
                        r.raw("parent name")
                    else:
                        r.item_id("parent")
                    if info & 0x20:
                        r.raw("parent key")
                header_end = r.pos
                length = r.content(ref, at)
                if wanted.get((client, clock)) == length:
                    out.append((info & 0xE0) | 1)
                    out += data[at + 1 : header_end]
                    out += write_var_uint(length)
                else:
                    out += data[at : r.pos]
                clock += length
            start = r.pos
        deletes = _deletes(r)
    except IndexError:
        raise UpdateError(f"update truncated: unexpected end of {r.size} bytes") from None
    for (client, clock), length in wanted.items():
        deletes.setdefault(client, []).append((clock, length))
    return bytes(out) + _delete_set(deletes)


def delete_set_update(ranges: Iterable[tuple[ID, int]]) -> bytes:
    """An update with no structs that deletes ``ranges`` (first id, length)."""
    deletes: dict[int, list[tuple[int, int]]] = {}
    for (client, clock), length in ranges:
        deletes.setdefault(client, []).append((clock, length))
    return b"\x00" + _delete_set(deletes)


def _delete_set(deletes: Mapping[int, list[tuple[int, int]]]) -> bytes:
    """A delete set, each client's ranges sorted and merged (as Yjs writes them)."""
    out = bytearray(write_var_uint(len(deletes)))
    for client in sorted(deletes, reverse=True):
        merged: list[list[int]] = []
        for clock, length in sorted(deletes[client]):
            if merged and clock <= merged[-1][0] + merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], clock + length - merged[-1][0])
            else:
                merged.append([clock, length])
        out += write_var_uint(client) + write_var_uint(len(merged))
        for clock, length in merged:
            out += write_var_uint(clock) + write_var_uint(length)
    return bytes(out)


def table_markdown() -> str:
    """The table as the clients guide prints it (``docs/guides/clients.md``)."""
    names = {ref: CONTENT_NAMES[ref].split(" ")[0] for ref in CONTENT_NAMES}
    lines = [
        "| Parent | List items (no key) may hold | Keyed values may hold |",
        "|---|---|---|",
    ]
    keyed = ", ".join(names[ref] for ref in sorted(KEYED))
    for kind in (ROOT, ARRAY, MAP, TEXT, XML_TEXT, XML_ELEMENT, XML_FRAGMENT):
        sequence = ", ".join(names[ref] for ref in sorted(SEQUENCE[kind])) or "nothing"
        lines.append(f"| {PARENT_NAMES[kind]} | {sequence} | {keyed} |")
    return "\n".join(lines)
