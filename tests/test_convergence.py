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

Run ``pytest tests/test_convergence.py --hypothesis-show-statistics`` to see what the runs
exercised (out-of-order sends, pending rooms, compactions, restarts).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
from collections import deque
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from pycrdt import Array, Doc, Map, Text, TransactionEvent, merge_updates

from crdt_server.auth.principals import ANONYMOUS
from crdt_server.cluster.bus import LocalBus
from crdt_server.codec.awareness import AwarenessEntry, decode_awareness, encode_awareness_entries
from crdt_server.codec.protocol import (
    AuthDenied,
    AwarenessMessage,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_awareness,
    encode_sync_step1,
    encode_sync_step2,
    encode_update,
)
from crdt_server.codec.updates import (
    UpdateSummary,
    decode_state_vector,
    inspect_update,
    pending_after,
)
from crdt_server.core.connection import Connection
from crdt_server.core.registry import RoomRegistry
from crdt_server.core.room import Room
from crdt_server.core.session import serve_connection
from crdt_server.core.transport import MemoryTransport, TransportClosed, memory_pair
from crdt_server.errors import CloseCode
from crdt_server.settings import Settings
from storage import NewUpdate, SqliteStore, StoredLog

ROOM = "w1/guests"
SETTLE_SECONDS = 10.0
"""Deadline of one settle; far above what a settle takes, so only a hang trips it."""
MAX_ROUNDS = 200
"""Bound on the settle/process rounds of a final convergence phase."""
FAST_TMP = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
"""Where the state machine keeps its SQLite files: in memory if the system offers it, since
every commit fsyncs and crash durability is not what this file tests."""

Json: TypeAlias = None | bool | int | str | list["Json"] | dict[str, "Json"]
Content: TypeAlias = dict[str, Any]
T = TypeVar("T")

# -- instrumentation ------------------------------------------------------------------------


class Activity:
    """Set whenever something the quiescence check looks at may have changed."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def notify(self) -> None:
        self.event.set()


class TrackedStore(SqliteStore):
    """A real ``SqliteStore`` that counts the calls the server makes and that are in flight."""

    def __init__(self, path: Path, activity: Activity) -> None:
        super().__init__(path)
        self.inflight = 0
        self.compactions = 0
        self._activity = activity

    @contextmanager
    def _call(self) -> Iterator[None]:
        self.inflight += 1
        try:
            yield
        finally:
            self.inflight -= 1
            self._activity.notify()

    async def open(self) -> None:
        with self._call():
            await super().open()

    async def close(self) -> None:
        with self._call():
            await super().close()

    async def load(self, doc: str) -> StoredLog | None:
        with self._call():
            return await super().load(doc)

    async def append(self, updates: Sequence[NewUpdate]) -> list[int]:
        with self._call():
            return await super().append(updates)

    async def compact(self, doc: str, upto_seq: int, snapshot: bytes) -> None:
        with self._call():
            await super().compact(doc, upto_seq, snapshot)
            self.compactions += 1


class ServerEnd:
    """The server's end of a memory pair, counting frames and noting when it waits to read."""

    def __init__(self, inner: MemoryTransport, activity: Activity) -> None:
        self.inner = inner
        self.activity = activity
        self.waiting = False
        self.received = 0
        self.sent = 0
        self.closed = False

    async def receive(self) -> bytes | str:
        self.waiting = True
        self.activity.notify()
        try:
            frame = await self.inner.receive()
        finally:
            self.waiting = False
            self.activity.notify()
        self.received += 1
        return frame

    async def send(self, data: bytes) -> None:
        await self.inner.send(data)
        self.sent += 1
        self.activity.notify()

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = True
        await self.inner.close(code, reason)
        self.activity.notify()


@dataclass(eq=False)
class Link:
    """One connection as the client sees it: its end, its reader and what it received."""

    client_end: MemoryTransport
    server: ServerEnd
    activity: Activity
    inbox: deque[bytes] = field(default_factory=deque)
    sent: int = 0
    received: int = 0
    reader_waiting: bool = False
    client_closed: bool = False
    close_code: int | None = None
    session: asyncio.Task[Connection] | None = None
    reader: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return not self.client_closed and self.reader is not None and not self.reader.done()

    async def send(self, frame: bytes) -> None:
        if not self.alive:
            return  # like a WebSocket that is closed: the frame goes nowhere
        await self.client_end.send(frame)
        self.sent += 1
        self.activity.notify()

    async def read_loop(self) -> None:
        try:
            while True:
                self.reader_waiting = True
                self.activity.notify()
                try:
                    frame = await self.client_end.receive()
                finally:
                    self.reader_waiting = False
                assert isinstance(frame, bytes), "the server sent a text frame"
                self.inbox.append(frame)
                self.received += 1
                self.activity.notify()
        except TransportClosed as exc:
            self.close_code = exc.code
        finally:
            self.activity.notify()

    async def close(self) -> None:
        self.client_closed = True
        self.inbox.clear()
        await self.client_end.close(CloseCode.NORMAL)
        self.activity.notify()

    def quiet(self) -> bool:
        """Nothing in flight on this connection (in either direction)."""
        assert self.session is not None and self.reader is not None
        if not self.session.done():
            if self.client_closed:
                return False
            if not (self.server.waiting and self.server.received == self.sent):
                return False
        if not self.reader.done():
            if self.server.closed:
                return False
            if not (self.reader_waiting and self.received == self.server.sent):
                return False
        return True

    def describe(self) -> str:
        return (
            f"session done={self.session is not None and self.session.done()} "
            f"waiting={self.server.waiting} recv={self.server.received}/{self.sent} "
            f"reader done={self.reader is not None and self.reader.done()} "
            f"waiting={self.reader_waiting} recv={self.received}/{self.server.sent} "
            f"closed client={self.client_closed} server={self.server.closed}"
        )


class Harness:
    """The server side (store + registry + sessions) of one test, on the running loop."""

    def __init__(self, path: Path, settings: Settings) -> None:
        self.path = path
        self.settings = settings
        self.activity = Activity()
        self.store = TrackedStore(path, self.activity)
        self.registry = RoomRegistry(self.store, settings, LocalBus())
        self.links: list[Link] = []
        self.running = False
        self.restarts = 0
        self.compactions = 0
        """Compactions done by earlier stores (before restarts)."""

    async def start(self) -> None:
        self.store = TrackedStore(self.path, self.activity)
        await self.store.open()
        self.registry = RoomRegistry(self.store, self.settings, LocalBus())
        await self.registry.start()
        self.running = True

    async def stop(self) -> None:
        """Restart-style shutdown: every connection is closed by the server (1012)."""
        if not self.running:
            return
        self.running = False
        await self.registry.close()
        async with asyncio.timeout(SETTLE_SECONDS):
            for link in self.links:
                assert link.session is not None and link.reader is not None
                await asyncio.wait({link.session, link.reader})
        self.reap()
        await self.store.close()

    async def restart(self) -> None:
        await self.stop()
        self.compactions += self.store.compactions
        await self.start()
        self.restarts += 1

    async def connect(self, replica: Replica) -> Link:
        assert self.running
        client_end, server_end = memory_pair()
        link = Link(client_end, ServerEnd(server_end, self.activity), self.activity)
        link.session = asyncio.create_task(
            serve_connection(link.server, self.registry, ROOM, ANONYMOUS, self.settings)
        )
        link.session.add_done_callback(lambda _: self.activity.notify())
        link.reader = asyncio.create_task(link.read_loop())
        self.links.append(link)
        replica.link = link
        # What y-websocket sends on open: sync step 1, then our awareness state.
        await link.send(encode_sync_step1(replica.doc.get_state()))
        await link.send(replica.awareness_frame())
        return link

    def busy(self) -> str | None:
        """What is still in flight, or ``None`` when the server side is quiescent."""
        if self.store.inflight:
            return f"{self.store.inflight} store calls"
        for room in self.registry.rooms.values():
            if room.uncommitted_bytes:
                return "uncommitted updates"
            if any(conn.queued_bytes for conn in room.connections):
                return "queued frames"
            if not room.connections and self.settings.room_idle_seconds == 0:
                return "an idle room to unload"
        for link in self.links:
            if not link.quiet():
                return f"link: {link.describe()}"
        return None

    async def settle(self) -> None:
        """Run the server side until nothing is in flight anywhere; then check how every
        finished session ended."""
        loop = asyncio.get_running_loop()
        busy: str | None = None
        try:
            async with asyncio.timeout(SETTLE_SECONDS):
                while True:
                    self.activity.event.clear()
                    busy = self.busy()
                    if busy is None:
                        break
                    if busy == "an idle room to unload":
                        # The registry's unload timer (0 s) is due; it tells nobody when it
                        # ran, so look again after the loop's next round.
                        loop.call_soon(self.activity.notify)
                    await self.activity.event.wait()
        except TimeoutError:
            raise AssertionError(f"not quiescent after {SETTLE_SECONDS}s: {busy}") from None
        self.reap()

    def reap(self) -> None:
        """Forget finished connections, checking that each ended cleanly."""
        still: list[Link] = []
        for link in self.links:
            assert link.session is not None and link.reader is not None
            if link.session.done():
                link.session.result()  # re-raises whatever crashed the session
            if not (link.session.done() and link.reader.done()):
                still.append(link)
                continue
            conn = link.session.result()
            allowed = {CloseCode.NORMAL, CloseCode.SERVICE_RESTART}
            assert conn.close_code in allowed, f"server closed with {conn.close_code}"
            assert link.close_code in allowed, f"client saw close {link.close_code}"
        self.links = still

    def room(self) -> Room:
        return self.registry.rooms[ROOM]

    async def aclose(self) -> None:
        """Final cleanup, also after a failure: stop everything, leak no task."""
        try:
            if self.running:
                self.running = False
                await self.registry.close()
        finally:
            for link in self.links:
                for task in (link.session, link.reader):
                    if task is not None and not task.done():
                        task.cancel()
            tasks = [t for link in self.links for t in (link.session, link.reader) if t]
            await asyncio.gather(*tasks, return_exceptions=True)
            self.links = []
            await self.store.close()


# -- the client replica ---------------------------------------------------------------------


class YjsApplier:
    """Applies remote updates to a pycrdt doc the way Yjs does, whatever their order.

    pycrdt 0.14's own pending handling gets stuck on some orders (e.g. of one client's
    updates u0 "m.a = 0", u1 "m.a = 1", u2 "insert into t", applying u1, u2, u0 leaves
    u1 and u2 pending for good; see :func:`test_room_integrates_updates_in_any_order`).
    Yjs does not, so neither may a client that stands in for a y-websocket client (else
    the test would find pycrdt's bug, not the server's): it keeps every update that is not
    fully integrated and applies them again, merged, after each new one, until they are.
    """

    def __init__(self, doc: Doc[Any]) -> None:
        self.doc = doc
        self.held: list[tuple[bytes, UpdateSummary]] = []

    def apply(self, update: bytes) -> None:
        self.doc.apply_update(update)
        self.held.append((update, inspect_update(update)))
        if len(self.held) > 1:
            self.doc.apply_update(merge_updates(*(u for u, _ in self.held)))
        now = state(self.doc)
        self.held = [(u, s) for u, s in self.held if pending_after(s, now)]


EditKind = Literal[
    "map_set", "map_delete", "array_insert", "array_delete", "text_insert", "text_delete"
]


@dataclass(frozen=True)
class Edit:
    """One operation; only the fields its kind uses are drawn."""

    kind: EditKind
    key: str = "a"
    value: Json = None
    pos: int = 0
    count: int = 1
    text: str = ""


class Replica:
    """A pycrdt document that talks like a y-websocket client, one step at a time."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.doc: Doc[Any] = Doc(client_id=1000 + index)
        self.confirmed: Doc[Any] = Doc(client_id=2000 + index)
        """Only what the server sent: the server's echo is its proof of durability."""
        self.outbox: list[bytes] = []
        """Updates of local edits not sent yet."""
        self.sent_updates: list[bytes] = []
        self.link: Link | None = None
        self._doc_applier = YjsApplier(self.doc)
        self._confirmed_applier = YjsApplier(self.confirmed)
        self.awareness_clock = 0
        self.peers: dict[int, str] = {}
        self._remote = False
        self.doc.observe(self._on_transaction)

    def _on_transaction(self, event: TransactionEvent) -> None:
        if not self._remote:
            self.outbox.append(event.update)

    @property
    def connected(self) -> bool:
        return self.link is not None and self.link.alive

    def awareness_frame(self) -> bytes:
        self.awareness_clock += 1
        state = json.dumps({"user": f"u{self.index}"})
        entry = AwarenessEntry(self.doc.client_id, self.awareness_clock, state)
        return encode_awareness(encode_awareness_entries([entry]))

    def edit(self, edits: Sequence[Edit]) -> None:
        """Apply local edits in one transaction: one update goes to the outbox."""
        with self.doc.transaction():
            for e in edits:
                self._apply_edit(e)

    def _apply_edit(self, e: Edit) -> None:
        m = self.doc.get("m", type=Map)
        a = self.doc.get("a", type=Array)
        t = self.doc.get("t", type=Text)
        if e.kind == "map_set":
            m[e.key] = e.value
        elif e.kind == "map_delete":
            if e.key in m:
                del m[e.key]
        elif e.kind == "array_insert":
            a.insert(e.pos % (len(a) + 1), e.value)
        elif e.kind == "array_delete":
            if len(a):
                start = e.pos % len(a)
                del a[start : min(len(a), start + e.count)]
        else:
            # pycrdt indexes Text by UTF-8 byte; edit at character boundaries only.
            s = str(t)
            if e.kind == "text_insert":
                k = e.pos % (len(s) + 1)
                t.insert(len(s[:k].encode()), e.text)
            elif s:
                k = e.pos % len(s)
                stop = min(len(s), k + e.count)
                del t[len(s[:k].encode()) : len(s[:stop].encode())]

    async def deliver(self, k: int) -> None:
        assert self.link is not None and self.outbox
        update = self.outbox.pop(k % len(self.outbox))
        self.sent_updates.append(update)
        await self.link.send(encode_update(update))

    async def resend(self, k: int) -> None:
        assert self.link is not None and self.sent_updates
        await self.link.send(encode_update(self.sent_updates[k % len(self.sent_updates)]))

    async def process(self, limit: int | None = None) -> int:
        """Handle up to ``limit`` received frames in order, as y-websocket's client does."""
        link = self.link
        done = 0
        while link is not None and link.inbox and (limit is None or done < limit):
            message = decode_message(link.inbox.popleft())
            done += 1
            if isinstance(message, SyncStep1):
                await link.send(encode_sync_step2(self.doc.get_update(message.state_vector)))
            elif isinstance(message, SyncStep2 | SyncUpdate):
                self._remote = True
                try:
                    self._doc_applier.apply(message.update)
                finally:
                    self._remote = False
                self._confirmed_applier.apply(message.update)
            elif isinstance(message, AwarenessMessage):
                for entry in decode_awareness(
                    message.payload, max_state_bytes=1 << 20, max_entries=1 << 10
                ):
                    if entry.removed:
                        self.peers.pop(entry.client_id, None)
                    else:
                        self.peers[entry.client_id] = entry.state
            elif isinstance(message, AuthDenied):
                raise AssertionError(f"anonymous writer was denied: {message.reason}")
            else:
                assert isinstance(message, QueryAwareness)
        return done


# -- comparing documents --------------------------------------------------------------------


def content(doc: Doc[Any]) -> Content:
    return {
        "m": doc.get("m", type=Map).to_py(),
        "a": doc.get("a", type=Array).to_py(),
        "t": str(doc.get("t", type=Text)),
    }


def copy_of(doc: Doc[Any]) -> Doc[Any]:
    """A fresh document with ``doc``'s content (reading roots never touches ``doc``)."""
    fresh: Doc[Any] = Doc()
    fresh.apply_update(doc.get_update())
    return fresh


def state(doc: Doc[Any]) -> dict[int, int]:
    return decode_state_vector(doc.get_state())


def covers(big: dict[int, int], small: dict[int, int]) -> bool:
    return all(big.get(client, 0) >= clock for client, clock in small.items())


async def stored_doc(path: Path) -> Doc[Any]:
    """The document as a fresh store on the same file has it."""
    store = SqliteStore(path)
    await store.open()
    try:
        log = await store.load(ROOM)
    finally:
        await store.close()
    return doc_of(log)


def doc_of(log: StoredLog | None) -> Doc[Any]:
    """A document from a stored log, replayed as the room does: merged, in one update."""
    doc: Doc[Any] = Doc()
    if log is not None and log.updates:
        doc.apply_update(merge_updates(*log.updates))
    return doc


async def reloaded_room(path: Path, settings: Settings) -> Room:
    """The room as a fresh server process would load it."""
    store = SqliteStore(path)
    await store.open()
    try:
        return await Room.load(ROOM, store, settings, LocalBus(), lambda _: None)
    finally:
        await store.close()


class ErrorLog(logging.Handler):
    """Collects ERROR records of the server: none is expected with well-behaved clients."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def server_errors() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    logger = logging.getLogger("crdt_server")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


async def process_until_quiet(harness: Harness, replicas: Sequence[Replica]) -> None:
    for _ in range(MAX_ROUNDS):
        await harness.settle()
        moved = 0
        for replica in replicas:
            moved += await replica.process()
        if not moved:
            return
    raise AssertionError(f"still exchanging messages after {MAX_ROUNDS} rounds")


async def converge(harness: Harness, replicas: Sequence[Replica]) -> None:
    """Connect whoever is offline, deliver every outbox, process until nothing moves.

    Replicas that were online all along do not resync: they must have converged through
    what the room sent them (its step 2 when they joined, then its broadcasts)."""
    for replica in replicas:
        if not replica.connected:
            await harness.connect(replica)
    await harness.settle()
    for replica in replicas:
        while replica.outbox:
            await replica.deliver(0)
    await process_until_quiet(harness, replicas)


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

keys = st.sampled_from(["a", "b", "c", "d"])
scalars: st.SearchStrategy[Json] = (
    st.integers(-1000, 1000) | st.text(max_size=4) | st.booleans() | st.none()
)
values: st.SearchStrategy[Json] = (
    scalars
    | st.lists(scalars, max_size=3)
    | st.dictionaries(keys, scalars | st.dictionaries(keys, scalars, max_size=2), max_size=3)
)
texts = st.text(alphabet="abxyzé😀\n", min_size=1, max_size=4)
positions = st.integers(0, 50)
counts = st.integers(1, 4)
edits = (
    st.builds(Edit, kind=st.just("map_set"), key=keys, value=values)
    | st.builds(Edit, kind=st.just("map_delete"), key=keys)
    | st.builds(Edit, kind=st.just("array_insert"), pos=positions, value=values)
    | st.builds(Edit, kind=st.just("array_delete"), pos=positions, count=counts)
    | st.builds(Edit, kind=st.just("text_insert"), pos=positions, text=texts)
    | st.builds(Edit, kind=st.just("text_delete"), pos=positions, count=counts)
)
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
    max_examples=300,  # about 25 s on 2 cores
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
