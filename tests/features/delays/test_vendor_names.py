"""Delays and run sheets name a free-text vendor as the timeline spells it, like the day
and the Overview ("Harbour Strings", never the folded key "harbour strings")."""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Map

from crdt_server.documents.vendors import name_key
from crdt_server.features.delays.extension import read_now
from crdt_server.features.runsheets.routes import render_run_sheet


def timeline() -> Doc[Any]:
    doc: Doc[Any] = Doc()
    items = doc.get("items", type=Map)
    with doc.transaction():
        items["i1"] = Map(
            {
                "title": "Ceremony music",
                "start": "2031-06-14T14:00:00Z",
                "end": "2031-06-14T15:00:00Z",
                "vendor": "Harbour  Strings",
            }
        )
        items["i2"] = Map(
            {
                "title": "Dinner music",
                "start": "2031-06-14T18:00:00Z",
                "end": "2031-06-14T19:00:00Z",
                "vendor": "harbour strings",
            }
        )
    return doc


def test_a_free_text_vendor_is_named_as_the_timeline_spells_it() -> None:
    now = read_now(timeline())
    key = name_key("Harbour Strings")
    assert key is not None
    assert {item.vendor for item in now.items.values()} == {key}  # one vendor, two spellings
    assert now.vendor_name(key) == "Harbour Strings"  # the first item's, spaces collapsed
    sheet = render_run_sheet("w1", key, now).decode()
    assert "Harbour Strings" in sheet
    assert "harbour strings" not in sheet
