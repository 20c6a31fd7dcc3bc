"""The demo wedding: deterministic, idempotent, the size the issue asks for, conflict free."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from pycrdt import Doc, Map

from crdt_server.documents import DOCUMENT_KINDS, DocumentError, check, seed, to_json
from crdt_server.documents.demo import demo_operations, seed_demo, seed_demo_document
from crdt_server.documents.schema import read_guests, read_seating
from crdt_server.documents.totals import totals


def fresh() -> dict[str, Doc[Any]]:
    return {kind: Doc() for kind in DOCUMENT_KINDS}


def test_the_demo_is_a_whole_wedding_without_conflicts() -> None:
    docs = fresh()
    assert seed_demo(docs) == dict.fromkeys(DOCUMENT_KINDS, True)
    guests = to_json(docs["guests"], "guests")["guests"]
    seating = to_json(docs["seating"], "seating")
    timeline = to_json(docs["timeline"], "timeline")["items"]
    budget = to_json(docs["budget"], "budget")
    assert 110 <= len(guests) <= 130
    households = Counter(g["household"] for g in guests.values() if g["household"])
    assert len(households) >= 20 and max(households.values()) >= 3
    assert set(Counter(g["rsvp"] for g in guests.values())) == {"accepted", "pending", "declined"}
    assert len(seating["tables"]) == 12
    assert all(guests[gid]["rsvp"] == "accepted" for gid in seating["assignments"])
    assert len(seating["assignments"]) < sum(g["rsvp"] == "accepted" for g in guests.values())
    assert len(timeline) >= 10 and all(item["owner"] for item in timeline.values())
    assert sum(1 for item in timeline.values() if item["vendor"]) >= 8
    assert budget["currency"] == "EUR" and budget["total"] and budget["payments"]
    assert check(docs) == []
    # Households are entries, plus-ones people (two named), the menu offers three meals.
    view = to_json(docs["guests"], "guests")
    assert len(view["households"]) >= len(households)  # a name may come back (30 names)
    assert all(g["household_id"] in view["households"] for g in guests.values() if g["household"])
    assert any(h["mailing_address"] for h in view["households"].values())
    noted = [h for h in view["households"].values() if h["rsvp_note"]]
    assert noted and all(h["rsvp_note_at"] for h in noted)
    assert sum(1 for g in guests.values() if g["plus_one_of"]) == 2
    assert view["menu"] == {"choices": ["Beef", "Fish", "Vegetarian"]}
    found = totals(read_guests(docs["guests"]), read_seating(docs["seating"]))
    assert found["people"] == len(guests) + found["unnamed_plus_ones"] > len(guests)
    assert set(found["meals"]) == {"Beef", "Fish", "Vegetarian"}
    seated = sum(t["people"] for t in found["tables"].values())
    assert seated > len(seating["assignments"])  # unnamed plus-ones sit with their hosts
    assert all(t["people"] <= t["capacity"] for t in found["tables"].values())


def test_seeding_twice_writes_nothing_and_two_runs_agree() -> None:
    first, second = fresh(), fresh()
    seed_demo(first)
    states = {kind: doc.get_state() for kind, doc in first.items()}
    assert seed_demo(first) == dict.fromkeys(DOCUMENT_KINDS, False)
    assert {kind: doc.get_state() for kind, doc in first.items()} == states
    seed_demo(second)
    for kind in DOCUMENT_KINDS:
        assert to_json(first[kind], kind) == to_json(second[kind], kind)
    assert demo_operations() == demo_operations()


def test_a_document_edited_after_seeding_is_left_alone() -> None:
    docs = fresh()
    seed_demo(docs)

    docs["guests"].get("guests", type=Map).pop("g001")
    before = to_json(docs["guests"], "guests")
    assert seed_demo_document(docs["guests"], "guests", "demo") is False
    assert to_json(docs["guests"], "guests") == before


def test_a_document_of_another_wedding_is_refused_untouched() -> None:
    doc: Doc[Any] = Doc()
    seed(doc, "guests", "w1")
    state = doc.get_state()
    with pytest.raises(DocumentError):
        seed_demo_document(doc, "guests", "demo")
    assert doc.get_state() == state
    with pytest.raises(DocumentError):
        seed_demo({"guests": Doc()})
