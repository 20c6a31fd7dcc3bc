"""Two WebSocket client transports for the load generator, behind one tiny interface.

* :class:`RawWebSocket`: a lean RFC 6455 client on :class:`asyncio.Protocol`. No per-message
  task, no per-message future: ``send`` frames with the server's own codec
  (``crdt_server.codec.websocket_frames``) and writes; received frames are parsed in
  ``data_received`` and handed, with the time the bytes arrived, to a plain callback. This
  is the default: it costs the client several times less CPU than the ``websockets``
  library (see ``benchmarks/README.md``).
* :class:`LibWebSocket`: the same interface over ``websockets.asyncio.client`` (one reader
  task and one sender task per connection), kept to measure that difference
  (``run.py --client websockets``).

Both call ``on_message(payload, t)`` for every complete binary (or text) message, where
``t`` is ``time.perf_counter()`` when the bytes were read from the socket.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol, cast

from crdt_server.codec.websocket_frames import (
    apply_mask,
    encode_close,
    encode_frame,
    parse_header,
)

__all__ = [
    "LibWebSocket",
    "MessageHandler",
    "RawWebSocket",
    "WireConnection",
    "open_connection",
]

MessageHandler = Callable[[bytes, float], None]

_OP_CONT = 0x0
_OP_TEXT = 0x1
_OP_BINARY = 0x2
_OP_CLOSE = 0x8
_OP_PING = 0x9
_OP_PONG = 0xA


class WireConnection(Protocol):
    """What the load generator needs from a connection."""

    closed: asyncio.Future[None]

    def send(self, data: bytes) -> None:
        """Queue one binary message (never blocks; the caller bounds what it queues)."""

    async def close(self, timeout: float = 5.0) -> None:
        """Close handshake, bounded by ``timeout``; then drop the connection."""

    def abort(self) -> None:
        """Drop the connection at once."""


class RawWebSocket(asyncio.Protocol):
    """A minimal client: HTTP/1.1 upgrade, masked frames out, unmasked frames in."""

    def __init__(self, host: str, port: int, path: str, on_message: MessageHandler) -> None:
        loop = asyncio.get_running_loop()
        self._host = host
        self._port = port
        self._path = path
        self._on_message = on_message
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._handshaken = False
        self._fragments: list[bytes] = []
        self._mask = os.urandom(4)
        self.opened: asyncio.Future[None] = loop.create_future()
        # A handshake given up on (its waiter timed out, e.g. inside create_connection) may
        # still fail later, with nobody to read the exception: read it here, so asyncio does
        # not log "Future exception was never retrieved" for each. Waiters still get it.
        self.opened.add_done_callback(_read_exception)
        self.closed: asyncio.Future[None] = loop.create_future()
        self.close_code: int | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's TCP transport (BENCH_AGENT_LOOP=uvloop)
        # has a Transport's methods without deriving from asyncio.Transport.
        self._transport = cast(asyncio.Transport, transport)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {self._path} HTTP/1.1\r\n"
            f"Host: {self._host}:{self._port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "\r\n"
        )
        transport.write(request.encode())

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        buf = self._buffer
        buf += data
        if not self._handshaken:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > 65536:
                    self._fail(ConnectionError("handshake response too long"))
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            del buf[: end + 4]
            parts = status.split(b" ", 2)
            if len(parts) < 2 or parts[1] != b"101":
                self._fail(ConnectionError(f"upgrade refused: {status.decode(errors='replace')}"))
                return
            self._handshaken = True
            if not self.opened.done():
                self.opened.set_result(None)
        self._parse(now)

    def _parse(self, now: float) -> None:
        buf = self._buffer
        pos = 0
        size = len(buf)
        on_message = self._on_message
        while True:
            header = parse_header(buf, pos)
            if header is None:
                break
            start = pos + header.size
            end = start + header.length
            if end > size:
                break
            payload = bytes(buf[start:end])
            if header.mask is not None:
                payload = apply_mask(payload, header.mask)
            pos = end
            opcode = header.opcode
            fin = header.fin
            if opcode in (_OP_BINARY, _OP_TEXT) or opcode == _OP_CONT:
                if fin and not self._fragments:
                    on_message(payload, now)
                else:
                    self._fragments.append(payload)
                    if fin:
                        whole = b"".join(self._fragments)
                        self._fragments = []
                        on_message(whole, now)
            elif opcode == _OP_PING:
                self._write(_OP_PONG, payload)
            elif opcode == _OP_CLOSE:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self._write(_OP_CLOSE, payload[:2])
                if self._transport is not None:
                    self._transport.close()
                break
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    def _fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        if self._transport is not None:
            self._transport.abort()

    # -- WireConnection ------------------------------------------------------------------

    def _write(self, opcode: int, payload: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(encode_frame(opcode, payload, mask=self._mask))

    def send(self, data: bytes) -> None:
        self._write(_OP_BINARY, data)

    async def close(self, timeout: float = 5.0) -> None:
        if self._transport is None:
            return
        self._write(_OP_CLOSE, encode_close(1000))
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self.closed)
        except TimeoutError:
            self.abort()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


class LibWebSocket:
    """The same interface over the ``websockets`` library (asyncio implementation)."""

    def __init__(self, on_message: MessageHandler) -> None:
        self._on_message = on_message
        self._ws: object | None = None
        self._outbox: deque[bytes] = deque()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def open(self, url: str) -> None:
        from websockets.asyncio.client import connect

        ws = await connect(url, max_size=None, compression=None, open_timeout=30)
        self._ws = ws
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._write())]

    async def _read(self) -> None:
        from websockets.asyncio.client import ClientConnection
        from websockets.exceptions import ConnectionClosed

        ws = self._ws
        assert isinstance(ws, ClientConnection)
        on_message = self._on_message
        try:
            async for message in ws:
                on_message(
                    message if isinstance(message, bytes) else message.encode(),
                    time.perf_counter(),
                )
        except ConnectionClosed:
            pass
        finally:
            if not self.closed.done():
                self.closed.set_result(None)
            self._wakeup.set()

    async def _write(self) -> None:
        from websockets.asyncio.client import ClientConnection
        from websockets.exceptions import ConnectionClosed

        ws = self._ws
        assert isinstance(ws, ClientConnection)
        outbox = self._outbox
        try:
            while not self.closed.done():
                while not outbox:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    if self.closed.done():
                        return
                await ws.send(outbox.popleft())
        except ConnectionClosed:
            pass

    def send(self, data: bytes) -> None:
        self._outbox.append(data)
        self._wakeup.set()

    async def close(self, timeout: float = 5.0) -> None:
        from websockets.asyncio.client import ClientConnection

        ws = self._ws
        if isinstance(ws, ClientConnection):
            try:
                async with asyncio.timeout(timeout):
                    await ws.close()
            except TimeoutError:
                self.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def abort(self) -> None:
        from websockets.asyncio.client import ClientConnection

        ws = self._ws
        if isinstance(ws, ClientConnection):
            ws.transport.abort()


def _read_exception(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


async def open_connection(
    kind: str,
    host: str,
    port: int,
    path: str,
    on_message: MessageHandler,
    timeout: float,
    source: str | None = None,
) -> WireConnection:
    """Open a connection with the ``raw`` or ``websockets`` transport, within ``timeout``.

    ``source``: the local address to bind before connecting (raw transport only).
    """
    async with asyncio.timeout(timeout):
        if kind == "websockets":
            lib = LibWebSocket(on_message)
            await lib.open(f"ws://{host}:{port}{path}")
            return lib
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_connection(
            lambda: RawWebSocket(host, port, path, on_message),
            host,
            port,
            local_addr=(source, 0) if source else None,
        )
        try:
            await protocol.opened
        except BaseException:
            transport.abort()
            raise
        return protocol
