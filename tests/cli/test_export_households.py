"""The export format carries the guests' ``households``, ``menu`` and each guest's
``household_id`` and ``plus_one_of`` (additive): a file written before them still imports,
and a file that lies about them is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pycrdt import Doc, Map

from crdt_server.app import FEATURES
from crdt_server.documents import apply_operation, import_json, seed
from crdt_server.features import event_namespaces_of
from crdt_server.storage import HistoryEntry
from crdt_server.tools.export import ExportError, WeddingExport, parse_export
from crdt_server.tools.export import _export_document as build

NAMESPACES = event_namespaces_of(FEATURES)


def _file(doc: Doc[Any]) -> dict[str, Any]:
    made: dict[str, Any] = WeddingExport(
        "w1",
        {"guests": build("w1/guests", "guests", [doc.get_update()])},
        [("guests", HistoryEntry(1, "w1/guests", "ws:ada", 1.5, 10))],
    ).to_json()
    return json.loads(json.dumps(made))


def _guests() -> Doc[Any]:
    doc: Doc[Any] = Doc()
    seed(doc, "guests", "w1")
    apply_operation(doc, "guests", {"op": "add_guest", "guest_id": "g1", "name": "Ann"})
    return doc


def test_households_and_the_menu_travel_in_the_export() -> None:
    doc = _guests()
    apply_operation(doc, "guests", {"op": "add_household", "household_id": "h1", "name": "Lee"})
    apply_operation(doc, "guests", {"op": "set_menu", "choices": ["Fish", "Beef"]})
    apply_operation(doc, "guests", {"op": "update_guest", "guest_id": "g1", "household_id": "h1"})
    view = parse_export(_file(doc), namespaces=NAMESPACES).documents["guests"].json
    assert view["households"]["h1"]["name"] == "Lee"
    assert view["menu"] == {"choices": ["Fish", "Beef"]}
    assert view["guests"]["g1"]["household_id"] == "h1"
    # The view imports into a new document as it was.
    copy: Doc[Any] = Doc()
    import_json(copy, "guests", view)
    assert parse_export(_file(copy), namespaces=NAMESPACES).documents["guests"].json == view


def test_a_file_from_before_households_imports() -> None:
    old = _file(_guests())
    view = old["documents"]["guests"]["json"]
    del view["households"], view["menu"]
    for guest in view["guests"].values():
        del guest["household_id"], guest["plus_one_of"]
    assert parse_export(old, namespaces=NAMESPACES).documents["guests"]
    # An older view imports into a document, leaving its households alone.
    doc = _guests()
    apply_operation(doc, "guests", {"op": "add_household", "household_id": "h1", "name": "Lee"})
    import_json(doc, "guests", view)
    assert doc.get("households", type=Map).to_py() == {"h1": {"name": "Lee"}}


def test_a_file_that_lies_about_households_is_refused() -> None:
    doc = _guests()
    apply_operation(doc, "guests", {"op": "add_household", "household_id": "h1", "name": "Lee"})
    lying = _file(doc)
    lying["documents"]["guests"]["json"]["households"]["h1"]["name"] = "Ray"
    with pytest.raises(ExportError) as raised:
        parse_export(lying, namespaces=NAMESPACES)
    assert raised.value.field == "documents.guests.json"
