"""An update cut in slices (:func:`crdt_server.codec.slices.slice_update`): each slice is
a well-formed update of at most the bound, each integrates whole on a document that had
the slices before it, and together they build what the update builds."""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text

from crdt_server.codec.items import read_items
from crdt_server.codec.slices import slice_update
from crdt_server.codec.updates import decode_state_vector, inspect_update, integrable
from crdt_server.core.overwrites import OverwriteIndex

pytestmark = pytest.mark.timeout(120)

Edit = tuple[int, str, int, str]
"""(writer, what, position, text): what one of three writers does next."""

edits = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.sampled_from(["text", "map", "nested", "array", "delete"]),
        st.integers(0, 1000),
        st.text(alphabet="abé😀", min_size=1, max_size=3),
    ),
    min_size=1,
    max_size=60,
)


def _history(steps: list[Edit]) -> tuple[Doc[Any], bytes]:
    """Three writers taking turns on one shared document (each sees the others' edits, so
    their items name each other's); the whole document as one update."""
    docs: list[Doc[Any]] = [Doc(client_id=100 + i) for i in range(3)]
    for writer, what, at, text in steps:
        doc = docs[writer]
        for other in docs:  # everyone has everything before each edit
            if other is not doc:
                doc.apply_update(other.get_update())
        if what == "text":
            body = doc.get("notes", type=Text)
            # ASCII only: pycrdt's Text counts positions in a way of its own past it.
            body.insert(at % (len(body) + 1), text.encode("ascii", "replace").decode())
        elif what == "map":
            doc.get("guests", type=Map)[f"g{at % 7}"] = text
        elif what == "nested":
            guests = doc.get("guests", type=Map)
            guests[f"n{at % 5}"] = Map({"name": text, "tags": Array([text])})
        elif what == "array":
            items = doc.get("items", type=Array)
            items.insert(at % (len(items) + 1), text)
        else:
            body = doc.get("notes", type=Text)
            if len(body):
                start = at % len(body)
                del body[start : start + 1]
    whole = docs[0]
    for other in docs[1:]:
        whole.apply_update(other.get_update())
    return whole, whole.get_update()


def _content(doc: Doc[Any]) -> Any:
    return (
        str(doc.get("notes", type=Text)),
        doc.get("guests", type=Map).to_py(),
        doc.get("items", type=Array).to_py(),
    )


@settings(max_examples=60, deadline=None)
@given(edits, st.integers(1, 6))
def test_slices_in_order_build_what_the_update_builds(steps: list[Edit], bound: int) -> None:
    whole, update = _history(steps)
    sliced = slice_update(update, bound)
    parts = [update] if sliced is None else sliced.parts()
    rebuilt: Doc[Any] = Doc()
    for part in parts[:-1]:
        summary = inspect_update(part)
        decoded = read_items(part)
        assert len([i for i in decoded.items if i.length]) + len(decoded.gcs) <= bound
        # It integrates whole: everything it names is in the slices before it.
        assert integrable(summary, decode_state_vector(rebuilt.get_state()))
        rebuilt.apply_update(part)
    rebuilt.apply_update(parts[-1])
    assert _content(rebuilt) == _content(whole)
    assert decode_state_vector(rebuilt.get_state()) == decode_state_vector(whole.get_state())


def test_a_small_update_is_one_slice_and_a_large_one_many() -> None:
    doc: Doc[Any] = Doc(client_id=7)
    guests = doc.get("guests", type=Map)
    with doc.transaction():
        for i in range(500):
            guests[f"g{i}"] = Map({"name": f"Guest {i}"})
    update = doc.get_update()
    assert slice_update(update, 10_000) is None
    sliced = slice_update(update, 100)
    assert sliced is not None
    parts = sliced.parts()
    assert len(parts) == 10 and all(inspect_update(p).struct_count <= 100 for p in parts)
    rebuilt: Doc[Any] = Doc()
    for part in parts:
        rebuilt.apply_update(part)
    assert rebuilt.get("guests", type=Map).to_py() == guests.to_py()


def test_the_delete_set_goes_with_the_last_slice() -> None:
    doc: Doc[Any] = Doc(client_id=9)
    notes = doc.get("notes", type=Text)
    for i in range(30):
        notes.insert(0, f"{i},")  # each its own struct (appended ones merge)
    del notes[0:20]
    update = doc.get_update()
    sliced = slice_update(update, 4)
    assert sliced is not None
    assert all(not inspect_update(p).deletes for p in sliced.slices)
    parts = sliced.parts()
    assert all(not inspect_update(p).deletes for p in parts[:-1])
    assert inspect_update(parts[-1]).deletes
    rebuilt: Doc[Any] = Doc()
    for part in parts:
        rebuilt.apply_update(part)
    assert str(rebuilt.get("notes", type=Text)) == str(notes)


@settings(max_examples=60, deadline=None)
@given(edits, st.integers(1, 6), st.integers(1, 5))
def test_deletions_cut_in_parts_build_what_the_update_builds(
    steps: list[Edit], bound: int, deleted: int
) -> None:
    whole, update = _history(steps)
    sliced = slice_update(update, bound, deleted)
    parts = [update] if sliced is None else sliced.parts()
    rebuilt: Doc[Any] = Doc()
    for part in parts:
        assert part is update or inspect_update(part).deleted <= deleted
        rebuilt.apply_update(part)
    assert _content(rebuilt) == _content(whole)
    assert decode_state_vector(rebuilt.get_state()) == decode_state_vector(whole.get_state())


def test_a_change_of_deletions_only_is_cut_in_parts_of_deletions() -> None:
    doc: Doc[Any] = Doc(client_id=11)
    guests = doc.get("guests", type=Map)
    with doc.transaction():
        for i in range(200):
            guests[f"g{i}"] = Map({"name": f"Guest {i}"})
    before = doc.get_update()
    state = doc.get_state()
    with doc.transaction():
        for i in range(150):
            del guests[f"g{i}"]
    change = doc.get_update(state)
    summary = inspect_update(change)
    assert summary.struct_count == 0 and summary.deleted >= 300
    assert slice_update(change, 1000) is None  # no bound on deletions: whole
    assert slice_update(change, 1000, summary.deleted) is None
    sliced = slice_update(change, 1000, 64)
    assert sliced is not None and not sliced.slices
    parts = sliced.parts()
    assert len(parts) == -(-summary.deleted // 64)
    assert all(inspect_update(p).struct_count == 0 for p in parts)
    assert sum(inspect_update(p).deleted for p in parts) == summary.deleted
    rebuilt: Doc[Any] = Doc()
    rebuilt.apply_update(before)
    for part in parts:
        rebuilt.apply_update(part)
    assert rebuilt.get("guests", type=Map).to_py() == guests.to_py()


def _map_items(doc: Doc[Any]) -> dict[int, list[int]]:
    """Per client, the sorted first clocks of the document's map items (a room's index)."""
    index = OverwriteIndex()
    index.build(read_items(doc.get_update()))
    return index.starts(decode_state_vector(doc.get_state()))


def _weight(part: bytes, items: dict[int, list[int]]) -> int:
    """The deletions ``part`` counts against the bound: per range, the items it covers
    (at least one)."""
    weight = 0
    for client, ranges in read_items(part).deletes.items():
        starts = items.get(client, [])
        for clock, length in ranges:
            covered = bisect_left(starts, clock + length) - bisect_left(starts, clock)
            weight += max(1, covered)
    return weight


@settings(max_examples=60, deadline=None)
@given(edits, st.integers(1, 6), st.integers(1, 5))
def test_deletions_cut_by_items_build_what_the_update_builds(
    steps: list[Edit], bound: int, deleted: int
) -> None:
    whole, update = _history(steps)
    items = _map_items(whole)
    sliced = slice_update(update, bound, deleted, items)
    parts = [update] if sliced is None else sliced.parts()
    rebuilt: Doc[Any] = Doc()
    for part in parts:
        if sliced is not None and not inspect_update(part).struct_count:
            assert _weight(part, items) <= deleted  # a part of deletions only
        rebuilt.apply_update(part)
    assert _content(rebuilt) == _content(whole)
    assert decode_state_vector(rebuilt.get_state()) == decode_state_vector(whole.get_state())


def test_a_deletion_of_entries_is_cut_by_entries_and_a_long_text_is_one() -> None:
    """A client's one change removing 150 guests (one delete range: its entries and their
    names, 300 map items) is cut in parts of at most the bound's entries; a deleted text of
    10,000 characters (one item, 10,000 clocks) is one part, where cut by clocks it was
    many."""
    doc: Doc[Any] = Doc(client_id=12)
    guests = doc.get("guests", type=Map)
    with doc.transaction():
        for i in range(150):
            guests[f"g{i}"] = Map({"name": f"Guest {i}"})
    before = doc.get_update()
    state = doc.get_state()
    items = _map_items(doc)
    with doc.transaction():
        for i in range(150):
            del guests[f"g{i}"]
    change = doc.get_update(state)
    assert len(read_items(change).deletes[12]) == 1  # one range covers them all
    sliced = slice_update(change, 1000, 64, items)
    assert sliced is not None and not sliced.slices
    parts = sliced.parts()
    assert len(parts) == -(-300 // 64)
    assert [_weight(p, items) for p in parts] == [64, 64, 64, 64, 44]
    rebuilt: Doc[Any] = Doc()
    rebuilt.apply_update(before)
    for part in parts:
        rebuilt.apply_update(part)
    assert rebuilt.get("guests", type=Map).to_py() == {}

    # The text alone (a document's delete set of one range), after a guest of its own.
    other: Doc[Any] = Doc(client_id=13)
    other.get("guests", type=Map)["g"] = Map({"name": "Ada"})
    long = other.get("notes", type=Text)
    long += "x" * 10_000
    state = other.get_state()
    del long[0:10_000]
    text = other.get_update(state)
    assert inspect_update(text).deleted == 10_000
    assert slice_update(text, 1000, 64, _map_items(other)) is None  # one part: whole
    clocks = slice_update(text, 1000, 64)
    assert clocks is not None and len(clocks.parts()) == -(-10_000 // 64)
