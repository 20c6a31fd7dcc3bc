"""Households as entries: the operations, the free-text fallback, plus-ones, the reader."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from pycrdt import Doc, Map

from crdt_server.documents import from_json, import_json, to_json
from crdt_server.documents.households import household_guests, household_of, households
from crdt_server.documents.model import household_id_of, household_key
from crdt_server.documents.schema import read_guests

from .wedding import Docs, new_wedding, refused, run


@pytest.fixture
def docs() -> Docs:
    docs = new_wedding()
    run(docs, "add_household", household_id="h1", name="The Lees")
    run(docs, "add_guest", guest_id="g1", name="Ann Lee", household_id="h1", plus_one=True)
    run(docs, "add_guest", guest_id="g2", name="Bo Lee", household_id="h1")
    run(docs, "add_guest", guest_id="g3", name="Cy Dow", household="Dow  family")
    run(docs, "add_guest", guest_id="g4", name="Di Dow", household="dow family", plus_one=True)
    run(docs, "add_guest", guest_id="g5", name="Ed Fox", plus_one_of="g4")
    return docs


def view(docs: Docs) -> dict[str, Any]:
    return to_json(docs["guests"], "guests")


def test_add_household_writes_an_entry_and_the_json_view_shows_it(docs: Docs) -> None:
    result = run(
        docs,
        "add_household",
        household_id="h2",
        name=" The Rays ",
        rsvp_deadline="2026-05-01",
        mailing_address="1 Main St\nSpringfield",
        rsvp_note=" We arrive Saturday only ",
        rsvp_note_at="2026-04-01T10:00:00Z",
    )
    assert result == {"op": "add_household", "id": "h2", "changed": True}
    assert view(docs)["households"]["h2"] == {
        "name": "The Rays",
        "rsvp_deadline": "2026-05-01",
        "mailing_address": "1 Main St\nSpringfield",
        "rsvp_note": "We arrive Saturday only",
        "rsvp_note_at": "2026-04-01T10:00:00+00:00",
    }
    assert view(docs)["guests"]["g1"]["household_id"] == "h1"
    assert view(docs)["guests"]["g5"]["plus_one_of"] == "g4"


def test_a_household_s_note_exports_and_imports_and_an_older_export_still_imports(
    docs: Docs,
) -> None:
    """The note is additive in the export format: it round-trips, and an export written
    before it (no ``rsvp_note``, ``rsvp_note_at``) imports as a household without one."""
    note = {"rsvp_note": "Sam: no nuts", "rsvp_note_at": "2026-04-01T10:00:00+00:00"}
    run(docs, "update_household", household_id="h1", **note)
    exported = view(docs)
    assert from_json("guests", exported).get("households", type=Map).to_py()["h1"] == {
        "name": "The Lees",
        **note,
    }
    older = json.loads(json.dumps(exported))
    for entry in older["households"].values():
        del entry["rsvp_note"], entry["rsvp_note_at"]
    assert import_json(docs["guests"], "guests", older) is True
    assert read_guests(docs["guests"]).households["h1"].rsvp_note is None


def test_update_and_remove_household(docs: Docs) -> None:
    assert run(docs, "update_household", household_id="h1", name="Lee family")["changed"]
    assert not run(docs, "update_household", household_id="h1", name="Lee family")["changed"]
    assert view(docs)["households"]["h1"]["name"] == "Lee family"
    run(docs, "remove_household", household_id="h1")
    assert "h1" not in view(docs)["households"]
    # The guests still name it (the server never rewrites them): it reads as theirs.
    assert household_of(read_guests(docs["guests"]), "g1") == "h1"


@pytest.mark.parametrize(
    ("op", "fields", "status", "path"),
    [
        ("add_household", {"household_id": "h1", "name": "Again"}, 422, "household_id"),
        ("add_household", {"household_id": "h 9", "name": "Bad id"}, 400, "household_id"),
        ("add_household", {}, 400, "name"),
        ("add_household", {"name": "  "}, 400, "name"),
        ("add_household", {"name": "X", "rsvp_deadline": "soon"}, 400, "rsvp_deadline"),
        ("add_household", {"name": "X", "mailing_address": "x" * 301}, 400, "mailing_address"),
        ("add_household", {"name": "X", "members": []}, 400, "members"),
        ("add_household", {"name": "X", "rsvp_note": "n" * 1001}, 400, "rsvp_note"),
        ("add_household", {"name": "X", "rsvp_note_at": "2026-04-01"}, 400, "rsvp_note_at"),
        ("update_household", {"household_id": "h9", "name": "X"}, 422, "household_id"),
        ("update_household", {"household_id": "h1"}, 400, ""),
        ("remove_household", {"household_id": "h9"}, 422, "household_id"),
        ("add_guest", {"name": "X", "household_id": "h9"}, 422, "household_id"),
        ("add_guest", {"name": "X", "plus_one_of": "g9"}, 422, "plus_one_of"),
        ("add_guest", {"name": "X", "plus_one_of": "not an id"}, 400, "plus_one_of"),
        ("update_guest", {"guest_id": "g2", "household_id": "h9"}, 422, "household_id"),
        ("update_guest", {"guest_id": "g2", "plus_one_of": "g2"}, 422, "plus_one_of"),
    ],
)
def test_refusals_change_nothing(
    docs: Docs, op: str, fields: dict[str, Any], status: int, path: str
) -> None:
    assert refused(docs, op, status, **fields).path == path


def test_household_id_on_update_guest_moves_the_guest(docs: Docs) -> None:
    run(docs, "add_household", household_id="h2", name="The Rays")
    run(docs, "update_guest", guest_id="g2", household_id="h2")
    found = households(read_guests(docs["guests"]))
    assert [g.id for g in found["h1"].guests] == ["g1"]
    assert [g.id for g in found["h2"].guests] == ["g2"]
    run(docs, "update_guest", guest_id="g2", household_id=None)
    assert household_of(read_guests(docs["guests"]), "g2") is None


def test_free_text_household_reads_as_one_keyed_by_its_normalised_name(docs: Docs) -> None:
    guest_list = read_guests(docs["guests"])
    derived = household_id_of("Dow family")
    assert derived == household_id_of(" DOW   Family ") and derived.startswith("n-")
    assert household_key("  Dow  FAMILY ") == "dow family"
    dows = household_guests(guest_list, derived)
    assert dows is not None and not dows.entry
    assert dows.name == "Dow  family"  # as the first of its guests (by id) wrote it
    # The named plus-one of g4 comes with g4; g4's plus-one is named, so none is unnamed.
    assert [g.id for g in dows.guests] == ["g3", "g4", "g5"]
    assert dows.unnamed_plus_ones == () and dows.people == 3
    # Nothing was written to make it: the stored guests hold their text as before.
    assert "households" not in view(docs) or derived not in view(docs)["households"]
    assert view(docs)["guests"]["g3"]["household"] == "Dow  family"


def test_creating_the_entry_keeps_the_free_text_households_id(docs: Docs) -> None:
    derived = household_id_of("Dow family")
    run(docs, "add_household", household_id=derived, name="The Dows", mailing_address="2 Elm")
    dows = household_guests(read_guests(docs["guests"]), derived)
    assert dows is not None and dows.entry and dows.name == "The Dows"
    assert dows.mailing_address == "2 Elm"
    assert [g.id for g in dows.guests] == ["g3", "g4", "g5"]


def test_an_entry_of_the_same_name_takes_the_free_text_guests(docs: Docs) -> None:
    run(docs, "add_household", household_id="dows", name="DOW family")
    found = households(read_guests(docs["guests"]))
    assert household_id_of("Dow family") not in found
    assert [g.id for g in found["dows"].guests] == ["g3", "g4", "g5"]


def test_an_entry_with_no_guests_is_listed(docs: Docs) -> None:
    run(docs, "add_household", household_id="h2", name="Nobody yet")
    found = household_guests(read_guests(docs["guests"]), "h2")
    assert found is not None and found.guests == () and found.people == 0
    assert household_guests(read_guests(docs["guests"]), "h9") is None


def test_unnamed_plus_one_counts_as_one_person(docs: Docs) -> None:
    lees = household_guests(read_guests(docs["guests"]), "h1")
    assert lees is not None
    assert [g.id for g in lees.guests] == ["g1", "g2"]
    assert lees.unnamed_plus_ones == ("g1",) and lees.people == 3
    # Naming them makes a guest: still three people, no longer an unnamed one.
    run(docs, "add_guest", guest_id="g6", name="Fay Lee", plus_one_of="g1")
    lees = household_guests(read_guests(docs["guests"]), "h1")
    assert lees is not None
    assert [g.id for g in lees.guests] == ["g1", "g2", "g6"]
    assert lees.unnamed_plus_ones == () and lees.people == 3


def test_plus_one_with_a_household_of_their_own_stays_there(docs: Docs) -> None:
    run(docs, "add_household", household_id="h2", name="The Rays")
    run(docs, "add_guest", guest_id="g6", name="Gus Ray", household_id="h2", plus_one_of="g1")
    found = households(read_guests(docs["guests"]))
    assert "g6" in [g.id for g in found["h2"].guests]
    assert "g6" not in [g.id for g in found["h1"].guests]
    assert found["h1"].unnamed_plus_ones == ()  # g1's plus-one is named (Gus)


def test_foreign_client_shapes_read_without_raising() -> None:
    """A browser client may write anything: a household id that names no entry, a
    plus-one of themself or of a guest not on the list, a household entry with no name."""
    docs = new_wedding()
    guests = docs["guests"].get("guests", type=Map)
    entries = docs["guests"].get("households", type=Map)
    with docs["guests"].transaction():
        entries["bad"] = Map({"mailing_address": "no name"})
        guests["a"] = Map({"name": "A", "household_id": "ghost", "plus_one_of": "a"})
        guests["b"] = Map({"name": "B", "plus_one_of": "nobody", "plus_one": True})
    guest_list = read_guests(docs["guests"])
    assert [p.path for p in guest_list.problems] == ["guests/households/bad/name"]
    found = households(guest_list)
    assert [g.id for g in found["ghost"].guests] == ["a"]
    assert not found["ghost"].entry and found["ghost"].name == "ghost"
    assert household_of(guest_list, "b") is None and household_of(guest_list, "zz") is None


def test_reader_is_linear_in_a_large_guest_list() -> None:
    doc: Doc[Any] = Doc()
    guests = doc.get("guests", type=Map)
    entries = doc.get("households", type=Map)
    with doc.transaction():
        for i in range(200):
            entries[f"h{i}"] = Map({"name": f"House {i}"})
        for i in range(5000):
            fields: dict[str, Any] = {"name": f"G {i}", "plus_one": i % 3 == 0}
            if i % 2:
                fields["household_id"] = f"h{i % 200}"
            else:
                fields["household"] = f"free {i % 700}"
            if i % 7 == 0 and i:
                fields["plus_one_of"] = f"g{i - 1}"
            guests[f"g{i}"] = Map(fields)
    guest_list = read_guests(doc)
    started = time.process_time()
    found = households(guest_list)
    assert time.process_time() - started < 1.0
    assert sum(len(h.guests) for h in found.values()) == 5000
