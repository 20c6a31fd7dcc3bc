"""JSON export and import: round trips, minimal writes, and errors that name the path."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pycrdt import Doc, Map

from crdt_server.documents import (
    DOCUMENT_KINDS,
    DocumentError,
    from_json,
    import_json,
    seed,
    to_json,
)

from .wedding import Docs, exports, new_wedding, run


def full_wedding() -> Docs:
    docs = new_wedding("w42")
    run(docs, "add_guest", guest_id="g1", name="Ann Lee", rsvp="accepted", dietary=["vegan"])
    run(docs, "add_guest", guest_id="g2", name="Bob Ray", household="Ray", plus_one=True)
    run(docs, "add_table", table_id="t1", name="Rose", capacity=8, shape="oval")
    run(docs, "update_table", table_id="t1", position={"x": 400, "y": 250, "rotation": 30})
    run(docs, "assign_seat", guest_id="g1", table_id="t1", seat=3)
    run(docs, "assign_seat", guest_id="g2", table_id="t1")
    run(
        docs,
        "add_timeline_item",
        item_id="i1",
        title="Ceremony",
        start="2026-06-13T15:00:00+02:00",
        end="2026-06-13T16:00:00+02:00",
        location="Barn",
        notes="Rings: Bob.",
    )
    run(docs, "set_budget_total", total=2_000_000, currency="EUR")
    run(docs, "set_category", category_id="venue", name="Venue", planned=800_000)
    run(docs, "record_payment", payment_id="p1", amount=1, category_id="venue", date="2026-01-15")
    return docs


def test_export_is_plain_json_with_every_field() -> None:
    exported = exports(full_wedding())
    assert json.loads(json.dumps(exported)) == exported
    assert exported["seating"] == {
        "kind": "seating",
        "schema": 1,
        "wedding_id": "w42",
        "tables": {
            "t1": {
                "name": "Rose",
                "capacity": 8,
                "shape": "oval",
                "notes": "",
                "position": {"x": 400, "y": 250, "rotation": 30},
            }
        },
        "assignments": {
            "g1": {"table_id": "t1", "seat": 3},
            "g2": {"table_id": "t1", "seat": None},
        },
    }
    assert exported["budget"]["currency"] == "EUR"
    assert exported["guests"]["guests"]["g2"]["meal"] is None


@pytest.mark.parametrize("kind", DOCUMENT_KINDS)
def test_round_trip_through_a_new_document(kind: str) -> None:
    exported = to_json(full_wedding()[kind], kind)
    assert to_json(from_json(kind, exported), kind) == exported
    assert to_json(from_json(kind, json.loads(json.dumps(exported))), kind) == exported


@pytest.mark.parametrize("kind", DOCUMENT_KINDS)
def test_an_empty_document_round_trips(kind: str) -> None:
    exported = to_json(Doc(), kind)
    assert exported["wedding_id"] is None
    assert to_json(from_json(kind, exported), kind) == exported


def test_importing_what_a_document_holds_writes_nothing() -> None:
    docs = full_wedding()
    for kind, doc in docs.items():
        updates: list[bytes] = []
        doc.observe(lambda event, updates=updates: updates.append(event.update))
        assert import_json(doc, kind, to_json(doc, kind)) is False
        assert updates == []


def test_import_makes_the_document_equal_the_data_in_one_update() -> None:
    docs = full_wedding()
    data = copy.deepcopy(to_json(docs["guests"], "guests"))
    del data["guests"]["g1"]
    data["guests"]["g2"]["meal"] = "fish"
    data["guests"]["g2"]["household"] = None
    data["guests"]["g3"] = {"name": "Cy Dow"}
    updates: list[bytes] = []
    docs["guests"].observe(lambda event: updates.append(event.update))
    assert import_json(docs["guests"], "guests", data) is True
    assert len(updates) == 1
    result = to_json(docs["guests"], "guests")["guests"]
    assert set(result) == {"g2", "g3"}
    assert (result["g2"]["meal"], result["g2"]["household"]) == ("fish", None)
    assert result["g3"]["rsvp"] == "pending"


def test_import_seeds_an_unseeded_document_but_never_moves_one_to_another_wedding() -> None:
    data = to_json(full_wedding()["timeline"], "timeline")
    doc: Doc[Any] = Doc()
    import_json(doc, "timeline", data)
    assert to_json(doc, "timeline")["wedding_id"] == "w42"
    other: Doc[Any] = Doc()
    seed(other, "timeline", "w7")
    with pytest.raises(DocumentError) as info:
        import_json(other, "timeline", data)
    assert info.value.path == "wedding_id"
    assert to_json(other, "timeline")["items"] == {}
    guests: Doc[Any] = Doc()
    seed(guests, "guests", "w42")
    with pytest.raises(DocumentError) as info:
        import_json(guests, "timeline", data)
    assert info.value.path == "kind"


def test_export_leaves_out_entries_that_break_the_schema() -> None:
    doc = full_wedding()["guests"]
    doc.get("guests", type=Map)["g9"] = Map({"rsvp": "accepted"})  # no name
    assert set(to_json(doc, "guests")["guests"]) == {"g1", "g2"}


def test_numbers_written_by_javascript_clients_read_as_integers() -> None:
    doc: Doc[Any] = Doc()
    doc.get("tables", type=Map)["t1"] = Map({"name": "Rose", "capacity": 8.0})
    assert to_json(doc, "seating")["tables"]["t1"]["capacity"] == 8
    doc.get("tables", type=Map)["t1"]["capacity"] = 8.5
    assert to_json(doc, "seating")["tables"] == {}


def guests_data(**guest: Any) -> dict[str, Any]:
    return {"kind": "guests", "guests": {"g1": {"name": "Ann Lee", **guest}}}


@pytest.mark.parametrize(
    ("kind", "data", "path"),
    [
        ("guests", [], ""),
        ("guests", {"kind": "seating", "guests": {}}, "kind"),
        ("guests", {"guests": {}}, "kind"),
        ("guests", {"kind": "guests"}, "guests"),
        ("guests", {"kind": "guests", "guests": {}, "tables": {}}, "tables"),
        ("guests", {"kind": "guests", "schema": 2, "guests": {}}, "schema"),
        ("guests", {"kind": "guests", "wedding_id": "-w", "guests": {}}, "wedding_id"),
        ("guests", {"kind": "guests", "guests": []}, "guests"),
        ("guests", {"kind": "guests", "guests": {"bad id": {"name": "Ann"}}}, "guests/bad id"),
        ("guests", {"kind": "guests", "guests": {"g1": "Ann"}}, "guests/g1"),
        ("guests", {"kind": "guests", "guests": {"g1": {}}}, "guests/g1/name"),
        ("guests", guests_data(rsvp="maybe"), "guests/g1/rsvp"),
        ("guests", guests_data(rsvp=None), "guests/g1/rsvp"),
        ("guests", guests_data(age=30), "guests/g1/age"),
        ("guests", guests_data(dietary=[1]), "guests/g1/dietary"),
        ("seating", {"kind": "seating", "tables": {}}, "assignments"),
        (
            "seating",
            {"kind": "seating", "tables": {}, "assignments": {"g1": {"seat": 1}}},
            "assignments/g1/table_id",
        ),
        (
            "timeline",
            {"kind": "timeline", "items": {"i1": {"title": "X", "start": "noon", "end": "1"}}},
            "items/i1/start",
        ),
        (
            "budget",
            {"kind": "budget", "currency": "eur", "categories": {}, "payments": {}},
            "currency",
        ),
        (
            "budget",
            {"kind": "budget", "total": -5, "categories": {}, "payments": {}},
            "total",
        ),
        (
            "budget",
            {
                "kind": "budget",
                "categories": {},
                "payments": {"p1": {"amount": 1.5, "category_id": "c", "date": "2026-01-01"}},
            },
            "payments/p1/amount",
        ),
    ],
)
def test_bad_data_is_refused_with_its_path(kind: str, data: Any, path: str) -> None:
    doc = full_wedding()[kind]
    before = to_json(doc, kind)
    with pytest.raises(DocumentError) as info:
        import_json(doc, kind, data)
    assert info.value.path == path
    assert isinstance(info.value, ValueError)
    if path:
        assert str(info.value).startswith(f"{path}: ")
    assert to_json(doc, kind) == before
    with pytest.raises(DocumentError):
        from_json(kind, data)


def test_unknown_kind() -> None:
    with pytest.raises(DocumentError, match="unknown document kind"):
        to_json(Doc(), "menu")
    with pytest.raises(DocumentError, match="unknown document kind"):
        from_json("menu", {})
