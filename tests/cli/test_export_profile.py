"""The export format carries the timeline's ``profile`` (additive): a file written before
profiles (its timeline view without ``profile``; a ``profile`` root a client wrote shown
under ``other``) still imports, and a file that lies about the profile is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pycrdt import Doc, Map

from crdt_server.app import FEATURES
from crdt_server.documents import apply_operation, seed
from crdt_server.documents.shapes import root_view
from crdt_server.features import event_namespaces_of
from crdt_server.storage import HistoryEntry
from crdt_server.tools.export import ExportError, WeddingExport, parse_export
from crdt_server.tools.export import _export_document as build

NAMESPACES = event_namespaces_of(FEATURES)


def _file(doc: Doc[Any]) -> dict[str, Any]:
    made: dict[str, Any] = WeddingExport(
        "w1",
        {"timeline": build("w1/timeline", "timeline", [doc.get_update()])},
        [("timeline", HistoryEntry(1, "w1/timeline", "ws:ada", 1.5, 10))],
    ).to_json()
    return json.loads(json.dumps(made))


def _timeline() -> Doc[Any]:
    doc: Doc[Any] = Doc()
    seed(doc, "timeline", "w1")
    return doc


def test_the_profile_travels_in_the_export() -> None:
    doc = _timeline()
    apply_operation(doc, "timeline", {"op": "set_profile", "date": "2027-06-12", "venue": "Barn"})
    parsed = parse_export(_file(doc), namespaces=NAMESPACES)
    assert parsed.documents["timeline"].json["profile"]["venue"] == "Barn"


def test_a_file_from_before_profiles_imports() -> None:
    plain = _file(_timeline())
    del plain["documents"]["timeline"]["json"]["profile"]
    assert parse_export(plain, namespaces=NAMESPACES).documents["timeline"]
    # A profile root a client wrote then: that release showed it under other.
    doc = _timeline()
    with doc.transaction():
        doc.get("profile", type=Map)["colour"] = "blue"
    old = _file(doc)
    view = old["documents"]["timeline"]["json"]
    del view["profile"]
    scratch: Doc[Any] = Doc()
    scratch.apply_update(doc.get_update())
    view["other"] = {"profile": root_view(scratch, "profile")[0]}
    assert parse_export(old, namespaces=NAMESPACES).documents["timeline"]


def test_a_file_that_lies_about_the_profile_is_refused() -> None:
    doc = _timeline()
    apply_operation(doc, "timeline", {"op": "set_profile", "venue": "Barn"})
    lying = _file(doc)
    lying["documents"]["timeline"]["json"]["profile"]["venue"] = "Castle"
    with pytest.raises(ExportError) as raised:
        parse_export(lying, namespaces=NAMESPACES)
    assert raised.value.field == "documents.timeline.json"
