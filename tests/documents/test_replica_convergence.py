"""Convergence of the wedding documents across replicas (a hypothesis state machine).

Three replicas each hold all four documents, seeded independently (as three processes
would), then share a small common plan. Rules apply random domain operations (some of them
malformed or impossible, which must change nothing) on a random replica; every update a local
operation produces waits in that replica's outbox until a rule delivers it to another
replica, in any order, duplicates included. At the end everything is delivered, and every
replica must export the same JSON and report the same conflicts.

A receiver applies the merge of everything it has received so far instead of each update
alone: yrs keeps one pending block per client, so a second update that also waits on a
missing predecessor would drop the first one's pending content (the server's room merges
pending updates the same way; applying each update alone made replicas diverge in a long
run of this machine). Re-applying integrated content is a no-op in Yjs.
"""

from __future__ import annotations

from typing import Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule
from pycrdt import Doc, TransactionEvent, merge_updates

from documents import (
    DOCUMENT_KINDS,
    OPERATIONS,
    RSVP_STATES,
    SIDES,
    TABLE_SHAPES,
    TIMELINE_STATUSES,
    OperationError,
    apply_operation,
    check,
    from_json,
    seed,
    to_json,
)

REPLICAS = 3
guest_ids = st.sampled_from(["g1", "g2", "g3", "g4"])
table_ids = st.sampled_from(["t1", "t2"])
item_ids = st.sampled_from(["i1", "i2", "i3"])
category_ids = st.sampled_from(["c1", "c2"])
payment_ids = st.sampled_from(["p1", "p2", "p3"])
names = st.sampled_from(["Ann Lee", "Bob Ray", "Cy Dow", "Di Fox"])
instants = st.builds(
    "2026-06-13T{:02d}:{:02d}:00{}".format,
    st.integers(10, 14),
    st.sampled_from([0, 30]),
    st.sampled_from(["+02:00", "Z"]),
)
vendors = st.none() | st.sampled_from(["DJ Max", "dj max", "Studio Lux"])
locations = st.none() | st.sampled_from(["Barn", "Garden"])
currencies = st.sampled_from(["EUR", "USD"])


def _op(name: str, required: dict[str, Any], optional: dict[str, Any] | None = None) -> Any:
    return st.fixed_dictionaries({"op": st.just(name), **required}, optional=optional or {})


guest_operations = st.one_of(
    _op(
        "add_guest",
        {"guest_id": guest_ids, "name": names},
        {
            "rsvp": st.sampled_from(RSVP_STATES),
            "side": st.sampled_from(SIDES),
            "meal": st.none() | st.sampled_from(["fish", "veg"]),
            "dietary": st.lists(st.sampled_from(["vegan", "nuts"]), max_size=2),
            "plus_one": st.booleans(),
        },
    ),
    _op(
        "update_guest",
        {"guest_id": guest_ids},
        {"name": names, "meal": st.none() | st.sampled_from(["fish", "veg"]), "contact": names},
    ),
    _op("remove_guest", {"guest_id": guest_ids}),
    _op("set_rsvp", {"guest_id": guest_ids, "rsvp": st.sampled_from(RSVP_STATES)}),
)
seating_operations = st.one_of(
    _op(
        "add_table",
        {"table_id": table_ids, "name": st.sampled_from(["Rose", "Lily"])},
        {"capacity": st.integers(1, 3), "shape": st.sampled_from(TABLE_SHAPES)},
    ).map(lambda op: {"capacity": 2, **op}),
    _op("update_table", {"table_id": table_ids}, {"capacity": st.integers(1, 3)}),
    _op("remove_table", {"table_id": table_ids}),
    _op(
        "assign_seat",
        {"guest_id": guest_ids, "table_id": table_ids},
        {"seat": st.none() | st.integers(1, 3)},
    ),
    _op("unassign_seat", {"guest_id": guest_ids}),
)
timeline_operations = st.one_of(
    _op(
        "add_timeline_item",
        {"item_id": item_ids, "title": names, "start": instants, "end": instants},
        {"vendor": vendors, "location": locations},
    ),
    _op(
        "update_timeline_item",
        {"item_id": item_ids},
        {"vendor": vendors, "location": locations, "status": st.sampled_from(TIMELINE_STATUSES)},
    ),
    _op("move_timeline_item", {"item_id": item_ids}, {"start": instants, "end": instants}),
    _op("remove_timeline_item", {"item_id": item_ids}),
)
budget_operations = st.one_of(
    _op("set_budget_total", {"total": st.integers(0, 3000)}, {"currency": currencies}),
    _op(
        "set_category",
        {"category_id": category_ids},
        {"name": names, "planned": st.integers(0, 2000), "currency": currencies},
    ),
    _op(
        "record_payment",
        {
            "payment_id": payment_ids,
            "category_id": category_ids,
            "amount": st.integers(0, 1500),
            "date": st.just("2026-01-15"),
        },
    ),
    _op("remove_payment", {"payment_id": payment_ids}),
)
malformed_operations = st.sampled_from(
    [
        {"op": "set_rsvp", "guest_id": "g1", "rsvp": "maybe"},
        {"op": "add_table", "table_id": "t1", "name": "Rose", "capacity": -1},
        {"op": "record_payment", "category_id": "c1", "amount": 1.5, "date": "2026-01-15"},
        {"op": "add_guest", "name": "Ann Lee", "colour": "blue"},
    ]
)
# Seat assignments are where concurrent edits collide most (capacity, seat numbers).
operations = st.one_of(
    seating_operations,
    st.sampled_from(["g2", "g3", "g4"]).flatmap(
        lambda guest_id: _op(
            "assign_seat",
            {"guest_id": st.just(guest_id), "table_id": table_ids},
            {"seat": st.integers(1, 3)},
        )
    ),
    guest_operations,
    timeline_operations,
    budget_operations,
    malformed_operations,
)


BASE_PLAN: list[dict[str, Any]] = [
    {"op": "add_guest", "guest_id": "g1", "name": "Ann Lee", "rsvp": "accepted"},
    {"op": "add_guest", "guest_id": "g2", "name": "Bob Ray"},
    {"op": "add_guest", "guest_id": "g3", "name": "Cy Dow", "rsvp": "accepted"},
    {"op": "add_guest", "guest_id": "g4", "name": "Di Fox", "rsvp": "accepted"},
    {"op": "add_table", "table_id": "t1", "name": "Rose", "capacity": 2},
    {"op": "add_table", "table_id": "t2", "name": "Lily", "capacity": 3},
    {"op": "assign_seat", "guest_id": "g1", "table_id": "t1", "seat": 1},
    {
        "op": "add_timeline_item",
        "item_id": "i1",
        "title": "Ceremony",
        "start": "2026-06-13T12:00:00+02:00",
        "end": "2026-06-13T13:00:00+02:00",
        "vendor": "DJ Max",
        "location": "Barn",
    },
    {"op": "set_budget_total", "total": 2000, "currency": "EUR"},
    {"op": "set_category", "category_id": "c1", "name": "Venue", "planned": 1000},
    {"op": "set_category", "category_id": "c2", "name": "Music", "planned": 500},
]


class Replica:
    def __init__(self, index: int) -> None:
        self.origin = f"replica-{index}"
        self.docs: dict[str, Doc[Any]] = {kind: Doc() for kind in DOCUMENT_KINDS}
        self.outbox: dict[str, list[bytes]] = {kind: [] for kind in DOCUMENT_KINDS}
        self.received: dict[str, bytes | None] = dict.fromkeys(DOCUMENT_KINDS)
        self.local = False
        for kind, doc in self.docs.items():
            doc.observe(lambda event, kind=kind: self._record(kind, event))

    def _record(self, kind: str, event: TransactionEvent) -> None:
        if self.local:
            self.outbox[kind].append(event.update)

    def seed(self, wedding_id: str) -> None:
        self.local = True
        try:
            for kind, doc in self.docs.items():
                seed(doc, kind, wedding_id, origin=self.origin)
        finally:
            self.local = False

    def apply(self, op: dict[str, Any]) -> dict[str, Any]:
        kind = OPERATIONS.get(op["op"], "guests")
        self.local = True
        try:
            return apply_operation(self.docs[kind], kind, op, origin=self.origin, related=self.docs)
        finally:
            self.local = False

    def receive(self, kind: str, update: bytes) -> None:
        merged = self.received[kind]
        merged = update if merged is None else merge_updates(merged, update)
        self.received[kind] = merged
        self.docs[kind].apply_update(merged)

    def export(self) -> dict[str, Any]:
        return {kind: to_json(doc, kind) for kind, doc in self.docs.items()}


class WeddingReplicas(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.replicas = [Replica(index) for index in range(REPLICAS)]

    @initialize()
    def seed_everywhere_then_share_a_plan(self) -> None:
        # Independent seeding on every replica, then a small common plan, so that most
        # drawn operations find the guests, tables and categories they refer to.
        for replica in self.replicas:
            replica.seed("w42")
        author = self.replicas[0]
        for op in BASE_PLAN:
            author.apply(op)
        for replica in self.replicas[1:]:
            for kind, updates in author.outbox.items():
                for update in updates:
                    replica.receive(kind, update)

    @rule(index=st.integers(0, REPLICAS - 1), op=operations)
    def operate(self, index: int, op: dict[str, Any]) -> None:
        replica = self.replicas[index]
        kind = OPERATIONS.get(op["op"], "guests")
        before = (replica.docs[kind].get_state(), len(replica.outbox[kind]))
        try:
            result = replica.apply(op)
        except OperationError as exc:
            event(f"refused {exc.status}")
            assert (replica.docs[kind].get_state(), len(replica.outbox[kind])) == before
            return
        event("applied" if result["changed"] else "no change")
        assert len(replica.outbox[kind]) == before[1] + (1 if result["changed"] else 0)

    @rule(
        sender=st.integers(0, REPLICAS - 1),
        offset=st.integers(1, REPLICAS - 1),
        kind=st.sampled_from(DOCUMENT_KINDS),
        data=st.data(),
    )
    def deliver(self, sender: int, offset: int, kind: str, data: st.DataObject) -> None:
        outbox = self.replicas[sender].outbox[kind]
        if not outbox:
            return
        update = outbox[data.draw(st.integers(0, len(outbox) - 1), label="update")]
        self.replicas[(sender + offset) % REPLICAS].receive(kind, update)

    def teardown(self) -> None:
        for replica in self.replicas:
            for kind, exported in replica.export().items():
                assert to_json(from_json(kind, exported), kind) == exported
        for receiver in self.replicas:
            for sender in self.replicas:
                if sender is not receiver:
                    for kind, updates in sender.outbox.items():
                        for update in updates:
                            receiver.receive(kind, update)
        first = self.replicas[0]
        for other in self.replicas[1:]:
            assert other.export() == first.export()
            assert check(other.docs) == check(first.docs)


WeddingReplicas.TestCase.settings = settings(
    max_examples=150, stateful_step_count=50, deadline=None
)
test_wedding_replicas_converge = WeddingReplicas.TestCase
