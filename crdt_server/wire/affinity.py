"""Worker affinity on one host: each wedding's sync connections are served by one worker.

With ``--workers N`` the kernel gives a new connection to whichever worker accepts it
first. The accepting worker reads the request head (the project's HTTP protocol,
:mod:`crdt_server.wire.http_head`, then :mod:`crdt_server.wire.websocket` for an upgrade);
for ``/sync/{wedding}/{doc}`` it computes the wedding's owner, a rendezvous hash of the
wedding id over the worker indices (:func:`owner`). When the owner is another worker, the
socket and the head bytes read so far go to the owner over its control socket with
SCM_RIGHTS (:meth:`Affinity.hand_off`), and the accepting worker closes its descriptor
without a shutdown (the connection lives on in the owner). The owner adopts the socket as
if it had accepted it (:meth:`Affinity.listen`, ``loop.connect_accepted_socket``), feeds
it the head bytes, and its HTTP protocol and upgrade gate run as for any connection: the
head deadline and per-address caps, the token, the rate and connection limits, erased
weddings.

**A hand-off has a deadline** (``CRDT_SERVER_HANDOFF_TIMEOUT_SECONDS``), so a stopped or
stuck owner never swallows a connection. Each message carries an id and its deadline on
``time.monotonic()`` (``CLOCK_MONOTONIC``: one clock for every process of the host) in
front of the head. The accepting worker keeps a duplicate of the descriptor until the
owner acknowledges the id, or until the deadline passes (or the owner's control connection
ends) without it; then it serves the connection itself (503 when it is stopping). The owner
acknowledges, then reads the clock again, and adopts only when both readings are before
the deadline: its acknowledgement was then queued before the accepting worker looked for
it (the accepting worker reads every waiting acknowledgement before it gives up on one),
so at most one of them serves the socket. A hand-off read past its deadline is closed
unread, with ``close()`` alone (a ``shutdown()`` would end the connection the other worker
serves). A worker that missed a deadline gets no hand-off for one more timeout (its
weddings are served where they are accepted, without waiting) unless it acknowledges one.

Affinity is an optimisation, never a condition for correctness: when the owner cannot be
reached (restarting, its control socket full or gone) the accepting worker serves the
connection itself and the Redis bus keeps the wedding's processes in step.

Control sockets are ``SOCK_SEQPACKET`` Unix sockets named ``w{index}`` in a run directory
that :func:`make_run_dir` creates 0700 (short enough for the 108-byte limit of a socket
path). Both ends check the other's uid with ``SO_PEERCRED``: only a process of the server's
own user may hand a socket over, or receive one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import count as counter
from pathlib import Path

from crdt_server.codec.problem_details import PROBLEM_JSON, problem_json

__all__ = [
    "STATE_KEY",
    "DEFAULT_TIMEOUT",
    "STOPPING_STATUS",
    "Affinity",
    "make_run_dir",
    "owner",
    "peer_uid",
    "refuse_stopping",
    "wedding_of_path",
]

log = logging.getLogger("crdt_server.wire.affinity")

STATE_KEY = "crdt_server.wire.affinity"
"""The key of a worker's :class:`Affinity` in the ASGI lifespan state."""

MAX_MESSAGE = 128 * 1024
"""The largest head (and early bytes) handed over; a larger one is served locally."""
_SUN_PATH_MAX = 107
"""Bytes of a Unix socket path, without its terminating NUL."""
_TCP = (socket.AF_INET, socket.AF_INET6)
_HEADER = struct.Struct("!Qd")
"""In front of a hand-off's head: its id and its deadline (``time.monotonic()``)."""
_ACK = struct.Struct("!Q")
"""The owner's answer to a hand-off it takes: the hand-off's id."""
DEFAULT_TIMEOUT = 2.0
"""The default of ``CRDT_SERVER_HANDOFF_TIMEOUT_SECONDS``."""
_SYNC = "/sync/"
_API = "/api/weddings/"


def owner(wedding_id: str, count: int) -> int:
    """The index of the worker that owns ``wedding_id`` among ``count`` workers.

    Rendezvous (highest random weight) hashing: each index scores the wedding, the highest
    score wins. Only the weddings of a worker that goes away change owner.
    """
    if count <= 1:
        return 0
    encoded = wedding_id.encode()
    best, best_score = 0, b""
    for index in range(count):
        score = hashlib.blake2b(encoded, digest_size=8, salt=index.to_bytes(8, "big")).digest()
        if score > best_score:
            best, best_score = index, score
    return best


def wedding_of_path(path: str) -> str | None:
    """The wedding a request path names (``/sync/{w}/...``, ``/api/weddings/{w}/...``)."""
    for prefix in (_SYNC, _API):
        if path.startswith(prefix):
            wedding, slash, _ = path[len(prefix) :].partition("/")
            return wedding if slash and wedding else None
    return None


def make_run_dir() -> Path:
    """A new private (0700) directory for the control sockets, with room for their names
    within the 108-byte limit of a Unix socket path."""
    for base in (os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(), "/tmp"):
        if base and os.path.isdir(base) and len(base) + 40 <= _SUN_PATH_MAX:
            return Path(tempfile.mkdtemp(prefix="crdt-server-", dir=base))
    raise OSError("no directory short enough for the workers' control sockets")


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


class _Feed(asyncio.Protocol):
    """Hands an adopted connection to the server's HTTP protocol, with the bytes the
    accepting worker had read, before anything newer is read from the socket."""

    def __init__(self, inner: asyncio.Protocol, head: bytes) -> None:
        self._inner = inner
        self._head = head

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        inner = self._inner
        inner.connection_made(transport)
        transport.set_protocol(inner)
        if not transport.is_closing():
            inner.data_received(self._head)


STOPPING_STATUS = 503
"""The answer to a connection handed to a worker that is stopping (``Retry-After: 1``):
a client reconnects and reaches a worker that serves it."""


def refuse_stopping(sock: socket.socket) -> None:
    """Answer a handed-over connection that this worker will not serve (it is stopping)
    with 503 and close it; never blocks (a peer that reads nothing gets the close)."""
    body = problem_json(STOPPING_STATUS, "this worker is stopping; connect again")
    head = (
        f"HTTP/1.1 503 Service Unavailable\r\ncontent-type: {PROBLEM_JSON}\r\n"
        f"retry-after: 1\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    with contextlib.suppress(OSError):
        sock.send(head.encode() + body)
    sock.close()


Adopt = Callable[[socket.socket, bytes], None]
"""``(socket, head bytes)``: serve a connection whose head was read elsewhere."""


@dataclass
class _Pending:
    """A hand-off the owner has not acknowledged yet, on the accepting worker's side."""

    fd: int
    """The accepting worker's duplicate of the connection's descriptor."""
    head: bytes
    to: int
    peer: socket.socket
    """The control connection it went over (its acknowledgement comes back on it)."""
    deadline: float
    timer: asyncio.TimerHandle


class Affinity:
    """One worker's end of the hand-offs: its own control socket and its peers'."""

    def __init__(
        self,
        index: int,
        count: int,
        run_dir: Path,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``timeout``: how long a hand-off waits for the owner's acknowledgement;
        ``clock``: ``time.monotonic`` (a test gives another)."""
        self.index = index
        self.count = count
        self.run_dir = run_dir
        self.timeout = timeout
        self._clock = clock
        self._listener: socket.socket | None = None
        self._readers: set[socket.socket] = set()
        self._peers: dict[int, socket.socket] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._adopt: Adopt | None = None
        self._take_back: Adopt | None = None
        self._pending: dict[int, _Pending] = {}
        self._ids = counter(1)
        self._late_until: dict[int, float] = {}
        self.refused_peers = 0
        """Control connections refused for another uid (a test reads it)."""
        self.closed_late = 0
        """Hand-offs this worker (the owner) read past their deadline and closed unread."""
        self.taken_back = 0
        """Hand-offs this worker sent and then served itself (not acknowledged in time)."""

    def socket_path(self, index: int) -> str:
        return str(self.run_dir / f"w{index}")

    def owner(self, wedding_id: str) -> int:
        return owner(wedding_id, self.count)

    @property
    def pending(self) -> int:
        """Hand-offs sent and not acknowledged yet (each holds a descriptor)."""
        return len(self._pending)

    # -- the owner's side ------------------------------------------------------------------

    def listen(
        self, loop: asyncio.AbstractEventLoop, adopt: Adopt, take_back: Adopt | None = None
    ) -> None:
        """Take hand-offs from now on: ``adopt(sock, head)`` gets each one taken in time;
        ``take_back(sock, head)`` gets each connection this worker handed off that its owner
        did not take in time (without it, those are answered 503)."""
        path = self.socket_path(self.index)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # the socket of this index's previous process
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(path)
        os.chmod(path, 0o600)
        listener.listen(128)
        listener.setblocking(False)
        self._listener = listener
        self._loop = loop
        self._adopt = adopt
        self._take_back = take_back
        loop.add_reader(listener.fileno(), self._accept)

    def close(self) -> None:
        """Stop taking hand-offs (they are then served where they were accepted), and let
        go of the ones this worker sent and that are not acknowledged yet (the owner serves
        them, or closes them late and the client connects again)."""
        loop = self._loop
        listener = self._listener
        if listener is not None and loop is not None:
            loop.remove_reader(listener.fileno())
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path(self.index))
            while True:  # peers that connected but were not accepted yet
                try:
                    conn, _ = listener.accept()
                except OSError:
                    break
                with conn:
                    conn.setblocking(False)
                    if peer_uid(conn) == os.getuid():
                        self._refuse_queued(conn)
            listener.close()
            self._listener = None
        for conn in list(self._readers):
            self._refuse_queued(conn)
            self._drop(conn)
        for pending in self._pending.values():
            pending.timer.cancel()
            os.close(pending.fd)  # close alone: the owner may be serving it
        self._pending.clear()
        for peer in self._peers.values():
            if loop is not None:
                loop.remove_reader(peer.fileno())
            peer.close()
        self._peers.clear()

    def _accept(self) -> None:
        assert self._listener is not None and self._loop is not None
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            log.exception("control socket: accept failed")
            return
        if peer_uid(conn) != os.getuid():
            self.refused_peers += 1
            log.warning("control socket: refused a connection from another user")
            conn.close()
            return
        conn.setblocking(False)
        self._readers.add(conn)
        self._loop.add_reader(conn.fileno(), self._receive, conn)

    def _refuse_queued(self, conn: socket.socket) -> None:
        """Answer 503 on every connection still queued on a control connection (those
        past their deadline are closed: their sender serves them)."""
        while True:
            try:
                data, fds, flags, _ = socket.recv_fds(conn, _HEADER.size + MAX_MESSAGE, 1)
            except OSError:
                return
            if not data and not fds:
                return
            sock = self._take(conn, data, fds, flags)
            if sock is not None:
                refuse_stopping(sock)

    def _drop(self, conn: socket.socket) -> None:
        if self._loop is not None:
            self._loop.remove_reader(conn.fileno())
        self._readers.discard(conn)
        conn.close()

    def _receive(self, conn: socket.socket) -> None:
        try:
            data, fds, flags, _ = socket.recv_fds(conn, _HEADER.size + MAX_MESSAGE, 1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(conn)
            return
        if not data and not fds:  # the peer went away
            self._drop(conn)
            return
        sock = self._take(conn, data, fds, flags)
        if sock is not None:
            assert self._adopt is not None
            self._adopt(sock, data[_HEADER.size :])

    def _take(
        self, conn: socket.socket, data: bytes, fds: list[int], flags: int
    ) -> socket.socket | None:
        """The hand-off's socket, acknowledged, when it is well formed and in time; else
        ``None`` (its descriptor closed)."""
        truncated = flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC)
        if truncated or len(fds) != 1 or len(data) < _HEADER.size:
            for fd in fds:
                os.close(fd)
            log.warning("control socket: dropped a malformed hand-off")
            return None
        try:
            sock = socket.socket(fileno=fds[0])
        except OSError:  # not a socket at all
            os.close(fds[0])
            sock = None
        if sock is None or sock.type != socket.SOCK_STREAM or sock.family not in _TCP:
            if sock is not None:
                sock.close()
            log.warning("control socket: dropped a hand-off that is not a TCP socket")
            return None
        ident, deadline = _HEADER.unpack_from(data)
        # Acknowledge, then look at the clock: in time then, the acknowledgement was queued
        # before the deadline, so the sender (which reads what is queued before it gives
        # up) has it and lets go of the connection.
        if self._clock() < deadline and self._acknowledge(conn, ident):
            if self._clock() < deadline:
                sock.setblocking(False)
                return sock
        self.closed_late += 1
        log.warning(
            "control socket: a hand-off came %.3f s past its deadline; closed unread (the"
            " worker that accepted it serves it)",
            self._clock() - deadline,
        )
        sock.close()  # close alone, never shutdown(): the connection is served elsewhere
        return None

    @staticmethod
    def _acknowledge(conn: socket.socket, ident: int) -> bool:
        try:
            conn.send(_ACK.pack(ident))
        except OSError:  # the sender is gone, or not reading: it serves the connection
            return False
        return True

    # -- the accepting side ----------------------------------------------------------------

    def hand_off(self, to: int, fd: int, head: bytes) -> bool:
        """Send the connection ``fd`` and the bytes read from it to worker ``to``; ``False``
        when that worker cannot take it now (the caller then serves it). Never blocks; call
        it on the running loop. Until ``to`` acknowledges it, this worker keeps a duplicate
        of ``fd``: past the deadline it serves the connection itself (``take_back``)."""
        if to == self.index or len(head) > MAX_MESSAGE:
            return False
        now = self._clock()
        if self._late_until.get(to, now) > now:
            return False  # it missed a deadline just now: do not make this one wait too
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        ident = next(self._ids)
        deadline = now + self.timeout
        message = _HEADER.pack(ident, deadline) + head
        for _ in range(2):  # a peer that restarted: its old connection fails once
            peer = self._peers.get(to) or self._connect(to, loop)
            if peer is None:
                return False
            try:
                kept = os.dup(fd)
            except OSError:
                return False  # no descriptor to keep: serve it here
            try:
                socket.send_fds(peer, [message], [fd])
            except (BlockingIOError, InterruptedError):
                os.close(kept)
                return False  # its queue is full: serve it here
            except OSError:
                os.close(kept)
                self._peer_gone(to, peer)
                continue
            timer = loop.call_later(self.timeout, self._expire, ident)
            self._pending[ident] = _Pending(kept, head, to, peer, deadline, timer)
            return True
        return False

    def _connect(self, to: int, loop: asyncio.AbstractEventLoop) -> socket.socket | None:
        peer = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        peer.setblocking(False)
        try:
            peer.connect(self.socket_path(to))
            if peer_uid(peer) != os.getuid():
                raise PermissionError("control socket of another user")
        except OSError:
            peer.close()
            return None
        self._peers[to] = peer
        loop.add_reader(peer.fileno(), self._on_acknowledgements, to, peer)
        return peer

    def _on_acknowledgements(self, to: int, peer: socket.socket) -> None:
        if not self._read_acknowledgements(peer):
            self._peer_gone(to, peer)

    def _read_acknowledgements(self, peer: socket.socket) -> bool:
        """Let go of every hand-off acknowledged on ``peer`` so far; ``False`` when that
        control connection has ended. Reads until nothing is queued: an owner sends one
        acknowledgement per hand-off."""
        for _ in range(len(self._pending) + 64):
            try:
                data = peer.recv(_ACK.size + 1)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                return False
            if not data:
                return False
            if len(data) != _ACK.size:
                continue
            (ident,) = _ACK.unpack(data)
            pending = self._pending.get(ident)
            if pending is None or pending.peer is not peer:
                continue  # one given up on already (the owner then closes it unread)
            del self._pending[ident]
            pending.timer.cancel()
            os.close(pending.fd)  # close alone: the owner serves it now
            self._late_until.pop(pending.to, None)
        return True

    def _peer_gone(self, to: int, peer: socket.socket) -> None:
        """The control connection to ``to`` ended (it restarted or died): what it had not
        acknowledged it never adopted, and is served here now."""
        self._read_acknowledgements(peer)
        if self._peers.get(to) is peer:
            del self._peers[to]
        if self._loop is not None:
            self._loop.remove_reader(peer.fileno())
        peer.close()
        for ident in [i for i, p in self._pending.items() if p.peer is peer]:
            self._give_back(ident, "its control connection ended")

    def _expire(self, ident: int) -> None:
        pending = self._pending.get(ident)
        if pending is None:
            return
        left = pending.deadline - self._clock()
        if left > 0:  # a timer may fire a hair early: the deadline is the clock's
            assert self._loop is not None
            pending.timer = self._loop.call_later(left, self._expire, ident)
            return
        # What the owner acknowledged before the deadline is queued by now.
        if not self._read_acknowledgements(pending.peer):
            self._peer_gone(pending.to, pending.peer)
            return
        if ident in self._pending:
            self._late_until[pending.to] = self._clock() + self.timeout
            self._give_back(ident, f"did not take it within {self.timeout:g} s")

    def _give_back(self, ident: int, why: str) -> None:
        pending = self._pending.pop(ident)
        pending.timer.cancel()
        self.taken_back += 1
        log.warning("worker %d %s: the connection is served here", pending.to, why)
        try:
            sock = socket.socket(fileno=pending.fd)
        except OSError:
            os.close(pending.fd)
            return
        sock.setblocking(False)
        if self._take_back is None:
            refuse_stopping(sock)
        else:
            self._take_back(sock, pending.head)

    @staticmethod
    def feed(protocol: asyncio.Protocol, head: bytes) -> asyncio.Protocol:
        """The protocol to adopt a handed-off socket with: ``protocol`` once it has been
        given ``head``."""
        return _Feed(protocol, head)
