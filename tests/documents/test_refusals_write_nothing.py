"""Every operation validates before its first write: each refusal, of every operation, run
on the live documents themselves (no copy to throw away), leaves every document's state
vector and content as they were. What lets an operation run on a room's own document."""

from __future__ import annotations

from typing import Any

import pytest

from crdt_server.documents import OPERATIONS
from crdt_server.documents.notes import TEXT_OPERATIONS

from .wedding import Docs, new_wedding, refused, run

MALFORMED, IMPOSSIBLE = 400, 422


def _wedding() -> Docs:
    docs = new_wedding()
    run(docs, "add_household", household_id="h1", name="Lee family")
    run(docs, "add_guest", guest_id="g1", name="Ann Lee", rsvp="accepted", household_id="h1")
    run(docs, "add_guest", guest_id="g2", name="Bob Lee", rsvp="accepted", household_id="h1")
    run(docs, "add_guest", guest_id="g3", name="Cy Dow", rsvp="declined")
    run(docs, "add_guest", guest_id="g4", name="Di Fox", rsvp="accepted")
    run(docs, "add_table", table_id="t1", name="Rose", capacity=2)
    run(docs, "assign_seat", guest_id="g1", table_id="t1", seat=1)
    run(docs, "assign_seat", guest_id="g2", table_id="t1", seat=2)
    run(
        docs,
        "add_timeline_item",
        item_id="i1",
        title="Ceremony",
        start="2026-06-13T14:00:00+02:00",
        end="2026-06-13T15:00:00+02:00",
    )
    run(docs, "set_budget_total", total=10_000_00, currency="EUR")
    run(docs, "set_category", category_id="c1", name="Venue", planned=5_000_00)
    run(
        docs,
        "record_payment",
        payment_id="p1",
        category_id="c1",
        amount=1_000_00,
        date="2026-01-15",
    )
    run(docs, "add_task", task_id="k1", title="Book the venue")
    run(docs, "add_vendor", vendor_id="v1", name="Petal Co.", category="florist")
    return docs


# Each operation's refusals: (operation, status, fields). Every operation has at least one
# refused against the document (422) where it can be (a creating operation whose entry
# exists, an update of an entry that does not), and one malformed (400).
CASES: list[tuple[str, int, dict[str, Any]]] = [
    ("add_guest", IMPOSSIBLE, {"guest_id": "g1", "name": "Ann Again"}),
    ("add_guest", IMPOSSIBLE, {"guest_id": "g9", "name": "Eve", "household_id": "h9"}),
    ("add_guest", IMPOSSIBLE, {"guest_id": "g9", "name": "Eve", "plus_one_of": "g9"}),
    ("add_guest", MALFORMED, {"guest_id": "g9"}),
    ("update_guest", IMPOSSIBLE, {"guest_id": "g9", "meal": "fish"}),
    ("update_guest", IMPOSSIBLE, {"guest_id": "g1", "plus_one_of": "g9"}),
    ("update_guest", MALFORMED, {"guest_id": "g1"}),
    ("remove_guest", IMPOSSIBLE, {"guest_id": "g9"}),
    ("remove_guest", MALFORMED, {"guest_id": "g1", "name": "x"}),
    ("set_rsvp", IMPOSSIBLE, {"guest_id": "g9", "rsvp": "accepted"}),
    ("set_rsvp", MALFORMED, {"guest_id": "g1", "rsvp": "perhaps"}),
    ("add_household", IMPOSSIBLE, {"household_id": "h1", "name": "Again"}),
    ("add_household", MALFORMED, {"household_id": "h9"}),
    ("update_household", IMPOSSIBLE, {"household_id": "h9", "name": "Nobody"}),
    ("update_household", MALFORMED, {"household_id": "h1"}),
    ("remove_household", IMPOSSIBLE, {"household_id": "h9"}),
    ("remove_household", MALFORMED, {}),
    ("set_menu", MALFORMED, {"bogus": 1}),
    ("add_table", IMPOSSIBLE, {"table_id": "t1", "name": "Again", "capacity": 4}),
    ("add_table", MALFORMED, {"table_id": "t9", "name": "Lily", "capacity": -1}),
    ("update_table", IMPOSSIBLE, {"table_id": "t9", "name": "Lily"}),
    ("update_table", IMPOSSIBLE, {"table_id": "t1", "capacity": 1}),
    ("update_table", MALFORMED, {"table_id": "t1"}),
    ("remove_table", IMPOSSIBLE, {"table_id": "t9"}),
    ("remove_table", MALFORMED, {}),
    ("assign_seat", IMPOSSIBLE, {"guest_id": "g4", "table_id": "t9"}),
    ("assign_seat", IMPOSSIBLE, {"guest_id": "g3", "table_id": "t1"}),
    ("assign_seat", IMPOSSIBLE, {"guest_id": "g9", "table_id": "t1"}),
    ("assign_seat", IMPOSSIBLE, {"guest_id": "g4", "table_id": "t1"}),
    ("assign_seat", IMPOSSIBLE, {"guest_id": "g1", "table_id": "t1", "seat": 2}),
    ("assign_seat", IMPOSSIBLE, {"guest_id": "g4", "table_id": "t1", "seat": 3}),
    ("assign_seat", MALFORMED, {"guest_id": "g4"}),
    ("seat_household", IMPOSSIBLE, {"table_id": "t9", "household_id": "h1"}),
    ("seat_household", IMPOSSIBLE, {"table_id": "t1", "household_id": "h9"}),
    ("seat_household", IMPOSSIBLE, {"table_id": "t1", "guest_id": "g9"}),
    ("seat_household", MALFORMED, {"table_id": "t1"}),
    ("unassign_seat", IMPOSSIBLE, {"guest_id": "g4"}),
    ("unassign_seat", MALFORMED, {}),
    (
        "add_timeline_item",
        IMPOSSIBLE,
        {
            "item_id": "i1",
            "title": "Again",
            "start": "2026-06-13T16:00:00Z",
            "end": "2026-06-13T17:00:00Z",
        },
    ),
    (
        "add_timeline_item",
        IMPOSSIBLE,
        {
            "item_id": "i9",
            "title": "Back",
            "start": "2026-06-13T17:00:00Z",
            "end": "2026-06-13T16:00:00Z",
        },
    ),
    ("add_timeline_item", MALFORMED, {"item_id": "i9", "title": "No times"}),
    ("update_timeline_item", IMPOSSIBLE, {"item_id": "i9", "title": "Nothing"}),
    ("update_timeline_item", MALFORMED, {"item_id": "i1"}),
    (
        "move_timeline_item",
        IMPOSSIBLE,
        {"item_id": "i9", "start": "2026-06-13T16:00:00Z", "end": "2026-06-13T17:00:00Z"},
    ),
    (
        "move_timeline_item",
        IMPOSSIBLE,
        {"item_id": "i1", "start": "2026-06-13T17:00:00Z", "end": "2026-06-13T16:00:00Z"},
    ),
    ("move_timeline_item", MALFORMED, {"item_id": "i1", "start": "noon"}),
    ("remove_timeline_item", IMPOSSIBLE, {"item_id": "i9"}),
    ("remove_timeline_item", MALFORMED, {}),
    ("set_budget_total", IMPOSSIBLE, {"total": 1, "currency": "USD"}),
    ("set_budget_total", MALFORMED, {"total": -5}),
    ("set_currency", MALFORMED, {"currency": "euros"}),
    ("set_profile", MALFORMED, {"bogus": "x"}),
    ("set_category", IMPOSSIBLE, {"category_id": "c9", "planned": 100}),
    ("set_category", IMPOSSIBLE, {"category_id": "c1", "planned": 100, "currency": "USD"}),
    ("set_category", MALFORMED, {"category_id": "c1", "planned": "lots"}),
    (
        "record_payment",
        IMPOSSIBLE,
        {"payment_id": "p1", "category_id": "c1", "amount": 5, "date": "2026-01-16"},
    ),
    (
        "record_payment",
        IMPOSSIBLE,
        {"payment_id": "p9", "category_id": "c9", "amount": 5, "date": "2026-01-16"},
    ),
    ("record_payment", MALFORMED, {"payment_id": "p9", "category_id": "c1"}),
    ("update_payment", IMPOSSIBLE, {"payment_id": "p9", "amount": 5}),
    ("update_payment", IMPOSSIBLE, {"payment_id": "p1", "category_id": "c9"}),
    ("update_payment", MALFORMED, {"payment_id": "p1"}),
    ("remove_payment", IMPOSSIBLE, {"payment_id": "p9"}),
    ("remove_payment", MALFORMED, {}),
    ("add_task", IMPOSSIBLE, {"task_id": "k1", "title": "Again"}),
    ("add_task", MALFORMED, {"task_id": "k9"}),
    ("update_task", IMPOSSIBLE, {"task_id": "k9", "title": "Nothing"}),
    ("update_task", MALFORMED, {"task_id": "k1"}),
    ("complete_task", IMPOSSIBLE, {"task_id": "k9"}),
    ("complete_task", MALFORMED, {}),
    ("reopen_task", IMPOSSIBLE, {"task_id": "k9"}),
    ("reopen_task", MALFORMED, {}),
    ("remove_task", IMPOSSIBLE, {"task_id": "k9"}),
    ("remove_task", MALFORMED, {}),
    ("seed_checklist", MALFORMED, {"bogus": 1}),
    ("add_vendor", IMPOSSIBLE, {"vendor_id": "v1", "name": "Again"}),
    ("add_vendor", MALFORMED, {"vendor_id": "v9"}),
    ("add_vendor", MALFORMED, {"vendor_id": "v9", "name": "Band", "call_time": "soon"}),
    ("update_vendor", IMPOSSIBLE, {"vendor_id": "v9", "name": "Nobody"}),
    ("update_vendor", MALFORMED, {"vendor_id": "v1", "members": "flo"}),
    ("remove_vendor", IMPOSSIBLE, {"vendor_id": "v9"}),
    ("remove_vendor", MALFORMED, {}),
]
TEXT_CASES: list[tuple[str, str, int, dict[str, Any]]] = [
    ("set_notes", "guests", IMPOSSIBLE, {"guest_id": "g9", "notes": "hello"}),
    ("set_notes", "guests", MALFORMED, {"guest_id": "g1", "notes": 5}),
    ("set_notes", "seating", MALFORMED, {"notes": "hello"}),
    ("splice_notes", "guests", IMPOSSIBLE, {"guest_id": "g9", "index": 0, "insert": "x"}),
    ("splice_notes", "timeline", MALFORMED, {"item_id": "i1", "index": -1, "insert": "x"}),
    ("splice_notes", "tasks", MALFORMED, {"task_id": "k1", "position": "not base64!"}),
]


def test_every_operation_has_its_refusals_here() -> None:
    assert {op for op, _, _ in CASES} == set(OPERATIONS)
    assert {op for op, _, _, _ in TEXT_CASES} == set(TEXT_OPERATIONS)
    assert {op for op, status, _ in CASES if status == MALFORMED} == set(OPERATIONS)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("op", "status", "fields"), CASES, ids=[c[0] for c in CASES])
def test_a_refused_operation_writes_nothing(op: str, status: int, fields: dict[str, Any]) -> None:
    docs = _wedding()
    refused(docs, op, status, **fields)  # state vectors and content as they were


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("op", "kind", "status", "fields"), TEXT_CASES, ids=[f"{c[0]}-{c[1]}" for c in TEXT_CASES]
)
def test_a_refused_text_operation_writes_nothing(
    op: str, kind: str, status: int, fields: dict[str, Any]
) -> None:
    from crdt_server.documents import OperationError, apply_operation
    from crdt_server.edge.problems import OPERATION_STATUS

    from .wedding import exports

    docs = _wedding()
    states = {k: doc.get_state() for k, doc in docs.items()}
    before = exports(docs)
    with pytest.raises(OperationError) as info:
        apply_operation(docs[kind], kind, {"op": op, **fields}, related=docs)
    assert OPERATION_STATUS[info.value.reason] == status, info.value
    assert {k: doc.get_state() for k, doc in docs.items()} == states
    assert exports(docs) == before
