"""The in-process mode: real rooms over in-memory channels, no subprocess, no socket.

Its instruments are :mod:`crdt_server.testing.instruments`; the documents its clients hold,
:mod:`crdt_server.testing.yjs`.

The server side is the real one: a :class:`~storage.SqliteStore` file (inline: its
statements run on the test's thread), a
:class:`~crdt_server.core.registry.RoomRegistry` and :func:`serve_connection` for every
connection, over :func:`~crdt_server.wire.transport.memory_pair` transports, on the test's
event loop. The client side is :class:`InProcessClient`, a pycrdt document speaking
y-protocols the way a y-websocket client does, with the same interface as the socket client
:class:`crdt_server.testing.YClient` (``doc``, ``confirmed``, ``flush``, ``go_offline``,
``reconnect``, ``wait``, ``is_confirmed``, ``close``).

Synchronisation is by instrumentation, never by sleeping: the server end of every transport
and the store are wrapped, so :meth:`InProcessServer.settle` knows when every session waits
for input with nothing unread, every client reader waits with nothing unread, the store has
no call in flight and no room holds uncommitted updates. A run is therefore reproducible,
which is what lets hypothesis replay and shrink a failing example.

For step-by-step control (a hypothesis state machine deciding which update is sent when and
which client reads when), use the lower-level methods: :meth:`InProcessClient.deliver`,
:meth:`InProcessClient.process`, :meth:`InProcessServer.settle`.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pycrdt import Doc, TransactionEvent

from crdt_server.auth.principals import ANONYMOUS, Principal
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
from crdt_server.core.hooks import Hooks
from crdt_server.core.metrics import Metrics
from crdt_server.core.registry import RoomRegistry
from crdt_server.core.room import Room, RoomServices
from crdt_server.errors import CloseCode
from crdt_server.settings import Settings
from crdt_server.storage import SqliteStore

from .edits import Edit, apply_edit
from .instruments import (
    Activity,
    ErrorLog,
    Link,
    ServerEnd,
    TrackedStore,
    serve_memory,
    server_errors,
)
from .yjs import YjsApplier, copy_of, covers, doc_of, state

__all__ = [
    "FAST_TMP",
    "Activity",
    "ErrorLog",
    "InProcessClient",
    "InProcessServer",
    "Link",
    "ServerEnd",
    "TrackedStore",
    "YjsApplier",
    "copy_of",
    "covers",
    "doc_of",
    "in_process_server",
    "kit_settings",
    "server_errors",
    "state",
]

SETTLE_SECONDS = 10.0
"""Deadline of one settle; far above what a settle takes, so only a hang trips it."""
MAX_ROUNDS = 200
"""Bound on the settle/process rounds of :meth:`InProcessServer.run_until`."""
FAST_TMP = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
"""Where temporary SQLite files go: in memory if the system offers it (every commit fsyncs,
and crash durability is not what in-process tests are about)."""
ROOM = "w1/guests"


# -- the client -----------------------------------------------------------------------------


class InProcessClient:
    """A pycrdt document that talks like a y-websocket client, over an in-memory link.

    Local edits (any transaction on :attr:`doc`) wait in :attr:`outbox` until sent:
    :meth:`flush` sends them all in order, :meth:`deliver` one of them (so a test can send
    them out of order). Received frames wait in the link's inbox until :meth:`process`
    handles them (the convenience methods do that for you).
    """

    def __init__(
        self,
        index: int,
        *,
        room: str = ROOM,
        principal: Principal = ANONYMOUS,
        client_id: int | None = None,
    ) -> None:
        self.index = index
        self.room = room
        self.principal = principal
        self.doc: Doc[Any] = Doc(client_id=1000 + index if client_id is None else client_id)
        self.confirmed: Doc[Any] = Doc(client_id=2000 + index)
        """Only what the server sent: the server's echo is its proof of durability."""
        self.outbox: list[bytes] = []
        """Updates of local edits not sent yet."""
        self.sent_updates: list[bytes] = []
        self.link: Link | None = None
        self.server: InProcessServer | None = None
        self.denied: list[str] = []
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

    @property
    def online(self) -> bool:
        """Same as :attr:`connected` (the name :class:`YClient` uses)."""
        return self.connected

    @property
    def close_code(self) -> int | None:
        """The close code the client saw on its last connection (None while open)."""
        return None if self.link is None else self.link.close_code

    def awareness_frame(self) -> bytes:
        self.awareness_clock += 1
        payload = json.dumps({"user": f"u{self.index}"})
        entry = AwarenessEntry(self.doc.client_id, self.awareness_clock, payload)
        return encode_awareness(encode_awareness_entries([entry]))

    def edit(self, edits: Sequence[Edit]) -> None:
        """Apply generic edits in one transaction: one update goes to the outbox."""
        with self.doc.transaction():
            for e in edits:
                apply_edit(self.doc, e)

    async def deliver(self, k: int) -> None:
        """Send the ``k``-th unsent update (modulo the outbox size)."""
        assert self.link is not None and self.outbox
        update = self.outbox.pop(k % len(self.outbox))
        self.sent_updates.append(update)
        await self.link.send(encode_update(update))

    async def resend(self, k: int) -> None:
        """Send an already sent update again (a duplicate)."""
        assert self.link is not None and self.sent_updates
        await self.link.send(encode_update(self.sent_updates[k % len(self.sent_updates)]))

    async def send_raw(self, frame: bytes | str) -> None:
        """Send any frame, well-formed or not (robustness tests)."""
        assert self.link is not None
        await self.link.send(frame)

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
                self.denied.append(message.reason)
            else:
                assert isinstance(message, QueryAwareness)
        return done

    # The interface shared with YClient -------------------------------------------------

    def _server(self) -> InProcessServer:
        assert self.server is not None, "connect the client through InProcessServer.client()"
        return self.server

    async def flush(self) -> None:
        """Send every local edit not sent yet, in order."""
        while self.outbox and self.connected:
            await self.deliver(0)

    async def go_offline(self) -> None:
        """Close the connection but keep the document; later edits wait in the outbox."""
        if self.link is not None and self.connected:
            await self.link.close()
            await self._server().settle()

    async def reconnect(self, timeout: float = 10.0) -> None:
        """Come back: sync step 1 both ways, the offline edits go in this client's step 2."""
        server = self._server()
        if not self.connected:
            await server.connect(self, resync=True)
        async with asyncio.timeout(timeout):
            await server.sync()

    def unconfirmed(self) -> int:
        """How many clock units of this client's own edits the server has not echoed yet."""
        mine = state(self.doc).get(self.doc.client_id, 0)
        echoed = state(self.confirmed).get(self.doc.client_id, 0)
        return max(0, mine - echoed)

    def is_confirmed(self) -> bool:
        """True if the server echoed every edit this client made."""
        return self.unconfirmed() == 0

    async def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Run server and clients until ``predicate()`` holds; fails as soon as nothing
        moves any more (in process, nothing else can make it true)."""
        await self._server().run_until(predicate, timeout)

    async def close(self) -> None:
        if self.link is not None and self.connected:
            await self.link.close()


# -- the server side ------------------------------------------------------------------------


class InProcessServer:
    """The server side (store + registry + sessions) of one test, on the running loop.

    ``async with in_process_server() as server`` gives a started one over a temporary
    SQLite file; ``await server.client("w1/guests")`` a connected, synced client.
    """

    def __init__(self, path: Path, settings: Settings, *, hooks: Hooks | None = None) -> None:
        self.path = path
        self.settings = settings
        self.hooks = hooks or Hooks()
        """The features the rooms run (none by default: the sync core alone)."""
        self.activity = Activity()
        self.metrics = Metrics()
        """Shared by every registry of this server (a new one costs ~2 ms of metric setup)."""
        self.store = TrackedStore(path, self.activity)
        self.registry = RoomRegistry(
            RoomServices(self.store, settings, LocalBus(), hooks=self.hooks, metrics=self.metrics)
        )
        self.links: list[Link] = []
        self.clients: list[InProcessClient] = []
        self.running = False
        self.restarts = 0
        self.compactions = 0
        """Compactions done by earlier stores (before restarts)."""
        self.allowed_closes: set[int] = {CloseCode.NORMAL, CloseCode.SERVICE_RESTART}
        """Close codes a finished connection may have ended with; a robustness test adds
        the refusals it provokes (1003, 1007, 1008, 1009)."""
        self.closed_with: list[int] = []
        """The server-side close code of every connection reaped so far."""

    async def start(self) -> None:
        self.store = TrackedStore(self.path, self.activity)
        await self.store.open()
        # The events' tables, as every server's store has them (the events feature's, named
        # through the app, the one list of features): the rooms' hooks may store events
        # (EventLog), and the kit starts no extension.
        from crdt_server.app import EVENT_TABLES

        await self.store.install(EVENT_TABLES.schema)
        self.registry = RoomRegistry(
            RoomServices(
                self.store, self.settings, LocalBus(), hooks=self.hooks, metrics=self.metrics
            )
        )
        await self.registry.start()
        self.running = True

    async def reset(self) -> None:
        """Make this running server as good as a new one, for the next test or example.

        Every client connection is closed (by the client, as at the end of a test) and
        checked to have ended cleanly; the rooms are flushed and unloaded with the registry,
        which is replaced by a new one; every document is deleted from the store, which is
        then checked to hold none; the server forgets its clients (so client ids start again
        at 1000, as on a new server), links, counters and close-code allowances.
        Raises AssertionError if any of that fails: the server must not be reused then.
        """
        assert self.running, "reset() needs a running server"
        for link in self.links:
            if not link.client_closed:
                await link.close()
        await self.settle()
        assert not self.links, "connections still open after settling"
        await self.registry.close()
        self.running = False
        await self.store.delete("")
        left = await self.store.list()
        assert not left, f"documents left after reset: {left}"
        self.registry = RoomRegistry(
            RoomServices(
                self.store, self.settings, LocalBus(), hooks=self.hooks, metrics=self.metrics
            )
        )
        await self.registry.start()
        self.running = True
        self.clients = []
        self.closed_with = []
        self.allowed_closes = {CloseCode.NORMAL, CloseCode.SERVICE_RESTART}
        self.restarts = 0
        self.compactions = 0
        self.store.compactions = 0

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
        """Stop (flushing everything) and start again on the same file."""
        await self.stop()
        self.compactions += self.store.compactions
        await self.start()
        self.restarts += 1

    async def connect(self, client: InProcessClient, *, resync: bool = False) -> Link:
        """Open a connection for ``client`` and send what y-websocket sends on open.

        With ``resync`` the step 1 carries the state of ``client.confirmed``: the server's
        step 2 then also echoes the client's own edits whose echo a lost connection took
        away, so :meth:`InProcessClient.is_confirmed` can tell what the server holds."""
        assert self.running
        client_end, server_end, session = serve_memory(
            self.registry, self.settings, client.room, client.principal, self.activity
        )
        link = Link(client_end, server_end, self.activity)
        link.session = session
        link.reader = asyncio.create_task(link.read_loop())
        self.links.append(link)
        client.link = link
        client.server = self
        if client not in self.clients:
            self.clients.append(client)
        # What y-websocket sends on open: sync step 1, then our awareness state.
        source = client.confirmed if resync else client.doc
        await link.send(encode_sync_step1(source.get_state()))
        await link.send(client.awareness_frame())
        return link

    async def client(
        self,
        room: str = ROOM,
        *,
        principal: Principal = ANONYMOUS,
        client_id: int | None = None,
        sync: bool = True,
    ) -> InProcessClient:
        """A new client of ``room``, connected (and synced unless ``sync=False``)."""
        client = InProcessClient(
            len(self.clients), room=room, principal=principal, client_id=client_id
        )
        await self.connect(client)
        if sync:
            await self.sync()
        return client

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
            if room.presence_folding:
                return "folded presence"
        for link in self.links:
            if not link.quiet():
                return "a link"  # described only if it never settles (see settle)
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
                    elif busy == "folded presence":
                        # Its window ends on a timer that tells nobody either.
                        loop.call_later(self.settings.presence_batch_seconds, self.activity.notify)
                    await self.activity.event.wait()
        except TimeoutError:
            links = "; ".join(link.describe() for link in self.links if not link.quiet())
            busy = f"{busy} ({links})" if links else busy
            raise AssertionError(f"not quiescent after {SETTLE_SECONDS}s: {busy}") from None
        self.reap()

    async def pump(self) -> int:
        """Settle, then let every client handle what it received; the frames handled."""
        await self.settle()
        moved = 0
        for client in self.clients:
            moved += await client.process()
        return moved

    async def run_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Settle and pump until ``predicate()`` holds; an AssertionError once nothing moves
        (or after ``timeout`` seconds, or :data:`MAX_ROUNDS` rounds)."""
        async with asyncio.timeout(timeout):
            for _ in range(MAX_ROUNDS):
                moved = await self.pump()
                if predicate():
                    return
                if not moved:
                    raise AssertionError("nothing moves any more and the condition is false")
        raise AssertionError(f"still exchanging messages after {MAX_ROUNDS} rounds")

    async def sync(self) -> None:
        """Settle and pump until no frame moves anywhere."""
        for _ in range(MAX_ROUNDS):
            if not await self.pump():
                return
        raise AssertionError(f"still exchanging messages after {MAX_ROUNDS} rounds")

    async def converge(self, clients: Sequence[InProcessClient] | None = None) -> None:
        """Connect whoever is offline, deliver every outbox, pump until nothing moves.

        Clients that were online all along do not resync: they must have converged through
        what the room sent them (its step 2 when they joined, then its broadcasts)."""
        clients = self.clients if clients is None else clients
        for client in clients:
            if not client.connected:
                await self.connect(client)
        await self.settle()
        for client in clients:
            while client.outbox:
                await client.deliver(0)
        await self.sync()

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
            allowed = self.allowed_closes
            assert conn.close_code in allowed, f"server closed with {conn.close_code}"
            assert link.close_code in allowed, f"client saw close {link.close_code}"
            if conn.close_code is not None:
                self.closed_with.append(conn.close_code)
        self.links = still

    def room(self, name: str = ROOM) -> Room:
        """The loaded room ``name`` (KeyError if it is not loaded)."""
        return self.registry.rooms[name]

    async def stored_doc(self, room: str = ROOM) -> Doc[Any]:
        """Room ``room`` as a fresh store on the same file has it (the server stopped)."""
        store = SqliteStore(self.path)
        await store.open()
        try:
            return doc_of(await store.load(room))
        finally:
            await store.close()

    async def reloaded_room(self, room: str = ROOM) -> Room:
        """Room ``room`` as a fresh server process would load it."""
        store = SqliteStore(self.path)
        await store.open()
        try:
            return await Room.load(
                room, RoomServices(store, self.settings, LocalBus()), lambda _: None
            )
        finally:
            await store.close()

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


def kit_settings(data_dir: Path) -> Settings:
    """An in-process server's settings when the caller gives none: rooms stay loaded, and
    presence is relayed as it comes, never folded on a timer (the same frames every run)."""
    return Settings(
        data_dir=data_dir,
        room_idle_seconds=3600,
        compact_after_updates=1000,
        presence_batch_seconds=0,
    )


@asynccontextmanager
async def in_process_server(
    settings: Settings | None = None, *, directory: Path | None = None, hooks: Hooks | None = None
) -> AsyncIterator[InProcessServer]:
    """A started :class:`InProcessServer` over a SQLite file in ``directory`` (a temporary
    one, in memory where the system offers it, by default), its rooms running ``hooks``;
    stopped and removed after."""
    with tempfile.TemporaryDirectory(prefix="crdt-inprocess-", dir=FAST_TMP) as tmp:
        data_dir = directory or Path(tmp)
        config = settings or kit_settings(data_dir)
        server = InProcessServer(config.sqlite_path, config, hooks=hooks)
        await server.start()
        try:
            yield server
        finally:
            await server.aclose()
