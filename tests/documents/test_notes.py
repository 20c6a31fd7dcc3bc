"""Collaborative notes: a Y.Text per entry, created with it, edited by the smallest splice."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycrdt import Doc, Map, Text, XmlElement, XmlFragment, XmlText

from crdt_server.documents import DocumentError, apply_operation, from_json, to_json
from crdt_server.documents.model import CATEGORY, GUEST, PAYMENT, TABLE, TIMELINE_ITEM
from crdt_server.documents.texts import (
    char_index,
    decode_relative_position,
    decode_state_vector,
    encode_relative_position,
    id_at,
    index_of_id,
    smallest_splice,
    utf16_index,
    utf16_length,
)

from .wedding import Docs, new_wedding, run, sync

ENTRIES = [
    (GUEST, "g1"),
    (TABLE, "t1"),
    (TIMELINE_ITEM, "i1"),
    (CATEGORY, "venue"),
    (PAYMENT, "p1"),
]


def _stored(docs: Docs, entity: Any, entry_id: str) -> Any:
    entry = docs[entity.kind].get(entity.collection, type=Map)[entry_id]
    assert isinstance(entry, Map)
    return entry.get("notes")


def _filled() -> Docs:
    """A wedding with one entry of each kind (ids as in :data:`ENTRIES`)."""
    docs = new_wedding()
    run(docs, "add_guest", guest_id="g1", name="Grace")
    run(docs, "add_table", table_id="t1", name="Rose", capacity=8)
    start, end = "2026-06-13T14:00:00+02:00", "2026-06-13T15:00:00+02:00"
    run(docs, "add_timeline_item", item_id="i1", title="Ceremony", start=start, end=end)
    run(docs, "set_category", category_id="venue", name="Venue")
    run(docs, "record_payment", payment_id="p1", amount=1, category_id="venue", date="2026-01-15")
    return docs


def test_every_entry_is_created_with_an_empty_text() -> None:
    docs = _filled()
    for entity, entry_id in ENTRIES:
        notes = _stored(docs, entity, entry_id)
        assert isinstance(notes, Text), entity.label
        assert str(notes) == ""


def test_notes_given_to_an_operation_are_the_text() -> None:
    docs = _filled()
    run(docs, "add_guest", guest_id="g9", name="Ann", notes="Vegan 🌱, arrives late")
    notes = _stored(docs, GUEST, "g9")
    assert isinstance(notes, Text) and str(notes) == "Vegan 🌱, arrives late"
    assert to_json(docs["guests"], "guests")["guests"]["g9"]["notes"] == "Vegan 🌱, arrives late"


def test_an_old_plain_string_reads_as_it_is_and_stays_a_string() -> None:
    docs = _filled()
    items = docs["timeline"].get("items", type=Map)
    entry = items["i1"]
    assert isinstance(entry, Map)
    entry["notes"] = "  written by the previous release  "
    view = to_json(docs["timeline"], "timeline")
    assert view["items"]["i1"]["notes"] == "  written by the previous release  "
    assert isinstance(entry.get("notes"), str)  # reading converts nothing
    run(docs, "update_timeline_item", item_id="i1", notes="now collaborative")
    assert isinstance(entry.get("notes"), Text)
    assert str(entry.get("notes")) == "now collaborative"


def test_setting_notes_keeps_what_another_person_typed_elsewhere() -> None:
    one = _filled()
    run(one, "update_guest", guest_id="g1", notes="Table near the door 🚪. Bring gift.")
    two = new_wedding()
    sync(one, two)
    # One person types at the start, in place; the other sets the whole note through the
    # operation, changing only its end: the smallest splice keeps the first person's words.
    text = _stored(two, GUEST, "g1")
    assert isinstance(text, Text)
    with two["guests"].transaction():
        text.insert(0, "Ada: ")
    run(one, "update_guest", guest_id="g1", notes="Table near the door 🚪. Bring flowers.")
    sync(one, two)
    for docs in (one, two):
        assert str(_stored(docs, GUEST, "g1")) == "Ada: Table near the door 🚪. Bring flowers."


def test_clearing_notes_empties_the_text() -> None:
    docs = _filled()
    run(docs, "update_guest", guest_id="g1", notes="x")
    assert run(docs, "update_guest", guest_id="g1", notes=None)["changed"] is True
    notes = _stored(docs, GUEST, "g1")
    assert isinstance(notes, Text) and str(notes) == ""
    assert run(docs, "update_guest", guest_id="g1", notes=None)["changed"] is False
    assert run(docs, "update_guest", guest_id="g1", notes="")["changed"] is False


def test_import_creates_texts_and_round_trips() -> None:
    docs = _filled()
    run(docs, "update_table", table_id="t1", notes="Near the band 🎸")
    exported = to_json(docs["seating"], "seating")
    copy = from_json("seating", exported)
    entry = copy.get("tables", type=Map)["t1"]
    assert isinstance(entry, Map) and isinstance(entry["notes"], Text)
    assert to_json(copy, "seating") == exported


def test_notes_are_never_in_entry_events() -> None:
    from crdt_server.documents.changes import ChangeRecorder
    from crdt_server.documents.events import derive_events

    doc: Doc[Any] = Doc()
    recorder = ChangeRecorder(doc, "guests")
    apply_operation(doc, "guests", {"op": "add_guest", "guest_id": "g1", "name": "A", "notes": "x"})
    apply_operation(doc, "guests", {"op": "update_guest", "guest_id": "g1", "notes": "xy"})
    events = derive_events("guests", recorder.take())
    assert [e.type for e in events] == ["guest.added"]
    assert "notes" not in events[0].data["fields"]


def test_the_run_of_show_is_shown_by_the_timeline_view() -> None:
    docs = _filled()
    assert to_json(docs["timeline"], "timeline")["runofshow"] is None
    with docs["timeline"].transaction():
        fragment = docs["timeline"].get("runofshow", type=XmlFragment)
        fragment.children.append(XmlElement("paragraph", None, [XmlText("14:00 ceremony")]))
    view = to_json(docs["timeline"], "timeline")
    assert view["runofshow"]["text"] == "14:00 ceremony"
    assert view["runofshow"]["prosemirror"]["content"][0]["type"] == "paragraph"
    assert "other" not in view
    # Read-only: an import leaves it alone, and accepts an export that shows it.
    copy = from_json("timeline", view)
    assert to_json(copy, "timeline")["runofshow"] is None


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("abc", "abc", (3, 0, "")),
        ("abc", "abXc", (2, 0, "X")),
        ("a😀b", "a😀😀b", (2, 0, "😀")),
        ("aaa", "aa", (2, 1, "")),
        ("", "hi", (0, 0, "hi")),
    ],
)
def test_the_smallest_splice_keeps_prefix_and_suffix(
    old: str, new: str, expected: tuple[int, int, str]
) -> None:
    splice = smallest_splice(old, new)
    assert (splice.index, splice.delete, splice.insert) == expected
    assert old[: splice.index] + splice.insert + old[splice.index + splice.delete :] == new


def test_utf16_positions() -> None:
    value = "a😀é"
    assert utf16_length(value) == 4  # what JavaScript's length says
    assert [char_index(value, units) for units in (0, 1, 3, 4)] == [0, 1, 2, 3]
    assert utf16_index(value, 2) == 3
    with pytest.raises(DocumentError, match="inside a character"):
        char_index(value, 2)
    with pytest.raises(DocumentError, match="past the end"):
        char_index(value, 5)


@given(
    st.lists(
        st.tuples(st.sampled_from(["ab", "😀", "é", "x😀y", "🎉z"]), st.integers(0, 20)),
        min_size=1,
        max_size=6,
    )
)
def test_a_character_is_found_by_its_yjs_id_and_back(inserts: list[tuple[str, int]]) -> None:
    """Each character's Yjs id (client, clock counted in UTF-16 units) is what Yjs gives
    it; :func:`id_at` and :func:`index_of_id` agree with that bookkeeping (pycrdt's
    StickyIndex does not, for texts like these)."""
    doc: Doc[Any] = Doc(client_id=7)
    text = doc.get("t", type=Text)
    chars: list[tuple[str, int]] = []  # (character, clock), in text order
    clock = 0
    for value, where in inserts:
        at = min(where, len(chars))
        with doc.transaction():  # one transaction per insert: pycrdt loses text otherwise
            text.insert(len("".join(c for c, _ in chars[:at]).encode()), value)
        made = []
        for char in value:
            made.append((char, clock))
            clock += utf16_length(char)
        chars[at:at] = made
    assert str(text) == "".join(c for c, _ in chars)

    def locate(d: Doc[Any]) -> Text:
        return d.get("t", type=Text)

    for index, (_, char_clock) in enumerate(chars):
        assert id_at(doc, locate, index) == (7, char_clock)
        assert index_of_id(doc, locate, 7, char_clock) == index
    assert index_of_id(doc, locate, 7, clock) is None  # not written yet
    assert index_of_id(doc, locate, 8, 0) is None  # another client's: none


def test_relative_positions_decode_as_yjs_encodes_them() -> None:
    assert decode_relative_position(bytes.fromhex("00f0230241")).item == (4592, 2)
    assert decode_relative_position(bytes.fromhex("00f0230241")).assoc == -1
    typed = decode_relative_position(bytes.fromhex("02070300"))
    assert (typed.item, typed.type_id, typed.assoc) == (None, (7, 3), 0)
    named = decode_relative_position(bytes.fromhex("010174"))  # no assoc: older Yjs
    assert (named.type_name, named.assoc) == ("t", 0)
    assert encode_relative_position(4592, 2, -1) == bytes.fromhex("00f0230241")
    for bad in ("", "05", "00f0", "0007000000"):
        with pytest.raises(ValueError):
            decode_relative_position(bytes.fromhex(bad))
    assert decode_state_vector(bytes.fromhex("010703")) == {7: 3}
    with pytest.raises(ValueError):
        decode_state_vector(bytes.fromhex("0207"))
