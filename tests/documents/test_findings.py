"""The incremental findings (documents.findings) equal a full re-check, whatever happens.

A hypothesis state machine holds one wedding on two replicas: *here* (the process whose
findings are kept, with a change recorder on each document, as a room has) and *there*
(another process). Rules apply random domain operations on either side, deliver what the
other side wrote later (so edits cross, as concurrent ones do: tables over capacity,
double-booked seats, payments for removed categories), write entries no operation would
write (invalid ones, as foreign clients may), and reload (the documents replayed into new
objects and the findings rebuilt, as a process that loads the wedding does). After every
step the findings kept from the touched entries alone must equal ``check`` of the
documents here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from pycrdt import Doc, Map, TransactionEvent

from crdt_server.documents import (
    DOCUMENT_KINDS,
    OPERATIONS,
    OperationError,
    apply_operation,
    check,
    seed,
)
from crdt_server.documents.changes import ChangeRecorder
from crdt_server.documents.findings import FINDING_KINDS, WeddingFindings
from crdt_server.features.conflicts.domain_resolution import related_paths
from crdt_server.testing import strategies as kit
from tests.tier import examples

operations = st.one_of(kit.operations(), kit.malformed_operations)
_WEDDING = "w1"

# Raw writes no operation makes: (kind, root, key, value); a dict is an entry's fields.
foreign = st.sampled_from(
    [
        ("guests", "guests", "g9", {"name": 7}),
        ("guests", "guests", "bad id!", {"name": "Eve"}),
        ("guests", "guests", "g1", "not an entry"),
        ("seating", "tables", "t1", {"name": "Rose", "capacity": -1}),
        ("seating", "assignments", "g2", {"table_id": "t9", "seat": 1}),
        ("seating", "assignments", "g3", {"seat": 1}),
        ("timeline", "items", "i2", {"title": "X", "start": "never", "end": "later"}),
        ("budget", "settings", "currency", "euros"),
        ("budget", "settings", "total", -5),
        ("budget", "payments", "p9", {"amount": 10, "category_id": "c9", "date": "2026-01-15"}),
        ("budget", "categories", "c1", {"name": "Food", "planned": "lots"}),
        # valid entries written whole (a foreign client's way): renames, shared seats
        ("guests", "guests", "g2", {"name": "Zed Ash", "rsvp": "accepted"}),
        ("guests", "guests", "g3", {"name": "Yan Bo", "rsvp": "declined"}),
        ("seating", "tables", "t1", {"name": "Iris", "capacity": 1, "shape": "round"}),
        ("seating", "assignments", "g2", {"table_id": "t1", "seat": 1}),
        ("seating", "assignments", "g3", {"table_id": "t1", "seat": 1}),
        ("seating", "assignments", "g4", {"table_id": "t1", "seat": 2}),
        (
            "timeline",
            "items",
            "i3",
            {
                "title": "Band",
                "start": "2026-06-13T10:00:00Z",
                "end": "2026-06-13T14:00:00Z",
                "vendor": "DJ MAX",
                "location": "Barn",
                "status": "planned",
            },
        ),
    ]
)


def _as_written(value: Any) -> Any:
    return Map(value) if isinstance(value, dict) else value


class Side:
    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.docs: dict[str, Doc[Any]] = {kind: Doc() for kind in DOCUMENT_KINDS}
        self.outbox: list[tuple[str, bytes]] = []
        self.local = False
        for kind, doc in self.docs.items():
            doc.observe(lambda event, kind=kind: self._sent(kind, event))

    def _sent(self, kind: str, event: TransactionEvent) -> None:
        if self.local:
            self.outbox.append((kind, event.update))

    def write(self, kind: str, change: Any) -> None:
        self.local = True
        try:
            change(self.docs[kind])
        finally:
            self.local = False


class IncrementalFindings(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.here, self.there = Side("here"), Side("there")
        self.recorders: dict[str, ChangeRecorder] = {}
        for side in (self.here, self.there):
            for kind in DOCUMENT_KINDS:
                side.write(kind, lambda doc, kind=kind: seed(doc, kind, _WEDDING))
        self._deliver_all()
        self._load()

    def _load(self) -> None:
        self.recorders = {kind: ChangeRecorder(doc, kind) for kind, doc in self.here.docs.items()}
        self.findings = WeddingFindings.build(self.here.docs)
        self.findings.evaluate()

    def _touch(self) -> None:
        for kind, recorder in self.recorders.items():
            changes = recorder.take()
            self.findings.touch(kind, self.here.docs[kind], [(c.root, c.id) for c in changes])

    def _deliver(self, source: Side, target: Side, count: int) -> None:
        sent, source.outbox = source.outbox[:count], source.outbox[count:]
        for kind, update in sent:
            target.docs[kind].apply_update(update)
            if target is self.here:
                self._touch()  # every integrated update, as the room reports it

    def _deliver_all(self) -> None:
        self._deliver(self.here, self.there, len(self.here.outbox))
        self._deliver(self.there, self.here, len(self.there.outbox))

    @rule(op=operations, here=st.booleans())
    def operate(self, op: dict[str, Any], here: bool) -> None:
        side = self.here if here else self.there
        kind = OPERATIONS.get(op["op"], "guests")

        def change(doc: Doc[Any]) -> None:
            try:
                apply_operation(doc, kind, op, origin=side.origin, related=side.docs)
            except OperationError:
                pass

        side.write(kind, change)
        if here:
            self._touch()

    @rule(write=foreign, here=st.booleans())
    def write_foreign(self, write: tuple[str, str, str, Any], here: bool) -> None:
        kind, root, key, value = write
        side = self.here if here else self.there

        def change(doc: Doc[Any]) -> None:
            doc.get(root, type=Map)[key] = _as_written(value)

        side.write(kind, change)
        if here:
            self._touch()

    @rule(
        where=st.sampled_from(
            [
                ("guests", "guests", "g2"),
                ("guests", "guests", "g3"),
                ("seating", "tables", "t1"),
                ("seating", "tables", "t2"),
            ]
        ),
        name=st.sampled_from(["Ann Lee", "Zoe Quinn"]),
        here=st.booleans(),
    )
    def rename(self, where: tuple[str, str, str], name: str, here: bool) -> None:
        """One field of an entry set in place (names are in other findings' messages)."""
        kind, root, key = where
        side = self.here if here else self.there

        def change(doc: Doc[Any]) -> None:
            entry = doc.get(root, type=Map).get(key)
            if isinstance(entry, Map):
                entry["name"] = name

        side.write(kind, change)
        if here:
            self._touch()

    @rule(count=st.integers(1, 4))
    def deliver_there(self, count: int) -> None:
        self._deliver(self.there, self.here, count)

    @rule(count=st.integers(1, 4))
    def deliver_here(self, count: int) -> None:
        self._deliver(self.here, self.there, count)

    @rule()
    def reload(self) -> None:
        for recorder in self.recorders.values():
            recorder.close()
        for kind, doc in list(self.here.docs.items()):
            fresh: Doc[Any] = Doc()
            fresh.apply_update(doc.get_update())
            fresh.observe(lambda event, kind=kind: self.here._sent(kind, event))
            self.here.docs[kind] = fresh
        self._load()

    @invariant()
    def same_as_a_full_check(self) -> None:
        self.findings.evaluate()
        expected = check(self.here.docs)
        assert self.findings.findings() == expected
        event(f"{min(len(expected), 5)} findings")
        for conflict in expected:
            assert self.findings.related(conflict) == related_paths(conflict, self.here.docs)


IncrementalFindings.TestCase.settings = settings(
    max_examples=examples(200, 40), stateful_step_count=40, deadline=None
)
TestIncrementalFindings = IncrementalFindings.TestCase


def test_every_code_the_checks_report_is_declared() -> None:
    declared = {code for kind in FINDING_KINDS for code in kind.codes}
    source = Path(check.__code__.co_filename).read_text()
    found = set(re.findall(r'"((?:guests|seating|timeline|budget)\.[a-z_]+)"', source))
    found |= {f"{kind}.invalid_entry" for kind in DOCUMENT_KINDS}
    assert found <= declared


def test_a_rename_reaches_every_finding_that_names_it() -> None:
    """Names are in other entries' findings (a double-booked seat lists its guests, an
    assignment names its table): renaming marks those groups, not only the entry's own."""
    docs: dict[str, Doc[Any]] = {kind: Doc() for kind in ("guests", "seating")}
    recorders = {kind: ChangeRecorder(doc, kind) for kind, doc in docs.items()}
    for op in (
        {"op": "add_guest", "guest_id": "g1", "name": "Ann Lee"},
        {"op": "add_guest", "guest_id": "g2", "name": "Bob Ray"},
        {"op": "add_table", "table_id": "t1", "name": "Rose", "capacity": 2},
        {"op": "assign_seat", "guest_id": "g1", "table_id": "t1", "seat": 1},
    ):
        apply_operation(docs[OPERATIONS[op["op"]]], OPERATIONS[op["op"]], op, related=docs)
    docs["seating"].get("assignments", type=Map)["g2"] = {"table_id": "t1", "seat": 3}
    findings = WeddingFindings.build(docs)
    findings.evaluate()
    for kind in docs:
        recorders[kind].take()
    docs["seating"].get("assignments", type=Map)["g3"] = {"table_id": "t1", "seat": 1}
    for op in (
        {"op": "add_guest", "guest_id": "g3", "name": "Cy Dow"},  # g3's seat shares g1's
        {"op": "update_guest", "guest_id": "g1", "name": "Ann Lee-Ray"},
        {"op": "update_table", "table_id": "t1", "name": "Lily"},
    ):
        kind = OPERATIONS[op["op"]]
        apply_operation(docs[kind], kind, op, related=docs)
        for each, recorder in recorders.items():
            findings.touch(each, docs[each], [(c.root, c.id) for c in recorder.take()])
        changed = findings.evaluate()
        assert findings.findings() == check(docs)
        assert changed  # each step changed some finding's message
    messages = " ".join(c.message for c in findings.findings())
    assert "Ann Lee-Ray" in messages and "'Lily'" in messages
