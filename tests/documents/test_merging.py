"""Concurrent edits on two replicas: what the layout rules out, and what the checks catch."""

from __future__ import annotations

from typing import Any

import pytest

from crdt_server.documents import check, to_json

from .wedding import Docs, new_wedding, run, sync


@pytest.fixture
def replicas() -> tuple[Docs, Docs]:
    """Two replicas of one wedding, with a guest list and a table, in sync."""
    ann, bob = new_wedding("w1"), new_wedding("w1")
    for guest_id, name in (("g1", "Ann Lee"), ("g2", "Bob Ray"), ("g3", "Cy Dow")):
        run(ann, "add_guest", guest_id=guest_id, name=name, rsvp="accepted")
    run(ann, "add_table", table_id="t1", name="Rose", capacity=2)
    run(ann, "add_table", table_id="t2", name="Lily", capacity=2)
    run(ann, "assign_seat", guest_id="g1", table_id="t1", seat=1)
    sync(ann, bob)
    return ann, bob


def merged(ann: Docs, bob: Docs, kind: str) -> dict[str, Any]:
    sync(ann, bob)
    exported = to_json(ann[kind], kind)
    assert to_json(bob[kind], kind) == exported
    assert check(ann) == check(bob)
    return exported


# -- ruled out by the layout ------------------------------------------------------------------


def test_edits_of_different_fields_of_one_guest_both_survive(replicas: tuple[Docs, Docs]) -> None:
    ann, bob = replicas
    run(ann, "update_guest", guest_id="g2", meal="fish")
    run(bob, "update_guest", guest_id="g2", contact="bob@example.org", dietary=["nuts"])
    guest = merged(ann, bob, "guests")["guests"]["g2"]
    assert (guest["meal"], guest["contact"], guest["dietary"]) == (
        "fish",
        "bob@example.org",
        ["nuts"],
    )


def test_guests_added_concurrently_both_survive(replicas: tuple[Docs, Docs]) -> None:
    ann, bob = replicas
    first = run(ann, "add_guest", name="Di Fox")["id"]
    second = run(bob, "add_guest", name="Di Fox")["id"]
    guests = merged(ann, bob, "guests")["guests"]
    assert {first, second} <= set(guests)


def test_one_guest_seated_twice_concurrently_ends_in_one_seat(
    replicas: tuple[Docs, Docs],
) -> None:
    ann, bob = replicas
    run(ann, "assign_seat", guest_id="g2", table_id="t1", seat=2)
    run(bob, "assign_seat", guest_id="g2", table_id="t2", seat=1)
    assignments = merged(ann, bob, "seating")["assignments"]
    assert assignments["g2"] in (
        {"table_id": "t1", "seat": 2},
        {"table_id": "t2", "seat": 1},
    )
    assert check(ann) == []


def test_a_no_op_edit_does_not_undo_a_concurrent_one(replicas: tuple[Docs, Docs]) -> None:
    ann, bob = replicas
    run(ann, "set_rsvp", guest_id="g2", rsvp="declined")
    run(bob, "update_guest", guest_id="g2", name="Bob Ray", rsvp="accepted")  # unchanged
    assert merged(ann, bob, "guests")["guests"]["g2"]["rsvp"] == "declined"


# -- caught by the checks ---------------------------------------------------------------------


def test_two_people_fill_the_last_seat(replicas: tuple[Docs, Docs]) -> None:
    ann, bob = replicas
    run(ann, "assign_seat", guest_id="g2", table_id="t1", seat=2)
    run(bob, "assign_seat", guest_id="g3", table_id="t1", seat=2)
    merged(ann, bob, "seating")
    assert [c.code for c in check(ann)] == [
        "seating.seat_double_booked",
        "seating.table_over_capacity",
    ]


def test_a_table_shrinks_while_a_guest_is_seated(replicas: tuple[Docs, Docs]) -> None:
    ann, bob = replicas
    run(ann, "update_table", table_id="t1", capacity=1)
    run(bob, "assign_seat", guest_id="g2", table_id="t1", seat=2)
    merged(ann, bob, "seating")
    assert [c.code for c in check(ann)] == [
        "seating.seat_out_of_range",
        "seating.table_over_capacity",
    ]


def test_a_table_is_removed_while_a_guest_is_seated(replicas: tuple[Docs, Docs]) -> None:
    ann, bob = replicas
    run(ann, "remove_table", table_id="t2")
    run(bob, "assign_seat", guest_id="g2", table_id="t2")
    merged(ann, bob, "seating")
    assert [c.code for c in check(ann)] == ["seating.unknown_table"]


def test_a_guest_declines_while_being_seated(replicas: tuple[Docs, Docs]) -> None:
    ann, bob = replicas
    run(ann, "set_rsvp", guest_id="g2", rsvp="declined")
    run(bob, "assign_seat", guest_id="g2", table_id="t2")
    merged(ann, bob, "guests")
    assert [c.code for c in check(ann)] == ["seating.declined_guest"]


def test_start_and_end_moved_concurrently(replicas: tuple[Docs, Docs]) -> None:
    ann, bob = replicas
    run(
        ann,
        "add_timeline_item",
        item_id="i1",
        title="Dinner",
        start="2026-06-13T18:00:00+02:00",
        end="2026-06-13T20:00:00+02:00",
    )
    sync(ann, bob)
    run(ann, "move_timeline_item", item_id="i1", start="2026-06-13T19:30:00+02:00")
    run(bob, "move_timeline_item", item_id="i1", end="2026-06-13T19:00:00+02:00")
    merged(ann, bob, "timeline")
    assert [c.code for c in check(ann)] == ["timeline.ends_before_start"]


def test_two_payments_recorded_against_a_small_plan(replicas: tuple[Docs, Docs]) -> None:
    ann, bob = replicas
    run(ann, "set_category", category_id="venue", name="Venue", planned=1000, currency="EUR")
    sync(ann, bob)
    run(ann, "record_payment", category_id="venue", amount=600, date="2026-01-15")
    run(bob, "record_payment", category_id="venue", amount=600, date="2026-01-16")
    assert check(ann) == check(bob) == []
    merged(ann, bob, "budget")
    assert [c.code for c in check(ann)] == ["budget.category_over_plan"]
