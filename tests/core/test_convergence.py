"""Convergence of pycrdt replicas through one real room, under reordering, reconnects and
server restarts (a hypothesis state machine), plus targeted regression tests.

Everything runs in-process: the server side is the real ``serve_connection`` over
``memory_pair`` transports, a real ``RoomRegistry`` and a real ``SqliteStore`` file. The
client side is driven by the test: each replica is a pycrdt ``Doc`` speaking y-protocols the
way a y-websocket client does (step 1 on connect, step 2 in answer to the server's step 1,
applying whatever step 2 / update it receives), but its edits wait in an outbox until a
rule delivers them, in a drawn order.

Synchronisation is by instrumentation, never by sleeping: the test wraps the server end of
every transport and the store, so it knows when every session waits for input with nothing
unread, every client reader waits with nothing unread, the store has no call in flight and
no room holds uncommitted updates. :meth:`Harness.settle` waits for exactly that (with a
deadline), after every rule, so each run is reproducible and hypothesis can shrink it.

Run ``pytest tests/core/test_convergence.py --hypothesis-show-statistics`` to see what the runs
exercised (out-of-order sends, pending rooms, compactions, restarts).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from pycrdt import Array, Doc, Map, Text

from crdt_server.cluster.bus import LocalBus
from crdt_server.core.room import Room, RoomServices
from crdt_server.settings import Settings
from crdt_server.storage import SqliteStore
from crdt_server.testing import strategies
from crdt_server.testing.edits import Content, Edit, content
from crdt_server.testing.inprocess import (
    FAST_TMP,
    InProcessClient,
    InProcessServer,
    copy_of,
    covers,
    doc_of,
    server_errors,
    state,
)
from tests.tier import examples

ROOM = "w1/guests"
SETTLE_SECONDS = 10.0
"""Deadline of one settle; far above what a settle takes, so only a hang trips it."""
MAX_ROUNDS = 200
"""Bound on the settle/process rounds of a final convergence phase."""

T = TypeVar("T")

# -- the shared harness ---------------------------------------------------------------------
# The in-process server and clients are the testing kit's (crdt_server.testing.inprocess):
# one harness for this file, the fuzzer and the kit's users.

Harness = InProcessServer
Replica = InProcessClient


async def stored_doc(path: Path) -> Doc[Any]:
    """The document as a fresh store on the same file has it."""
    store = SqliteStore(path)
    await store.open()
    try:
        log = await store.load(ROOM)
    finally:
        await store.close()
    return doc_of(log)


async def reloaded_room(path: Path, settings: Settings) -> Room:
    """The room as a fresh server process would load it."""
    store = SqliteStore(path)
    await store.open()
    try:
        return await Room.load(ROOM, RoomServices(store, settings, LocalBus()), lambda _: None)
    finally:
        await store.close()


async def converge(harness: Harness, replicas: Sequence[Replica]) -> None:
    """Connect whoever is offline, deliver every outbox, process until nothing moves."""
    await harness.converge(replicas)


async def check_converged(harness: Harness, replicas: Sequence[Replica]) -> Content:
    room = harness.room()
    assert not room.has_pending_content(), "the room still waits for missing updates"
    server = copy_of(room.doc)
    expected = content(server)
    expected_state = state(room.doc)
    for replica in replicas:
        assert content(replica.doc) == expected, f"replica {replica.index} differs"
        assert state(replica.doc) == expected_state, f"replica {replica.index} state differs"
        # Whatever the server sent this replica is in the room.
        assert covers(expected_state, state(replica.confirmed))
    from_store = doc_of(await harness.store.load(ROOM))
    assert content(from_store) == expected
    assert state(from_store) == expected_state
    return expected


# -- the state machine ----------------------------------------------------------------------

edits = strategies.edits()
who = st.integers(0, 3)
transactions = st.lists(st.lists(edits, min_size=1, max_size=3), min_size=1, max_size=3)
RESTART_EVERY = 5
CONVERGE_EVERY = 8
"""Least steps between two server restarts / two mid-run convergence checks."""


class ConvergenceMachine(RuleBasedStateMachine):
    """2-4 replicas of one room; hypothesis draws edits, which update is sent when (so a
    replica's updates reach the server out of order), which replica reads when, and when
    replicas go offline and the server restarts. Rules that could do nothing in the current
    state are disabled by preconditions rather than wasting steps."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory(prefix="convergence-", dir=FAST_TMP)
        self.path = Path(self.tmp.name) / "crdt.sqlite3"
        self.harness: Harness | None = None
        self.replicas: list[Replica] = []
        self.errors_cm = server_errors()
        self.errors = self.errors_cm.__enter__()
        self.steps = 0
        self.last_restart = 0
        self.last_converge = 0
        self.out_of_order = 0

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    @property
    def h(self) -> Harness:
        assert self.harness is not None
        return self.harness

    def _senders(self) -> list[Replica]:
        return [r for r in self.replicas if r.connected and r.outbox]

    def _readers(self) -> list[Replica]:
        return [r for r in self.replicas if r.link is not None and r.link.inbox]

    def _online(self) -> list[Replica]:
        return [r for r in self.replicas if r.connected]

    def _offline(self) -> list[Replica]:
        return [r for r in self.replicas if not r.connected]

    @staticmethod
    def _pick(candidates: list[Replica], index: int) -> Replica:
        return candidates[index % len(candidates)]

    def _note_pending(self) -> None:
        room = self.h.registry.rooms.get(ROOM)
        if room is not None and room.has_pending_content():
            event("the room held pending updates")

    async def _send_one(self, replica: Replica, from_newest: int) -> None:
        k = len(replica.outbox) - 1 - from_newest % len(replica.outbox)
        self.out_of_order += k > 0
        await replica.deliver(k)

    def step(self, action: Coroutine[Any, Any, object]) -> None:
        """Run a rule's action, then the server side until it is quiescent, in one go.

        One ``run_until_complete`` per rule: with several, the loop would run server tasks
        between them for as long as the store's thread takes, and how updates are batched
        into commits (so how many frames a replica receives) would depend on timing.
        """

        async def go() -> None:
            await action
            await self.h.settle()

        self.steps += 1
        self.run(go())

    @initialize(
        clients=st.integers(2, 4),
        compact_after=st.sampled_from([3, 1000]),
        idle=st.sampled_from([0.0, 3600.0]),
        first_edits=st.lists(st.tuples(who, transactions), min_size=1, max_size=4),
    )
    def setup(
        self,
        clients: int,
        compact_after: int,
        idle: float,
        first_edits: list[tuple[int, list[list[Edit]]]],
    ) -> None:
        """Start the server, connect every replica, and make some edits nobody sent yet.

        ``idle`` is how long a room without connections stays loaded: 0 unloads it as soon
        as the last replica leaves (the next one reloads it from the store), 3600 keeps it
        warm. Anything in between would make the outcome depend on wall-clock time, and
        hypothesis could no longer replay a failing run.
        """
        config = Settings(
            data_dir=Path(self.tmp.name),
            room_idle_seconds=idle,
            compact_after_updates=compact_after,
            presence_batch_seconds=0,  # the same frames on every replay, whatever the timing
        )
        self.harness = Harness(self.path, config)
        self.replicas = [Replica(i) for i in range(clients)]

        async def start() -> None:
            await self.h.start()
            for replica in self.replicas:
                await self.h.connect(replica)

        self.step(start())
        for i, batches in first_edits:
            self.local_edits(i, batches)

    @rule(i=who, batches=transactions)
    def local_edits(self, i: int, batches: list[list[Edit]]) -> None:
        """Edits on one replica, online or not; each transaction is one update in its
        outbox."""
        self.steps += 1
        replica = self.replicas[i % len(self.replicas)]
        for batch in batches:
            replica.edit(batch)

    @precondition(lambda self: bool(self._senders()))
    @rule(
        i=who,
        from_newest=st.integers(0, 20),
        duplicate=st.sampled_from([None, None, None]) | st.integers(0, 20),
    )
    def deliver(self, i: int, from_newest: int, duplicate: int | None) -> None:
        """Send one of a replica's unsent updates, counting from its newest (so out of
        order unless it picks the oldest); maybe send an already sent one again."""
        replica = self._pick(self._senders(), i)

        async def send() -> None:
            await self._send_one(replica, from_newest)
            if duplicate is not None:
                await replica.resend(duplicate)

        self.step(send())
        self._note_pending()

    @precondition(lambda self: bool(self._senders()))
    @rule(picks=st.lists(st.tuples(who, st.integers(0, 20)), min_size=2, max_size=6))
    def deliver_burst(self, picks: list[tuple[int, int]]) -> None:
        """Several updates (``(replica, from_newest)`` each) before the server runs: they
        share commits and merged broadcasts."""

        async def send() -> None:
            for i, from_newest in picks:
                senders = self._senders()
                if senders:
                    await self._send_one(self._pick(senders, i), from_newest)

        self.step(send())
        self._note_pending()

    @precondition(lambda self: bool(self._readers()))
    @rule(i=who, limit=st.none() | st.integers(1, 3))
    def pump(self, i: int, limit: int | None) -> None:
        """One replica handles what the server sent it (all of it, or the first few)."""
        self.step(self._pick(self._readers(), i).process(limit))

    @precondition(lambda self: bool(self._online()))
    @rule(i=who)
    def disconnect(self, i: int) -> None:
        """A replica goes offline; what it has not sent or read stays unsent/unread."""
        link = self._pick(self._online(), i).link
        assert link is not None
        self.step(link.close())

    @precondition(lambda self: bool(self._offline()))
    @rule(i=who)
    def reconnect(self, i: int) -> None:
        """A replica comes back: step 1 both ways, its offline edits go in its step 2."""
        self.step(self.h.connect(self._pick(self._offline(), i)))

    @precondition(lambda self: self.steps - self.last_restart >= RESTART_EVERY)
    @rule()
    def restart_server(self) -> None:
        """Stop the server (flush, close every connection with 1012) and start a new one on
        the same file; replicas come back by ``reconnect`` or the final phase."""
        self.steps += 1
        self.last_restart = self.steps
        self.run(self.h.restart())
        # Whatever a replica was sent had been committed: it survives the restart.
        stored = state(self.run(stored_doc(self.path)))
        for replica in self.replicas:
            assert covers(stored, state(replica.confirmed)), (
                f"replica {replica.index} saw updates the store lost"
            )

    @precondition(lambda self: self.steps - self.last_converge >= CONVERGE_EVERY)
    @rule()
    def converge_now(self) -> None:
        """Everyone online, everything sent and read: all replicas equal the room."""
        self.steps += 1
        self.last_converge = self.steps
        self.run(converge(self.h, self.replicas))
        self.run(check_converged(self.h, self.replicas))
        assert not self.errors.records, [r.getMessage() for r in self.errors.records]

    def teardown(self) -> None:
        failing = sys.exc_info()[1] is not None
        try:
            if self.harness is not None and not failing:
                self.run(converge(self.h, self.replicas))
                expected = self.run(check_converged(self.h, self.replicas))
                self.run(self.h.stop())
                assert content(self.run(stored_doc(self.path))) == expected
                reloaded = self.run(reloaded_room(self.path, self.h.settings))
                assert content(copy_of(reloaded.doc)) == expected
                assert not reloaded.has_pending_content()
                assert not self.errors.records, [r.getMessage() for r in self.errors.records]
                self._events()
        finally:
            try:
                if self.harness is not None:
                    self.run(self.h.aclose())
            finally:
                self.errors_cm.__exit__(None, None, None)
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
                self.loop.run_until_complete(self.loop.shutdown_default_executor())
                self.loop.close()
                self.tmp.cleanup()

    def _events(self) -> None:
        """What the run exercised (``pytest --hypothesis-show-statistics``)."""

        def bucket(n: int) -> str:
            return "0" if n == 0 else "1-2" if n < 3 else "3-9" if n < 10 else "10+"

        event(f"replicas: {len(self.replicas)}")
        event(f"compactions: {bucket(self.h.compactions + self.h.store.compactions)}")
        event(f"restarts: {bucket(self.h.restarts)}")
        event(f"updates sent out of order: {bucket(self.out_of_order)}")
        event(f"updates: {bucket(sum(len(r.sent_updates) for r in self.replicas))}")


ConvergenceMachine.TestCase.settings = settings(
    # About 25 s on 2 cores in the full tier; the fast tier runs a tenth.
    max_examples=examples(full=300, fast=30),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # The explain phase replays a failing run hundreds of times to annotate it: minutes.
    phases=[phase for phase in Phase if phase is not Phase.explain],
)
# A passing run takes well under the global 120 s; shrinking a failing one may not.
TestConvergence = pytest.mark.timeout(600)(ConvergenceMachine.TestCase)


# -- targeted tests -------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, room_idle_seconds=3600, compact_after_updates=1000)


@pytest.mark.asyncio
async def test_out_of_order_updates_are_kept_and_stored(config: Settings) -> None:
    harness = Harness(config.sqlite_path, config)
    await harness.start()
    try:
        a, b = Replica(0), Replica(1)
        for r in (a, b):
            await harness.connect(r)
        await harness.settle()
        for r in (a, b):
            await r.process()
        await harness.settle()
        text = a.doc.get("t", type=Text)
        text.insert(0, "x")
        text.insert(1, "y")
        await a.deliver(1)  # "y" before the "x" it depends on
        await harness.settle()
        await b.process()
        assert content(b.doc)["t"] == ""  # pending at b too
        assert harness.room().has_pending_content()
        await a.deliver(0)
        await harness.settle()
        await b.process()
        assert content(b.doc)["t"] == "xy"
        await harness.stop()
        assert content(await stored_doc(config.sqlite_path))["t"] == "xy"
    finally:
        await harness.aclose()


@pytest.mark.asyncio
async def test_late_joiner_gets_updates_the_room_holds_pending(config: Settings) -> None:
    """A joiner's step 2 includes what the room holds pending, as Yjs's encodeStateAsUpdate
    does: pycrdt's ``get_update(state_vector)`` leaves it out, and then the joiner would
    never get "y" (when "x" arrives, only "x" is broadcast)."""
    harness = Harness(config.sqlite_path, config)
    await harness.start()
    try:
        a, late = Replica(0), Replica(1)
        await harness.connect(a)
        await harness.settle()
        await a.process()
        text = a.doc.get("t", type=Text)
        text.insert(0, "x")
        text.insert(1, "y")
        await a.deliver(1)  # "y" first: the room keeps it pending and stores it
        await harness.settle()
        await harness.connect(late)
        await harness.settle()
        await late.process()  # the room's step 1 and step 2
        await harness.settle()
        await a.deliver(0)  # now "x": the room integrates "x" and "y"
        await harness.settle()
        for r in (a, late):
            await r.process()
        await harness.settle()
        assert content(copy_of(harness.room().doc))["t"] == "xy"
        assert content(a.doc)["t"] == "xy"
        assert content(late.doc)["t"] == "xy"
    finally:
        await harness.aclose()


@pytest.mark.asyncio
async def test_room_integrates_updates_in_any_order(config: Settings) -> None:
    """pycrdt 0.14.13 alone gets stuck on some orders: one client's u0 (m.a = 0), u1
    (m.a = 1) and u2 (insert "x" into t) applied as u1, u2, u0 leave u1 and u2 pending for
    good. The room must integrate them once u0 arrives, as Yjs does."""
    harness = Harness(config.sqlite_path, config)
    await harness.start()
    try:
        a = Replica(0)
        await harness.connect(a)
        await harness.settle()
        await a.process()
        a.doc.get("m", type=Map)["a"] = 0
        a.doc.get("m", type=Map)["a"] = 1
        a.doc.get("t", type=Text).insert(0, "x")
        expected = content(a.doc)
        assert len(a.outbox) == 3
        for k in (1, 1, 0):  # u1, u2, u0
            await a.deliver(k)
            await harness.settle()
        reloaded = await reloaded_room(config.sqlite_path, config)
        assert content(copy_of(reloaded.doc)) == expected  # the log is complete
        room = harness.room()
        assert content(copy_of(room.doc)) == expected
        assert not room.has_pending_content()
    finally:
        await harness.aclose()


@pytest.mark.asyncio
@pytest.mark.parametrize("between", ["earlier update", "duplicate"])
async def test_pending_delete_survives_an_unrelated_update(config: Settings, between: str) -> None:
    """A delete of an item the room has not received yet stays pending (and goes into a
    joiner's step 2) whatever comes next: an update that integrates other structs, or a
    no-op duplicate. Otherwise, when the deleted item arrives, the room deletes it (yrs kept
    the delete) and broadcasts just the insert, and the joiner shows the item for good.

    Found by the state machine (shrunk by hand): A inserts "x" (u1) and deletes it (u2); u2
    reaches the room, then u0 (A's earlier update) or a duplicate of it, then a replica
    joins, then u1 arrives.
    """
    harness = Harness(config.sqlite_path, config)
    await harness.start()
    try:
        a, late = Replica(0), Replica(1)
        await harness.connect(a)
        await harness.settle()
        await a.process()
        a.doc.get("m", type=Map)["k"] = 1  # u0
        array = a.doc.get("a", type=Array)
        array.insert(0, "x")  # u1
        del array[0]  # u2: deletes u1's item
        assert len(a.outbox) == 3
        if between == "duplicate":
            await a.deliver(0)  # u0
            await harness.settle()
            await a.deliver(1)  # u2: a delete the room cannot apply yet
            await harness.settle()
            await a.resend(0)  # u0 again: changes nothing
        else:
            await a.deliver(2)  # u2: a delete the room cannot apply yet
            await harness.settle()
            await a.deliver(0)  # u0: integrates; the delete is still pending
        await harness.settle()
        await harness.connect(late)
        await harness.settle()
        await late.process()
        await harness.settle()
        await a.deliver(0)  # u1: now the delete applies
        await harness.settle()
        for r in (a, late):
            await r.process()
        await harness.settle()
        expected = content(a.doc)
        assert expected["a"] == []
        assert content(copy_of(harness.room().doc)) == expected
        assert content(late.doc) == expected
    finally:
        await harness.aclose()
