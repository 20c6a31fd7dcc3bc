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

from crdt_server.documents import (
    DOCUMENT_KINDS,
    OPERATIONS,
    OperationError,
    apply_operation,
    check,
    from_json,
    seed,
    to_json,
)
from crdt_server.testing import strategies as kit
from tests.tier import examples

REPLICAS = 3
# The wedding operation strategies are the testing kit's (crdt_server.testing.strategies).
operations = st.one_of(kit.operations(), kit.malformed_operations)
BASE_PLAN = kit.BASE_PLAN


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
            event(f"refused {exc.reason}")
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
    max_examples=examples(full=150, fast=30), stateful_step_count=50, deadline=None
)
test_wedding_replicas_converge = WeddingReplicas.TestCase
