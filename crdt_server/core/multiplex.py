"""Many documents on one socket: the connection of a Hocuspocus provider (``/collab``).

``@hocuspocus/provider`` multiplexes the documents of an app over one WebSocket, with the
document's name in front of every message (:mod:`crdt_server.codec.hocuspocus`). The
:class:`Multiplexer` reads that socket and gives each document it attaches its own
:class:`DocumentChannel`: a :class:`~crdt_server.wire.transport.Transport` over which the
document's session is the ``/sync`` path's own (:func:`~crdt_server.core.session.serve_connection`
with the Hocuspocus :data:`DIALECT`), so every guarantee of ``/sync`` holds per document:
commit before the echo, the same validation, limits, pacing, projections and presence.

- **Auth, per document.** A document is attached by its Auth message; the token is checked
  by the same identity step as an upgrade of ``/sync`` (the :class:`DocumentGate` the edge
  supplies), and answered ``authenticated`` (with the scope) or ``permissionDenied`` (with a
  reason). Messages for a document whose auth is not decided yet are held (bounded) and then
  served or dropped; after ``permissionDenied`` its messages are dropped silently and the
  socket stays open. A later Auth under the same name is decided afresh; one for an attached
  document renews its token in place (or re-attaches it, if it now grants other access).
- **Token expiry** is a token request (Auth sub-type 0) before ``exp``; a document whose
  token is not renewed by then gets ``permissionDenied``. A token minted from a device
  session (``sid``) is never asked for again: its document lives while that session does,
  and gets ``permissionDenied`` when the session ends (as ``/sync`` closes with 4401).
- **Close codes** of a document's session: 1011, 1012 and 1013 close the whole socket with
  that code (the provider reconnects and resyncs every document), as do the peer's protocol
  errors (1002, 1003, 1007, 1008, 1009); 4401 and 4403 are a ``permissionDenied``; any other
  (4404 a deleted wedding) is a CLOSE message whose reason starts with the code. An update
  over the item limit (:class:`~crdt_server.errors.TooManyItems`, 1009) is the document's
  message, not the socket's: a CLOSE message for that document alone.
- **No head-of-line blocking.** The socket is read without pause whatever a document's
  session does: each document has a bounded inbox; past it, its updates are dropped and
  answered once the session has pulled them again with the room's step 1 and the peer's
  answer is committed (no SyncStatus 0: the provider would count them unsaved for good).
- **Ping.** The server sends ``[9]`` on a socket that had nothing to send for
  :data:`IDLE_PING_SECONDS` (the provider drops a socket silent for 30 s; the server never
  echoes a client's own awareness).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from typing import Protocol

from crdt_server import clock
from crdt_server.auth.principals import ANONYMOUS, Principal
from crdt_server.codec.hocuspocus import (
    PONG,
    Auth,
    Detach,
    Framed,
    HocusType,
    Ping,
    Pong,
    authenticated,
    close_message,
    decode_frame,
    document_of,
    permission_denied,
    read_stateless,
    stateless,
    sync_status,
    token_request,
)
from crdt_server.codec.protocol import write_var_string
from crdt_server.core.connection import Connection
from crdt_server.core.metrics import Metrics
from crdt_server.core.session import Dialect
from crdt_server.errors import CloseCode, PeerError, UnsupportedData
from crdt_server.settings import Settings
from crdt_server.wire.transport import Transport, TransportClosed

__all__ = [
    "DIALECT",
    "IDLE_PING_SECONDS",
    "DocumentChannel",
    "DocumentGate",
    "Grant",
    "Multiplexer",
]

log = logging.getLogger("crdt_server.core.multiplex")

IDLE_PING_SECONDS = 15.0
"""A socket that had nothing to send for this long is sent a Ping (``[9]``)."""
RENEW_AHEAD_SECONDS = 60.0
"""A document's token is asked for again this long before it expires (or halfway, for a
token that lives less than twice this)."""
_INBOX_MESSAGES = 64
"""Messages a document's session has not read yet before its updates are dropped."""
_HELD_MESSAGES = 16
"""Messages held for a document whose auth is not decided yet; more are dropped."""
_TRANSIENT = frozenset(
    {CloseCode.INTERNAL_ERROR, CloseCode.SERVICE_RESTART, CloseCode.TRY_AGAIN_LATER}
)
_PEER_FAULT = frozenset(
    {
        CloseCode.PROTOCOL_ERROR,
        CloseCode.UNSUPPORTED_DATA,
        CloseCode.INVALID_PAYLOAD,
        CloseCode.POLICY_VIOLATION,
        CloseCode.MESSAGE_TOO_BIG,
    }
)
_DENIED = frozenset({CloseCode.TOKEN_EXPIRED, CloseCode.FORBIDDEN})
_SYNC, _STEP1, _STEP2 = HocusType.SYNC, 0, 1

DIALECT = Dialect(
    applied=sync_status(True),
    dropped=sync_status(False),
    stateless_type=HocusType.STATELESS,
    read_stateless=read_stateless,
    write_stateless=stateless,
)
"""What a document's session says beyond y-protocols on this protocol."""


@dataclass(frozen=True, slots=True)
class Grant:
    """A document let in on a socket; it holds a per-user slot until released."""

    room: str
    """The room served: the document's, or its projection's for a role with hidden fields."""
    principal: Principal
    counted: bool = False
    """Whether it holds a per-user connection slot."""


class DocumentGate(Protocol):
    """What the multiplexer needs from the checks of the edge, for one socket."""

    @property
    def settings(self) -> Settings: ...

    def authorize(self, name: str, token: str) -> Grant | str:
        """Let the document ``name`` in under ``token``, or say why not (the reason the
        provider is told). A grant must be released."""

    def release(self, grant: Grant) -> None:
        """Give back what :meth:`authorize` took."""

    async def serve(self, transport: Transport, grant: Grant, *, peer: str) -> None:
        """Run a document's session over ``transport`` (with :data:`DIALECT`)."""


class DocumentChannel:
    """One document's side of the shared socket: the transport its session runs over."""

    def __init__(self, mux: Multiplexer, key: str, max_bytes: int) -> None:
        self.key = key
        self._prefix = write_var_string(key)
        self._mux = mux
        self._inbox: list[bytes] = []
        self._bytes = 0
        self._max_bytes = max_bytes
        self._step1: bytes | None = None
        self._step2: bytes | None = None
        self._dropped = 0
        """The peer's updates dropped (the inbox full), not yet told to the session."""
        self._waiter: asyncio.Future[None] | None = None
        self._alone = False
        self.ended: tuple[int, str] | None = None

    def deliver(self, body: bytes) -> bool:
        """Queue a message for the session; ``False``: its inbox is full and the message
        was dropped (a step 1 and a step 2 are kept aside, the last of each; each dropped
        update is told to the session, which pulls what it missed and answers it then)."""
        inbox = self._inbox
        if inbox and (len(inbox) >= _INBOX_MESSAGES or self._bytes + len(body) > self._max_bytes):
            if body[0] == _SYNC and len(body) > 1:
                if body[1] == _STEP1:
                    self._step1 = body
                elif body[1] == _STEP2:
                    self._step2 = body  # the last answers our latest step 1: it has the rest
                else:
                    self._dropped += 1
            return False
        inbox.append(body)
        self._bytes += len(body)
        self._wake()
        return True

    def end(self, code: int, reason: str) -> None:
        """The document is detached (or the socket closed): its session ends."""
        if self.ended is None:
            self.ended = (code, reason)
            self._inbox.clear()
            self._bytes = 0
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def receive(self) -> bytes | str:
        while True:
            if self.ended is not None:
                raise TransportClosed(*self.ended)
            if self._inbox:
                body = self._inbox.pop(0)
                self._bytes -= len(body)
                return body
            if self._step1 is not None:
                body, self._step1 = self._step1, None
                return body
            if self._step2 is not None:
                body, self._step2 = self._step2, None
                return body
            if self._dropped:
                self._dropped -= 1
                return b""  # one dropped: the session pulls and owes its answer (Dialect)
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def receive_ready(self) -> bytes | str | None:
        return None  # a document's updates are answered one by one (SyncStatus each)

    async def send(self, data: bytes) -> None:
        if self.ended is not None:
            raise TransportClosed(*self.ended)
        self._mux.send(self._prefix + data)

    def flush(self) -> None:
        self._mux.flush()

    def close_alone(self) -> None:
        """Its next close ends this document alone (see
        :class:`~crdt_server.core.session.OneOfMany`)."""
        self._alone = True

    async def close(self, code: int, reason: str = "") -> None:
        if self.ended is None:
            self.end(code, reason)
            self._mux.document_closed(self, code, reason, alone=self._alone)


@dataclass(slots=True)
class _Document:
    key: str
    channel: DocumentChannel
    grant: Grant
    timers: list[clock.Timer] = dataclasses.field(default_factory=list)

    def cancel_timers(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()


class Multiplexer:
    """Serve one Hocuspocus socket: its documents, their auth, its pings."""

    def __init__(
        self,
        transport: Transport,
        gate: DocumentGate,
        *,
        wedding: str | None,
        peer: str,
        metrics: Metrics,
        max_documents: int,
    ) -> None:
        settings = gate.settings
        self._gate = gate
        self._wedding = wedding
        self._peer = peer
        self._max_documents = max_documents
        self._max_bytes = settings.max_message_bytes
        # The socket's one bounded outbound queue: every document's frames go through it.
        self._socket = Connection(
            transport,
            ANONYMOUS,
            max_queue_bytes=settings.outbound_queue_bytes,
            max_queue_messages=settings.outbound_queue_messages,
            close_timeout=settings.close_timeout_seconds,
            peer=peer,
            metrics=metrics,
        )
        self._docs: dict[str, _Document] = {}
        self._held: dict[str, list[bytes]] = {}
        self._denied: dict[str, None] = {}
        """Keys refused or closed: their messages are dropped (oldest forgotten first)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        self._last_sent = self._loop.time()
        self._ping_timer: asyncio.TimerHandle | None = None
        self._closing = False

    # -- sending -----------------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        self._last_sent = self._loop.time()
        self._socket.send(frame)

    def flush(self) -> None:
        self._socket.flush()

    def _schedule_ping(self) -> None:
        self._ping_timer = self._loop.call_at(self._last_sent + IDLE_PING_SECONDS, self._ping)

    def _ping(self) -> None:
        if self._closing:
            return
        if self._loop.time() - self._last_sent >= IDLE_PING_SECONDS * 0.99:
            self.send(bytes((HocusType.PING,)))
        self._schedule_ping()

    # -- reading -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the socket until it ends, then end every document's session."""
        sock = self._socket
        sock.start()
        self._schedule_ping()
        code: int = CloseCode.NORMAL
        reason = ""
        try:
            while not sock.closing:
                frame = await sock.receive()
                if isinstance(frame, str):
                    raise UnsupportedData("text frames are not part of the protocol; send binary")
                self._dispatch(frame)
        except PeerError as exc:
            code, reason = exc.close_code, exc.message
            log.info("closing a Hocuspocus socket from %s with %d: %s", self._peer, code, reason)
        except TransportClosed:
            pass
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not sock.interrupted or task is None:
                raise
            task.uncancel()
        finally:
            self._closing = True
            if self._ping_timer is not None:
                self._ping_timer.cancel()
            for doc in self._docs.values():
                doc.cancel_timers()
                doc.channel.end(CloseCode.NORMAL, "socket closed")
            self._docs.clear()
            self._held.clear()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
        await sock.finish(code, reason)

    def _dispatch(self, frame: bytes) -> None:
        message = decode_frame(frame)
        if isinstance(message, Framed):
            self._deliver(message.key, message.body)
        elif isinstance(message, Auth):
            self._auth(message.key, message.token)
        elif isinstance(message, Detach):
            self._detach(message.key)
        elif isinstance(message, Ping):
            self.send(PONG)
        elif isinstance(message, Pong):
            pass  # the answer to our ping: it was heard, which is all a ping asks

    def _deliver(self, key: str, body: bytes) -> None:
        doc = self._docs.get(key)
        if doc is not None:
            doc.channel.deliver(body)  # a dropped update is answered once pulled (session)
            return
        if key in self._denied:
            return  # refused or closed: dropped, the socket stays open
        held = self._held.get(key)
        if held is None:
            if len(self._held) >= self._max_documents:
                return
            held = self._held[key] = []
        if len(held) < _HELD_MESSAGES and sum(map(len, held)) + len(body) <= self._max_bytes:
            held.append(body)

    # -- documents ---------------------------------------------------------------------------

    def _auth(self, key: str, token: str) -> None:
        name = document_of(key)
        doc = self._docs.get(key)
        if self._wedding is not None and not name.startswith(self._wedding + "/"):
            self._deny(key, f"this socket serves the documents of wedding {self._wedding}")
            return
        if doc is None and len(self._docs) >= self._max_documents:
            self._deny(key, f"too many documents on one socket (at most {self._max_documents})")
            return
        outcome = self._gate.authorize(name, token)
        if isinstance(outcome, str):
            if doc is not None:
                self._drop(doc)
            self._deny(key, outcome)
            return
        if doc is not None:
            old = doc.grant
            if outcome.room == old.room and _same_access(outcome.principal, old.principal):
                # A renewed token: the session goes on; only the expiry moves.
                doc.grant = outcome
                self._gate.release(old)
                doc.cancel_timers()
                # The same token again (an app that cannot renew it): not asked for again,
                # denied at its expiry.
                ask = outcome.principal.expires_at != old.principal.expires_at
                self._watch_expiry(doc, ask=ask)
                self.send(authenticated(key, read_only=not outcome.principal.can_write))
                return
            self._drop(doc)  # other access now: attached afresh
        self.send(authenticated(key, read_only=not outcome.principal.can_write))
        self._attach(key, outcome)

    def _attach(self, key: str, grant: Grant) -> None:
        self._denied.pop(key, None)
        channel = DocumentChannel(self, key, self._max_bytes)
        for body in self._held.pop(key, ()):
            channel.deliver(body)
        doc = self._docs[key] = _Document(key, channel, grant)
        self._watch_expiry(doc)
        task = self._loop.create_task(self._serve(doc), name=f"collab-{key[:64]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, doc: _Document) -> None:
        # The multiplexer keeps the token's expiry (a token request, then permissionDenied):
        # the session itself never closes over it.
        grant = doc.grant
        if grant.principal.expires_at is not None:
            principal = dataclasses.replace(grant.principal, expires_at=None)
            grant = dataclasses.replace(grant, principal=principal)
        try:
            await self._gate.serve(doc.channel, grant, peer=self._peer)
        except Exception:
            log.exception("document %s on a socket from %s failed", doc.key, self._peer)
        finally:
            self._gate.release(doc.grant)
            doc.cancel_timers()
            if self._docs.get(doc.key) is doc:
                del self._docs[doc.key]

    def _watch_expiry(self, doc: _Document, *, ask: bool = True) -> None:
        principal = doc.grant.principal
        expires_at = principal.expires_at
        if expires_at is None or principal.session_id is not None:
            # A device session's token (``sid``): its documents live while that session
            # does; ending it denies them (the people feature closes its connections 4401).
            return
        # By the server's clock, which checked ``exp`` (a fake one in tests).
        left = max(0.0, expires_at - clock.now())
        ahead = min(RENEW_AHEAD_SECONDS, left / 2)
        if ask:
            doc.timers.append(clock.call_at(expires_at - ahead, self._ask_token, doc))
        doc.timers.append(clock.call_at(expires_at, self._expire, doc))

    def _ask_token(self, doc: _Document) -> None:
        if self._docs.get(doc.key) is doc and not self._closing:
            self.send(token_request(doc.key))

    def _expire(self, doc: _Document) -> None:
        if self._docs.get(doc.key) is doc and not self._closing:
            self._drop(doc)
            self._deny(doc.key, "token expired")

    def _detach(self, key: str) -> None:
        """The provider detached the document (or it was never attached)."""
        self._held.pop(key, None)
        self._denied.pop(key, None)
        doc = self._docs.get(key)
        if doc is not None:
            self._drop(doc)

    def _drop(self, doc: _Document) -> None:
        """End a document's session here, saying nothing to the peer."""
        del self._docs[doc.key]
        doc.cancel_timers()
        doc.channel.end(CloseCode.NORMAL, "detached")

    def _deny(self, key: str, reason: str) -> None:
        self._held.pop(key, None)
        self._remember_denied(key)
        self.send(permission_denied(key, reason))

    def _remember_denied(self, key: str) -> None:
        denied = self._denied
        denied.pop(key, None)
        denied[key] = None
        while len(denied) > 4 * self._max_documents:
            del denied[next(iter(denied))]

    def document_closed(
        self, channel: DocumentChannel, code: int, reason: str, *, alone: bool = False
    ) -> None:
        """A document's session ended on the server's side with ``code``; ``alone``: it
        ends that document only, whatever the code (a CLOSE message)."""
        doc = self._docs.get(channel.key)
        if self._closing or doc is None or doc.channel is not channel:
            return
        del self._docs[channel.key]
        doc.cancel_timers()
        if alone:
            self._remember_denied(channel.key)
            self.send(close_message(channel.key, f"{code} {reason}".strip()))
        elif code in _TRANSIENT or code in _PEER_FAULT:
            self._socket.request_close(code, reason)
        elif code in _DENIED:
            self._deny(channel.key, reason or "permission denied")
        else:
            self._remember_denied(channel.key)
            self.send(close_message(channel.key, f"{code} {reason}".strip()))


def _same_access(new: Principal, old: Principal) -> bool:
    return (new.user_id, new.role, new.can_write) == (old.user_id, old.role, old.can_write)
