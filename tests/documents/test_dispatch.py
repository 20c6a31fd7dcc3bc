"""The operation dispatcher: strict envelopes, one transaction per operation, origins."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Doc, Map

from crdt_server.documents import DOCUMENT_KINDS, OPERATIONS, OperationError, apply_operation

from .wedding import new_wedding, run

SPEC_OPERATIONS = {
    "add_guest": "guests",
    "update_guest": "guests",
    "remove_guest": "guests",
    "set_rsvp": "guests",
    "add_household": "guests",
    "update_household": "guests",
    "remove_household": "guests",
    "set_menu": "guests",
    "add_table": "seating",
    "update_table": "seating",
    "remove_table": "seating",
    "assign_seat": "seating",
    "seat_household": "seating",
    "unassign_seat": "seating",
    "add_timeline_item": "timeline",
    "update_timeline_item": "timeline",
    "move_timeline_item": "timeline",
    "remove_timeline_item": "timeline",
    "add_vendor": "timeline",
    "update_vendor": "timeline",
    "remove_vendor": "timeline",
    "set_profile": "timeline",
    "set_budget_total": "budget",
    "set_currency": "budget",
    "set_category": "budget",
    "record_payment": "budget",
    "update_payment": "budget",
    "remove_payment": "budget",
    "add_task": "tasks",
    "update_task": "tasks",
    "complete_task": "tasks",
    "reopen_task": "tasks",
    "remove_task": "tasks",
    "seed_checklist": "tasks",
}


def test_every_operation_of_the_spec_is_there() -> None:
    assert dict(OPERATIONS) == SPEC_OPERATIONS


@pytest.mark.parametrize(
    ("kind", "op", "path", "text"),
    [
        ("guests", ["add_guest"], "", "must be an object"),
        ("guests", {"name": "Ann"}, "op", "must be one of add_guest"),
        ("guests", {"op": 5}, "op", "got 5"),
        ("guests", {"op": "invite_everyone"}, "op", "got 'invite_everyone'"),
        ("seating", {"op": "add_guest", "name": "Ann"}, "op", "applies to the guests document"),
        ("menu", {"op": "add_guest", "name": "Ann"}, "kind", "unknown document kind 'menu'"),
        ("guests", {"op": "add_guest", "name": "Ann", 3: "x"}, "3", "does not take 3"),
    ],
)
def test_malformed_envelopes_are_400(kind: str, op: Any, path: str, text: str) -> None:
    doc: Doc[Any] = Doc()
    with pytest.raises(OperationError) as info:
        apply_operation(doc, kind, op)
    assert info.value.reason == "malformed"  # a 400 at the edge (OPERATION_STATUS)
    assert info.value.path == path
    assert text in str(info.value)
    assert isinstance(info.value, ValueError)


def test_each_operation_is_one_transaction_with_the_given_origin() -> None:
    docs = new_wedding()
    run(docs, "add_table", table_id="t1", name="Rose", capacity=4)
    for guest_id in ("g1", "g2"):
        run(docs, "add_guest", guest_id=guest_id, name=guest_id)
        run(docs, "assign_seat", guest_id=guest_id, table_id="t1")
    updates: list[bytes] = []
    origins: list[Any] = []
    seating = docs["seating"]
    seating.observe(lambda event: updates.append(event.update))
    roots = [seating.get(name, type=Map) for name in ("tables", "assignments")]
    for root in roots:  # kept referenced: a subscription lives as long as its map object
        root.observe_deep(lambda events: origins.extend(e.transaction.origin for e in events))
    apply_operation(seating, "seating", {"op": "remove_table", "table_id": "t1"}, origin="ann")
    assert len(updates) == 1  # the table and both its seat assignments, together
    assert origins and set(origins) == {"ann"}


def test_an_operation_that_changes_nothing_sends_no_update() -> None:
    docs = new_wedding()
    run(docs, "add_guest", guest_id="g1", name="Ann Lee")
    updates: list[bytes] = []
    docs["guests"].observe(lambda event: updates.append(event.update))
    assert run(docs, "update_guest", guest_id="g1", name="Ann Lee")["changed"] is False
    assert updates == []


def test_operations_work_on_unseeded_documents() -> None:
    docs: dict[str, Doc[Any]] = {kind: Doc() for kind in DOCUMENT_KINDS}
    assert run(docs, "add_guest", guest_id="g1", name="Ann Lee")["changed"] is True
