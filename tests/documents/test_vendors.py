"""The vendor directory: the timeline's ``vendors`` root (id -> name, category, members,
call time), read by the timeline reader and the JSON view, carried by export and import;
items and payments name a vendor by ``vendor_id``; :func:`vendor_key` gives one key per
vendor (the directory id, else the folded free-text name, as the overlap finding folds)."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Map

from crdt_server.documents import check, from_json, import_json, to_json
from crdt_server.documents.schema import read_timeline
from crdt_server.documents.vendors import (
    VENDORS_ROOT,
    Vendor,
    name_key,
    read_directory,
    spellings,
    vendor_key,
    vendor_name,
)

from .wedding import Docs, new_wedding, run

FLORIST = {
    "name": "Bloom & Co",
    "category": "florist",
    "members": ["sub-flo"],
    "call_time": "2027-06-12T09:00:00+01:00",
}


@pytest.fixture
def docs() -> Docs:
    return new_wedding()


def put_vendor(docs: Docs, vendor_id: str, entry: dict[str, Any]) -> None:
    """Write a directory entry as a client does (a map of fields under the id)."""
    doc = docs["timeline"]
    vendors = doc.get(VENDORS_ROOT, type=Map)
    with doc.transaction():
        vendors[vendor_id] = Map(entry)


def test_the_timeline_view_shows_the_directory(docs: Docs) -> None:
    assert to_json(docs["timeline"], "timeline")[VENDORS_ROOT] == {}
    put_vendor(docs, "flo", FLORIST)
    view = to_json(docs["timeline"], "timeline")
    assert view[VENDORS_ROOT] == {"flo": FLORIST}
    assert "problems" not in view
    directory = read_directory(view)
    assert directory == {
        "flo": Vendor("flo", "Bloom & Co", "florist", ("sub-flo",), "2027-06-12T09:00:00+01:00")
    }
    assert read_timeline(docs["timeline"]).vendors == directory


def test_an_entry_that_breaks_the_schema_is_left_out_and_reported(docs: Docs) -> None:
    put_vendor(docs, "flo", FLORIST)
    put_vendor(docs, "nameless", {"category": "band"})
    put_vendor(docs, "late", {"name": "Late", "call_time": "nine o'clock"})
    view = to_json(docs["timeline"], "timeline")
    assert set(view[VENDORS_ROOT]) == {"flo", "late"}
    assert view[VENDORS_ROOT]["late"]["call_time"] is None
    paths = {problem["path"] for problem in view["problems"]}
    assert paths == {"timeline/vendors/nameless/name", "timeline/vendors/late/call_time"}
    # What the reader is given raw (a hostile view) is read leniently too.
    hostile = {VENDORS_ROOT: {"flo": FLORIST, "bad id!": FLORIST, "x": 3, "y": {"name": 7}}}
    assert set(read_directory(hostile)) == {"flo"}
    assert read_directory({}) == {}
    assert read_directory({VENDORS_ROOT: ["not", "a", "map"]}) == {}


def test_items_and_payments_name_a_vendor_by_id(docs: Docs) -> None:
    put_vendor(docs, "flo", FLORIST)
    timeline = docs["timeline"]
    items = timeline.get("items", type=Map)
    with timeline.transaction():
        items["i1"] = Map(
            {
                "title": "Flowers",
                "start": "2027-06-12T09:00:00+01:00",
                "end": "2027-06-12T10:00:00+01:00",
                "vendor_id": "flo",
            }
        )
    item = to_json(timeline, "timeline")["items"]["i1"]
    assert item["vendor_id"] == "flo"
    assert vendor_key(item, read_directory(to_json(timeline, "timeline"))) == "flo"
    run(docs, "set_category", category_id="flowers", name="Flowers")
    run(
        docs,
        "record_payment",
        payment_id="p1",
        amount=100,
        category_id="flowers",
        date="2027-01-02",
        vendor_id="flo",
    )
    assert to_json(docs["budget"], "budget")["payments"]["p1"]["vendor_id"] == "flo"
    run(docs, "update_timeline_item", item_id="i1", vendor_id=None, vendor="Bloom  &  CO")
    item = to_json(timeline, "timeline")["items"]["i1"]
    assert vendor_key(item, read_directory(to_json(timeline, "timeline"))) == "name:bloom & co"


def test_vendor_key_folds_free_text_as_the_overlap_finding_does() -> None:
    directory = {"flo": Vendor("flo", "Bloom & Co")}
    assert vendor_key({"vendor_id": "flo", "vendor": "Other"}, directory) == "flo"
    # An id the directory does not hold falls back to the free text.
    assert vendor_key({"vendor_id": "gone", "vendor": " Snap  Studio "}, directory) == (
        "name:snap studio"
    )
    assert vendor_key({"vendor": "SNAP studio"}, directory) == "name:snap studio"
    assert name_key("snap   STUDIO") == "name:snap studio"
    assert vendor_key({"vendor": "   "}, directory) is None
    assert vendor_key({"vendor_id": "gone"}, directory) is None
    assert vendor_key({}, directory) is None
    assert vendor_name("flo", directory) == "Bloom & Co"
    assert vendor_name("name:snap studio", directory) == "snap studio"
    assert vendor_name("gone", directory) == "gone"
    # Named as the timeline spells it, where a page has its items.
    spelled = spellings(
        {"items": {"i2": {"vendor": "snap STUDIO"}, "i1": {"vendor": " Snap   Studio "}}}
    )
    assert spelled == {"name:snap studio": "Snap Studio"}  # the first item's, by id
    assert vendor_name("name:snap studio", directory, spelled) == "Snap Studio"
    assert vendor_name("name:other", directory, spelled) == "other"
    assert spellings({}) == {}


def test_export_and_import_carry_the_directory(docs: Docs) -> None:
    put_vendor(docs, "flo", FLORIST)
    view = to_json(docs["timeline"], "timeline")
    assert to_json(from_json("timeline", view), "timeline")[VENDORS_ROOT] == view[VENDORS_ROOT]
    assert import_json(docs["timeline"], "timeline", view) is False
    # An export from before the directory leaves the document's as it is.
    old = {key: value for key, value in view.items() if key != VENDORS_ROOT}
    assert import_json(docs["timeline"], "timeline", old) is False
    assert to_json(docs["timeline"], "timeline")[VENDORS_ROOT] == view[VENDORS_ROOT]


def test_the_directory_feeds_the_findings_as_any_entry(docs: Docs) -> None:
    put_vendor(docs, "flo", FLORIST)
    put_vendor(docs, "nameless", {"category": "band"})
    found = check(docs)
    assert [c.code for c in found] == ["timeline.invalid_entry"]
    assert found[0].paths == ("timeline/vendors/nameless/name",)
