"""Worker affinity on one host: each wedding's sync connections are served by one worker.

With ``--workers N`` the kernel gives a new connection to whichever worker accepts it
first. The accepting worker reads the request head (the project's HTTP protocol,
:mod:`crdt_server.wire.http_head`, then :mod:`crdt_server.wire.websocket` for an upgrade);
for ``/sync/{wedding}/{doc}`` it computes the wedding's owner, a rendezvous hash of the
wedding id over the worker indices (:func:`crdt_server.placement.owner`). When the owner
is another worker, the socket and the head bytes read so far go to the owner over its
control socket with SCM_RIGHTS (:meth:`Affinity.hand_off`), and the accepting worker
closes its descriptor without a shutdown (the connection lives on in the owner). The
owner adopts the socket as if it had accepted it (:meth:`Affinity.listen`,
``loop.connect_accepted_socket``), feeds it the head bytes, and its HTTP protocol and
upgrade gate run as for any connection: the head deadline and per-address caps, the
token, the rate and connection limits, erased weddings.

Each hand-off has a deadline (``CRDT_SERVER_HANDOFF_TIMEOUT_SECONDS``): a stopped or stuck
owner swallows no connection, and no socket is served by two workers
(:mod:`crdt_server.wire.handoff`).

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
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from crdt_server.placement import owner
from crdt_server.wire.handoff import (
    ACK,
    DEFAULT_TIMEOUT,
    HEADER,
    MAX_MESSAGE,
    STOPPING_STATUS,
    Adopt,
    Sender,
    peer_uid,
    refuse_stopping,
)

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

_SUN_PATH_MAX = 107
"""Bytes of a Unix socket path, without its terminating NUL."""
_TCP = (socket.AF_INET, socket.AF_INET6)
_SYNC = "/sync/"
_COLLAB = "/collab/"
_API = "/api/weddings/"


def wedding_of_path(path: str) -> str | None:
    """The wedding a request path names (``/sync/{w}/...``, ``/api/weddings/{w}``,
    ``/api/weddings/{w}/...``, ``/collab/{w}``; bare ``/collab`` names none: its socket is
    served where it lands)."""
    if path.startswith(_COLLAB):
        wedding = path[len(_COLLAB) :]
        return wedding if wedding and "/" not in wedding else None
    if path.startswith(_API):
        wedding = path[len(_API) :].partition("/")[0]
        return wedding or None
    if path.startswith(_SYNC):
        wedding, slash, _ = path[len(_SYNC) :].partition("/")
        return wedding if slash and wedding else None
    return None


def make_run_dir() -> Path:
    """A new private (0700) directory for the control sockets, with room for their names
    within the 108-byte limit of a Unix socket path."""
    for base in (os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(), "/tmp"):
        if base and os.path.isdir(base) and len(base) + 40 <= _SUN_PATH_MAX:
            return Path(tempfile.mkdtemp(prefix="crdt-server-", dir=base))
    raise OSError("no directory short enough for the workers' control sockets")


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
        self._clock = clock
        self._listener: socket.socket | None = None
        self._readers: set[socket.socket] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._adopt: Adopt | None = None
        self._sender = Sender(index, run_dir, timeout, clock)
        self.refused_peers = 0
        """Control connections refused for another uid (a test reads it)."""
        self.closed_late = 0
        """Hand-offs this worker (the owner) read past their deadline and closed unread."""

    def socket_path(self, index: int) -> str:
        return str(self.run_dir / f"w{index}")

    def owner(self, wedding_id: str) -> int:
        return owner(wedding_id, self.count)

    def owner_elsewhere(self, path: str) -> int | None:
        """The worker that owns the wedding of the sync path ``path``, unless it is this
        one (or the path names no wedding)."""
        wedding = wedding_of_path(path)
        if wedding is None:
            return None
        to = self.owner(wedding)
        return None if to == self.index else to

    @property
    def timeout(self) -> float:
        """How long a hand-off waits for the owner's acknowledgement."""
        return self._sender.timeout

    @property
    def pending(self) -> int:
        """Hand-offs sent and not acknowledged yet (each holds a descriptor)."""
        return self._sender.pending

    @property
    def taken_back(self) -> int:
        """Hand-offs this worker sent and then served itself (not acknowledged in time)."""
        return self._sender.taken_back

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
        self._sender.take_back = take_back
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
        self._sender.close()

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
                data, fds, flags, _ = socket.recv_fds(conn, HEADER.size + MAX_MESSAGE, 1)
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
            data, fds, flags, _ = socket.recv_fds(conn, HEADER.size + MAX_MESSAGE, 1)
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
            self._adopt(sock, data[HEADER.size :])

    def _take(
        self, conn: socket.socket, data: bytes, fds: list[int], flags: int
    ) -> socket.socket | None:
        """The hand-off's socket, acknowledged, when it is well formed and in time; else
        ``None`` (its descriptor closed)."""
        truncated = flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC)
        if truncated or len(fds) != 1 or len(data) < HEADER.size:
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
        ident, deadline = HEADER.unpack_from(data)
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
            conn.send(ACK.pack(ident))
        except OSError:  # the sender is gone, or not reading: it serves the connection
            return False
        return True

    # -- the accepting side ----------------------------------------------------------------

    def hand_off(self, to: int, fd: int, head: bytes) -> bool:
        """Send the connection ``fd`` and the bytes read from it to worker ``to``; ``False``
        when that worker cannot take it now (the caller then serves it). Never blocks; call
        it on the running loop. Until ``to`` acknowledges it, this worker keeps a duplicate
        of ``fd``: past the deadline it serves the connection itself (``take_back``)."""
        return self._sender.hand_off(to, fd, head)

    @staticmethod
    def feed(protocol: asyncio.Protocol, head: bytes) -> asyncio.Protocol:
        """The protocol to adopt a handed-off socket with: ``protocol`` once it has been
        given ``head``."""
        return _Feed(protocol, head)
