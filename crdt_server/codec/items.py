"""The items of a Yjs v1 update, decoded: what concurrent-write detection reads.

:func:`read_items` turns an update that :func:`~crdt_server.codec.updates.inspect_update`
accepted into its items (id, length, origin, right origin, and for an item without origins
its parent and key, as the wire carries them) and its own delete set. Map writes are items
whose key is on the wire only when they have no origin; a later write of the same key names
the item it overwrote as its origin, so the reader of these items keeps an index of item ids
(``shared/designs/concurrent-writes.md``).

Values are decoded where detection shows them: ``Any`` content (map values: lists of JSON
values), strings, embeds and formats (their JSON text), binary, types (their type ref and,
for an XML element, its name). The walk never recurses; ``Any`` values nest at most as deep
as :func:`inspect_update` allowed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from crdt_server.codec.updates import UpdateError, _Reader
from crdt_server.threads import share_gil

__all__ = ["Content", "DecodedUpdate", "Item", "read_delete_set", "read_items"]

ID = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Content:
    """An item's content: its ref (1 deleted, 3 binary, 4 string, 5 embed, 6 format, 7 type,
    8 any, 9 doc) and what it holds (see the module docstring; ``None`` for deleted)."""

    ref: int
    value: Any = None


@dataclass(frozen=True, slots=True)
class Item:
    """One item of an update, as the wire has it."""

    id: ID
    length: int
    origin: ID | None
    right_origin: ID | None
    parent: str | ID | None
    """A root's name, a shared type's item id, or ``None`` when the item has an origin (its
    parent is its origin's)."""
    key: str | None
    """The map key (``parentSub``), on the wire only with the parent."""
    content: Content


class DecodedUpdate:
    """An update's items, and its own delete set, decoded only when asked for: an update
    made from a state vector (a reconnecting client's, an HTTP sync's) carries the whole
    document's delete set, which can be far larger than its items."""

    __slots__ = ("_at", "_data", "_deletes", "gcs", "items")

    def __init__(
        self,
        items: list[Item],
        deletes: dict[int, list[tuple[int, int]]] | None = None,
        *,
        data: bytes = b"",
        at: int = 0,
        gcs: list[tuple[ID, int]] | None = None,
    ) -> None:
        self.items = items
        self.gcs = gcs or []
        """The update's GC structs (their first id, their length): content whose parent
        is gone. An item whose origins are all such content is dropped by yrs."""
        self._deletes = deletes
        self._data = data
        self._at = at

    @property
    def structs_end(self) -> int:
        """Where the update's structs end and its delete set begins (a byte offset)."""
        return self._at

    @property
    def deletes(self) -> dict[int, list[tuple[int, int]]]:
        """The update's own delete set: per client, ``(clock, length)`` ranges (sorted)."""
        if self._deletes is None:
            r = _Reader(self._data, 64)
            r.pos = self._at
            try:
                self._deletes = _deletes(r)
            except IndexError:
                raise UpdateError(f"update truncated: unexpected end of {r.size} bytes") from None
        return self._deletes


def read_items(data: bytes) -> DecodedUpdate:
    """The items and delete set of an update :func:`inspect_update` accepted (anything else
    raises :class:`UpdateError`). Skip structs are left out; GC structs are listed apart
    (:attr:`DecodedUpdate.gcs`). The delete set is decoded
    when first read (:attr:`DecodedUpdate.deletes`)."""
    r = _Reader(bytes(data), 64)
    try:
        return _read(r)
    except IndexError:
        raise UpdateError(f"update truncated: unexpected end of {r.size} bytes") from None


def _read(r: _Reader) -> DecodedUpdate:
    data = r.data
    items: list[Item] = []
    gcs: list[tuple[ID, int]] = []
    for _ in range(r.count(3, "client count")):
        n_structs = r.count(2, "struct count")
        client = r.uint()
        clock = r.clock("start clock")
        for n in range(n_structs):
            if not n & 1023:
                share_gil()  # a whole document's state on a worker thread
            info = data[r.pos]
            r.pos += 1
            ref = info & 0x1F
            if ref == 0 or ref == 10:  # GC, Skip
                length = r.uint()
                if ref == 0:
                    gcs.append(((client, clock), length))
                clock += length
                continue
            origin = r.item_id("origin") if info & 0x80 else None
            right = r.item_id("right origin") if info & 0x40 else None
            parent: str | ID | None = None
            key: str | None = None
            if not info & 0xC0:
                if r.uint() == 1:
                    parent = _string(r)
                else:
                    parent = r.item_id("parent")
                if info & 0x20:
                    key = _string(r)
            length, content = _content(r, ref)
            items.append(Item((client, clock), length, origin, right, parent, key, content))
            clock += length
    return DecodedUpdate(items, data=data, at=r.pos, gcs=gcs)


def read_delete_set(data: bytes) -> dict[int, list[tuple[int, int]]]:
    """A delete set encoded alone (as pycrdt's ``TransactionEvent.delete_set`` gives it):
    per client, ``(clock, length)`` ranges."""
    r = _Reader(bytes(data), 64)
    try:
        return _deletes(r)
    except IndexError:
        raise UpdateError(f"delete set truncated: unexpected end of {r.size} bytes") from None


def _deletes(r: _Reader) -> dict[int, list[tuple[int, int]]]:
    deletes: dict[int, list[tuple[int, int]]] = {}
    for _ in range(r.count(2, "delete-set client count")):
        client = r.uint()
        ranges = deletes.setdefault(client, [])
        for _ in range(r.count(2, "delete range count")):
            start = r.uint()
            ranges.append((start, r.uint()))
    if r.pos != r.size:
        r.fail(f"{r.size - r.pos} trailing bytes after the delete set")
    return deletes


def _string(r: _Reader) -> str:
    return r.raw("string").decode()


def _content(r: _Reader, ref: int) -> tuple[int, Content]:
    if ref == 1:
        return r.uint(), Content(1)
    if ref == 8:
        values = [_any(r) for _ in range(r.count(1, "Any content length"))]
        return len(values), Content(8, values)
    if ref == 4:
        text = _string(r)
        # Yjs counts a string's length in UTF-16 code units.
        return len(text.encode("utf-16-le")) // 2, Content(4, text)
    if ref == 7:
        type_ref = r.data[r.pos]
        r.pos += 1
        name = _string(r) if type_ref == 3 else None
        return 1, Content(7, (type_ref, name))
    if ref == 3:
        return 1, Content(3, r.raw("binary content"))
    if ref == 5:
        return 1, Content(5, _string(r))
    if ref == 6:
        return 1, Content(6, (_string(r), _string(r)))
    if ref == 9:
        guid = _string(r)
        _any(r)  # the subdocument's options
        return 1, Content(9, guid)
    r.fail(f"content ref {ref} is not read here (inspect_update refuses it)")


def _any(r: _Reader) -> Any:
    """One lib0 ``Any`` value, walked without recursion."""
    data = r.data
    result: list[Any] = []
    # Open containers: (the container, values still to read, whether it is an object).
    stack: list[tuple[Any, int, bool]] = []
    key: list[str | None] = [None]

    def put(value: Any) -> None:
        if not stack:
            result.append(value)
            return
        container, left, is_object = stack[-1]
        if is_object:
            container[key[-1]] = value
            key.pop()
        else:
            container.append(value)
        stack[-1] = (container, left - 1, is_object)

    while True:
        if stack and stack[-1][2]:
            key.append(_string(r))
        tag = data[r.pos]
        r.pos += 1
        value: Any
        if tag in (117, 118):  # array, object
            n = r.count(1 if tag == 117 else 2, "Any container length")
            container: Any = [] if tag == 117 else {}
            put(container)
            if n:
                stack.append((container, n, tag == 118))
                continue
        else:
            if tag == 119:
                value = _string(r)
            elif tag == 125:
                value = _varint(r)
            elif tag == 124:
                value = struct.unpack(">f", data[r.pos : r.pos + 4])[0]
                r.pos += 4
            elif tag == 123:
                value = struct.unpack(">d", data[r.pos : r.pos + 8])[0]
                r.pos += 8
            elif tag == 122:
                value = struct.unpack(">q", data[r.pos : r.pos + 8])[0]
                r.pos += 8
            elif tag == 116:
                value = r.raw("Any binary")
            else:
                value = {120: True, 121: False, 126: None, 127: None}.get(tag)
                if tag not in (120, 121, 126, 127):
                    r.fail(f"unknown Any type tag {tag}")
            put(value)
        while stack and stack[-1][1] == 0:
            stack.pop()
        if not stack:
            return result[0]


def _varint(r: _Reader) -> int:
    """A lib0 signed varint (first byte: continuation, sign, 6 bits)."""
    data = r.data
    b = data[r.pos]
    r.pos += 1
    num = b & 0x3F
    negative = bool(b & 0x40)
    shift = 6
    while b & 0x80:
        b = data[r.pos]
        r.pos += 1
        num |= (b & 0x7F) << shift
        shift += 7
    return -num if negative else num
