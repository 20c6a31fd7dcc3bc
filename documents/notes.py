"""The text operations: ``set_notes`` and ``splice_notes``, on any entry's ``notes``.

They apply to every document kind (an entry of that document is named by its id field:
``guest_id``, ``table_id``, ``item_id``, ``category_id``, ``payment_id`` or ``task_id``),
which is why they are not in :data:`documents.operations.OPERATIONS` (one kind per name) but in
:data:`TEXT_OPERATIONS`.

* ``set_notes {id, notes}``: the note becomes ``notes`` by the smallest splice (common
  prefix and suffix kept), so what someone is typing elsewhere in it survives.
* ``splice_notes {id, delete, insert}`` at ``position`` (a Yjs relative position, base64 of
  ``Y.encodeRelativePosition``, as a Yjs client makes it or as this operation's answer
  returns it) or at ``index`` together with ``state_vector``: the base64 state vector the
  text was read at (the ``Yjs-State-Vector`` header of the JSON read). An index is only
  meaningful for the text it was counted in: when the document has changed since that
  state vector the splice is refused (``stale``) rather than applied somewhere else; re-read, or
  send a position, which follows concurrent edits.

Every index and length is in UTF-16 code units, as Yjs counts (:mod:`documents.texts`).
The answer adds ``index`` (where the splice landed now, UTF-16), ``length`` (the text's
length after it) and ``position``: a relative position just after the inserted text, to
splice there next.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from pycrdt import Doc, Map, MapEvent, Text

from crdt_server.lib0 import write_var_uint

from .model import MAX_NOTES, DocumentError, Entity, OperationError, identifier, shown
from .schema import ENTITIES, root, write
from .texts import (
    Splice,
    apply_splice,
    char_index,
    decode_relative_position,
    decode_state_vector,
    encode_relative_position,
    id_at,
    index_of_id,
    smallest_splice,
    utf16_index,
    utf16_length,
)

__all__ = ["TEXT_OPERATIONS", "run_text_operation"]

TEXT_OPERATIONS: Mapping[str, str] = {
    "set_notes": "set an entry's notes by the smallest splice",
    "splice_notes": "delete and insert in an entry's notes at a position or an index",
}
"""The operations on collaborative text, valid in every document kind."""

_ARGS = {
    "set_notes": ("notes",),
    "splice_notes": ("index", "state_vector", "position", "delete", "insert"),
}
_MAX_TOKEN = 4096
"""Characters of a base64 state vector or position accepted (a wedding document has a few
dozen writers; a state vector is a few bytes per writer)."""


def _entity(kind: str, name: str, op: Mapping[str, Any]) -> tuple[Entity, str]:
    entities = [e for e in ENTITIES[kind] if any(f.text for f in e.fields)]
    given = [e for e in entities if e.id_field in op]
    if len(given) != 1:
        fields = " or ".join(e.id_field for e in entities)
        raise OperationError(f"{name} on the {kind} document needs exactly one of {fields}")
    entity = given[0]
    try:
        return entity, identifier(op[entity.id_field])
    except DocumentError as exc:
        raise OperationError(exc.message, path=entity.id_field) from None


def _check_args(name: str, kind: str, op: Mapping[str, Any], entity: Entity) -> None:
    allowed = {"op", entity.id_field, *_ARGS[name]}
    for key in op:
        if key not in allowed:
            takes = ", ".join([entity.id_field, *_ARGS[name]])
            raise OperationError(f"{name} does not take {shown(key)}; it takes {takes}", path=key)


def _string(op: Mapping[str, Any], key: str, *, default: str | None = None) -> str:
    value = op.get(key, default)
    if not isinstance(value, str):
        raise OperationError(f"must be a string, got {shown(value)}", path=key)
    if len(value) > MAX_NOTES:
        raise OperationError(f"must be at most {MAX_NOTES} characters", path=key)
    return value


def _count(op: Mapping[str, Any], key: str) -> int | None:
    value = op.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10 * MAX_NOTES:
        raise OperationError(
            f"must be a whole number of UTF-16 units from 0, got {shown(value)}", path=key
        )
    return value


def _token(op: Mapping[str, Any], key: str) -> bytes:
    value = op.get(key)
    if not isinstance(value, str) or not value or len(value) > _MAX_TOKEN:
        raise OperationError(f"must be a base64 string, got {shown(value)}", path=key)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise OperationError("is not valid base64", path=key) from None


def _text(doc: Doc[Any], entity: Entity, entry_id: str) -> tuple[Map[Any], Any]:
    entry = root(doc, entity.collection).get(entry_id)
    if not isinstance(entry, Map):
        raise OperationError(
            f"there is no {entity.label} '{entry_id}'", reason="impossible", path=entity.id_field
        )
    return entry, entry.get("notes")


def run_text_operation(
    doc: Doc[Any], kind: str, name: str, op: Mapping[str, Any], origin: Any
) -> dict[str, Any]:
    """Validate and apply text operation ``name`` (see the module docstring)."""
    entity, entry_id = _entity(kind, name, op)
    _check_args(name, kind, op, entity)
    if name == "set_notes":
        value = op.get("notes")
        wanted = "" if value is None else _string(op, "notes")
        entry, stored = _text(doc, entity, entry_id)
        current = str(stored) if isinstance(stored, Text | str) else ""
        splice = smallest_splice(current, wanted)
    else:
        entry, stored = _text(doc, entity, entry_id)
        current = str(stored) if isinstance(stored, Text | str) else ""
        splice = _splice(doc, op, stored, current, entity, entry_id)
        result_length = len(current) - splice.delete + len(splice.insert)
        if result_length > MAX_NOTES:
            raise OperationError(
                f"the notes would be {result_length} characters, at most {MAX_NOTES}",
                reason="impossible",
                path="insert",
            )
    changed = not splice.empty or not isinstance(stored, Text)
    if changed:
        with doc.transaction(origin=origin):
            if isinstance(stored, Text):
                apply_splice(stored, splice, current)
            else:  # absent or an old plain string: the operation makes it a Y.Text
                after = current[: splice.index] + splice.insert
                write(entry, {"notes": after + current[splice.index + splice.delete :]})
    text = entry.get("notes")
    assert isinstance(text, Text)
    end = splice.index + len(splice.insert)  # Python index just after the inserted text
    position = None
    if end > 0:  # sticks to the character before: what was just inserted, or before it
        client, clock = id_at(doc, _locator(entity, entry_id), end - 1)
        position = base64.b64encode(encode_relative_position(client, clock, -1)).decode()
    return {
        "op": name,
        "id": entry_id,
        "changed": changed,
        "index": utf16_length(current[: splice.index]),
        "length": utf16_length(str(text)),
        "position": position,
    }


def _locator(entity: Entity, entry_id: str) -> Any:
    def locate(doc: Doc[Any]) -> Text:
        entry = root(doc, entity.collection)[entry_id]
        assert isinstance(entry, Map)
        text = entry["notes"]
        assert isinstance(text, Text)
        return text

    return locate


def _splice(
    doc: Doc[Any],
    op: Mapping[str, Any],
    stored: Any,
    current: str,
    entity: Entity,
    entry_id: str,
) -> Splice:
    delete = _count(op, "delete") or 0
    insert = _string(op, "insert", default="")
    index = _count(op, "index")
    if ("position" in op) == (index is not None):
        raise OperationError("splice_notes needs either position or index (with state_vector)")
    if index is not None:
        if "state_vector" not in op:
            raise OperationError(
                "an index needs the state_vector the text was read at", path="state_vector"
            )
        _same_state(doc, _token(op, "state_vector"))
    else:
        if "state_vector" in op:
            raise OperationError("a position needs no state_vector", path="state_vector")
        index = _resolve(doc, _token(op, "position"), stored, current, entity, entry_id)
    try:
        start = char_index(current, index, "index" if "index" in op else "position")
        end = char_index(current, index + delete, "delete")
    except DocumentError as exc:
        raise OperationError(exc.message, reason="impossible", path=exc.path) from None
    return Splice(start, end - start, insert)


def _same_state(doc: Doc[Any], state_vector: bytes) -> None:
    try:
        given = decode_state_vector(state_vector)
    except ValueError:
        raise OperationError("is not a Yjs state vector", path="state_vector") from None
    now = decode_state_vector(doc.get_state())
    if {c: k for c, k in given.items() if k} != {c: k for c, k in now.items() if k}:
        raise OperationError(
            "the document changed since this state vector: read the text again, or send a "
            "position (which follows concurrent edits)",
            reason="stale",
            path="state_vector",
        )


def _resolve(
    doc: Doc[Any], position: bytes, stored: Any, current: str, entity: Entity, entry_id: str
) -> int:
    """The UTF-16 index a Yjs relative position points at in the entry's notes: before
    its character (assoc >= 0) or after it (assoc < 0); the type form is the start
    (assoc < 0) or the end. ``impossible`` when it does not point into this text,
    ``stale`` when its character is not there any more (deleted since: where it was is not
    kept)."""
    try:
        found = decode_relative_position(position)
    except (ValueError, UnicodeDecodeError):
        raise OperationError("is not a Yjs relative position", path="position") from None
    if not isinstance(stored, Text):
        raise _elsewhere()
    if found.item is None:
        if found.type_id is None or not _is_notes_item(doc, entity, entry_id, found.type_id):
            raise _elsewhere()
        return 0 if found.assoc < 0 else utf16_length(current)
    client, clock = found.item
    if decode_state_vector(doc.get_state()).get(client, 0) <= clock:
        raise _elsewhere()  # an item this document does not have
    index = index_of_id(doc, _locator(entity, entry_id), client, clock)
    if index is None:
        raise OperationError(
            "does not point at a character of this entry's notes (deleted since, or another"
            " text's): read the notes again",
            reason="stale",
            path="position",
        )
    return utf16_index(current, index + 1 if found.assoc < 0 else index)


def _is_notes_item(doc: Doc[Any], entity: Entity, entry_id: str, item: tuple[int, int]) -> bool:
    """Whether Yjs id ``item`` is the entry's notes text itself (deleting it in a scratch
    copy removes the entry's ``notes`` key)."""
    copy: Doc[Any] = Doc()
    copy.apply_update(doc.get_update())
    entry = root(copy, entity.collection)[entry_id]
    assert isinstance(entry, Map)
    removed: list[str] = []

    def seen(event: MapEvent) -> None:
        found: Any = event  # pycrdt's stubs do not declare keys
        removed.extend(str(key) for key in found.keys)

    entry.observe(seen)
    client, clock = item
    update = bytes([0, 1]) + bytes(
        write_var_uint(client) + b"\x01" + write_var_uint(clock) + b"\x01"
    )
    copy.apply_update(update)
    return "notes" in removed


def _elsewhere() -> OperationError:
    return OperationError(
        "does not point into this entry's notes", reason="impossible", path="position"
    )
