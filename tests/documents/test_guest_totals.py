"""People, not rows: headcounts and meal totals with plus-ones, the menu, seating a household
in one action, and a household split across tables as a finding."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pycrdt import Doc, Map

from crdt_server.documents import check, to_json
from crdt_server.documents.model import household_id_of
from crdt_server.documents.schema import GuestList, read_guests, read_menu, read_seating
from crdt_server.documents.totals import totals

from .wedding import Docs, new_wedding, refused, run


@pytest.fixture
def docs() -> Docs:
    docs = new_wedding()
    run(docs, "set_menu", choices=["Fish", "Beef", "Vegetarian"])
    run(docs, "add_household", household_id="h1", name="The Lees")
    run(docs, "add_guest", guest_id="g1", name="Ann Lee", household_id="h1", rsvp="accepted")
    run(docs, "update_guest", guest_id="g1", meal="fish", dietary=["vegan"], plus_one=True)
    run(docs, "add_guest", guest_id="g2", name="Bo Lee", household_id="h1", rsvp="accepted")
    run(docs, "update_guest", guest_id="g2", meal="Beef")
    run(docs, "add_guest", guest_id="g3", name="Cy Dow", household="Dows", rsvp="pending")
    run(docs, "add_guest", guest_id="g4", name="Di Dow", household="dows", rsvp="declined")
    run(docs, "add_table", table_id="t1", name="Rose", capacity=4)
    run(docs, "add_table", table_id="t2", name="Lily", capacity=2)
    return docs


def found(docs: Docs) -> dict[str, Any]:
    return totals(read_guests(docs["guests"]), read_seating(docs["seating"]))


def test_headcount_counts_unnamed_plus_ones_as_people(docs: Docs) -> None:
    result = found(docs)
    assert result["people"] == 5 and result["unnamed_plus_ones"] == 1
    assert result["rsvp"] == {"pending": 1, "accepted": 3, "declined": 1}
    # Meals by the menu's spelling; the plus-one and the pending guest have none yet.
    assert result["meals"] == {"Beef": 1, "Fish": 1} and result["no_meal"] == 2
    assert result["dietary"] == {"vegan": 1}
    assert result["unseated"] == 4  # who may come: g1, their plus-one, g2, g3
    # Naming the plus-one makes them a guest: still five people.
    run(docs, "add_guest", guest_id="g5", name="Ed Fox", plus_one_of="g1", rsvp="accepted")
    run(docs, "update_guest", guest_id="g5", meal="Vegetarian")
    result = found(docs)
    assert result["people"] == 5 and result["unnamed_plus_ones"] == 0
    assert result["meals"] == {"Beef": 1, "Fish": 1, "Vegetarian": 1}


def test_per_table_totals_seat_a_plus_one_with_their_host(docs: Docs) -> None:
    run(docs, "assign_seat", guest_id="g1", table_id="t1")
    run(docs, "assign_seat", guest_id="g3", table_id="t2")
    tables = found(docs)["tables"]
    assert tables["t1"] == {
        "name": "Rose",
        "capacity": 4,
        "people": 2,
        "meals": {"Fish": 1},
        "no_meal": 1,
        "dietary": {"vegan": 1},
    }
    assert tables["t2"]["people"] == 1 and tables["t2"]["no_meal"] == 1
    assert found(docs)["unseated"] == 1  # g2


def test_a_full_table_counts_the_plus_one(docs: Docs) -> None:
    run(docs, "assign_seat", guest_id="g2", table_id="t2")
    # g1 and their unnamed plus-one are two people: one seat is left.
    error = refused(docs, "assign_seat", 422, guest_id="g1", table_id="t2")
    assert error.path == "table_id" and "plus-one" in error.message
    run(docs, "update_table", table_id="t2", capacity=3)
    run(docs, "assign_seat", guest_id="g1", table_id="t2")
    assert refused(docs, "update_table", 422, table_id="t2", capacity=2).path == "capacity"


def test_table_over_capacity_counts_people(docs: Docs) -> None:
    run(docs, "assign_seat", guest_id="g2", table_id="t2")
    seating = docs["seating"].get("assignments", type=Map)
    with docs["seating"].transaction():  # a replica that did not know of the plus-one
        seating["g1"] = {"table_id": "t2"}
    assert [c.message for c in check(docs) if c.code == "seating.table_over_capacity"] == [
        "Table 'Lily' has 2 guests and 1 plus-one but seats 2."
    ]
    run(docs, "update_guest", guest_id="g1", plus_one=False)
    assert [c.code for c in check(docs)] == []


def test_seat_household_seats_everyone_who_may_come_in_one_transaction(docs: Docs) -> None:
    updates: list[bytes] = []
    subscription = docs["seating"].observe(lambda event: updates.append(event.update))
    result = run(docs, "seat_household", household_id="h1", table_id="t1")
    docs["seating"].unobserve(subscription)
    assert result == {"op": "seat_household", "id": "h1", "changed": True, "seated": ["g1", "g2"]}
    assert len(updates) == 1
    assignments = to_json(docs["seating"], "seating")["assignments"]
    assert assignments == {
        "g1": {"table_id": "t1", "seat": None},
        "g2": {"table_id": "t1", "seat": None},
    }
    assert found(docs)["tables"]["t1"]["people"] == 3
    again = run(docs, "seat_household", household_id="h1", table_id="t1")
    assert not again["changed"] and again["seated"] == []


def test_seat_household_by_free_text_name_leaves_who_declined(docs: Docs) -> None:
    dows = household_id_of("Dows")
    result = run(docs, "seat_household", household_id=dows, table_id="t2")
    assert result["seated"] == ["g3"]  # g4 declined


def test_seat_a_guest_with_their_named_plus_one(docs: Docs) -> None:
    run(docs, "add_guest", guest_id="g5", name="Ed Fox", plus_one_of="g3")
    result = run(docs, "seat_household", guest_id="g3", table_id="t2")
    assert result["seated"] == ["g3", "g5"]


@pytest.mark.parametrize(
    ("fields", "status", "path"),
    [
        ({"table_id": "t1"}, 400, ""),
        ({"table_id": "t1", "household_id": "h1", "guest_id": "g1"}, 400, ""),
        ({"table_id": "t9", "household_id": "h1"}, 422, "table_id"),
        ({"table_id": "t1", "household_id": "h9"}, 422, "household_id"),
        ({"table_id": "t1", "guest_id": "g9"}, 422, "guest_id"),
        ({"table_id": "t1", "guest_id": "g4"}, 422, "guest_id"),  # declined
        ({"table_id": "t2", "household_id": "h1"}, 422, "table_id"),  # 3 people, 2 seats
    ],
)
def test_seat_household_refusals_change_nothing(
    docs: Docs, fields: dict[str, Any], status: int, path: str
) -> None:
    assert refused(docs, "seat_household", status, **fields).path == path


def test_a_household_split_across_tables_is_a_finding_resolved_by_seating_it(
    docs: Docs,
) -> None:
    run(docs, "assign_seat", guest_id="g1", table_id="t1")
    run(docs, "assign_seat", guest_id="g2", table_id="t2")
    split = [c for c in check(docs) if c.code == "seating.household_split"]
    assert [(c.paths, c.message) for c in split] == [
        (
            ("seating/assignments/g1", "seating/assignments/g2"),
            "Household 'The Lees' is seated at 2 tables ('Rose', 'Lily'); seat them together.",
        )
    ]
    run(docs, "seat_household", household_id="h1", table_id="t1")
    assert check(docs) == []


def test_a_declined_member_does_not_split_a_household(docs: Docs) -> None:
    with docs["seating"].transaction():
        seats = docs["seating"].get("assignments", type=Map)
        seats["g3"], seats["g4"] = {"table_id": "t1"}, {"table_id": "t2"}
    assert [c.code for c in check(docs)] == ["seating.declined_guest"]


def test_menu_is_read_and_a_malformed_one_is_a_finding_not_an_error(docs: Docs) -> None:
    assert read_menu(docs["guests"]).choices == ("Fish", "Beef", "Vegetarian")
    assert read_menu(docs["guests"]).offers(" FISH") and not read_menu(docs["guests"]).offers(
        "Lamb"
    )
    assert to_json(docs["guests"], "guests")["menu"] == {"choices": ["Fish", "Beef", "Vegetarian"]}
    with docs["guests"].transaction():  # a client wrote a menu of the wrong shape
        docs["guests"].get("menu", type=Map)["choices"] = "fish or beef"
    assert read_menu(docs["guests"]).choices is None and read_menu(docs["guests"]).offers("Lamb")
    assert [(c.code, c.paths) for c in check(docs)] == [
        ("guests.invalid_entry", ("guests/menu/choices",))
    ]
    assert refused(docs, "set_menu", 400, choices="fish").path == "choices"
    assert refused(docs, "set_menu", 400, choices=["x"] * 31).path == "choices"
    run(docs, "set_menu", choices=None)
    assert to_json(docs["guests"], "guests")["menu"] == {"choices": None}
    assert check(docs) == []


def test_totals_are_linear_in_a_large_wedding() -> None:
    doc: Doc[Any] = Doc()
    seating: Doc[Any] = Doc()
    guests = doc.get("guests", type=Map)
    assignments = seating.get("assignments", type=Map)
    tables = seating.get("tables", type=Map)
    with doc.transaction(), seating.transaction():
        for t in range(500):
            tables[f"t{t}"] = Map({"name": f"T{t}", "capacity": 10})
        for i in range(5000):
            guests[f"g{i}"] = Map(
                {"name": f"G{i}", "meal": f"meal {i % 40}", "plus_one": i % 4 == 0}
                | {"dietary": [f"d{i % 9}"], "household": f"h{i // 3}"}
            )
            assignments[f"g{i}"] = {"table_id": f"t{i % 500}"}
    guest_list: GuestList = read_guests(doc)
    plan = read_seating(seating)
    started = time.process_time()
    result = totals(guest_list, plan)
    assert time.process_time() - started < 1.0
    assert result["people"] == 6250 and len(result["tables"]) == 500
    started = time.process_time()
    check({"guests": doc, "seating": seating})
    assert time.process_time() - started < 10.0
