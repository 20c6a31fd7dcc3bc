"""Writes that vanish in a race, found from the items (crdt_server/core/overwrites.py).

Each test plays a race with pycrdt documents of chosen client ids (the higher id wins a map
key in Yjs), integrates the updates into a "server" document as a room does, and checks what
the index reports for each order of arrival.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pycrdt import Doc, Map

from crdt_server.codec.items import read_delete_set, read_items
from crdt_server.core.overwrites import Found, OverwriteIndex

HI, LO, BASE = 900, 5, 1


class Server:
    """A document that integrates updates and tells the index, as a room does."""

    def __init__(self) -> None:
        self.doc: Doc[Any] = Doc(client_id=2)
        self.deletes = b"\x00"

        def seen(event: Any) -> None:
            self.deletes = event.delete_set

        self._sub = self.doc._doc.observe(seen)
        self.index: OverwriteIndex | None = None

    def apply(self, update: bytes) -> Found:
        if self.index is None:
            self.index = OverwriteIndex()
            self.index.build(read_items(self.doc.get_update()))
        self.deletes = b"\x00"
        self.doc.apply_update(update)
        return self.index.integrate(read_items(update), read_delete_set(self.deletes))


def edit(doc: Doc[Any], change: Callable[[], object]) -> bytes:
    state = doc.get_state()
    change()
    return doc.get_update(state)


def clients(base: bytes, *ids: int) -> list[Doc[Any]]:
    out = []
    for client in ids:
        doc: Doc[Any] = Doc(client_id=client)
        doc.apply_update(base)
        out.append(doc)
    return out


def wedding() -> bytes:
    doc: Doc[Any] = Doc(client_id=BASE)
    guests = doc.get("guests", type=Map)
    assignments = doc.get("assignments", type=Map)
    with doc.transaction():
        guests["g1"] = Map({"name": "Ada", "rsvp": "pending", "meal": "fish"})
        assignments["g1"] = "t1"
    return doc.get_update()


def summary(found: Found) -> list[tuple[str, tuple[str, ...], Any, Any, bool]]:
    return [
        (o.kind, o.path, o.loser.value, o.winner.value if o.winner else None, o.new_won)
        for o in found.overwrites
    ]


@pytest.mark.parametrize("hi_first", [True, False])
def test_a_field_written_concurrently_reports_the_lost_value(hi_first: bool) -> None:
    base = wedding()
    hi, lo = clients(base, HI, LO)
    accepted = edit(hi, lambda: hi.get("guests", type=Map)["g1"].__setitem__("rsvp", "accepted"))
    declined = edit(lo, lambda: lo.get("guests", type=Map)["g1"].__setitem__("rsvp", "declined"))
    server = Server()
    assert server.apply(base).overwrites == []
    first, second = (accepted, declined) if hi_first else (declined, accepted)
    assert server.apply(first).overwrites == []
    found = server.apply(second)
    # The higher client id wins in either order; the loser's value is in the finding.
    expected = ("concurrent_edit", ("guests", "g1", "rsvp"), "declined", "accepted", not hi_first)
    assert summary(found) == [expected]
    assert server.doc.get("guests", type=Map)["g1"]["rsvp"] == "accepted"
    (o,) = found.overwrites
    assert o.loser.id[0] == LO and o.winner is not None and o.winner.id[0] == HI


@pytest.mark.parametrize("hi_first", [True, False])
def test_a_root_key_written_concurrently_is_found(hi_first: bool) -> None:
    base = wedding()
    hi, lo = clients(base, HI, LO)
    five = edit(hi, lambda: hi.get("assignments", type=Map).__setitem__("g1", "t5"))
    two = edit(lo, lambda: lo.get("assignments", type=Map).__setitem__("g1", "t2"))
    server = Server()
    server.apply(base)
    order = (five, two) if hi_first else (two, five)
    server.apply(order[0])
    assert summary(server.apply(order[1])) == [
        ("concurrent_edit", ("assignments", "g1"), "t2", "t5", not hi_first)
    ]


def test_equal_values_and_sequential_writes_are_not_findings() -> None:
    base = wedding()
    hi, lo = clients(base, HI, LO)
    same_hi = edit(hi, lambda: hi.get("guests", type=Map)["g1"].__setitem__("meal", "vegan"))
    same_lo = edit(lo, lambda: lo.get("guests", type=Map)["g1"].__setitem__("meal", "vegan"))
    server = Server()
    server.apply(base)
    assert server.apply(same_lo).overwrites == []
    found = server.apply(same_hi)
    assert found.overwrites == [] and found.written == [("guests", "g1", "meal")]
    # lo saw hi's value, then wrote: sequential.
    lo.apply_update(server.doc.get_update())
    later = edit(lo, lambda: lo.get("guests", type=Map)["g1"].__setitem__("meal", "fish"))
    found = server.apply(later)
    assert found.overwrites == [] and found.written == [("guests", "g1", "meal")]


@pytest.mark.parametrize("removal_first", [True, False])
def test_an_edit_of_an_entry_removed_meanwhile_is_found(removal_first: bool) -> None:
    base = wedding()
    couple, planner = clients(base, HI, LO)
    removal = edit(couple, lambda: couple.get("guests", type=Map).__delitem__("g1"))
    meal = edit(planner, lambda: planner.get("guests", type=Map)["g1"].__setitem__("meal", "vegan"))
    server = Server()
    server.apply(base)
    first, second = (removal, meal) if removal_first else (meal, removal)
    assert server.apply(first).overwrites == []
    found = server.apply(second)
    assert summary(found) == [
        ("edited_removed_entry", ("guests", "g1", "meal"), "vegan", None, False)
    ]
    assert found.overwrites[0].loser.id[0] == LO
    assert "g1" not in server.doc.get("guests", type=Map)


@pytest.mark.parametrize("hi_first", [True, False])
def test_a_whole_entry_replaced_concurrently_is_one_finding(hi_first: bool) -> None:
    base = wedding()
    hi, lo = clients(base, HI, LO)
    a = edit(hi, lambda: hi.get("guests", type=Map).__setitem__("g2", Map({"name": "Bo"})))
    b = edit(lo, lambda: lo.get("guests", type=Map).__setitem__("g2", Map({"name": "Cy"})))
    server = Server()
    server.apply(base)
    order = (a, b) if hi_first else (b, a)
    server.apply(order[0])
    found = server.apply(order[1])
    assert summary(found) == [
        ("concurrent_edit", ("guests", "g2"), {"name": "Cy"}, {"name": "Bo"}, not hi_first)
    ]


def test_the_index_built_from_a_loaded_state_knows_old_items() -> None:
    """A room loaded from the store builds its index once; races on keys written before
    the load are found, and the loser's value comes from the index."""
    base = wedding()
    hi, lo = clients(base, HI, LO)
    five = edit(hi, lambda: hi.get("assignments", type=Map).__setitem__("g1", "t5"))
    two = edit(lo, lambda: lo.get("assignments", type=Map).__setitem__("g1", "t2"))
    loaded = Server()
    loaded.doc.apply_update(base)
    loaded.doc.apply_update(two)  # before the load: not a live integration
    found = loaded.apply(five)
    assert summary(found) == [("concurrent_edit", ("assignments", "g1"), "t2", "t5", True)]
    assert found.overwrites[0].loser.at is None  # integrated before this process loaded it


def test_finding_ids_are_the_same_in_any_process() -> None:
    base = wedding()
    hi, lo = clients(base, HI, LO)
    a = edit(hi, lambda: hi.get("assignments", type=Map).__setitem__("g1", "t5"))
    b = edit(lo, lambda: lo.get("assignments", type=Map).__setitem__("g1", "t2"))
    one, two = Server(), Server()
    one.apply(base), two.apply(base)
    one.apply(a)
    two.apply(b)
    (x,) = one.apply(b).overwrites
    (y,) = two.apply(a).overwrites
    assert x.id == y.id and x.new_won is False and y.new_won is True


def test_typing_in_text_costs_no_index_entry() -> None:
    from pycrdt import Text

    doc: Doc[Any] = Doc(client_id=BASE)
    notes = doc.get("notes", type=Text)
    server = Server()
    server.apply(edit(doc, lambda: notes.insert(0, "hello")))
    for i in range(20):
        found = server.apply(edit(doc, lambda i=i: notes.insert(i, "x")))
        assert found.overwrites == [] and found.written == []
    assert server.index is not None and len(server.index) == 0


@pytest.mark.parametrize("hi_first", [True, False])
def test_a_string_written_over_collaborative_text_is_a_race_like_any(hi_first: bool) -> None:
    """Notes are a Y.Text made with the entry; an old client that writes a plain string
    over them concurrently with someone creating a text races for the key."""
    from pycrdt import Text

    base = wedding()
    hi, lo = clients(base, HI, LO)
    text = edit(hi, lambda: hi.get("guests", type=Map)["g1"].__setitem__("notes", Text("hi")))
    string = edit(lo, lambda: lo.get("guests", type=Map)["g1"].__setitem__("notes", "plain"))
    server = Server()
    server.apply(base)
    order = (text, string) if hi_first else (string, text)
    server.apply(order[0])
    assert summary(server.apply(order[1])) == [
        ("concurrent_edit", ("guests", "g1", "notes"), "plain", {"type": "text"}, not hi_first)
    ]


def test_the_rows_of_a_race_are_written_once_whoever_writes_them_first() -> None:
    """Two processes (sharing one store) may both see a Yjs client first, or both find one
    race: every row the feature writes in a commit keeps the first and never fails it."""
    from crdt_server.features.conflicts.tables import client_row, closure_row

    rows = [
        client_row("w1", 5, "pat", "planner", 1.0),
        closure_row("cw:x", "w1", "written", "pat", "planner", 1.0),
    ]
    assert all(row.if_absent for row in rows)


def test_two_servers_name_the_same_items_for_the_same_writes() -> None:
    # One server integrates a writer's edits one by one, the other all of them at once (a
    # reconnect's step 2): each slot is named by the same item (the events' keys).
    writer: Doc[Any] = Doc(client_id=HI)
    guests = writer.get("guests", type=Map)
    added = edit(writer, lambda: guests.__setitem__("g2", Map({"name": "Bo", "rsvp": "pending"})))
    answered = edit(writer, lambda: guests["g2"].__setitem__("rsvp", "accepted"))
    one_by_one = Server()
    first = dict(one_by_one.apply(added).items)
    second = dict(one_by_one.apply(answered).items)
    at_once = dict(Server().apply(writer.get_update()).items)
    entry, rsvp = ("guests", "g2"), ("guests", "g2", "rsvp")
    assert first[entry] == at_once[entry] and first[entry][0] == HI
    assert second[rsvp] == at_once[rsvp] != first[rsvp]
    assert entry not in second  # the entry itself was not written again
    removed = edit(writer, lambda: guests.pop("g2"))
    assert dict(one_by_one.apply(removed).items)[entry] == first[entry]  # the item removed
