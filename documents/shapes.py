"""Any Yjs shape as plain data: what every reader of document content goes through.

Documents are written by editors this code never sees: nested ``Y.Map``/``Y.Array``/``Y.Text``
with formats and embeds, ``Y.XmlFragment``/``XmlElement``/``XmlText`` (y-prosemirror, Tiptap),
yjs-14 ``Y.Type``\\s (written as XML types, their fields as attributes), roots of any name.
pycrdt's own ``to_py`` raises on XML types and recurses once per level (a 700-deep map is a
``RecursionError``), so every reader here walks iteratively, never raises on a shape, and
stops at :data:`MAX_DEPTH` levels with a marker instead of going deeper.

pycrdt iterates a ``Y.Array`` by a count it keeps in UTF-16 units, which never ends when
the array holds text with an astral character (issue 47). The documents read here come from
a room or a replay, which let no such content in (the shape rule,
``crdt_server/codec/shapes.py``; stored content that breaks it is replayed as deleted), and
a root, which may hold text, is read text first (:func:`root_view`).

The forms:

* ``Y.Map`` -> object; ``Y.Array`` -> array; numbers that are whole -> int (Yjs keeps
  doubles); binary -> ``{"binary": base64}``; a sub-document -> ``{"subdocument": guid}``.
* ``Y.Text`` -> its string, or with ``rich`` ``{"text", "delta"}`` (Quill delta: ``insert``
  plus ``attributes``; embeds converted like any value).
* XML -> ProseMirror-style nodes: an element is ``{"type": tag, "attrs", "content"}``, text is
  ``{"type": "text", "text", "marks": [{"type", "attrs"}]}``; a fragment is
  ``{"type": "doc", "content"}`` (:func:`xml_view` adds its plain text and XML string).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

__all__ = [
    "MAX_DEPTH",
    "TRUNCATED",
    "entry_fields",
    "list_part",
    "nests_deeper_than",
    "root_view",
    "to_plain",
    "xml_view",
]

MAX_DEPTH = 64
"""Nesting levels shown; deeper content is replaced by :data:`TRUNCATED`."""

TRUNCATED: dict[str, str] = {"truncated": "deeper than 64 levels"}
"""What stands for content nested deeper than :data:`MAX_DEPTH`."""

_Put = Callable[[Any], None]


def to_plain(value: object, *, rich: bool = False, max_depth: int = MAX_DEPTH) -> Any:
    """``value`` (a pycrdt type, or a plain value read from one) as JSON-ready Python.

    Never raises on a shape and never recurses (see the module docstring)."""
    if value is None or isinstance(value, str | bool | int):
        return value  # most fields: no walk to set up
    result: list[Any] = [None]

    def put_root(item: Any) -> None:
        result[0] = item

    stack: list[tuple[object, _Put, int]] = [(value, put_root, 0)]
    while stack:
        source, put, depth = stack.pop()
        if depth > max_depth:
            put(dict(TRUNCATED))
            continue
        put(_shell(source, rich, depth, stack))
    return result[0]


def _shell(source: object, rich: bool, depth: int, stack: list[tuple[object, _Put, int]]) -> Any:
    """The converted form of ``source`` with its children left to fill: each child is pushed
    on ``stack`` with the function that puts its converted form in place."""
    if source is None or isinstance(source, bool | str | int):
        return source
    if isinstance(source, float):
        return int(source) if source.is_integer() else source
    if isinstance(source, Map):
        return _dict_shell(dict(source.items()), depth, stack)
    if isinstance(source, dict):
        return _dict_shell(source, depth, stack)
    if isinstance(source, Array):
        return _list_shell(list(source), depth, stack)
    if isinstance(source, list | tuple):
        return _list_shell(list(source), depth, stack)
    if isinstance(source, Text):
        return _text_shell(source.diff(), rich, depth, stack)
    if isinstance(source, XmlText):
        return {"type": "text_node", "content": _xml_text_nodes(source, depth, stack)}
    if isinstance(source, XmlElement | XmlFragment):
        return _xml_shell(source, depth, stack)
    if isinstance(source, bytes):
        return {"binary": base64.b64encode(source).decode()}
    if isinstance(source, Doc):
        return {"subdocument": source.guid}
    return {"unsupported": type(source).__name__}


def _dict_shell(source: dict[Any, Any], depth: int, stack: list[tuple[object, _Put, int]]) -> Any:
    out: dict[str, Any] = {}
    for key, child in source.items():
        out[str(key)] = None
        stack.append((child, _setter(out, str(key)), depth + 1))
    return out


def _list_shell(items: list[Any], depth: int, stack: list[tuple[object, _Put, int]]) -> Any:
    out: list[Any] = [None] * len(items)
    for index, child in enumerate(items):
        stack.append((child, _setter(out, index), depth + 1))
    return out


def _text_shell(
    diff: list[tuple[Any, dict[str, Any] | None]],
    rich: bool,
    depth: int,
    stack: list[tuple[object, _Put, int]],
) -> Any:
    if not rich:
        return "".join(chunk for chunk, _ in diff if isinstance(chunk, str))
    delta: list[dict[str, Any]] = []
    for chunk, attributes in diff:
        op: dict[str, Any] = {"insert": chunk if isinstance(chunk, str) else None}
        if not isinstance(chunk, str):
            stack.append((chunk, _setter(op, "insert"), depth + 1))
        if attributes:
            op["attributes"] = None
            stack.append((attributes, _setter(op, "attributes"), depth + 1))
        delta.append(op)
    return {"text": "".join(chunk for chunk, _ in diff if isinstance(chunk, str)), "delta": delta}


def _xml_shell(
    source: XmlElement | XmlFragment, depth: int, stack: list[tuple[object, _Put, int]]
) -> Any:
    node: dict[str, Any]
    if isinstance(source, XmlElement):
        node = {"type": source.tag or "element"}
        attrs = _attributes(source)
        if attrs:
            node["attrs"] = _dict_shell(attrs, depth, stack)
    else:
        node = {"type": "doc"}
    content: list[Any] = []
    for child in source.children:
        if isinstance(child, XmlText):
            content.extend(_xml_text_nodes(child, depth, stack))
        else:
            content.append(None)
            stack.append((child, _setter(content, len(content) - 1), depth + 1))
    if content:
        node["content"] = content
    return node


def _xml_text_nodes(
    source: XmlText, depth: int, stack: list[tuple[object, _Put, int]]
) -> list[dict[str, Any]]:
    """An ``XmlText`` as ProseMirror text nodes: one per run of equal formatting, its
    formats as marks; an embed becomes ``{"type": "embed", "value"}``."""
    nodes: list[dict[str, Any]] = []
    for chunk, attributes in source.diff():
        node: dict[str, Any]
        if isinstance(chunk, str):
            node = {"type": "text", "text": chunk}
        else:
            node = {"type": "embed", "value": None}
            stack.append((chunk, _setter(node, "value"), depth + 1))
        if attributes:
            marks: list[Any] = []
            for name, attrs in attributes.items():
                mark: dict[str, Any] = {"type": str(name)}
                if isinstance(attrs, dict):  # as y-prosemirror shows it, {} included
                    mark["attrs"] = None
                    stack.append((attrs, _setter(mark, "attrs"), depth + 1))
                marks.append(mark)
            node["marks"] = marks
        nodes.append(node)
    return nodes


_WRAPPERS: dict[str, type[Any]] = {
    "Map": Map,
    "Array": Array,
    "Text": Text,
    "XmlFragment": XmlFragment,
    "XmlElement": XmlElement,
    "XmlText": XmlText,
}
"""pycrdt hands an element's attribute values over as its Rust types, by these names: a
yjs-14 entry's nested types (a text is an XML fragment with text in it)."""


def _attributes(element: XmlElement) -> dict[str, Any]:
    attributes: Any = element.attributes  # iterates (name, value) pairs
    found: dict[str, Any] = {}
    for name, value in attributes:
        wrapper = _WRAPPERS.get(type(value).__name__)
        if wrapper is not None and type(value).__module__ == "builtins":  # a Rust type
            value = _yjs14_value(wrapper(_integrated=value, _doc=element.doc))
        found[str(name)] = value
    return found


def _yjs14_value(value: Any) -> Any:
    """A yjs-14 attribute value read as yjs 13 would hold it: a type holding only text is
    its string (yjs 14 has one type for maps, arrays, texts and XML)."""
    if isinstance(value, XmlFragment):
        children = list(value.children)
        if not any(isinstance(child, XmlElement | XmlFragment) for child in children):
            # Strings written straight into the type (yjs 14), or XML texts.
            texts = [child for child in children if isinstance(child, XmlText)]
            if not texts:
                return str(value)
            return "".join(
                chunk for text in texts for chunk, _ in text.diff() if isinstance(chunk, str)
            )
    return value


def _setter(container: Any, key: Any) -> _Put:
    def put(item: Any) -> None:
        container[key] = item

    return put


def xml_view(fragment: XmlFragment) -> dict[str, Any]:
    """An XML tree as ``{"text": its plain text, one line per top-level block,
    "prosemirror": ProseMirror-style JSON}``."""
    lines: list[str] = []
    for block in fragment.children:
        parts: list[str] = []
        pending: list[object] = [block]
        while pending:
            node = pending.pop()
            if isinstance(node, XmlText):
                parts.extend(chunk for chunk, _ in node.diff() if isinstance(chunk, str))
            elif isinstance(node, XmlElement | XmlFragment):
                pending.extend(reversed(list(node.children)))
        lines.append("".join(parts))
    return {"text": "\n".join(lines), "prosemirror": to_plain(fragment)}


def entry_fields(value: object) -> dict[str, Any] | None:
    """An entry's fields read from whatever holds them: a ``Y.Map`` (or a JSON object),
    or a yjs-14 ``Y.Type`` written as an XML element with its fields as attributes.
    ``None`` when the value holds no fields this server can read (a plain value, or a
    yjs-14 type written as an XML fragment, whose attributes pycrdt does not expose)."""
    if isinstance(value, XmlElement):
        value = _attributes(value)
    elif not isinstance(value, Map | dict):
        return None
    fields = to_plain(value)
    return fields if isinstance(fields, dict) else None


def root_view(doc: Doc[Any], name: str, *, rich: bool = False) -> tuple[Any, str]:
    """The root ``name`` of ``doc`` shown by the type its content shows, with that type:
    map entries as an object (``"map"``), text as text (``"text"``), XML as
    :func:`xml_view` (``"xml"``), anything else as an array (``"array"``). A root holding
    both map entries and list items shows the entries, with ``"map+list"`` (the list part
    is then :func:`list_part`).

    Reading a root of no type fixes its type in ``doc``: call this on a scratch copy."""
    entries = dict(doc.get(name, type=Map).items())
    if entries:
        listed = len(doc.get(name, type=Array)) > 0
        return to_plain(entries, rich=rich), "map+list" if listed else "map"
    return list_part(doc, name, rich=rich)


def list_part(doc: Doc[Any], name: str, *, rich: bool = False) -> tuple[Any, str]:
    """The list items of the root ``name`` (XML, text or an array), with their type."""
    source, shape = _list_source(doc, name)
    if isinstance(source, XmlFragment):
        return xml_view(source), shape
    return to_plain(source, rich=rich), shape


def _list_source(doc: Doc[Any], name: str) -> tuple[XmlFragment | Text | Array[Any], str]:
    """The root ``name`` read as the type its list items show.

    Text is recognised before anything is read as an array: yrs counts a text's length in
    UTF-16 units, and reading a text with astral characters (an emoji) item by item through
    an array never returns."""
    fragment = doc.get(name, type=XmlFragment)
    if any(isinstance(child, XmlElement | XmlText) for child in fragment.children):
        return fragment, "xml"
    text = doc.get(name, type=Text)
    if any(isinstance(chunk, str | dict) for chunk, _ in text.diff()):
        return text, "text"
    return doc.get(name, type=Array), "array"


def nests_deeper_than(doc: Doc[Any], limit: int = MAX_DEPTH) -> bool:
    """Whether any root of ``doc`` holds content nested deeper than ``limit`` levels,
    counted as :func:`to_plain` counts them from the root (shared types and the JSON values
    inside them alike): content the views would cut. Walks a copy, without recursion."""
    scratch: Doc[Any] = Doc()
    scratch.apply_update(doc.get_update())  # reading a root of no type fixes its type

    def ignore(item: Any) -> None:
        pass

    stack: list[tuple[object, _Put, int]] = []
    for name in sorted(str(name) for name in doc.keys()):
        stack.append((dict(scratch.get(name, type=Map).items()), ignore, 0))
        stack.append((_list_source(scratch, name)[0], ignore, 0))
    while stack:
        source, _, depth = stack.pop()
        if depth > limit:
            return True
        _shell(source, True, depth, stack)
    return False
