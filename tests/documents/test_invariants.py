"""Invariant checks: each finding fires on a bad plan and stays quiet on a fine one.

Plans are built with ``from_json``, which checks shape but not invariants (as a restore of
an export with conflicts must); ``test_merging`` shows the same findings arising from
concurrent operations.
"""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Doc, Map

from crdt_server.documents import (
    Conflict,
    DocumentError,
    check,
    check_document,
    format_money,
    from_json,
)

Docs = dict[str, Doc[Any]]


def wedding(
    *,
    guests: dict[str, Any] | None = None,
    tables: dict[str, Any] | None = None,
    assignments: dict[str, Any] | None = None,
    items: dict[str, Any] | None = None,
    budget: dict[str, Any] | None = None,
) -> Docs:
    return {
        "guests": from_json("guests", {"kind": "guests", "guests": guests or {}}),
        "seating": from_json(
            "seating",
            {"kind": "seating", "tables": tables or {}, "assignments": assignments or {}},
        ),
        "timeline": from_json("timeline", {"kind": "timeline", "items": items or {}}),
        "budget": from_json(
            "budget", {"kind": "budget", "categories": {}, "payments": {}, **(budget or {})}
        ),
    }


def codes(docs: Docs) -> list[str]:
    return [conflict.code for conflict in check(docs)]


GUESTS = {
    "g1": {"name": "Ann Lee", "rsvp": "accepted"},
    "g2": {"name": "Bob Ray", "rsvp": "accepted"},
    "g3": {"name": "Cy Dow"},
}
ROSE = {"t1": {"name": "Rose", "capacity": 2}}


# -- seating --------------------------------------------------------------------------------


def test_a_fine_seating_plan_has_no_findings() -> None:
    seats = {"g1": {"table_id": "t1", "seat": 1}, "g2": {"table_id": "t1", "seat": 2}}
    assert check(wedding(guests=GUESTS, tables=ROSE, assignments=seats)) == []


def test_table_over_capacity() -> None:
    seats = {guest_id: {"table_id": "t1"} for guest_id in GUESTS}
    assert check(wedding(guests=GUESTS, tables=ROSE, assignments=seats)) == [
        Conflict(
            "seating.table_over_capacity",
            ("seating/tables/t1",),
            "Table 'Rose' has 3 guests but seats 2.",
        )
    ]


def test_two_guests_on_one_seat() -> None:
    seats = {"g1": {"table_id": "t1", "seat": 2}, "g2": {"table_id": "t1", "seat": 2}}
    assert check(wedding(guests=GUESTS, tables=ROSE, assignments=seats)) == [
        Conflict(
            "seating.seat_double_booked",
            ("seating/assignments/g1", "seating/assignments/g2"),
            "Seat 2 at table 'Rose' is assigned to 2 guests: Ann Lee, Bob Ray.",
        )
    ]


def test_unnumbered_guests_never_share_a_seat() -> None:
    seats = {"g1": {"table_id": "t1"}, "g2": {"table_id": "t1"}}
    assert check(wedding(guests=GUESTS, tables=ROSE, assignments=seats)) == []


def test_a_seat_beyond_the_table() -> None:
    seats = {"g1": {"table_id": "t1", "seat": 3}}
    assert check(wedding(guests=GUESTS, tables=ROSE, assignments=seats)) == [
        Conflict(
            "seating.seat_out_of_range",
            ("seating/assignments/g1", "seating/tables/t1"),
            "Ann Lee has seat 3 at table 'Rose', which seats 2.",
        )
    ]


def test_a_seat_for_an_unknown_guest() -> None:
    seats = {"g9": {"table_id": "t1"}}
    assert check(wedding(guests=GUESTS, tables=ROSE, assignments=seats)) == [
        Conflict(
            "seating.unknown_guest",
            ("seating/assignments/g9",),
            "A seat is assigned to guest 'g9', who is not on the guest list.",
        )
    ]


def test_a_seat_for_a_declined_guest() -> None:
    guests = {**GUESTS, "g3": {"name": "Cy Dow", "rsvp": "declined"}}
    seats = {"g3": {"table_id": "t1"}}
    assert check(wedding(guests=guests, tables=ROSE, assignments=seats)) == [
        Conflict(
            "seating.declined_guest",
            ("guests/guests/g3", "seating/assignments/g3"),
            "Cy Dow declined but has a seat at table 'Rose'.",
        )
    ]


def test_a_seat_at_an_unknown_table() -> None:
    seats = {"g1": {"table_id": "t9", "seat": 1}}
    assert check(wedding(guests=GUESTS, tables=ROSE, assignments=seats)) == [
        Conflict(
            "seating.unknown_table",
            ("seating/assignments/g1",),
            "Ann Lee is seated at table 't9', which does not exist.",
        )
    ]


# -- timeline -------------------------------------------------------------------------------


def item(start: str, end: str, **fields: Any) -> dict[str, Any]:
    return {"title": "Item", "start": f"2026-06-13T{start}", "end": f"2026-06-13T{end}", **fields}


def test_an_item_ending_before_it_starts() -> None:
    items = {"i1": item("16:00+02:00", "15:00+02:00", title="Ceremony")}
    assert check(wedding(items=items)) == [
        Conflict(
            "timeline.ends_before_start",
            ("timeline/items/i1",),
            "'Ceremony' ends (2026-06-13T15:00:00+02:00) before it starts "
            "(2026-06-13T16:00:00+02:00).",
        )
    ]


def test_a_vendor_booked_twice_at_once() -> None:
    items = {
        "i1": item("15:00+02:00", "16:00+02:00", title="Ceremony", vendor="Studio Lux"),
        # 13:30 UTC is 15:30 at +02:00; vendor names match ignoring case and spacing.
        "i2": item("13:30Z", "15:00Z", title="Photos", vendor=" studio  lux"),
    }
    assert check(wedding(items=items)) == [
        Conflict(
            "timeline.vendor_overlap",
            ("timeline/items/i1", "timeline/items/i2"),
            "'Ceremony' and 'Photos' both use vendor 'Studio Lux' "
            "from 2026-06-13T15:30:00+02:00 to 2026-06-13T16:00:00+02:00.",
        )
    ]


def test_a_location_used_twice_at_once() -> None:
    items = {
        "i1": item("15:00+02:00", "16:00+02:00", location="Barn"),
        "i2": item("15:59+02:00", "17:00+02:00", location="Barn"),
    }
    assert codes(wedding(items=items)) == ["timeline.location_overlap"]


@pytest.mark.parametrize(
    "second",
    [
        item("16:00+02:00", "17:00+02:00", vendor="DJ", location="Barn"),  # back to back
        item("15:00+02:00", "16:00+02:00", vendor="Band", location="Garden"),  # elsewhere
        item("15:00+02:00", "16:00+02:00", vendor="DJ", location="Barn", status="cancelled"),
        item("15:30+02:00", "15:30+02:00", vendor="DJ", location="Barn"),  # a milestone
        item("15:00+02:00", "16:00+02:00"),  # no vendor, no location
    ],
)
def test_items_that_do_not_clash(second: dict[str, Any]) -> None:
    first = item("15:00+02:00", "16:00+02:00", vendor="DJ", location="Barn")
    assert check(wedding(items={"i1": first, "i2": second})) == []


# -- budget ---------------------------------------------------------------------------------


def payment(amount: int, category_id: str = "venue") -> dict[str, Any]:
    return {"amount": amount, "category_id": category_id, "date": "2026-01-15"}


VENUE = {"venue": {"name": "Venue", "planned": 1_000_000}}


def test_a_budget_within_plan_has_no_findings() -> None:
    budget = {
        "currency": "EUR",
        "total": 1_000_000,
        "categories": VENUE,
        "payments": {"p1": payment(600_000), "p2": payment(400_000)},
    }
    assert check(wedding(budget=budget)) == []


def test_payments_over_a_category_plan() -> None:
    budget = {"currency": "EUR", "categories": VENUE, "payments": {"p1": payment(1_250_050)}}
    assert check(wedding(budget=budget)) == [
        Conflict(
            "budget.category_over_plan",
            ("budget/categories/venue",),
            "Payments for 'Venue' total 12,500.50 EUR paid (none scheduled) but the plan is"
            " 10,000.00 EUR.",
        )
    ]


def test_payments_and_plans_over_the_total() -> None:
    categories = {**VENUE, "music": {"name": "Music", "planned": 300_000}}
    payments = {"p1": payment(900_000), "p2": payment(200_000, "music")}
    budget = {"currency": "JPY", "total": 1_000_000, "categories": categories}
    assert check(wedding(budget={**budget, "payments": payments})) == [
        Conflict(
            "budget.over_total",
            ("budget/settings/total",),
            "Payments total 1,100,000 JPY paid (none scheduled) but the budget is 1,000,000 JPY.",
        ),
        Conflict(
            "budget.plan_over_total",
            ("budget/settings/total",),
            "Categories plan 1,300,000 JPY but the budget is 1,000,000 JPY.",
        ),
    ]


def test_no_total_means_no_total_checks() -> None:
    budget = {"categories": VENUE, "payments": {"p1": payment(10)}}
    assert check(wedding(budget=budget)) == []


def test_a_payment_for_an_unknown_category() -> None:
    budget = {"currency": "EUR", "categories": VENUE, "payments": {"p1": payment(500, "cake")}}
    assert check(wedding(budget=budget)) == [
        Conflict(
            "budget.unknown_category",
            ("budget/payments/p1",),
            "Payment 'p1' of 5.00 EUR is for category 'cake', which does not exist.",
        )
    ]


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (0, "EUR", "0.00 EUR"),
        (5, "USD", "0.05 USD"),
        (123_456_789, "EUR", "1,234,567.89 EUR"),
        (1234, "KWD", "1.234 KWD"),
        (1234, "KRW", "1,234 KRW"),
        (1234, None, "1,234 (minor units, no currency set)"),
    ],
)
def test_format_money(amount: int, currency: str | None, text: str) -> None:
    assert format_money(amount, currency) == text


# -- across documents -----------------------------------------------------------------------


def test_missing_documents_count_as_empty() -> None:
    assert check({}) == []
    seating = wedding(tables=ROSE, assignments={"g1": {"table_id": "t1"}})["seating"]
    assert codes({"seating": seating}) == ["seating.unknown_guest"]
    assert check_document("guests", {}) == []


def test_findings_are_sorted_and_stable() -> None:
    docs = wedding(
        guests=GUESTS,
        tables=ROSE,
        assignments={
            "g1": {"table_id": "t1", "seat": 1},
            "g2": {"table_id": "t1", "seat": 1},
            "g3": {"table_id": "t1"},
            "g9": {"table_id": "t9"},
        },
        items={"i1": item("16:00Z", "15:00Z")},
        budget={"total": 1, "categories": VENUE, "payments": {"p1": payment(5)}},
    )
    findings = check(docs)
    assert findings == sorted(findings)
    assert findings == check(docs)
    assert [f.code for f in findings] == [
        "budget.over_total",
        "budget.plan_over_total",
        "seating.seat_double_booked",
        "seating.table_over_capacity",
        "seating.unknown_guest",
        "seating.unknown_table",
        "timeline.ends_before_start",
    ]
    assert check_document("seating", docs) == [f for f in findings if f.code.startswith("seat")]


def test_check_document_of_an_unknown_kind() -> None:
    with pytest.raises(DocumentError, match="unknown document kind 'menu'"):
        check_document("menu", {})


def test_entries_a_foreign_client_broke_are_reported() -> None:
    docs = wedding(guests=GUESTS, tables=ROSE)
    guests = docs["guests"].get("guests", type=Map)
    guests["g1"]["rsvp"] = "maybe"  # a bad optional field: read as its default
    guests["g2"] = Map({"rsvp": "accepted"})  # no name: left out
    guests["not an id"] = Map({"name": "Zed"})
    docs["seating"].get("tables", type=Map)["t1"] = "Rose"
    assert check(docs) == [
        Conflict(
            "guests.invalid_entry",
            ("guests/guests/g1/rsvp",),
            "Guest 'g1' has an invalid rsvp: it must be one of pending, accepted, declined, "
            "got 'maybe'.",
        ),
        Conflict("guests.invalid_entry", ("guests/guests/g2/name",), "Guest 'g2' has no name."),
        Conflict(
            "guests.invalid_entry",
            ("guests/guests/not an id",),
            "Guest 'not an id' does not have a valid id.",
        ),
        Conflict(
            "seating.invalid_entry",
            ("seating/tables/t1",),
            "Table 't1' is 'Rose', not an object.",
        ),
    ]
