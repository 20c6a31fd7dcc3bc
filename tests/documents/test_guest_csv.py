"""The guest CSV format as pure functions: any guest list the domain accepts survives an
export and import unchanged, and no exported cell can start a spreadsheet formula."""

from __future__ import annotations

import csv
import io
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map

from crdt_server.documents import OperationError, apply_operation
from crdt_server.documents.model import RSVP_STATES, SIDES
from crdt_server.features.integrations.domain_guests_csv import (
    COLUMNS,
    apply_import,
    export_guests,
    plan_import,
)
from tests.tier import examples

# Text the way people type it in forms and spreadsheets: any character (line breaks,
# quotes, commas, formula starters, emoji), stripped and non-empty as the domain keeps it.
texts = st.text(min_size=1, max_size=30).map(str.strip).filter(bool)
guests = st.fixed_dictionaries(
    {"name": texts},
    optional={
        "household": texts,
        "side": st.sampled_from(SIDES),
        "rsvp": st.sampled_from(RSVP_STATES),
        "meal": texts,
        # An entry holding the ';' separator reads back split (unchanged in place, see
        # tests/features/integrations/test_guests_csv.py): a file written from another
        # list differs there.
        "dietary": st.lists(texts.filter(lambda t: ";" not in t), max_size=4),
        "plus_one": st.booleans(),
        "contact": texts,
    },
)


def guest_list(entries: list[dict[str, Any]]) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    for index, values in enumerate(entries):
        try:
            apply_operation(doc, "guests", {"op": "add_guest", "guest_id": f"g{index}", **values})
        except OperationError:
            pass  # a value the domain refuses (the test is about what it accepts)
    return doc


@settings(max_examples=examples(full=60, fast=20), deadline=None)
@given(st.lists(guests, max_size=6), st.booleans())
def test_any_guest_list_round_trips_unchanged(entries: list[dict[str, Any]], bom: bool) -> None:
    doc = guest_list(entries)
    text = export_guests(doc, bom=bom)
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    assert rows[0] == list(COLUMNS)
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    plan = plan_import(doc, text)
    assert plan.errors == [] and plan.added == [] and plan.changed == []
    # Into an empty list, the same file recreates the same guests.
    fresh: Doc[Any] = Doc()
    apply_import(fresh, plan_import(fresh, text))
    assert export_guests(fresh, bom=bom) == text


FILE = "name,household,plus_one\r\nAnn Lee,Lee family,true\r\nBo Ray,,\r\n"


def seeded(wedding_id: str = "w1") -> Doc[Any]:
    from crdt_server.documents import seed

    doc: Doc[Any] = Doc()
    seed(doc, "guests", wedding_id)
    return doc


def test_two_devices_importing_one_file_converge_on_one_guest_each() -> None:
    first, second = seeded(), seeded()
    apply_import(first, plan_import(first, FILE))
    apply_import(second, plan_import(second, FILE))
    ids = sorted(first.get("guests", type=Map).keys())
    assert ids == sorted(second.get("guests", type=Map).keys()) and len(ids) == 2
    # Merged, they are still two guests (each device wrote the same ids).
    first.apply_update(second.get_update(first.get_state()))
    assert sorted(first.get("guests", type=Map).keys()) == ids
    # A re-run adds nothing; spaces and case in the name and household are no new guest.
    again = plan_import(first, "name,household\r\n ann  LEE ,lee   Family\r\n")
    assert again.added == [] and again.errors == []
    # Another wedding derives other ids from the same rows.
    other = seeded("w2")
    apply_import(other, plan_import(other, FILE))
    assert set(other.get("guests", type=Map).keys()).isdisjoint(ids)


def test_one_guest_twice_in_a_file_is_an_error() -> None:
    doc = seeded()
    plan = plan_import(doc, "name,household\r\nAnn Lee,Lee\r\nann lee, LEE\r\n")
    assert [(e.line, e.field) for e in plan.errors] == [(3, "name")]
