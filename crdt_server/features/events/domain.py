"""How an event is shown (:func:`event_json`) and what of it a role may read
(:func:`readable_event`), for every way events leave the server: the list, the stream and
webhook deliveries; and what makes an event derived from an update the same event wherever
it is derived (:func:`event_key`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from crdt_server.auth.permissions import PermissionMatrix
from crdt_server.core.overwrites import Found
from crdt_server.documents.changes import EntryChange
from crdt_server.documents.redaction import finding_for_reader
from crdt_server.storage import StoredEvent
from crdt_server.times import rfc3339

__all__ = ["event_json", "event_key", "items_by_path", "readable_event"]

Items = Mapping[tuple[str, ...], Sequence[tuple[int, int]]]
"""Map slots an update changed (their paths from the root) -> the Yjs items that did it."""


def items_by_path(
    found: Sequence[tuple[object, Found]],
) -> dict[tuple[str, ...], list[tuple[int, int]]]:
    """The items each integration of one update wrote or removed, by path
    (:attr:`Found.items <crdt_server.core.overwrites.Found.items>`)."""
    paths: dict[tuple[str, ...], list[tuple[int, int]]] = {}
    for _, what in found:
        for path, item in what.items:
            paths.setdefault(path, []).append(item)
    return paths


_FIELDS_OF = {
    "guest.rsvp_changed": ("rsvp",),
    "task.completed": ("done",),
    "task.reopened": ("done",),
    "timeline.item_rescheduled": ("start", "end"),
    "budget.payment_paid": ("status",),
}
"""The fields an event of an entry's update tells of, where its data does not name them
(an ``*_updated`` event names them in ``changes``)."""


def _told(kind: str, data: Mapping[str, Any], change: EntryChange) -> list[tuple[str, ...]]:
    """The map slots (paths) an event derived from ``change`` tells of."""
    entry = (change.root, change.id)
    if change.action != "updated":  # an entry added (with its fields) or removed
        added = change.after if change.action == "added" else {}
        return [entry, *((*entry, name) for name in sorted(added))]
    if change.replaced:
        return [entry]
    changes = data.get("changes")
    named = changes if isinstance(changes, dict) else _FIELDS_OF.get(kind)
    names = {*change.before, *change.after} if named is None else set(named)
    return [entry, *((*entry, name) for name in sorted(names))]


def event_key(
    doc: str, kind: str, data: Mapping[str, Any], change: EntryChange, items: Items
) -> str | None:
    """The key of an event of type ``kind`` with ``data``, derived from ``change`` (to a
    ``doc`` document): the Yjs items it tells of (``items``: its update's), each as written
    (``w``) or removed (``r``), space-separated. An entry added tells of its item and its
    fields' items, a change of fields of those fields' new (or removed) items, an entry
    removed of its item removed. An item is written once and removed once, so two
    processes that each integrate the same content as new (a client that re-sent it to
    another server), in one update or in several, tell of the same items; the wedding keeps
    an event only if none of its items was told of before (:func:`~crdt_server.features.
    events.tables.store_events`). ``None`` when the items are unknown (no index of the
    document's items) or ambiguous (two integrations of the update wrote one slot): such
    an event is stored as derived."""
    told: list[str] = []
    for path in _told(kind, data, change):
        found = items.get(path, ())
        if len(found) > 1:
            return None
        if found:
            gone = change.action == "removed" or (
                len(path) == 3 and change.after.get(path[2]) is None
            )
            client, clock = found[0]
            told.append(f"{doc}:{'r' if gone else 'w'}:{client}:{clock}")
    return " ".join(sorted(told)) or None


def event_json(event: StoredEvent) -> dict[str, Any]:
    """An event as the API shows it."""
    return {
        "id": f"{event.wedding}:{event.seq}",
        "seq": event.seq,
        "type": event.type,
        "doc": event.doc,
        "actor": {"sub": event.sub, "role": event.role},
        "priority": event.priority,
        "at": rfc3339(event.at),
        "data": json.loads(event.data),
    }


def readable_event(
    item: dict[str, Any], permissions: PermissionMatrix, role: str, fields: str | None = None
) -> dict[str, Any]:
    """``item`` (an event as :func:`event_json` shows it) as ``role`` (with the field set
    ``fields`` of the guest list, a vendor member's) may read it, for every
    way events leave the server (the list, the stream, webhook deliveries): an edit
    session's excerpts (``before``/``after``) are left out when the role may not read that
    field (a vendor, a guest's notes); an entry's fields it may not read are left out of
    what was added, removed or changed; a finding's values of such fields (a concurrent
    edit's ``lost`` and ``kept``) are left out, the finding itself stays. Changes ``item``
    in place and returns it."""
    data, doc, kind = item.get("data"), item.get("doc"), str(item.get("type"))
    if not isinstance(data, dict) or not isinstance(doc, str):
        return item
    if kind.endswith(".notes_edited"):
        field = data.get("field")
        if not isinstance(field, str) or not permissions.can_read_field(role, doc, field, fields):
            data.pop("before", None)
            data.pop("after", None)
        return item
    hidden = permissions.hidden_fields(role, doc, fields)
    if not hidden:
        return item
    if kind.startswith("conflict."):
        item["data"] = finding_for_reader(data, hidden)
        return item
    # An entry's fields (added, removed, changed) the role may not read: a guest's contact
    # for a vendor.
    for key in ("fields", "before", "changes"):
        fields = data.get(key)
        if isinstance(fields, dict):
            for name in hidden:
                fields.pop(name, None)
    return item
