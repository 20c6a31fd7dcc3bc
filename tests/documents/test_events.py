"""Domain events derived from updates: the property that they say exactly what changed.

A writer replica runs random domain operations; a reader replica, observed by a
:class:`ChangeRecorder` as the server's rooms are, receives each update. For every update,
applying the derived events to the reader's entries as they were before must give its
entries as they are after (and an update that changes nothing readable gives no event).
"""

from __future__ import annotations

import gc
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map, TransactionEvent

from crdt_server.documents import OperationError, apply_operation, seed
from crdt_server.documents.changes import ChangeRecorder, EntryChange
from crdt_server.documents.events import EVENT_TYPES, apply_events, derive_events, entries_of
from tests.documents.test_replica_convergence import BASE_PLAN, operations
from tests.tier import examples


def _replica(kind: str) -> tuple[Doc[Any], list[bytes]]:
    doc: Doc[Any] = Doc()
    updates: list[bytes] = []

    def record(event: TransactionEvent) -> None:
        updates.append(event.update)

    doc.observe(record)
    seed(doc, kind, "w1")
    return doc, updates


_KINDS = {
    name: kind
    for kind, names in {
        "guests": ("add_guest", "update_guest", "remove_guest", "set_rsvp"),
        "seating": ("add_table", "update_table", "remove_table", "assign_seat", "unassign_seat"),
        "timeline": (
            "add_timeline_item",
            "update_timeline_item",
            "move_timeline_item",
            "remove_timeline_item",
        ),
        "budget": (
            "set_budget_total",
            "set_category",
            "record_payment",
            "update_payment",
            "remove_payment",
        ),
        "tasks": (
            "seed_checklist",
            "add_task",
            "update_task",
            "complete_task",
            "reopen_task",
            "remove_task",
        ),
    }.items()
    for name in names
}


@settings(max_examples=examples(full=150, fast=40), deadline=None)
@given(st.lists(operations, min_size=1, max_size=25))
def test_derived_events_turn_before_into_after(ops: list[dict[str, Any]]) -> None:
    writers: dict[str, tuple[Doc[Any], list[bytes]]] = {}
    readers: dict[str, tuple[Doc[Any], ChangeRecorder]] = {}
    for kind in ("guests", "seating", "timeline", "budget", "tasks"):
        writers[kind] = _replica(kind)
        reader: Doc[Any] = Doc()
        recorder = ChangeRecorder(reader, kind)
        readers[kind] = (reader, recorder)
    for op in [*BASE_PLAN, *ops]:
        kind = _KINDS.get(op["op"])
        if kind is None:
            continue
        writer, updates = writers[kind]
        try:
            apply_operation(writer, kind, op)
        except OperationError:
            pass
        reader, recorder = readers[kind]
        while updates:
            update = updates.pop(0)
            before = entries_of(reader, kind)
            reader.apply_update(update)
            after = entries_of(reader, kind)
            events = derive_events(kind, recorder.take())
            assert all(e.type in EVENT_TYPES for e in events)
            assert apply_events(kind, before, events) == after, (op, events)
            if before == after:
                assert events == [], (op, events)


def test_an_rsvp_change_is_one_event_with_from_and_to() -> None:
    writer, updates = _replica("guests")
    apply_operation(writer, "guests", {"op": "add_guest", "guest_id": "g1", "name": "Grace"})
    reader: Doc[Any] = Doc()
    recorder = ChangeRecorder(reader, "guests")
    for update in updates:
        reader.apply_update(update)
    added = derive_events("guests", recorder.take())
    assert [e.type for e in added] == ["guest.added"]
    assert added[0].data == {
        "id": "g1",
        "fields": {"name": "Grace", "rsvp": "pending", "plus_one": False, "dietary": []},
    }
    updates.clear()
    apply_operation(writer, "guests", {"op": "set_rsvp", "guest_id": "g1", "rsvp": "accepted"})
    for update in updates:
        reader.apply_update(update)
    events = derive_events("guests", recorder.take())
    assert [(e.type, e.data) for e in events] == [
        ("guest.rsvp_changed", {"id": "g1", "from": "pending", "to": "accepted"})
    ]


def test_seat_moves_and_reschedules_have_their_own_events() -> None:
    writer, updates = _replica("seating")
    reader: Doc[Any] = Doc()
    recorder = ChangeRecorder(reader, "seating")
    for op in (
        {"op": "add_table", "table_id": "t1", "name": "Rose", "capacity": 4},
        {"op": "add_table", "table_id": "t4", "name": "Lily", "capacity": 4},
        {"op": "assign_seat", "guest_id": "grace", "table_id": "t1", "seat": 2},
    ):
        apply_operation(writer, "seating", op)
    for update in updates:
        reader.apply_update(update)
    recorder.take()
    updates.clear()
    apply_operation(writer, "seating", {"op": "assign_seat", "guest_id": "grace", "table_id": "t4"})
    for update in updates:
        reader.apply_update(update)
    events = derive_events("seating", recorder.take())
    assert [(e.type, e.data) for e in events] == [
        (
            "seating.guest_moved",
            {
                "guest_id": "grace",
                "from": {"table_id": "t1", "seat": 2},
                "to": {"table_id": "t4", "seat": None},
            },
        )
    ]


def test_the_recorder_reads_nothing_but_what_changed() -> None:
    doc: Doc[Any] = Doc()
    recorder = ChangeRecorder(doc, "guests")
    guests = doc.get("guests", type=Map)
    with doc.transaction():
        guests["g1"] = Map({"name": "Ada", "rsvp": "pending"})
    guests["g1"]["rsvp"] = "accepted"
    # added then changed before anyone took the changes: still one added entry
    changes = recorder.take()
    assert [(c.action, c.after) for c in changes] == [
        ("added", {"name": "Ada", "rsvp": "accepted"})
    ]
    recorder.close()
    guests["g1"]["rsvp"] = "declined"
    assert recorder.take() == []


def test_the_recorder_keeps_observing_through_its_subscriptions_alone() -> None:
    """The recorder keeps no Python wrapper of the roots it observes (about 270 bytes each
    on every loaded room, issue 76): a change made through a wrapper made after a
    collection is still recorded, and closing still stops it."""
    doc: Doc[Any] = Doc()
    recorder = ChangeRecorder(doc, "guests")
    gc.collect()
    doc.get("guests", type=Map)["g1"] = Map({"name": "Ada"})
    assert [(c.action, c.after) for c in recorder.take()] == [("added", {"name": "Ada"})]
    recorder.close()
    doc.get("guests", type=Map)["g2"] = Map({"name": "Grace"})
    assert recorder.take() == []


def test_derived_events_are_bounded_with_a_marker() -> None:
    """A 5 MB guest name written by a client became a 5 MB event, copied to every reader."""
    name = "N" * 5_000_000
    added = EntryChange("guests", "g1", "added", {}, {"name": name, "dietary": list(range(500))})
    (event,) = derive_events("guests", [added])
    fields = event.data["fields"]
    assert fields["name"] == "N" * 1024 + "… [truncated: 5000000 characters]"
    assert fields["dietary"][:100] == list(range(100))
    assert fields["dietary"][100:] == ["… [truncated: 500 items]"]
    wide = EntryChange("guests", "g2", "added", {}, {f"f{i}": "x" * 1000 for i in range(99)})
    (event,) = derive_events("guests", [wide])
    assert event.data == {"id": "g2", "truncated": event.data["truncated"]}
    assert event.data["truncated"].startswith("the event's data was ")


def test_a_long_entry_id_is_cut_in_the_fallback_too() -> None:
    key = "k" * 100_000
    wide = EntryChange("guests", key, "added", {}, {f"f{i}": "x" * 1000 for i in range(99)})
    (event,) = derive_events("guests", [wide])
    assert event.data["id"] == "k" * 1024 + "… [truncated: 100000 characters]"
