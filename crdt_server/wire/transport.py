"""The transport seam: one tiny protocol (receive, send, close) and an in-memory pair.

The core's sessions never see a socket, Starlette or uvicorn: the native protocol
(:mod:`crdt_server.wire.websocket`) is a :class:`Transport` itself, the ASGI endpoint
(:mod:`crdt_server.edge.asgi_ws`) adapts a Starlette WebSocket to one, and tests drive real
rooms through :func:`memory_pair`. This module imports nothing but asyncio.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

__all__ = ["MemoryTransport", "Transport", "TransportClosed", "memory_pair"]


class TransportClosed(Exception):
    """The peer is gone (or the transport was closed); ``code`` is the close code seen."""

    def __init__(self, code: int = 1006, reason: str = "") -> None:
        super().__init__(f"transport closed with {code} {reason}".strip())
        self.code = code
        self.reason = reason


class Transport(Protocol):
    async def receive(self) -> bytes | str:
        """The next message; ``str`` for a text frame. Raises :class:`TransportClosed`."""

    def receive_ready(self) -> bytes | str | None:
        """The next message if it has already arrived, without waiting; ``None`` if none
        has (or the transport cannot tell: then :meth:`receive` brings it)."""

    async def send(self, data: bytes) -> None:
        """Send one binary message; may wait while the peer is slow. Raises TransportClosed."""

    async def close(self, code: int, reason: str = "") -> None:
        """Start the close handshake with ``code``."""


_CLOSE = object()


class MemoryTransport:
    """One end of an in-memory duplex channel; messages keep their order."""

    def __init__(self, inbox: asyncio.Queue[object], outbox: asyncio.Queue[object]) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self.close_code: int | None = None
        self.close_reason = ""

    async def receive(self) -> bytes | str:
        item = await self._inbox.get()
        if isinstance(item, tuple):
            self._inbox.put_nowait(item)  # later reads see the close too
            raise TransportClosed(item[1], item[2])
        assert isinstance(item, bytes | str)
        return item

    def receive_ready(self) -> bytes | str | None:
        try:
            item = self._inbox.get_nowait()
        except asyncio.QueueEmpty:
            return None
        if isinstance(item, tuple):
            self._inbox.put_nowait(item)  # the close is for receive() to raise
            return None
        assert isinstance(item, bytes | str)
        return item

    async def send(self, data: bytes | str) -> None:
        if self.close_code is not None:
            raise TransportClosed(self.close_code, self.close_reason)
        await self._outbox.put(data)

    async def close(self, code: int, reason: str = "") -> None:
        if self.close_code is not None:
            return
        self.close_code = code
        self.close_reason = reason
        closing = (_CLOSE, code, reason)
        self._outbox.put_nowait(closing)
        self._inbox.put_nowait(closing)


def memory_pair(maxsize: int = 0) -> tuple[MemoryTransport, MemoryTransport]:
    """Two connected ends: what one sends, the other receives."""
    a_to_b: asyncio.Queue[object] = asyncio.Queue(maxsize)
    b_to_a: asyncio.Queue[object] = asyncio.Queue(maxsize)
    return MemoryTransport(b_to_a, a_to_b), MemoryTransport(a_to_b, b_to_a)
