"""Generic edits of a Yjs document (a map ``m``, an array ``a``, a text ``t``), as data.

Hypothesis draws :class:`Edit` values (see :func:`crdt_server.testing.strategies.edits`);
:func:`apply_edit` turns one into pycrdt calls, always valid whatever the document holds
(positions wrap), so a drawn edit never fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from pycrdt import Array, Doc, Map, Text

from crdt_server.documents.shapes import list_part, to_plain

__all__ = ["Content", "Edit", "EditKind", "Json", "apply_edit", "content"]

Json: TypeAlias = None | bool | int | str | list["Json"] | dict[str, "Json"]
Content: TypeAlias = dict[str, Any]

EditKind = Literal[
    "map_set", "map_delete", "array_insert", "array_delete", "text_insert", "text_delete"
]


@dataclass(frozen=True)
class Edit:
    """One operation; only the fields its kind uses are drawn."""

    kind: EditKind
    key: str = "a"
    value: Json = None
    pos: int = 0
    count: int = 1
    text: str = ""


def apply_edit(doc: Doc[Any], e: Edit) -> None:
    """Apply ``e`` to the roots ``m`` (Map), ``a`` (Array) and ``t`` (Text) of ``doc``."""
    m = doc.get("m", type=Map)
    a = doc.get("a", type=Array)
    t = doc.get("t", type=Text)
    if e.kind == "map_set":
        m[e.key] = e.value
    elif e.kind == "map_delete":
        if e.key in m:
            del m[e.key]
    elif e.kind == "array_insert":
        a.insert(e.pos % (len(a) + 1), e.value)
    elif e.kind == "array_delete":
        if len(a):
            start = e.pos % len(a)
            del a[start : min(len(a), start + e.count)]
    else:
        # pycrdt indexes Text by UTF-8 byte; edit at character boundaries only.
        s = str(t)
        if e.kind == "text_insert":
            k = e.pos % (len(s) + 1)
            t.insert(len(s[:k].encode()), e.text)
        elif s:
            k = e.pos % len(s)
            stop = min(len(s), k + e.count)
            del t[len(s[:k].encode()) : len(s[:stop].encode())]


def content(doc: Doc[Any]) -> Content:
    """The generic roots of ``doc`` as plain Python values.

    The roots are given their types in ``doc`` (as the kit's edits do) and read from a copy,
    the list root by the type its content shows: text first, since a root may hold text
    and pycrdt never returns from reading a text with an astral character as an array."""
    doc.get("m", type=Map), doc.get("a", type=Array), doc.get("t", type=Text)
    scratch: Doc[Any] = Doc()
    scratch.apply_update(doc.get_update())
    listed, shape = list_part(scratch, "a")
    return {
        # As the JSON view reads them, which never raises: a map or an array may hold an
        # XML type (a stored row of any shape), which pycrdt's to_py refuses.
        "m": to_plain(dict(scratch.get("m", type=Map).items())),
        "a": listed if shape == "array" else [],
        "t": str(scratch.get("t", type=Text)),
    }
