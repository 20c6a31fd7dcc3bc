"""The incremental households (documents.findings_households) equal the full reading.

A hypothesis state machine changes a guest list's records as the incremental findings keep
them (a ``dict`` per root: a changed record keeps its place, one removed and added again
goes to the end): guests naming households by id or in free text (spaces and case aside),
plus-ones and their plus-ones, household entries that come, go and are renamed. After each
batch of changes the index, told of each, must give the households of two or more people
that :func:`documents.households.households` reads from the same records, and name exactly
the households that came, went or changed. Then the cost: a large import taken in as parts
re-reads the part, not the whole list.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule
from pycrdt import Doc, Map

from crdt_server.documents import check
from crdt_server.documents.changes import ChangeRecorder
from crdt_server.documents.findings import WeddingFindings
from crdt_server.documents.findings_households import HouseholdIndex
from crdt_server.documents.households import households
from crdt_server.documents.model import household_id_of
from crdt_server.documents.schema import Guest, GuestList, Household
from tests.documents.test_findings import IncrementalFindings
from tests.tier import examples

_GUESTS = [f"g{n}" for n in range(1, 7)]
_ENTRIES = ["h1", "h2", household_id_of("Lee"), household_id_of("Dow family")]

guests = st.builds(
    lambda key, household_id, household, plus_one_of, name: Guest(
        id=key,
        name=name,
        household=household,
        side=None,
        rsvp="pending",
        meal=None,
        dietary=(),
        plus_one=False,
        contact=None,
        notes=None,
        household_id=household_id,
        plus_one_of=plus_one_of,
    ),
    st.sampled_from(_GUESTS),
    st.sampled_from([None, None, *_ENTRIES[:3]]),
    st.sampled_from([None, "Lee", " lee ", "Dow  family", "The Lees", "Rays", ""]),
    st.sampled_from([None, None, *_GUESTS]),
    st.sampled_from(["Ann", "Bo"]),
)
entries = st.builds(
    lambda key, name: Household(key, name, None, None),
    st.sampled_from(_ENTRIES),
    st.sampled_from(["The Lees", "LEE", "dow family", "Rays", "Lee"]),
)
changes = st.lists(
    st.one_of(
        st.tuples(st.just("guest"), guests),
        st.tuples(st.just("entry"), entries),
        st.tuples(st.just("drop guest"), st.sampled_from(_GUESTS)),
        st.tuples(st.just("drop entry"), st.sampled_from(_ENTRIES)),
    ),
    min_size=1,
    max_size=4,
)


def full_reading(
    guest_records: dict[str, Guest], entry_records: dict[str, Household]
) -> dict[str, tuple[str, frozenset[str]]]:
    found = households(GuestList(guests=guest_records, households=entry_records))
    return {
        h.id: (h.name, frozenset(g.id for g in h.guests))
        for h in found.values()
        if len(h.guests) > 1
    }


class IncrementalHouseholds(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.index = HouseholdIndex()
        self.guests: dict[str, Guest] = {}
        self.entries: dict[str, Household] = {}
        self.before: dict[str, tuple[str, frozenset[str]]] = {}

    @rule(batch=changes)
    def change(self, batch: list[tuple[str, Any]]) -> None:
        for what, value in batch:
            if what == "guest":
                old = self.guests.get(value.id)
                self.guests[value.id] = value
                self.index.guest_changed(value.id, old, value)
            elif what == "entry":
                was = self.entries.get(value.id)
                self.entries[value.id] = value
                self.index.entry_changed(value.id, was, value)
            elif what == "drop guest" and value in self.guests:
                self.index.guest_changed(value, self.guests.pop(value), None)
            elif what == "drop entry" and value in self.entries:
                self.index.entry_changed(value, self.entries.pop(value), None)
        changed = self.index.refresh(self.guests, self.entries)
        expected = full_reading(self.guests, self.entries)
        assert self.index.found == expected
        assert self.index.of == {g: h for h, (_, people) in expected.items() for g in people}
        keys = expected.keys() | self.before.keys()
        assert changed == {h for h in keys if expected.get(h) != self.before.get(h)}
        self.before = expected


IncrementalHouseholds.TestCase.settings = settings(
    max_examples=examples(400, 80), stateful_step_count=30, deadline=None
)
TestIncrementalHouseholds = IncrementalHouseholds.TestCase


class FindingsFromTheChanges(IncrementalFindings):
    """The incremental findings' state machine, each change applied from what its change
    records say (:meth:`WeddingFindings.apply`, as the keeper does) instead of reading
    every touched entry again."""

    def _touch(self) -> None:
        for kind, recorder in self.recorders.items():
            self.findings.apply(kind, self.here.docs[kind], recorder.take())


FindingsFromTheChanges.TestCase.settings = settings(
    max_examples=examples(200, 40), stateful_step_count=40, deadline=None
)
TestFindingsFromTheChanges = FindingsFromTheChanges.TestCase


def _guest_fields(n: int, household: str) -> Map[Any]:
    return Map({"name": f"Guest {n}", "household": household, "rsvp": "accepted"})


def test_a_split_is_found_after_an_edit_of_one_member_and_goes_with_a_delete() -> None:
    docs: dict[str, Doc[Any]] = {"guests": Doc(), "seating": Doc()}
    people = docs["guests"].get("guests", type=Map)
    tables = docs["seating"].get("tables", type=Map)
    seats = docs["seating"].get("assignments", type=Map)
    for n in range(3):
        people[f"g{n}"] = _guest_fields(n, "Lee" if n < 2 else "Dow")
    for t in ("t1", "t2"):
        tables[t] = Map({"name": t.upper(), "capacity": 8})
    for n in range(3):
        seats[f"g{n}"] = Map({"table_id": "t1"})
    findings = WeddingFindings.build(docs)
    findings.evaluate()
    assert findings.findings() == []
    entry = people["g2"]
    assert isinstance(entry, Map)
    entry["household"] = " lee"  # g2 joins the Lees, seated with them
    findings.touch("guests", docs["guests"], [("guests", "g2")])
    findings.evaluate()
    assert findings.findings() == check(docs) == []
    seats["g2"] = Map({"table_id": "t2"})  # one member moved: the household is split
    findings.touch("seating", docs["seating"], [("assignments", "g2")])
    findings.evaluate()
    assert [c.code for c in findings.findings()] == ["seating.household_split"]
    assert findings.findings() == check(docs)
    del people["g0"]  # one of the two at t1 removed: still split (g1 at t1, g2 at t2)
    findings.touch("guests", docs["guests"], [("guests", "g0")])
    findings.evaluate()
    assert findings.findings() == check(docs)
    del people["g1"]  # a household of one: no split
    findings.touch("guests", docs["guests"], [("guests", "g1")])
    findings.evaluate()
    assert [c.code for c in findings.findings() if "household" in c.code] == []
    assert findings.findings() == check(docs)


@pytest.mark.timeout(120)
def test_an_import_in_parts_reads_each_part_not_the_whole_list() -> None:
    """20,000 guests in households of four, taken in as parts of 200, as a sliced import
    is: a part costs what it holds, as much at the end of the list as at its start (read
    whole after each part, the last parts cost several times the first)."""
    doc: Doc[Any] = Doc()
    people = doc.get("guests", type=Map)
    findings = WeddingFindings.build({"guests": doc})
    findings.evaluate()
    part, total = 200, 20_000
    took: list[float] = []
    for start in range(0, total, part):
        ids = [f"g{n:05d}" for n in range(start, start + part)]
        with doc.transaction():
            for n, key in enumerate(ids, start):
                people[key] = _guest_fields(n, f"House {n // 4}")
        started = time.process_time()
        findings.touch("guests", doc, [("guests", key) for key in ids])
        findings.evaluate()
        took.append(time.process_time() - started)
    first, last = statistics.median(took[1:11]), statistics.median(took[-10:])
    assert last < 3 * first, f"a part: {first * 1000:.1f} ms at first, {last * 1000:.1f} ms last"
    assert findings.findings() == check({"guests": doc}) == []
    assert len(findings._homes.found) == total // 4


def test_an_entry_written_whole_as_a_plain_object_is_read_whole() -> None:
    """A foreign client may overwrite an entry with a plain object lacking fields: its
    change says the new fields, not that the others went, so it is read from the doc."""
    docs: dict[str, Doc[Any]] = {"guests": Doc(), "seating": Doc()}
    recorders = {kind: ChangeRecorder(doc, kind) for kind, doc in docs.items()}
    people = docs["guests"].get("guests", type=Map)
    for n in (2, 3):
        people[f"g{n}"] = _guest_fields(n, f"House {n}")
    docs["seating"].get("tables", type=Map)["t1"] = Map({"name": "Rose", "capacity": 4})
    seats = docs["seating"].get("assignments", type=Map)
    seats["g2"] = {"table_id": "t1", "seat": 1}
    seats["g3"] = {"table_id": "t1", "seat": 1}
    findings = WeddingFindings.build(docs)
    findings.evaluate()
    for recorder in recorders.values():
        recorder.take()
    assert [c.code for c in findings.findings()] == ["seating.seat_double_booked"]
    seats["g2"] = {"table_id": "t1"}  # the seat gone with the fields not written
    findings.apply("seating", docs["seating"], recorders["seating"].take())
    findings.evaluate()
    assert findings.findings() == check(docs) == []
