"""A table's place on the seating chart (issue 54, point 5): ``position`` is one JSON value
``{x, y, rotation}``, validated like every field, replaced whole, so two people dragging one
table at once end with one of their positions and never a mix of the two."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Doc, Map

from crdt_server.documents import check, to_json
from crdt_server.documents.schema import read_seating, root

from .wedding import NO_NOTES, Docs, new_wedding, refused, run


@pytest.fixture
def docs() -> Docs:
    docs = new_wedding()
    run(docs, "add_table", table_id="t1", name="Rose", capacity=8)
    return docs


def test_a_table_is_placed_and_moved_with_one_value(docs: Docs) -> None:
    run(docs, "update_table", table_id="t1", position={"x": 120, "y": 80.5, "rotation": 45})
    assert (
        to_json(docs["seating"], "seating")["tables"]["t1"]
        == {
            "name": "Rose",
            "capacity": 8,
            "shape": "round",
            "position": {"x": 120, "y": 80.5, "rotation": 45},
        }
        | NO_NOTES
    )
    stored = root(docs["seating"], "tables")["t1"]["position"]
    assert isinstance(stored, dict), "a position is one JSON value, not a nested map"
    # Integral floats (what a browser's numbers come back as) read as ints.
    run(docs, "update_table", table_id="t1", position={"x": 300.0, "y": 0, "rotation": 0})
    plan = read_seating(docs["seating"])
    assert plan.tables["t1"].position == {"x": 300, "y": 0, "rotation": 0}
    assert plan.tables["t1"].shape == "round"


def test_a_new_table_may_come_placed_and_shaped(docs: Docs) -> None:
    place = {"x": 10, "y": 20, "rotation": 90}
    run(docs, "add_table", table_id="t2", name="Iris", capacity=6, shape="oval", position=place)
    table = read_seating(docs["seating"]).tables["t2"]
    assert (table.shape, table.position) == ("oval", place)
    # Not placed yet: no position at all (the app lays such tables out itself).
    assert read_seating(docs["seating"]).tables["t1"].position is None


@pytest.mark.parametrize(
    "position",
    [
        [1, 2, 3],
        {"x": 1, "y": 2},
        {"x": 1, "y": 2, "rotation": 0, "z": 4},
        {"x": -1, "y": 2, "rotation": 0},
        {"x": 1, "y": 10001, "rotation": 0},
        {"x": 1, "y": 2, "rotation": 360},
        {"x": "1", "y": 2, "rotation": 0},
        {"x": True, "y": 2, "rotation": 0},
        {"x": float("nan"), "y": 2, "rotation": 0},
    ],
)
def test_a_bad_position_is_refused_naming_the_field(docs: Docs, position: Any) -> None:
    assert refused(docs, "update_table", 400, table_id="t1", position=position).path == "position"


def test_a_bad_position_written_by_a_client_is_a_finding_and_the_table_stays(docs: Docs) -> None:
    """A client that writes a position the schema does not allow is never refused (sync is
    sacred): the table reads unplaced and the findings name the field."""
    doc = docs["seating"]
    tables = root(doc, "tables")
    entry = tables["t1"]
    assert isinstance(entry, Map)
    with doc.transaction():
        entry["position"] = {"x": 5, "y": "far", "rotation": 0}
    plan = read_seating(doc)
    assert plan.tables["t1"].position is None
    found = [c for c in check(docs) if c.code == "seating.invalid_entry"]
    assert [c.paths for c in found] == [("seating/tables/t1/position",)]
    assert "y must be a number" in found[0].message


def test_concurrent_moves_of_one_table_end_at_one_of_them(docs: Docs) -> None:
    """Two replicas move one table at once and exchange their updates: both read the same
    position, and it is one of the two written, whole."""
    first: Doc[Any] = Doc()
    second: Doc[Any] = Doc()
    first.apply_update(docs["seating"].get_update())
    second.apply_update(docs["seating"].get_update())
    ours = {"x": 100, "y": 100, "rotation": 0}
    theirs = {"x": 900, "y": 700, "rotation": 90}
    for replica, place in ((first, ours), (second, theirs)):
        table = replica.get("tables", type=Map)["t1"]
        with replica.transaction():
            table["position"] = place
    first_update = first.get_update(second.get_state())
    first.apply_update(second.get_update(first.get_state()))
    second.apply_update(first_update)
    one, two = (read_seating(d).tables["t1"].position for d in (first, second))
    assert one == two
    assert one in (ours, theirs)
