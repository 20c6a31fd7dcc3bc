"""The seating operations' narrow readers give what the whole reads give for what they
touch: who sits at a table, the table, the guest, whose plus-one is unnamed."""

from __future__ import annotations

from pycrdt import Map

from crdt_server.documents.households import unnamed_plus_ones
from crdt_server.documents.schema import read_guests, read_seating, root
from crdt_server.documents.seats import guest_entry, seated_at, table_entry, unnamed_among

from .wedding import Docs, new_wedding, refused, run


def odd_wedding() -> Docs:
    """Valid entries, and ones a foreign client wrote: an invalid table id, an assignment
    with no table, one held as a Y.Map, a guest with a bad rsvp that names a host."""
    docs = new_wedding()
    for t in ("t1", "t2"):
        run(docs, "add_table", table_id=t, name=t.upper(), capacity=4)
    for g, extra in (
        ("g1", {"plus_one": True}),
        ("g2", {"plus_one": True}),
        ("g3", {"plus_one_of": "g2"}),
        ("g4", {"plus_one": True}),
        ("g5", {}),
    ):
        run(docs, "add_guest", guest_id=g, name=g.upper(), **extra)
    run(docs, "assign_seat", guest_id="g1", table_id="t1")
    run(docs, "assign_seat", guest_id="g2", table_id="t1")
    seating, guests = docs["seating"], docs["guests"]
    assignments = root(seating, "assignments")
    with seating.transaction():
        assignments["g5"] = Map({"table_id": "t1", "seat": 2})  # a shared map, still valid
        assignments["bad id!"] = {"table_id": "t1"}  # invalid id: not seated
        assignments["g6"] = {"seat": 1}  # no table: invalid
        assignments["g7"] = {"table_id": "t2"}
        root(seating, "tables")["t3"] = {"name": "T3", "capacity": "many"}  # invalid
    with guests.transaction():
        # names g4 as host but has no name (invalid): g4's plus-one stays unnamed
        root(guests, "guests")["g8"] = Map({"rsvp": "accepted", "plus_one_of": "g4"})
    return docs


def test_the_narrow_reads_equal_the_whole_reads() -> None:
    docs = odd_wedding()
    plan = read_seating(docs["seating"])
    guest_list = read_guests(docs["guests"])
    for table_id in ("t1", "t2", "t3", "t9"):
        whole = [a for a in plan.assignments.values() if a.table_id == table_id]
        assert seated_at(docs["seating"], table_id) == whole
        assert table_entry(docs["seating"], table_id) == plan.tables.get(table_id)
    assert [a.id for a in seated_at(docs["seating"], "t1")] == ["g1", "g2", "g5"]
    everyone = ["g1", "g2", "g3", "g4", "g5", "g8", "g9"]
    for guest_id in everyone:
        assert guest_entry(docs["guests"], guest_id) == guest_list.guests.get(guest_id)
    assert unnamed_among(docs["guests"], everyone) == set(unnamed_plus_ones(guest_list))
    assert unnamed_among(docs["guests"], everyone) == {"g1", "g4"}
    assert unnamed_among(None, everyone) == set()


def test_assign_seat_counts_unnamed_plus_ones_from_the_narrow_reads() -> None:
    docs = odd_wedding()
    # t1 seats 4: g1 and g1's plus-one, g2 (named plus-one g3, seated apart), g5: full
    assert refused(docs, "assign_seat", 422, guest_id="g3", table_id="t1").path == "table_id"
    run(docs, "assign_seat", guest_id="g4", table_id="t2")  # g7, g4 and g4's plus-one
    run(docs, "unassign_seat", guest_id="g5")  # t1: three people, g4 brings a plus-one
    refusal = refused(docs, "assign_seat", 422, guest_id="g4", table_id="t1")
    assert "they bring a plus-one" in refusal.message
    run(docs, "assign_seat", guest_id="g3", table_id="t1")
    assert read_seating(docs["seating"]).assignments["g3"].table_id == "t1"
