"""Domain events: what a change means in the wedding's own terms.

:func:`derive_events` turns the entry changes of one update (:mod:`documents.changes`) into
events such as ``guest.rsvp_changed`` or ``seating.guest_moved``, each carrying the entry's
id and the fields that changed with their before and after values, never a whole document.
:func:`apply_events` is its inverse in the sense the tests check: applying the events derived
from a change to the entries as they were before gives the entries as they are after.

Pure functions, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Map

from .changes import SETTINGS_ROOTS, EntryChange
from .schema import ROOTS, TEXT_FIELDS
from .shapes import to_plain

__all__ = [
    "EVENT_TYPES",
    "UNQUOTED_FIELDS",
    "DomainEvent",
    "Entries",
    "apply_events",
    "derive_events",
    "entries_of",
]


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """``type`` such as ``guest.added``; ``data`` is JSON-ready."""

    type: str
    data: dict[str, Any]


# (document kind, root) -> the noun of its events and the name of its id in ``data``.
_ENTITIES: dict[tuple[str, str], tuple[str, str]] = {
    ("guests", "guests"): ("guest", "id"),
    ("guests", "households"): ("guest.household", "id"),
    ("seating", "tables"): ("seating.table", "id"),
    ("timeline", "items"): ("timeline.item", "id"),
    ("budget", "categories"): ("budget.category", "id"),
    ("budget", "payments"): ("budget.payment", "id"),
    ("tasks", "tasks"): ("task", "id"),
}

EVENT_TYPES: tuple[str, ...] = (
    "guest.added",
    "guest.updated",
    "guest.removed",
    "guest.rsvp_changed",
    "guest.household_added",
    "guest.household_updated",
    "guest.household_removed",
    "guest.menu_changed",
    "seating.table_added",
    "seating.table_updated",
    "seating.table_removed",
    "seating.guest_seated",
    "seating.guest_moved",
    "seating.guest_unseated",
    "timeline.item_added",
    "timeline.item_updated",
    "timeline.item_removed",
    "timeline.item_rescheduled",
    "timeline.profile_changed",
    "budget.category_added",
    "budget.category_updated",
    "budget.category_removed",
    "budget.payment_recorded",
    "budget.payment_updated",
    "budget.payment_removed",
    "budget.payment_paid",
    "budget.total_changed",
    "budget.settings_changed",
    "task.added",
    "task.updated",
    "task.removed",
    "task.completed",
    "task.reopened",
)
"""Every type :func:`derive_events` can produce (``conflict.*`` are the server's own)."""

_VERBS = {"added": "added", "updated": "updated", "removed": "removed"}
_PAYMENT_VERBS = {"added": "recorded", "updated": "updated", "removed": "removed"}
_SCHEDULE = ("start", "end")

Entries = dict[str, dict[str, Any]]
"""Entries of every root of a document: ``{root: {entry_id: {field: value}}}``."""


def _changes(change: EntryChange, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    return {n: {"from": change.before.get(n), "to": change.after.get(n)} for n in names}


def _changed_names(change: EntryChange) -> list[str]:
    return [n for n, v in change.after.items() if change.replaced or change.before.get(n) != v]


def derive_events(kind: str, changes: Sequence[EntryChange]) -> list[DomainEvent]:
    """The domain events of one update's changes to a document of ``kind``, their data
    bounded (:func:`bounded`)."""
    events: list[DomainEvent] = []
    for change in changes:
        if kind == "seating" and change.root == "assignments":
            events.extend(_seat_events(change))
        elif kind == "budget" and change.root == "settings":
            events.append(_setting_event(change))
        elif kind == "timeline" and change.root == "profile":
            events.append(_profile_event(change))
        elif kind == "guests" and change.root == "menu":
            events.append(_profile_event(change, "guest.menu_changed"))
        elif (kind, change.root) in _ENTITIES:
            events.extend(_entry_events(kind, change))
    return [DomainEvent(e.type, bounded(e.data)) for e in events]


MAX_STRING = 1024
"""Characters of a string value kept in an event; the rest is replaced by a marker."""
MAX_ITEMS = 100
"""Items of a list, or keys of an object, kept in an event."""
MAX_DATA_BYTES = 16 * 1024
"""An event's data beyond this (once its values are cut) keeps only its id and a marker."""


def bounded(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with every value cut to size: a string to :data:`MAX_STRING` characters
    plus ``"… [truncated: N characters]"``, a list or object to :data:`MAX_ITEMS` items plus
    a marker item (``"… [truncated: N items]"``, or that key in an object); a document a
    client wrote can hold a 5 MB name, and an event is copied to every reader and webhook.
    Past :data:`MAX_DATA_BYTES` in all, only ``id`` is kept, with ``"truncated"`` saying
    how large it was."""
    out: dict[str, Any] = {}
    stack: list[tuple[Any, Any, Any]] = [(data, out, None)]
    while stack:
        source, target, key = stack.pop()
        value: Any
        if isinstance(source, str) and len(source) > MAX_STRING:
            value = f"{source[:MAX_STRING]}… [truncated: {len(source)} characters]"
        elif isinstance(source, list):
            value = [None] * min(len(source), MAX_ITEMS)
            stack.extend((item, value, i) for i, item in enumerate(source[:MAX_ITEMS]))
            if len(source) > MAX_ITEMS:
                value.append(f"… [truncated: {len(source)} items]")
        elif isinstance(source, dict):
            value = out if key is None and target is out else {}
            items = list(source.items())
            for k, item in items[:MAX_ITEMS]:
                value[str(k)] = None  # keys keep their order
                stack.append((item, value, str(k)))
            if len(items) > MAX_ITEMS:
                value["…"] = f"[truncated: {len(items)} keys]"
        else:
            value = source
        if key is not None:
            target[key] = value
    size = len(json.dumps(out, separators=(",", ":")))
    if size > MAX_DATA_BYTES:  # ``id`` as cut above: an entry's key can be long too
        return {"id": out.get("id"), "truncated": f"the event's data was {size} bytes"}
    return out


UNQUOTED_FIELDS = TEXT_FIELDS | {"rsvp_note"}
"""Fields whose values no event carries: collaborative texts, and a household's note to
the couple (a guest's free text, read in the document; its events carry ``rsvp_note_at``,
when it was written or cleared, credited to the guest who wrote it, so no event, webhook
delivery or push quotes it, and erasing the household's last guest leaves it nowhere)."""


def _without_texts(change: EntryChange) -> EntryChange:
    """``change`` without its collaborative text fields: typing is reported once per edit
    session (``*.notes_edited``, with excerpts that follow the field's read rules), never as
    entry fields (a guest's notes are private; the guest's other events are not); nor a
    household's note (:data:`UNQUOTED_FIELDS`)."""
    if not any(n in UNQUOTED_FIELDS for n in (*change.before, *change.after)):
        return change
    before = {n: v for n, v in change.before.items() if n not in UNQUOTED_FIELDS}
    after = {n: v for n, v in change.after.items() if n not in UNQUOTED_FIELDS}
    return EntryChange(change.root, change.id, change.action, before, after, change.replaced)


def _entry_events(kind: str, change: EntryChange) -> list[DomainEvent]:
    change = _without_texts(change)
    noun, _ = _ENTITIES[(kind, change.root)]
    verbs = _PAYMENT_VERBS if noun == "budget.payment" else _VERBS
    sep = "." if noun in ("guest", "task") else "_"
    name = f"{noun}{sep}{verbs[change.action]}"
    if change.action == "added":
        return [DomainEvent(name, {"id": change.id, "fields": dict(change.after)})]
    if change.action == "removed":
        data: dict[str, Any] = {"id": change.id}
        if change.before:
            data["before"] = dict(change.before)
        return [DomainEvent(name, data)]
    names = _changed_names(change)
    special, events = ([], []) if change.replaced else _special_events(noun, change, names)
    rest = [n for n in names if n not in special]
    if rest or change.replaced:
        data = {"id": change.id, "changes": _changes(change, rest)}
        if change.replaced:
            data["replaced"] = True
        events.insert(0, DomainEvent(name, data))
    return events


def _special_events(
    noun: str, change: EntryChange, names: list[str]
) -> tuple[list[str], list[DomainEvent]]:
    """The events of their own an entry's update makes beside ``*_updated`` (an answer, a
    payment made, a task ticked, an item moved), and the fields they tell of (left out of
    the ``*_updated`` event)."""
    if noun == "guest" and "rsvp" in names:
        rsvp = _changes(change, ["rsvp"])["rsvp"]
        data = {"id": change.id, "from": rsvp["from"], "to": rsvp["to"]}
        return ["rsvp"], [DomainEvent("guest.rsvp_changed", data)]
    if noun == "budget.payment" and _paid_now(change):
        # Beside ``budget.payment_updated`` (which carries the status change itself):
        # the fact people act on, that a scheduled payment was made.
        return [], [DomainEvent("budget.payment_paid", _paid_data(change))]
    if noun == "task" and "done" in names and isinstance(change.after.get("done"), bool):
        # Ticked or unticked: its own event (who did it is the event's actor).
        verb = "task.completed" if change.after["done"] else "task.reopened"
        return ["done"], [DomainEvent(verb, {"id": change.id})]
    if noun == "timeline.item" and any(n in names for n in _SCHEDULE):
        special = [n for n in _SCHEDULE if n in names]
        moved = _changes(change, special)
        data = {
            "id": change.id,
            "from": {n: moved[n]["from"] for n in special},
            "to": {n: moved[n]["to"] for n in special},
        }
        return special, [DomainEvent("timeline.item_rescheduled", data)]
    return [], []


def _paid_now(change: EntryChange) -> bool:
    """Whether a payment's status became paid (a cleared status reads as paid)."""
    return (change.before.get("status") or "paid") == "scheduled" and (
        change.after.get("status") or "paid"
    ) == "paid"


def _paid_data(change: EntryChange) -> dict[str, Any]:
    """The payment's id, and the date it was paid where the same update set it (events
    carry what the update changed, never a re-read of the document)."""
    data: dict[str, Any] = {"id": change.id, "from": "scheduled", "to": "paid"}
    if change.after.get("date") is not None:
        data["date"] = change.after["date"]
    return data


def _seat_events(change: EntryChange) -> list[DomainEvent]:
    def seat(fields: Mapping[str, Any]) -> dict[str, Any]:
        return {"table_id": fields.get("table_id"), "seat": fields.get("seat")}

    guest: dict[str, Any] = {"guest_id": change.id}
    if change.action == "added":
        return [DomainEvent("seating.guest_seated", {**guest, **seat(change.after)})]
    if change.action == "removed":
        data = dict(guest)
        if change.before:
            data["from"] = seat(change.before)
        return [DomainEvent("seating.guest_unseated", data)]
    return [
        DomainEvent(
            "seating.guest_moved",
            {**guest, "from": seat(change.before), "to": seat(change.after)},
        )
    ]


def _setting_event(change: EntryChange) -> DomainEvent:
    before = change.before.get("value") if change.action != "added" else None
    after = change.after.get("value") if change.action != "removed" else None
    if change.id == "total":
        return DomainEvent("budget.total_changed", {"from": before, "to": after})
    return DomainEvent("budget.settings_changed", {"field": change.id, "from": before, "to": after})


def _profile_event(change: EntryChange, name: str = "timeline.profile_changed") -> DomainEvent:
    """A field of a map of fields (the timeline's profile, the guests' menu) changed."""
    before = change.before.get("value") if change.action != "added" else None
    after = change.after.get("value") if change.action != "removed" else None
    data = {"field": change.id, "from": before, "to": after}
    return DomainEvent(name, data)


def apply_events(kind: str, entries: Entries, events: Iterable[DomainEvent]) -> Entries:
    """``entries`` with ``events`` applied (a new value; the argument is not changed)."""
    out = {root: {k: dict(v) for k, v in items.items()} for root, items in entries.items()}
    roots = {noun: root for (k, root), (noun, _) in _ENTITIES.items() if k == kind}
    for event in events:
        data = event.data
        if event.type.startswith("seating.guest_"):
            _apply_seat(out.setdefault("assignments", {}), event)
        elif event.type in ("timeline.profile_changed", "guest.menu_changed"):
            fields = "profile" if event.type.startswith("timeline") else "menu"
            _set_value(out.setdefault(fields, {}), data["field"], data["to"])
        elif event.type in ("budget.total_changed", "budget.settings_changed"):
            key = "total" if event.type == "budget.total_changed" else data["field"]
            _set_value(out.setdefault("settings", {}), key, data["to"])
        elif event.type != "budget.payment_paid":  # its change is in the payment_updated
            noun, verb = _split(event.type)
            entries_root = roots.get(noun)
            if entries_root is None:
                raise ValueError(f"{event.type} is not an event of a {kind} document")
            _apply_entry(out.setdefault(entries_root, {}), verb, data)
    return out


def _apply_seat(assignments: dict[str, dict[str, Any]], event: DomainEvent) -> None:
    """A seating event applied to the seating's ``assignments``."""
    data = event.data
    if event.type == "seating.guest_unseated":
        assignments.pop(data["guest_id"], None)
        return
    target = data if event.type == "seating.guest_seated" else data["to"]
    assignments[data["guest_id"]] = {
        k: target[k] for k in ("table_id", "seat") if target[k] is not None
    }


def _set_value(fields: dict[str, dict[str, Any]], key: str, value: Any) -> None:
    """A map of fields' ``key`` set to ``value`` (``None``: removed)."""
    if value is None:
        fields.pop(key, None)
    else:
        fields[key] = {"value": value}


def _apply_entry(items: dict[str, dict[str, Any]], verb: str, data: Mapping[str, Any]) -> None:
    """An entry's event (``verb``: added, removed, updated...) applied to its root's
    ``items``."""
    if verb in ("added", "recorded"):
        items[data["id"]] = dict(data["fields"])
        return
    if verb == "removed":
        items.pop(data["id"], None)
        return
    if data.get("replaced"):
        entry = items[data["id"]] = {}
    else:
        entry = items.setdefault(data["id"], {})
    if verb == "rescheduled":
        updates = dict(data["to"])
    elif verb == "rsvp_changed":
        updates = {"rsvp": data["to"]}
    elif verb in ("completed", "reopened"):
        updates = {"done": verb == "completed"}
    else:
        updates = {n: c["to"] for n, c in data["changes"].items()}
    for name, value in updates.items():
        if value is None:
            entry.pop(name, None)
        else:
            entry[name] = value


def _split(event_type: str) -> tuple[str, str]:
    """``("guest", "rsvp_changed")`` from ``guest.rsvp_changed``; likewise
    ``("budget.payment", "recorded")`` from ``budget.payment_recorded``."""
    if event_type.startswith("guest.household_"):
        return "guest.household", event_type.removeprefix("guest.household_")
    if event_type.startswith("guest."):
        return "guest", event_type.removeprefix("guest.")
    if event_type.startswith("task."):
        return "task", event_type.removeprefix("task.")
    for noun, _ in _ENTITIES.values():
        if event_type.startswith(noun + "_"):
            return noun, event_type.removeprefix(noun + "_")
    return "", ""


def entries_of(doc: Doc[Any], kind: str) -> Entries:
    """Every root of a ``kind`` document as :data:`Entries` (a settings map's keys as
    ``{key: {"value": value}}``), the shape :func:`apply_events` works on; collaborative
    text fields and the household's note are left out, as the events leave them out
    (:data:`UNQUOTED_FIELDS`)."""
    out: Entries = {}
    for root in ROOTS.get(kind, ()):
        content = to_plain(doc.get(root, type=Map)) or {}
        if root in SETTINGS_ROOTS:
            out[root] = {str(k): {"value": v} for k, v in content.items()}
        else:
            out[root] = {
                str(k): {n: f for n, f in v.items() if n not in UNQUOTED_FIELDS}
                if isinstance(v, dict)
                else {"value": v}
                for k, v in content.items()
            }
    return out
