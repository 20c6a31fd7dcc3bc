"""Bringing a document back to an earlier state, as a change, and saying what changed
between two states (pure, no I/O).

:func:`restore` edits a document, in one transaction, so that its content equals a target
state's: entries that were added since are deleted, entries that were removed are created
again, changed fields are set back, field by field. The result is one ordinary update (a
diff against the current state, not a replacement of the document), so edits made
concurrently by others (offline replicas that have not synced yet) still merge with it, and
the events derived from it say what the restore changed, entry by entry.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Array, Doc, Map, Text

from crdt_server.documents.changes import ChangeRecorder, plain
from crdt_server.documents.events import derive_events
from crdt_server.documents.model import DOCUMENT_KINDS, DocumentError, shown
from crdt_server.documents.schema import META, ROOTS

__all__ = ["changes_between", "restore"]


def changes_between(
    kind: str, before: Doc[Any], after: Doc[Any], *, keep: int
) -> tuple[list[dict[str, Any]], int]:
    """What turned ``before`` into ``after`` (two states of one document of ``kind``, the
    later one holding the earlier's history), as the feed's domain events: the first
    ``keep`` of them (``type``, ``data``, bounded as every event's) and how many there
    were. The cost follows the difference, not the document: only what the difference
    touches is looked at."""
    if kind not in DOCUMENT_KINDS:
        raise DocumentError(f"unknown document kind {shown(kind)}", "kind")
    copy: Doc[Any] = Doc()
    copy.apply_update(before.get_update())
    recorder = ChangeRecorder(copy, kind)
    copy.apply_update(after.get_update(copy.get_state()))
    events = derive_events(kind, recorder.take())
    return [{"type": e.type, "data": e.data} for e in events[:keep]], len(events)


def _copy(value: Any) -> Any:
    """A fresh shared value equal to ``value`` (a prelim to insert elsewhere)."""
    if isinstance(value, Map):
        return Map({k: _copy(v) for k, v in value.items()})
    if isinstance(value, Array):
        return Array([_copy(v) for v in value])
    if isinstance(value, Text):
        return Text(str(value))
    return value


def _same_kind(a: Any, b: Any) -> bool:
    return any(isinstance(a, t) and isinstance(b, t) for t in (Map, Array, Text)) or not any(
        isinstance(x, Map | Array | Text) for x in (a, b)
    )


def _align(current: Map[Any], target: Map[Any]) -> bool:
    """Make ``current`` equal to ``target`` key by key (recursing into maps); whether
    anything changed. Call inside a transaction."""
    changed = False
    wanted = set(target.keys())
    for key in [k for k in current.keys() if k not in wanted]:
        del current[key]
        changed = True
    for key in sorted(wanted):
        new = target[key]
        old = current.get(key)
        if key in current and isinstance(old, Map) and isinstance(new, Map):
            changed = _align(old, new) or changed
        elif key not in current or not _same_kind(old, new) or plain(old) != plain(new):
            current[key] = _copy(new)
            changed = True
    return changed


def restore(doc: Doc[Any], kind: str, target: Doc[Any], *, origin: Any = None) -> bool:
    """Edit ``doc`` (a document of ``kind``) so that its content equals ``target``'s, in
    one transaction; whether anything changed."""
    if kind not in DOCUMENT_KINDS:
        raise DocumentError(f"unknown document kind {shown(kind)}", "kind")
    changed = False
    with doc.transaction(origin=origin):
        for name in (META, *ROOTS[kind]):
            changed = _align(doc.get(name, type=Map), target.get(name, type=Map)) or changed
    return changed
