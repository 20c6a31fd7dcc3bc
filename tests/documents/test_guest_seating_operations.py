"""Guest and seating operations: what each does, and each way it is refused."""

from __future__ import annotations

import re
from typing import Any

import pytest

from crdt_server.documents import to_json

from .wedding import NO_NOTES, Docs, new_wedding, refused, run


@pytest.fixture
def docs() -> Docs:
    docs = new_wedding()
    run(docs, "add_guest", guest_id="g1", name="Ann Lee", rsvp="accepted")
    run(docs, "add_guest", guest_id="g2", name="Bob Ray", rsvp="accepted")
    run(docs, "add_guest", guest_id="g3", name="Cy Dow", rsvp="declined")
    run(docs, "add_table", table_id="t1", name="Rose", capacity=2)
    return docs


def guests(docs: Docs) -> dict[str, Any]:
    result: dict[str, Any] = to_json(docs["guests"], "guests")["guests"]
    return result


def seating(docs: Docs) -> dict[str, Any]:
    return to_json(docs["seating"], "seating")


# -- guests ---------------------------------------------------------------------------------


def test_add_guest_normalises_and_fills_defaults(docs: Docs) -> None:
    result = run(
        docs,
        "add_guest",
        guest_id="g9",
        name="  Di Fox ",
        household="Fox family",
        side="partner_b",
        meal="fish",
        dietary=["nuts", " vegan", "nuts"],
        plus_one=True,
        contact="di@example.org",
    )
    assert result == {"op": "add_guest", "id": "g9", "changed": True}
    assert guests(docs)["g9"] == {
        "name": "Di Fox",
        "household": "Fox family",
        "side": "partner_b",
        "rsvp": "pending",
        "meal": "fish",
        "dietary": ["nuts", "vegan"],
        "plus_one": True,
        "contact": "di@example.org",
        "notes": "",
        "household_id": None,
        "plus_one_of": None,
    }


def test_add_guest_generates_an_id(docs: Docs) -> None:
    result = run(docs, "add_guest", name="Di Fox")
    assert re.fullmatch(r"[0-9a-f]{12}", result["id"])
    assert guests(docs)[result["id"]]["rsvp"] == "pending"


@pytest.mark.parametrize(
    ("fields", "status", "path"),
    [
        ({"guest_id": "g1", "name": "Again"}, 422, "guest_id"),
        ({}, 400, "name"),
        ({"name": ""}, 400, "name"),
        ({"name": "   "}, 400, "name"),
        ({"name": 7}, 400, "name"),
        ({"name": "x" * 201}, 400, "name"),
        ({"name": "Di", "rsvp": "maybe"}, 400, "rsvp"),
        ({"name": "Di", "rsvp": None}, 400, "rsvp"),
        ({"name": "Di", "side": "left"}, 400, "side"),
        ({"name": "Di", "plus_one": 1}, 400, "plus_one"),
        ({"name": "Di", "dietary": "vegan"}, 400, "dietary"),
        ({"name": "Di", "dietary": ["vegan", 3]}, 400, "dietary"),
        ({"name": "Di", "guest_id": "no spaces"}, 400, "guest_id"),
        ({"name": "Di", "guest_id": "x" * 65}, 400, "guest_id"),
        ({"name": "Di", "colour": "blue"}, 400, "colour"),
    ],
)
def test_add_guest_refusals(docs: Docs, fields: dict[str, Any], status: int, path: str) -> None:
    error = refused(docs, "add_guest", status, **fields)
    assert error.path == path
    assert str(error).startswith(f"{path}: ")


def test_update_guest_writes_only_the_given_fields(docs: Docs) -> None:
    run(docs, "update_guest", guest_id="g1", meal="veg", contact="ann@example.org")
    assert guests(docs)["g1"]["meal"] == "veg"
    assert guests(docs)["g1"]["rsvp"] == "accepted"
    result = run(docs, "update_guest", guest_id="g1", meal=None)
    assert result["changed"] is True
    assert guests(docs)["g1"]["meal"] is None
    assert guests(docs)["g1"]["contact"] == "ann@example.org"


def test_update_guest_with_the_same_values_writes_nothing(docs: Docs) -> None:
    state = docs["guests"].get_state()
    result = run(docs, "update_guest", guest_id="g1", name=" Ann Lee", rsvp="accepted")
    assert result == {"op": "update_guest", "id": "g1", "changed": False}
    assert docs["guests"].get_state() == state


def test_update_guest_refusals(docs: Docs) -> None:
    assert refused(docs, "update_guest", 422, guest_id="g9", name="X").path == "guest_id"
    assert "at least one of" in str(refused(docs, "update_guest", 400, guest_id="g1"))
    assert refused(docs, "update_guest", 400, guest_id="g1", name=None).path == "name"
    assert refused(docs, "update_guest", 400, guest_id="g1", plus_one=None).path == "plus_one"
    assert refused(docs, "update_guest", 400, name="X").path == "guest_id"


def test_remove_guest(docs: Docs) -> None:
    assert run(docs, "remove_guest", guest_id="g2")["changed"] is True
    assert "g2" not in guests(docs)
    assert refused(docs, "remove_guest", 422, guest_id="g2").path == "guest_id"
    refused(docs, "remove_guest", 400, guest_id="g1", name="Ann Lee")


def test_set_rsvp(docs: Docs) -> None:
    assert run(docs, "set_rsvp", guest_id="g1", rsvp="declined")["changed"] is True
    assert guests(docs)["g1"]["rsvp"] == "declined"
    assert run(docs, "set_rsvp", guest_id="g1", rsvp="declined")["changed"] is False
    refused(docs, "set_rsvp", 400, guest_id="g1", rsvp="yes")
    refused(docs, "set_rsvp", 400, guest_id="g1")
    refused(docs, "set_rsvp", 400, guest_id="g1", rsvp="accepted", meal="fish")
    refused(docs, "set_rsvp", 422, guest_id="g9", rsvp="accepted")


# -- tables ---------------------------------------------------------------------------------


def test_add_update_and_remove_a_table(docs: Docs) -> None:
    run(docs, "add_table", table_id="t2", name="Lily", capacity=10, shape="rectangular")
    assert (
        seating(docs)["tables"]["t2"]
        == {"name": "Lily", "capacity": 10, "shape": "rectangular", "position": None} | NO_NOTES
    )
    run(docs, "update_table", table_id="t2", name="Iris", capacity=12)
    assert (
        seating(docs)["tables"]["t2"]
        == {"name": "Iris", "capacity": 12, "shape": "rectangular", "position": None} | NO_NOTES
    )
    run(docs, "assign_seat", guest_id="g1", table_id="t2", seat=3)
    run(docs, "assign_seat", guest_id="g2", table_id="t1")
    result = run(docs, "remove_table", table_id="t2")
    assert result == {"op": "remove_table", "id": "t2", "changed": True, "unassigned": ["g1"]}
    assert seating(docs)["tables"].keys() == {"t1"}
    assert seating(docs)["assignments"].keys() == {"g2"}


@pytest.mark.parametrize(
    ("op", "fields", "status", "path"),
    [
        ("add_table", {"table_id": "t1", "name": "X", "capacity": 2}, 422, "table_id"),
        ("add_table", {"name": "X"}, 400, "capacity"),
        ("add_table", {"name": "X", "capacity": 0}, 400, "capacity"),
        ("add_table", {"name": "X", "capacity": 1001}, 400, "capacity"),
        ("add_table", {"name": "X", "capacity": True}, 400, "capacity"),
        ("add_table", {"name": "X", "capacity": 2.0}, 400, "capacity"),
        ("add_table", {"name": "X", "capacity": 2, "shape": "star"}, 400, "shape"),
        ("update_table", {"table_id": "t9", "name": "X"}, 422, "table_id"),
        ("update_table", {"table_id": "t1", "capacity": None}, 400, "capacity"),
        ("remove_table", {"table_id": "t9"}, 422, "table_id"),
    ],
)
def test_table_refusals(
    docs: Docs, op: str, fields: dict[str, Any], status: int, path: str
) -> None:
    assert refused(docs, op, status, **fields).path == path


def test_a_table_cannot_shrink_below_its_guests(docs: Docs) -> None:
    run(docs, "add_table", table_id="t2", name="Lily", capacity=4)
    run(docs, "assign_seat", guest_id="g1", table_id="t2", seat=4)
    run(docs, "assign_seat", guest_id="g2", table_id="t2", seat=1)
    assert "move that guest" in str(refused(docs, "update_table", 422, table_id="t2", capacity=3))
    run(docs, "assign_seat", guest_id="g1", table_id="t2", seat=2)
    run(docs, "update_table", table_id="t2", capacity=2)
    assert "unassign some" in str(refused(docs, "update_table", 422, table_id="t2", capacity=1))


# -- seat assignments -----------------------------------------------------------------------


def test_assign_and_move_a_guest(docs: Docs) -> None:
    assert run(docs, "assign_seat", guest_id="g1", table_id="t1", seat=1)["changed"] is True
    assert seating(docs)["assignments"] == {"g1": {"table_id": "t1", "seat": 1}}
    assert run(docs, "assign_seat", guest_id="g1", table_id="t1", seat=1)["changed"] is False
    run(docs, "add_table", table_id="t2", name="Lily", capacity=2)
    run(docs, "assign_seat", guest_id="g1", table_id="t2")
    assert seating(docs)["assignments"] == {"g1": {"table_id": "t2", "seat": None}}
    assert run(docs, "unassign_seat", guest_id="g1")["changed"] is True
    assert seating(docs)["assignments"] == {}


def test_a_guest_may_change_seat_at_a_full_table(docs: Docs) -> None:
    run(docs, "assign_seat", guest_id="g1", table_id="t1", seat=1)
    run(docs, "assign_seat", guest_id="g2", table_id="t1")
    run(docs, "assign_seat", guest_id="g2", table_id="t1", seat=2)
    assert seating(docs)["assignments"]["g2"] == {"table_id": "t1", "seat": 2}


@pytest.mark.parametrize(
    ("fields", "status", "path"),
    [
        ({"guest_id": "g1", "table_id": "t9"}, 422, "table_id"),
        ({"guest_id": "g1", "table_id": "t1", "seat": 3}, 422, "seat"),
        ({"guest_id": "g2", "table_id": "t1", "seat": 1}, 422, "seat"),
        ({"guest_id": "g9", "table_id": "t1"}, 422, "guest_id"),
        ({"guest_id": "g3", "table_id": "t1"}, 422, "guest_id"),
        ({"guest_id": "g1", "table_id": "t1", "seat": 0}, 400, "seat"),
        ({"guest_id": "g1", "table_id": "t1", "seat": "2"}, 400, "seat"),
        ({"guest_id": "g1"}, 400, "table_id"),
        ({"table_id": "t1"}, 400, "guest_id"),
    ],
)
def test_assign_seat_refusals(docs: Docs, fields: dict[str, Any], status: int, path: str) -> None:
    run(docs, "assign_seat", guest_id="g1", table_id="t1", seat=1)
    assert refused(docs, "assign_seat", status, **fields).path == path


def test_a_full_table_takes_no_one_else(docs: Docs) -> None:
    run(docs, "add_guest", guest_id="g4", name="Di Fox")
    run(docs, "assign_seat", guest_id="g1", table_id="t1")
    run(docs, "assign_seat", guest_id="g2", table_id="t1")
    error = refused(docs, "assign_seat", 422, guest_id="g4", table_id="t1")
    assert str(error) == "table_id: table 'Rose' is full (2 of 2 seats taken)"


def test_without_the_guest_list_any_guest_id_can_be_seated() -> None:
    docs = new_wedding()
    run(docs, "add_table", table_id="t1", name="Rose", capacity=2)
    del docs["guests"]
    assert run(docs, "assign_seat", guest_id="g1", table_id="t1")["changed"] is True


def test_unassign_a_guest_without_a_seat(docs: Docs) -> None:
    assert (
        str(refused(docs, "unassign_seat", 422, guest_id="g1"))
        == "guest_id: guest 'g1' has no seat"
    )
