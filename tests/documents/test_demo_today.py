"""The wedding of today (the second demo wedding): seeded on the day given, with its vendor
directory, followers and a fixed ceremony; re-dated, items and all, by whole days when
seeded again on another day; left alone on the same day."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Doc

from crdt_server.documents import to_json
from crdt_server.documents.demo import DAY_DEMO_WEDDING_ID, seed_day_demo_document
from crdt_server.documents.schema import read_timeline
from crdt_server.documents.vendors import read_directory

pytestmark = pytest.mark.timeout(30)


def test_seeded_on_the_day_then_redated_by_whole_days() -> None:
    doc: Doc[Any] = Doc()
    assert seed_day_demo_document(doc, "timeline", "2026-11-26", "Europe/Lisbon")
    view = to_json(doc, "timeline")
    assert read_timeline(doc).meta.wedding_id == DAY_DEMO_WEDDING_ID
    assert view["profile"]["date"] == "2026-11-26"
    assert view["profile"]["time_zone"] == "Europe/Lisbon"
    items = view["items"]
    assert items["d-ceremony"]["start"] == "2026-11-26T14:00:00+00:00"
    assert items["d-ceremony"]["fixed"] is True
    assert items["d-prep-photos"]["follows"] == "d-flowers"
    assert read_directory(view)["lens"].members == ("demo-vendor",)
    assert items["d-prep-photos"]["vendor_id"] == "lens"

    # The same day: nothing written.
    assert not seed_day_demo_document(doc, "timeline", "2026-11-26", "Europe/Lisbon")
    # Another day (a restart next summer): the date and every item move by whole days,
    # keeping their wall clock (summer time changes the offset).
    assert seed_day_demo_document(doc, "timeline", "2027-06-12", "Europe/Lisbon")
    moved = to_json(doc, "timeline")
    assert moved["profile"]["date"] == "2027-06-12"
    assert moved["items"]["d-ceremony"]["start"] == "2027-06-12T14:00:00+01:00"
    assert len(moved["items"]) == len(items)


def test_the_other_documents_are_seeded_empty() -> None:
    doc: Doc[Any] = Doc()
    assert seed_day_demo_document(doc, "guests", "2026-11-26", "UTC")
    assert to_json(doc, "guests")["guests"] == {}
    assert not seed_day_demo_document(doc, "guests", "2026-11-27", "UTC")
