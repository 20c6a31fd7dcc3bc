"""The instruments of the in-process mode: what tells :meth:`InProcessServer.settle
<crdt_server.testing.inprocess.InProcessServer.settle>` that everything is quiet. The store
counts the calls in flight, the server end of every connection says when its session waits
for input with nothing unread, the client's link says when its reader does, and the server's
ERROR records are collected (none is expected with well-behaved clients)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crdt_server.auth.principals import Principal
from crdt_server.core.connection import Connection
from crdt_server.core.registry import RoomRegistry
from crdt_server.core.session import serve_connection
from crdt_server.errors import CloseCode
from crdt_server.settings import Settings
from crdt_server.storage import FeatureRow, NewUpdate, SqliteStore, StoredLog
from crdt_server.storage.gateway import Tx
from crdt_server.wire.transport import MemoryTransport, TransportClosed, memory_pair

__all__ = [
    "Activity",
    "ErrorLog",
    "Link",
    "ServerEnd",
    "TrackedStore",
    "serve_memory",
    "server_errors",
]


class ErrorLog(logging.Handler):
    """Collects ERROR records of the server: none is expected with well-behaved clients."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def server_errors() -> Iterator[ErrorLog]:
    """Collect the server's ERROR log records while the block runs."""
    handler = ErrorLog()
    logger = logging.getLogger("crdt_server")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


class Activity:
    """Set whenever something the quiescence check looks at may have changed."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def notify(self) -> None:
        self.event.set()


class TrackedStore(SqliteStore):
    """A real ``SqliteStore`` that counts the calls the server makes and that are in flight.

    Inline (``SqliteStore(inline=True)``): the same connections, SQL, transactions and group
    commit, on the test's own thread; a thread hop per call cost more than the statements
    of a test's small documents."""

    def __init__(self, path: Path, activity: Activity) -> None:
        super().__init__(path, inline=True)
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

    async def load(self, doc: str, *, upto: int | None = None) -> StoredLog | None:
        with self._call():
            return await super().load(doc, upto=upto)

    async def append(
        self,
        updates: Sequence[NewUpdate],
        *,
        rows: Sequence[FeatureRow] = (),
        steps: Sequence[Tx[Any]] = (),
        first: bool = False,
    ) -> list[int]:
        with self._call():
            return await super().append(updates, rows=rows, steps=steps, first=first)

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

    def receive_ready(self) -> bytes | str | None:
        frame = self.inner.receive_ready()
        if frame is not None:
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


def serve_memory(
    registry: RoomRegistry,
    settings: Settings,
    room: str,
    principal: Principal,
    activity: Activity,
    *,
    peer: str = "in-process",
) -> tuple[MemoryTransport, ServerEnd, asyncio.Task[Connection]]:
    """Serve a new in-memory connection to ``room`` as the WebSocket endpoint does.

    Returns the client's end, the (instrumented) server end and the session task, whose
    result is the finished :class:`Connection` (its ``close_code``).
    """
    client_end, server_end = memory_pair()
    end = ServerEnd(server_end, activity)
    session = asyncio.create_task(
        serve_connection(end, registry, room, principal, settings, peer=peer)
    )
    session.add_done_callback(lambda _: activity.notify())
    return client_end, end, session


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

    async def send(self, frame: bytes | str) -> None:
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
