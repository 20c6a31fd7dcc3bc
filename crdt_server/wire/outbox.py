"""The frames a server's native WebSocket connections are sent in one loop turn, written
together after it."""

from __future__ import annotations

import asyncio
from typing import Protocol

from crdt_server.codec.websocket_frames import Opcode, frame_header

__all__ = ["Outbox", "Written"]


class Written(Protocol):
    """A connection with frames to write (a
    :class:`~crdt_server.wire.websocket.SyncWebSocketProtocol`)."""

    def _write_out(self) -> None:
        """Write the frames sent since the last write, in order, in one ``write``."""


class Outbox:
    """The frames a server's connections are sent in one loop turn, written after it: one
    ``write`` (one ``send`` system call) per connection per turn, however many frames the
    turn gave it (a broadcast of a batch, its echo and the updates it released, presence),
    in the order they were sent. And one frame per message for all its readers: a room
    hands every connection the same message object, framed here once (the last message's
    frame is kept until the turn's writes are done).

    The write happens when a room has distributed a committed batch (it flushes its
    connections: the echo does not wait for the rest of the turn), else at the start of the
    next loop iteration (``call_soon``), before the callbacks of the I/O that iteration
    reads."""

    __slots__ = ("_due", "_message", "_frame", "_scheduled")

    def __init__(self, _: object = None) -> None:
        self._due: list[Written] = []
        self._message: bytes | None = None
        self._frame = b""
        self._scheduled = False

    def frame(self, message: bytes) -> bytes:
        """``message`` as one binary frame (the same object for the same message)."""
        if message is self._message:
            return self._frame
        frame = frame_header(Opcode.BINARY, len(message)) + message
        self._message, self._frame = message, frame
        return frame

    def add(self, protocol: Written) -> None:
        """``protocol`` has frames to write at the end of this turn."""
        self._due.append(protocol)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._write)

    def _write(self) -> None:
        self._scheduled = False
        due, self._due = self._due, []
        self._message, self._frame = None, b""
        for protocol in due:
            protocol._write_out()
