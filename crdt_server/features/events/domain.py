"""How an event is shown (:func:`event_json`) and what of it a role may read
(:func:`readable_event`), for every way events leave the server: the list, the stream and
webhook deliveries; and what makes an event derived from an update the same event wherever
it is derived (:func:`event_key`)."""

from __future__ import annotations

import hashlib
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


def event_key(doc: str, kind: str, change: EntryChange, items: Items) -> str | None:
    """The key of an event of type ``kind`` derived from ``change`` (to a ``doc``
    document), from the Yjs items the change is made of (``items``: its update's): an
    entry added or removed, its entry's item; a change of fields, their new items (or
    those removed). An item is written once and removed once, so two processes that each
    integrate the same update as new (a client that re-sent it to another server) derive
    events with the same keys, and the wedding keeps one of each. ``None`` when the items
    are unknown (no index of the document's items) or ambiguous (two integrations of the
    update wrote one slot): such an event is stored as derived."""
    paths = [(change.root, change.id)]
    if change.action == "updated" and not change.replaced:
        names = {*change.before, *change.after}
        paths += [(change.root, change.id, name) for name in sorted(names)]
    ids: list[tuple[int, int]] = []
    for path in paths:
        found = items.get(path, ())
        if len(found) > 1:
            return None
        ids += found
    if not ids:
        return None
    text = f"{doc}|{kind}|" + ",".join(f"{client}:{clock}" for client, clock in sorted(ids))
    return hashlib.sha1(text.encode()).hexdigest()


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
