"""The hand-offs a worker sends under ``--workers``, each with a deadline (issue 47).

The accepting worker sends a connection's descriptor and head bytes to the wedding's owner
(:mod:`crdt_server.wire.affinity`) with an id and a deadline in front of the head
(:data:`HEADER`; the deadline on ``time.monotonic()``, ``CLOCK_MONOTONIC``: one clock for
every process of the host). It keeps a duplicate of the descriptor until the owner
acknowledges the id (:data:`ACK`), or until the deadline passes (or the owner's control
connection ends) without it; then it serves the connection itself (``take_back``; 503 when
it is stopping), so a stopped or stuck owner swallows no connection. The owner
acknowledges, then reads the clock again, and adopts only when both readings are before the
deadline: its acknowledgement was then queued before the sender looked for it (the sender
reads every waiting acknowledgement before it gives up on one), so at most one of them
serves the socket. A hand-off read past its deadline is closed unread, with ``close()``
alone (a ``shutdown()`` would end the connection the other worker serves). A worker that
missed a deadline gets no hand-off for one more timeout (its weddings are served where
they are accepted, without waiting) unless it acknowledges one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from itertools import count as counter
from pathlib import Path

from crdt_server.codec.problem_details import PROBLEM_JSON, problem_json

__all__ = [
    "ACK",
    "DEFAULT_TIMEOUT",
    "HEADER",
    "MAX_MESSAGE",
    "STOPPING_STATUS",
    "Adopt",
    "Sender",
    "peer_uid",
    "refuse_stopping",
]

log = logging.getLogger("crdt_server.wire.handoff")

MAX_MESSAGE = 128 * 1024
"""The largest head (and early bytes) handed over; a larger one is served locally."""
HEADER = struct.Struct("!Qd")
"""In front of a hand-off's head: its id and its deadline (``time.monotonic()``)."""
ACK = struct.Struct("!Q")
"""The owner's answer to a hand-off it takes: the hand-off's id."""
DEFAULT_TIMEOUT = 2.0
"""The default of ``CRDT_SERVER_HANDOFF_TIMEOUT_SECONDS``."""

Adopt = Callable[[socket.socket, bytes], None]
"""``(socket, head bytes)``: serve a connection whose head was read elsewhere."""


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


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


class Sender:
    """The hand-offs one worker sends: its control connections to the other workers and
    the hand-offs they have not acknowledged yet."""

    def __init__(
        self, index: int, run_dir: Path, timeout: float, clock: Callable[[], float]
    ) -> None:
        self.index = index
        self.run_dir = run_dir
        self.timeout = timeout
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._peers: dict[int, socket.socket] = {}
        self._pending: dict[int, _Pending] = {}
        self._ids = counter(1)
        self._late_until: dict[int, float] = {}
        self.take_back: Adopt | None = None
        """Serves a connection its owner did not take in time (``None``: 503)."""
        self.taken_back = 0
        """Hand-offs this worker sent and then served itself (not acknowledged in time)."""

    @property
    def pending(self) -> int:
        """Hand-offs sent and not acknowledged yet (each holds a descriptor)."""
        return len(self._pending)

    def socket_path(self, index: int) -> str:
        return str(self.run_dir / f"w{index}")

    def close(self) -> None:
        """Let go of the hand-offs not acknowledged yet (the owner serves them, or closes
        them late and the client connects again) and of the control connections."""
        for pending in self._pending.values():
            pending.timer.cancel()
            os.close(pending.fd)  # close alone: the owner may be serving it
        self._pending.clear()
        for peer in self._peers.values():
            if self._loop is not None:
                self._loop.remove_reader(peer.fileno())
            peer.close()
        self._peers.clear()

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
        message = HEADER.pack(ident, deadline) + head
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
                data = peer.recv(ACK.size + 1)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                return False
            if not data:
                return False
            if len(data) != ACK.size:
                continue
            (ident,) = ACK.unpack(data)
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
        if self.take_back is None:
            refuse_stopping(sock)
        else:
            self.take_back(sock, pending.head)
