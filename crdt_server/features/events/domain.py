"""How an event is shown (:func:`event_json`) and what of it a role may read
(:func:`readable_event`), for every way events leave the server: the list, the stream and
webhook deliveries; and what makes an event derived from an update the same event wherever
it is derived (:func:`event_key`), and what of it to tell when part of it was told
(:class:`Derivation`)."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crdt_server.auth.permissions import PermissionMatrix
from crdt_server.core.overwrites import Found
from crdt_server.documents.changes import EntryChange
from crdt_server.documents.events import (
    EVENT_TYPES,
    DomainEvent,
    Entries,
    apply_events,
    derive_events,
)
from crdt_server.documents.redaction import finding_for_reader
from crdt_server.storage import NewEvent, StoredEvent
from crdt_server.times import rfc3339

__all__ = [
    "Derivation",
    "DerivedEvent",
    "derivation_of",
    "event_json",
    "event_key",
    "items_by_path",
    "readable_event",
    "told_entries",
    "told_items",
]

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


def told_items(
    doc: str, kind: str, data: Mapping[str, Any], change: EntryChange, items: Items
) -> dict[str, tuple[str, ...]]:
    """The items an event of type ``kind`` with ``data``, derived from ``change`` (to a
    ``doc`` document), tells of, as :func:`event_key` names them, each with the path of
    its map slot. Where several integrations of the update wrote one slot (a writer's
    run of messages taken as one update: a guest, then the answer that replaced its
    ``pending``), each event of the update tells of all of them: another process that
    integrated the same content otherwise (merged, or one message at a time) told of some
    of the same items, so the keys still meet (before, such events had no key and were
    stored whatever was told: the fault campaign's doubled ``guest.added``)."""
    told: dict[str, tuple[str, ...]] = {}
    for path in _told(kind, data, change):
        gone = change.action == "removed" or (len(path) == 3 and change.after.get(path[2]) is None)
        for client, clock in items.get(path, ()):
            told[f"{doc}:{'r' if gone else 'w'}:{client}:{clock}"] = path
    return told


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
    events.tables.store_events`; an event derived with a :class:`Derivation` is told in
    part instead). ``None`` when it tells of no item the update wrote: such an event is
    stored as derived."""
    return " ".join(sorted(told_items(doc, kind, data, change, items))) or None


@dataclass(frozen=True, slots=True)
class Derivation:
    """The change some events were derived from, and the items they tell of, kept with
    them where events carry keys. Where some of those items were told of before and some
    not (another server committed part of the same content: a guest, and this server
    integrated the guest and a later answer as one merged update), :meth:`rest` tells
    the items not told yet as the change they make to what the wedding's events told (the
    answer as ``guest.rsvp_changed`` from the answer told), so each item is told once."""

    doc: str
    change: EntryChange
    slots: Mapping[str, tuple[str, ...]]
    """The items its events tell of (keys, as :func:`event_key` names them) -> their map
    slots' paths."""

    def rest(self, told: Entries, untold: Collection[str]) -> list[DomainEvent]:
        """The events of the ``untold`` items (keys of :attr:`slots`), ``told`` being the
        entries as the wedding's stored events tell them (:func:`told_entries`)."""
        change = self.change
        paths = {self.slots[k] for k in untold if k in self.slots}
        names = sorted({p[2] for p in paths if len(p) == 3})
        if (change.root, change.id) in paths:  # the entry came (or went) untold
            if change.action != "added":
                return derive_events(self.doc, [change])
            after = {n: v for n, v in change.after.items() if n in names}
            return derive_events(
                self.doc, [EntryChange(change.root, change.id, "added", {}, after)]
            )
        entry = told.get(change.root, {}).get(change.id, {})
        before = {n: entry.get(n) for n in names}
        after = {n: change.after.get(n) for n in names}
        return derive_events(
            self.doc, [EntryChange(change.root, change.id, "updated", before, after)]
        )


def derivation_of(
    doc: str, change: EntryChange, told: Sequence[Mapping[str, tuple[str, ...]] | None]
) -> Derivation | None:
    """The :class:`Derivation` of the events derived from ``change``, given the items each
    tells of (:func:`told_items`); ``None`` where one's items are unknown (those events are
    kept or left out whole, by their own keys)."""
    if not told or any(not slots for slots in told):
        return None
    return Derivation(doc, change, {k: p for slots in told if slots for k, p in slots.items()})


@dataclass(frozen=True, slots=True)
class DerivedEvent(NewEvent):
    """An event derived from an update, with the :class:`Derivation` of its change where
    events carry keys (:func:`~crdt_server.features.events.tables.store_events`)."""

    derivation: Derivation | None = field(default=None, compare=False, repr=False)


def told_entries(doc: str, entry_id: str, stored: Iterable[tuple[str, str]]) -> Entries:
    """The entry ``entry_id`` of a ``doc`` document as the wedding's stored events of it
    (``(type, data)``, oldest first) tell it (:func:`~crdt_server.documents.events.
    apply_events`); events cut to size and events of other kinds tell nothing."""
    entries: Entries = {}
    for kind, text in stored:
        if kind not in EVENT_TYPES:
            continue
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("id") != entry_id:
            continue
        try:
            entries = apply_events(doc, entries, [DomainEvent(kind, data)])
        except (KeyError, TypeError, ValueError, AttributeError):
            continue  # cut to size (no fields), or not of this document
    return entries


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
