"""Findings as a reader with hidden fields sees them: the same findings, no hidden values."""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Map

from crdt_server.documents import Conflict, check
from crdt_server.documents.redaction import conflict_for_reader, finding_for_reader

HIDDEN = frozenset({"contact", "notes"})


def race(path: list[str], lost: Any, kept: Any) -> dict[str, Any]:
    actor = {"sub": "cam", "role": "couple"}
    return {
        "id": "cw:1",
        "code": "concurrent_edit",
        "path": path,
        "field": "/".join(path[2:]) or None,
        "lost": {"actor": actor, "value": lost, "at": 1.0},
        "kept": {"actor": None, "value": kept, "at": None},
    }


def test_a_race_on_a_hidden_field_keeps_its_actors_and_times_not_its_values() -> None:
    finding = race(["guests", "g1", "contact"], "+44 1", "+44 2")
    shown = finding_for_reader(finding, HIDDEN)
    assert shown["lost"] == {"actor": {"sub": "cam", "role": "couple"}, "at": 1.0}
    assert shown["kept"] == {"actor": None, "at": None}
    assert {k: v for k, v in shown.items() if k not in ("lost", "kept")} == {
        k: v for k, v in finding.items() if k not in ("lost", "kept")
    }
    assert finding["lost"]["value"] == "+44 1"  # the original is left as it was
    # Under a hidden field (a path into it) too; a readable field keeps its values.
    assert (
        "value"
        not in finding_for_reader(race(["guests", "g1", "notes", "x"], 1, 2), HIDDEN)["lost"]
    )
    meal = race(["guests", "g1", "meal"], "fish", "veg")
    assert finding_for_reader(meal, HIDDEN) == meal
    assert finding_for_reader(finding, frozenset()) == finding


def test_a_race_on_a_whole_entry_loses_the_hidden_fields_of_its_values() -> None:
    entry = {"name": "Ann", "contact": "+44 1", "notes": "secret"}
    shown = finding_for_reader(race(["guests", "g1"], entry, "not a map"), HIDDEN)
    assert shown["lost"]["value"] == {"name": "Ann"}
    assert "value" not in shown["kept"]  # not a map: it may hold anything


def test_a_schema_finding_on_a_hidden_field_names_the_field_not_the_value() -> None:
    doc: Doc[Any] = Doc()
    guests = doc.get("guests", type=Map)
    guests["g1"] = Map({"name": "Ann", "contact": 770090055504})
    guests["g2"] = "+44 7700 900 555 in place of an entry"
    found = {c.paths[0]: c for c in check({"guests": doc})}
    bad = found["guests/guests/g1/contact"]
    assert "770090055504" in bad.message
    shown = conflict_for_reader(bad, HIDDEN)
    assert shown == Conflict(bad.code, bad.paths, "Guest 'g1' has an invalid contact.")
    whole = conflict_for_reader(found["guests/guests/g2"], HIDDEN)
    assert whole.message == "Guest 'g2' is not an object."
    assert conflict_for_reader(bad, frozenset({"notes"})) == bad
    other = Conflict("seating.table_over_capacity", ("seating/tables/t1",), "Table t1 ...")
    assert conflict_for_reader(other, HIDDEN) is other
