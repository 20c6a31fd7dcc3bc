"""Collaborative text fields: positions as Yjs counts them, and the smallest splice.

A ``notes`` field is a ``Y.Text`` so that two people typing in it both keep their words.
Three ways of counting positions in one string meet here:

* **UTF-16 code units**: what Yjs (JavaScript strings) counts, so what every index of the
  HTTP API means. A character outside the Basic Multilingual Plane (most emoji) is two.
* **Python characters** (code points): what ``str`` slicing counts.
* **UTF-8 bytes**: what pycrdt's ``Text`` counts for ``insert``, ``del`` and ``len`` (yrs's
  default offset kind); an offset inside a character is not refused by pycrdt but appends
  at the end, so every offset given to pycrdt is computed here, never passed through.

An index that would split a surrogate pair (the middle of an emoji, in UTF-16 units) is
refused: Yjs would store half a character.

**Relative positions** (``Y.encodeRelativePosition``) name a character by its Yjs id
(client, clock). pycrdt 0.14.13's ``StickyIndex`` mixes byte and UTF-16 offsets as soon as a
text holds a non-ASCII character in more than one item (it resolves and creates positions
at the wrong character), so it is not used: :func:`index_of_id` and :func:`id_at` find the
character through a scratch copy of the document, by deleting it there and reading where
the deletion landed (the delete set of a Yjs update names ids; the text's change event
names offsets).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Text, TextEvent, TransactionEvent

from crdt_server.lib0 import write_var_uint

from .model import DocumentError

__all__ = [
    "Splice",
    "apply_splice",
    "char_index",
    "decode_relative_position",
    "decode_state_vector",
    "encode_relative_position",
    "id_at",
    "index_of_id",
    "smallest_splice",
    "utf16_index",
    "utf16_length",
]


@dataclass(frozen=True)
class Splice:
    """Delete ``delete`` characters at ``index`` (Python characters), then insert ``insert``
    there."""

    index: int
    delete: int
    insert: str

    @property
    def empty(self) -> bool:
        return self.delete == 0 and not self.insert


def utf16_length(value: str) -> int:
    """``value``'s length in UTF-16 code units (JavaScript's ``length``)."""
    return len(value.encode("utf-16-le")) // 2


def utf16_index(value: str, index: int) -> int:
    """The UTF-16 offset of Python character ``index`` of ``value``."""
    return utf16_length(value[:index])


def char_index(value: str, units: int, path: str = "index") -> int:
    """The Python character index of UTF-16 offset ``units`` in ``value``;
    :class:`DocumentError` naming ``path`` when it is past the end or splits a character."""
    if units < 0:
        raise DocumentError("must not be negative", path)
    counted = 0
    for index, char in enumerate(value):
        if counted == units:
            return index
        counted += 2 if ord(char) > 0xFFFF else 1
        if counted > units:
            raise DocumentError(
                f"{units} falls inside a character that takes two UTF-16 units "
                f"(at Python index {index})",
                path,
            )
    if counted == units:
        return len(value)
    raise DocumentError(f"{units} is past the end of the text ({counted} UTF-16 units)", path)


def smallest_splice(old: str, new: str) -> Splice:
    """The one splice that turns ``old`` into ``new`` keeping their common prefix and
    suffix, so that text typed concurrently outside the changed span survives."""
    limit = min(len(old), len(new))
    start = 0
    while start < limit and old[start] == new[start]:
        start += 1
    end = 0
    while end < limit - start and old[len(old) - 1 - end] == new[len(new) - 1 - end]:
        end += 1
    return Splice(start, len(old) - start - end, new[start : len(new) - end])


def _byte_offset(value: str, index: int) -> int:
    return len(value[:index].encode())


def apply_splice(text: Text, splice: Splice, current: str | None = None) -> None:
    """Apply ``splice`` to ``text`` (whose string is ``current``, read if not given), in
    the caller's transaction, converting to pycrdt's byte offsets."""
    if splice.empty:
        return
    value = str(text) if current is None else current
    start = _byte_offset(value, splice.index)
    if splice.delete:
        end = _byte_offset(value, splice.index + splice.delete)
        del text[start:end]
    if splice.insert:
        text.insert(start, splice.insert)


def text_value(value: Any) -> str | None:
    """The string of a stored text field: a ``Y.Text``'s content, an old plain string as it
    is (the server never converts stored values), ``None`` for anything else."""
    if isinstance(value, Text):
        return str(value)
    return value if isinstance(value, str) else None


# -- Yjs ids, relative positions and state vectors --------------------------------------------

Locate = Callable[[Doc[Any]], Text]
"""Finds the text concerned in a document (the original or a scratch copy of it)."""


@dataclass(frozen=True)
class RelativePosition:
    """A decoded ``Y.RelativePosition``: ``item`` (client, clock) of a character, or
    ``None`` for the type form (the start or end of a type named by ``type_id`` or
    ``type_name``); ``assoc`` < 0 sticks to the character before, >= 0 to the one after."""

    item: tuple[int, int] | None
    type_id: tuple[int, int] | None
    type_name: str | None
    assoc: int


def _var_uint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _var_int(data: bytes, pos: int) -> tuple[int, int]:
    """lib0's signed varInt: the first byte holds a sign bit (0x40) and six bits."""
    if pos >= len(data):
        raise ValueError("truncated")
    byte = data[pos]
    pos += 1
    value, negative, shift = byte & 0x3F, bool(byte & 0x40), 6
    while byte & 0x80:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
    return (-value if negative else value), pos


def decode_state_vector(data: bytes) -> dict[int, int]:
    """A Yjs state vector (client -> clock); :class:`ValueError` if malformed."""
    count, pos = _var_uint(data, 0)
    found: dict[int, int] = {}
    for _ in range(count):
        client, pos = _var_uint(data, pos)
        clock, pos = _var_uint(data, pos)
        found[client] = clock
    if pos != len(data):
        raise ValueError("trailing bytes")
    return found


def decode_relative_position(data: bytes) -> RelativePosition:
    """``Y.decodeRelativePosition``; :class:`ValueError` if malformed."""
    tag, pos = _var_uint(data, 0)
    item = type_id = None
    type_name = None
    if tag in (0, 2):
        client, pos = _var_uint(data, pos)
        clock, pos = _var_uint(data, pos)
        if tag == 0:
            item = (client, clock)
        else:
            type_id = (client, clock)
    elif tag == 1:
        length, pos = _var_uint(data, pos)
        if pos + length > len(data):
            raise ValueError("truncated")
        type_name = data[pos : pos + length].decode()
        pos += length
    else:
        raise ValueError(f"unknown relative position tag {tag}")
    assoc = 0
    if pos < len(data):  # older Yjs wrote no assoc
        assoc, pos = _var_int(data, pos)
    if pos != len(data):
        raise ValueError("trailing bytes")
    return RelativePosition(item, type_id, type_name, assoc)


def encode_relative_position(client: int, clock: int, assoc: int) -> bytes:
    """``Y.encodeRelativePosition`` of a character's id (``assoc`` 0 or -1)."""
    return (
        b"\x00"
        + write_var_uint(client)
        + write_var_uint(clock)
        + (b"\x41" if assoc < 0 else b"\x00")
    )


def _scratch(doc: Doc[Any]) -> Doc[Any]:
    copy: Doc[Any] = Doc()
    copy.apply_update(doc.get_update())
    return copy


def index_of_id(doc: Doc[Any], locate: Locate, client: int, clock: int) -> int | None:
    """The Python index of the character with Yjs id (``client``, ``clock``) in the text
    ``locate`` finds, or ``None`` when no visible character of that text has it (deleted,
    another text's, or unknown: check the state vector first)."""
    copy = _scratch(doc)
    text = locate(copy)
    before = str(text)
    deltas: list[Any] = []

    def seen(event: TextEvent) -> None:
        found: Any = event  # pycrdt's stubs do not declare delta
        deltas.append(found.delta)

    text.observe(seen)
    # An update with no items and a delete set of one clock: deletes that character only.
    ds = write_var_uint(1) + write_var_uint(client) + write_var_uint(1)
    copy.apply_update(b"\x00" + ds + write_var_uint(clock) + write_var_uint(1))
    for delta in deltas:
        offset = 0  # UTF-8 bytes, as pycrdt's text events count
        for part in delta:
            if "retain" in part:
                offset += int(part["retain"])
            elif "delete" in part:
                return len(before.encode()[:offset].decode(errors="ignore"))
    return None


def id_at(doc: Doc[Any], locate: Locate, index: int) -> tuple[int, int]:
    """The Yjs id of the character at Python ``index`` of the text ``locate`` finds (read
    from the delete set of deleting it in a scratch copy)."""
    copy = _scratch(doc)
    text = locate(copy)
    value = str(text)
    updates: list[bytes] = []

    def seen(event: TransactionEvent) -> None:
        updates.append(event.update)

    copy.observe(seen)
    with copy.transaction():
        del text[_byte_offset(value, index) : _byte_offset(value, index + 1)]
    update = updates[0]
    structs, pos = _var_uint(update, 0)
    if structs != 0:
        raise ValueError("a deletion wrote items")
    _, pos = _var_uint(update, pos)  # clients in the delete set: one
    client, pos = _var_uint(update, pos)
    _, pos = _var_uint(update, pos)  # ranges: one
    clock, _ = _var_uint(update, pos)
    return client, clock
