"""Idle ``/sync`` clients in a process of their own, for tests that count what the server
allocates for them (``tests/wire/test_idle_cost.py``): none of the clients' own allocations
is in the server's process.

Run as ``python -m tests.wire.idleclients PORT PER_ROOM PATH...``: once a line comes on its
standard input, opens ``PER_ROOM`` raw WebSocket connections to each path, each synced (an
empty document's step 2 sent, then its step 1; the server's step 2 is its answer to what
came last), prints ``synced N``, and holds them open, idle, until its standard input ends.
"""

from __future__ import annotations

import asyncio
import struct
import sys
from contextlib import suppress

from crdt_server.codec.protocol import encode_sync_step1, encode_sync_step2
from crdt_server.codec.websocket_frames import encode_frame

_BINARY, _PING, _PONG = 0x2, 0x9, 0xA
_MASK = b"\x11\x22\x33\x44"
_HELLO = encode_frame(_BINARY, encode_sync_step2(b"\x00\x00"), mask=_MASK) + encode_frame(
    _BINARY, encode_sync_step1(b"\x00"), mask=_MASK
)
"""An empty document's step 2, then its step 1: the server answers the step 1 only after
it handled the step 2, so its answer says it handled everything the client sent."""


async def _message(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """The server's next binary message; its pings answered on the way."""
    while True:
        first, second = await reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await reader.readexactly(8))
        payload = await reader.readexactly(length)
        opcode = first & 0x0F
        if opcode == _BINARY:
            return payload
        if opcode == _PING:
            writer.write(encode_frame(_PONG, payload, mask=_MASK))
        else:
            raise ConnectionError(f"frame 0x{first:02x} from the server: {payload[:64]!r}")


async def open_synced(port: int, path: str) -> asyncio.StreamWriter:
    """One connection to ``path``, synced, then answering the server's pings and reading
    whatever else comes; returns its writer (close it to end it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.decode(errors="replace"))
    writer.write(_HELLO)
    while not (await _message(reader, writer)).startswith(b"\x00\x01"):
        pass  # the greeting (the room's step 1) and presence come first
    _readers.add(asyncio.create_task(_idle(reader, writer)))
    return writer


_readers: set[asyncio.Task[None]] = set()


async def _idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with suppress(ConnectionError, asyncio.IncompleteReadError):
        while True:
            await _message(reader, writer)


async def main(port: int, per_room: int, paths: list[str]) -> None:
    writers: list[asyncio.StreamWriter] = []
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    try:
        async with asyncio.timeout(60):
            for path in paths:
                writers += await asyncio.gather(*(open_synced(port, path) for _ in range(per_room)))
        print(f"synced {len(writers)}", flush=True)
        await loop.run_in_executor(None, sys.stdin.read)
    finally:
        for writer in writers:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]))
