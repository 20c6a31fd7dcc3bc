"""Serve one accepted connection: greet, then read frames until the peer or the server ends it.

Per frame: size check, strict decode, rate and permission checks, structural update check,
apply, then (in the room) commit and broadcast. Any error the peer caused closes only this
connection with its documented code; the room and every other connection carry on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from crdt_server import clock
from crdt_server.auth.principals import Principal
from crdt_server.codec.awareness import (
    decode_awareness,
    encode_awareness_entries,
    stamp_identity,
)
from crdt_server.codec.protocol import (
    AuthDenied,
    AwarenessMessage,
    Message,
    MessageType,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncType,
    SyncUpdate,
    decode_message,
    encode_awareness,
    encode_permission_denied,
    encode_sync_step1,
)
from crdt_server.codec.updates import (
    OverItemLimit,
    UpdateError,
    UpdateSummary,
)
from crdt_server.core.connection import Connection
from crdt_server.core.crdt import inspect_off_loop
from crdt_server.core.hooks import Sender
from crdt_server.core.keepalive import Keepalive, Ticked
from crdt_server.core.limits import TokenBucket
from crdt_server.core.metrics import Metrics
from crdt_server.core.pacing import Pacer, PacerSlot
from crdt_server.core.registry import RoomRegistry
from crdt_server.core.room import Room, RoomFailed
from crdt_server.errors import (
    CloseCode,
    MessageTooBig,
    Overloaded,
    PeerError,
    PolicyViolation,
    ProtocolError,
    TooManyItems,
    UnsupportedData,
)
from crdt_server.settings import Settings
from crdt_server.storage import StoreError
from crdt_server.wire.transport import Transport, TransportClosed

__all__ = ["Dialect", "OneOfMany", "serve_connection"]

log = logging.getLogger("crdt_server.core.session")

MAX_RUN = 64
"""The most updates of one writer's, arrived together, that are merged into one (see
:meth:`~crdt_server.core.room.Room.apply_run`); as many as its socket's inbox holds before
its reading pauses."""

_EMPTY_AWARENESS = encode_awareness(encode_awareness_entries(()))


@dataclass(frozen=True, slots=True)
class Dialect:
    """What a session says beyond y-protocols: the Hocuspocus provider's (see
    :mod:`crdt_server.core.multiplex`).

    ``applied`` is sent once a peer's update or first step 2 is committed (or brought
    nothing new), for an update dropped under load once the answer to the pull after it is;
    ``dropped`` for a read-only peer's write, each time, instead of y-protocols' permission
    denied. A frame whose first
    byte is ``stateless_type`` is a stateless message, read by ``read_stateless`` (its
    payload, or ``None``: malformed) and relayed to the room's other connections that
    speak the dialect; an empty frame asks the session to send the room's step 1 (the
    peer's updates were dropped: it answers with what the room lacks)."""

    applied: bytes
    dropped: bytes
    stateless_type: int
    read_stateless: Callable[[bytes], str | None]
    write_stateless: Callable[[str], bytes]
    max_stateless_bytes: int = 4096
    max_stateless_per_second: float = 10.0


@runtime_checkable
class OneOfMany(Protocol):
    """A transport that is one document of a socket carrying several (a Hocuspocus
    socket's :class:`~crdt_server.core.multiplex.DocumentChannel`)."""

    def close_alone(self) -> None:
        """Make its next close end this document alone, whatever the code (a refusal of
        the document's own message, such as :class:`~crdt_server.errors.TooManyItems`):
        the socket's other documents carry on."""


async def serve_connection(
    transport: Transport,
    registry: RoomRegistry,
    name: str,
    principal: Principal,
    settings: Settings,
    *,
    peer: str = "",
    dialect: Dialect | None = None,
) -> Connection:
    """Run one connection to the end; returns it (its ``close_code`` says how it ended).
    With a ``dialect``, the peer is a Hocuspocus provider's document."""
    metrics = registry.metrics
    conn = Connection(
        transport,
        principal,
        max_queue_bytes=settings.outbound_queue_bytes,
        max_queue_messages=settings.outbound_queue_messages,
        close_timeout=settings.close_timeout_seconds,
        peer=peer,
        metrics=metrics,
    )
    conn.stateless = dialect is not None
    conn.write_stateless = dialect.write_stateless if dialect is not None else None
    metrics.connections_open += 1
    try:
        try:
            room = await registry.acquire(name)
        except PeerError as exc:
            await conn.finish(exc.close_code, exc.message)
            return conn
        except StoreError as exc:
            log.error("cannot load %s: %s", name, exc)
            await conn.finish(CloseCode.INTERNAL_ERROR, "storage failure, reconnect")
            return conn
        conn.start()
        try:
            session = _Session(
                conn, room, settings, metrics, registry.pacer, dialect, registry.keepalive
            )
            code, reason = await session.run()
        finally:
            registry.release(room)
        if session.alone and isinstance(transport, OneOfMany):
            transport.close_alone()
        await conn.finish(code, reason)
        return conn
    finally:
        metrics.connections_open -= 1
        metrics.connections_closed.labels(str(conn.close_code)).inc()


class _Session:
    # Slots: one of these lives as long as its connection (no __dict__ on each idle one).
    __slots__ = (
        "alone",
        "awareness",
        "conn",
        "dialect",
        "identity",
        "keepalive",
        "keepalive_seen",
        "metrics",
        "next_frame",
        "pacer",
        "pull_sent",
        "pulling",
        "room",
        "sender",
        "settings",
        "stateless",
        "step2_seen",
        "ticket",
        "unanswered",
        "updates",
    )

    def __init__(
        self,
        conn: Connection,
        room: Room,
        settings: Settings,
        metrics: Metrics,
        pacer: Pacer,
        dialect: Dialect | None = None,
        keepalive: Keepalive | None = None,
    ) -> None:
        self.conn = conn
        self.dialect = dialect
        self.keepalive = keepalive
        """Where a ``/sync`` session is ticked (a Hocuspocus socket pings itself)."""
        self.keepalive_seen = 0
        """The connection's ``frames_sent`` at the last keepalive tick."""
        self.stateless: TokenBucket | None = None
        """The stateless messages' rate (a Hocuspocus document's alone: y-websocket has none)."""
        if dialect is not None:
            rate = dialect.max_stateless_per_second
            self.stateless = TokenBucket(rate, rate)
        self.pacer = pacer
        self.ticket = PacerSlot()
        self.room = room
        self.settings = settings
        self.metrics = metrics
        burst = 2 * settings.max_updates_per_second
        self.updates = TokenBucket(settings.max_updates_per_second, burst)
        self.sender = Sender(conn.principal.actor, conn.id)
        self.alone = False
        """The session ended on a refusal of one message of its document's own (see
        :class:`OneOfMany`), not of the connection's."""
        self.next_frame: bytes | str | None = None
        """A frame taken from the connection and not handled yet (see :meth:`_run_of`)."""
        self.pulling: asyncio.Future[None] | None = None
        """A Hocuspocus document's dropped updates are pulled when this is done."""
        self.unanswered = 0
        """SyncStatus answers owed to a Hocuspocus peer for updates dropped under load: each
        is sent once the step 2 that answers the pull after them is committed (the
        provider counts its unsaved changes down on each; it ignores SyncStatus 0)."""
        self.step2_seen = False
        """The peer's first step 2 came (the provider counts it as one change at connect)."""
        self.pull_sent = False
        """A pull (the room's step 1) went to the peer since its last step 2."""
        burst = 2 * settings.max_awareness_per_second
        self.awareness = TokenBucket(settings.max_awareness_per_second, burst)
        principal = conn.principal
        self.identity: dict[str, str] | None = (
            {"id": principal.user_id, "name": principal.name, "role": principal.role}
            if principal.authenticated
            else None
        )

    async def run(self) -> tuple[int, str]:
        """Serve until the end; return the close code and reason to finish with.

        The read loop is here, not in a coroutine of its own, and waits on the transport's
        own coroutine (:meth:`Connection.wait_message`): every idle connection holds its
        session's frames for as long as it is open, and each frame more is about 250 bytes
        on each (issue 76)."""
        conn, room, metrics = self.conn, self.room, self.metrics
        code: int = CloseCode.NORMAL
        reason = ""
        expiry: clock.Timer | None = None
        expires_at = conn.principal.expires_at
        # A socket opened with a device session's token outlives the token: it closes when
        # its device session ends (the people feature closes it), not at ``exp``. By the
        # server's clock, which checked ``exp`` at the upgrade (a fake one in tests).
        if expires_at is not None and conn.principal.session_id is None:
            expiry = clock.call_at(
                expires_at,
                conn.request_close,
                CloseCode.TOKEN_EXPIRED,
                "token expired",
            )
        keepalive = self.keepalive if self.dialect is None else None
        ticked: list[Ticked] = []
        if keepalive is not None:  # a Hocuspocus socket pings itself (core/multiplex.py)
            self.keepalive_seen = conn.frames_sent
            ticked = keepalive.add(self)
        max_bytes = self.settings.max_message_bytes
        max_uncommitted = self.settings.max_uncommitted_bytes
        try:
            room.join(conn)
            while not conn.closing:
                frame = self.next_frame
                if frame is None:
                    frame = await conn.wait_message()
                    conn.mark_activity()
                else:
                    self.next_frame = None
                if isinstance(frame, str):
                    raise UnsupportedData("text frames are not part of the protocol; send binary")
                metrics.bytes_in += len(frame)
                if len(frame) > max_bytes:
                    raise MessageTooBig(f"message of {len(frame)} bytes, the limit is {max_bytes}")
                dialect = self.dialect
                if dialect is not None and not frame:
                    # One of its updates was dropped under load: answered once pulled (Yjs
                    # sync is state based: the answer to a pull brings it).
                    self.unanswered += 1
                    self._send_pull()
                elif dialect is not None and frame[0] == dialect.stateless_type:
                    self._stateless(dialect, frame)
                else:
                    await self._handle(decode_message(frame))
                if room.uncommitted_bytes > max_uncommitted:
                    # Backpressure: stop reading this writer until the store catches up.
                    await room.flush()
        except PeerError as exc:
            code, reason = exc.close_code, exc.message
            self.alone = isinstance(exc, TooManyItems)
            metrics.updates_rejected.labels(type(exc).__name__).inc()
            log.info("closing %s in %s with %d: %s", conn.id, room.name, code, reason)
        except RoomFailed:
            code, reason = CloseCode.INTERNAL_ERROR, "storage failure, reconnect"
        except TransportClosed:
            pass
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not conn.interrupted or task is None:
                raise
            task.uncancel()
        finally:
            if expiry is not None:
                expiry.cancel()
            if self.pulling is not None:
                self.pulling.cancel()
            if keepalive is not None:
                keepalive.remove(self, ticked)
            room.leave(conn)
        return code, reason

    def keepalive_tick(self) -> None:
        """One keepalive tick (every
        :data:`~crdt_server.core.keepalive.KEEPALIVE_SECONDS`): if nothing was sent since
        the last one, send an empty awareness update (a no-op for every client, but a
        message)."""
        conn = self.conn
        if conn.closing:
            return
        if conn.frames_sent == self.keepalive_seen:
            conn.send(_EMPTY_AWARENESS)
        self.keepalive_seen = conn.frames_sent

    async def _handle(self, message: Message) -> None:
        if isinstance(message, SyncUpdate | SyncStep2):
            room = self.room
            if self.dialect is None and self.conn.principal.can_write:
                await self._under_bound(room)
            # Under overload, connections take turns; a quiet room's go first.
            await self.pacer.turn(self.ticket, quiet=room.backlog_quiet, share=room.wedding_id)
            started = time.perf_counter()
            if isinstance(message, SyncUpdate) and self.dialect is None:
                await self._updates(self._run_of(message.update, room.backlog_left))
            else:
                await self._update(message.update, step2=isinstance(message, SyncStep2))
            self.pacer.spent(self.ticket, time.perf_counter() - started)
        elif isinstance(message, SyncStep1):
            await self.room.answer_step1(self.conn, message.state_vector)
        elif isinstance(message, AwarenessMessage):
            self._awareness(message.payload)
        elif isinstance(message, QueryAwareness):
            self.conn.send(self.room.awareness_frame())
        elif isinstance(message, AuthDenied):
            log.info("%s sent an auth message; ignored (only servers send them)", self.conn.id)

    async def _under_bound(self, room: Room) -> None:
        """Backpressure (:mod:`crdt_server.core.backlog`): while ``room`` is over its bound,
        the update waits, not taken in, and this connection is not read, so TCP carries the
        pressure to the writer. One still paused after the limit keeps flooding a room that
        cannot catch up: :class:`Overloaded`."""
        if room.backlog_over and not await room.backlog_pause():
            limit = self.settings.max_read_pause_seconds
            raise Overloaded(
                f"the room stayed over its backlog bound for {limit:g} s; try again later"
            )

    def _run_of(self, first: bytes, most: int) -> list[bytes]:
        """``first`` and the updates that arrived right behind it (already read from the
        socket, none waited for): at most ``most`` (what the room may still take in),
        :data:`MAX_RUN` and ``max_message_bytes`` in all.
        The first frame that is no update is kept for the read loop, which handles it next
        (and refuses it, if it must, after these were taken)."""
        run, size = [first], len(first)
        conn, max_bytes = self.conn, self.settings.max_message_bytes
        while len(run) < min(most, MAX_RUN):
            frame = conn.receive_ready()
            if frame is None:
                break
            if (
                isinstance(frame, str)
                or len(frame) < 2
                or frame[0] != MessageType.SYNC
                or frame[1] != SyncType.UPDATE
                or size + len(frame) > max_bytes
            ):
                self.next_frame = frame
                break
            try:
                message = decode_message(frame)
            except PeerError:
                self.next_frame = frame
                break
            assert isinstance(message, SyncUpdate)
            self.metrics.bytes_in += len(frame)
            run.append(message.update)
            size += len(frame)
        return run

    async def _updates(self, updates: list[bytes]) -> None:
        """A writer's updates that arrived together: each checked as :meth:`_update` checks
        one, then taken in as a run (:meth:`~crdt_server.core.room.Room.apply_run`) up to
        the first that fails its checks, which then ends the connection."""
        if len(updates) == 1 or not self.conn.principal.can_write:
            for update in updates:
                await self._update(update, step2=False)
            return
        run: list[tuple[bytes, UpdateSummary]] = []
        refused: PeerError | None = None
        for update in updates:
            try:
                run.append((update, await self._checked(update)))
            except PeerError as exc:
                refused = exc
                break
        while run:
            taken = await self.room.apply_run(run, self.sender)
            run = run[taken:]
            if run:  # the rest waits until the room is under its bound again
                await self._under_bound(self.room)
        if refused is not None:
            raise refused

    async def _checked(self, update: bytes) -> UpdateSummary:
        """The summary of one update the peer sent, within its rate; else raise."""
        if not self.updates.take():
            limit = self.settings.max_updates_per_second
            raise PolicyViolation(f"more than {limit:g} updates per second")
        try:
            return await inspect_off_loop(update, self.settings.max_update_items)
        except OverItemLimit as exc:
            raise TooManyItems(f"update refused: {exc}") from exc
        except UpdateError as exc:
            raise ProtocolError(f"malformed update: {exc}") from exc

    async def _update(self, update: bytes, *, step2: bool) -> None:
        conn, room = self.conn, self.room
        summary = await self._checked(update)
        if not conn.principal.can_write:
            # The step 2 every client sends on connect is no write attempt when it brings
            # nothing new: same structs, and (the client's delete set) nothing to count.
            attempt = not summary.is_empty and (not step2 or room.has_unknown_structs(summary))
            if attempt:
                conn.denied_writes += 1
                self.metrics.denied_writes.inc()
                if self.dialect is not None:
                    conn.send(self.dialect.dropped)
                elif conn.denied_writes == 1:
                    conn.send(encode_permission_denied("this document is read-only for you"))
            elif self.dialect is not None:
                conn.send(self.dialect.applied)
            return
        dialect = self.dialect
        owed = 1  # SyncStatus answers this message earns (Hocuspocus)
        if dialect is not None:
            if step2:  # the provider counts only the first (at connect) as a change
                owed, self.step2_seen, self.pull_sent = int(not self.step2_seen), True, False
            if room.backlog_over:
                # One socket, several documents: never stop reading it for one room.
                self._drop_for_now(owed)
                return
            if step2:  # it brings every update dropped before it arrived
                owed, self.unanswered = owed + self.unanswered, 0
        await room.apply(update, summary, self.sender)
        if dialect is not None and owed:
            self._acknowledge(dialect.applied, owed)

    def _drop_for_now(self, owed: int) -> None:
        """The room is over its backlog bound: the update (or step 2) is not applied and its
        answer waits; once the room is back under, the room's step 1 goes to the peer,
        whose answer (its step 2) brings whatever was dropped (Yjs sync is state based) and
        earns the answers owed. No SyncStatus 0: the provider would keep counting the
        update as unsaved for good."""
        self.metrics.backlog_drops.inc()
        self.unanswered += owed
        if self.pulling is None:
            self.pulling = self.room.backlog_under()
            self.pulling.add_done_callback(self._pull)

    def _pull(self, future: asyncio.Future[None]) -> None:
        self.pulling = None
        if future.cancelled() or self.conn.closing or self.room.failed is not None:
            return
        self._send_pull()

    def _send_pull(self) -> None:
        """Send the room's step 1, unless one went since the peer's last step 2 (whose
        answer will bring what was dropped since, as it is sent after)."""
        if not self.pull_sent:
            self.pull_sent = True
            self.conn.send(encode_sync_step1(self.room.doc.get_state()))

    def _acknowledge(self, applied: bytes, times: int = 1) -> None:
        """Send ``applied`` ``times`` once everything applied so far is committed (after the
        echo: the room distributes a batch before it releases its waiters); nothing if the
        room failed (it closes its connections)."""
        conn = self.conn

        def committed(future: asyncio.Future[None]) -> None:
            if not future.cancelled() and future.exception() is None:
                for _ in range(times):
                    conn.send(applied)

        self.room.wait_committed().add_done_callback(committed)

    def _stateless(self, dialect: Dialect, frame: bytes) -> None:
        """Relay a writer's stateless payload (JSON, bounded in size and rate) to the
        room's other connections that speak the dialect, here and in the other processes,
        stamped with its sender; never stored. A reader's payload, a malformed, oversized or
        non-JSON one, or one over the rate is dropped: the protocol has no answer to a
        stateless message."""
        conn = self.conn
        payload = dialect.read_stateless(frame)
        principal = conn.principal
        if (
            payload is None
            or not principal.can_write
            or len(payload.encode()) > dialect.max_stateless_bytes
            or self.stateless is None
            or not self.stateless.take()
        ):
            self.metrics.updates_rejected.labels("stateless").inc()
            return
        try:
            value = json.loads(payload)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python goes
            self.metrics.updates_rejected.labels("stateless").inc()
            return
        stamped = {"from": {"sub": principal.user_id, "name": principal.name}, "payload": value}
        self.room.members.apply_stateless(conn, json.dumps(stamped, separators=(",", ":")))

    def _awareness(self, payload: bytes) -> None:
        self.metrics.awareness_messages += 1
        if not self.awareness.take():
            limit = self.settings.max_awareness_per_second
            raise PolicyViolation(f"more than {limit:g} awareness messages per second")
        entries = decode_awareness(
            payload,
            max_state_bytes=self.settings.max_awareness_state_bytes,
            max_entries=self.settings.max_awareness_entries,
        )
        if self.identity is not None:
            entries = [stamp_identity(entry, self.identity) for entry in entries]
        self.room.apply_awareness(self.conn, entries)
