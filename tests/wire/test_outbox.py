"""The native WebSocket stack's outbox: the frames a connection is sent in one loop turn go
out in one write after the turn, in order, nothing dropped; a message sent to many
connections is framed once; and a reader that stops reading is still closed with 1013.

Each test runs :class:`SyncWebSocketProtocol` on a real socket pair (asyncio's own socket
transport), in the open state, under a real :class:`Connection`; the other end is a plain
socket that reads the frames as a client would. The transport's ``write`` is counted by
a pass-through wrapper.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from crdt_server.auth.principals import ANONYMOUS
from crdt_server.codec.websocket_frames import parse_header
from crdt_server.core.connection import Connection
from crdt_server.errors import CloseCode
from crdt_server.wire.uvicorn_private import Config, ServerState
from crdt_server.wire.websocket import _OPEN, _OUTBOX_KEY, Outbox, SyncWebSocketProtocol

DEADLINE = 10.0


class CountingTransport:
    """asyncio's transport, with every ``write`` recorded (sizes, in order)."""

    def __init__(self, inner: asyncio.Transport) -> None:
        self.inner = inner
        self.writes: list[int] = []

    def write(self, data: bytes) -> None:
        self.writes.append(len(data))
        self.inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@asynccontextmanager
async def open_pair(
    app_state: dict[str, Any], max_out: int = 1 << 20, rcvbuf: int = 0
) -> AsyncIterator[tuple[SyncWebSocketProtocol, CountingTransport, socket.socket]]:
    """A protocol in the open state on one end of a socket pair; the other end, blocking."""
    ours, theirs = socket.socketpair()
    if rcvbuf:
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, rcvbuf)
    loop = asyncio.get_running_loop()
    protocol = SyncWebSocketProtocol(Config(app=lambda *_: None), ServerState(), app_state)
    transport, _ = await loop.connect_accepted_socket(lambda: protocol, ours)
    counting = CountingTransport(transport)
    protocol._transport = counting  # type: ignore[assignment]
    protocol._state = _OPEN
    protocol._max_out = max_out
    protocol._outbox = app_state.setdefault(_OUTBOX_KEY, Outbox())
    try:
        yield protocol, counting, theirs
    finally:
        for task in READERS:
            task.cancel()
        READERS.clear()
        transport.abort()
        theirs.close()


async def connection(protocol: SyncWebSocketProtocol, max_bytes: int = 1 << 20) -> Connection:
    """A connection started on a reader task of its own (as a session's), which a close that
    times out interrupts."""
    conn = Connection(
        protocol,
        ANONYMOUS,
        max_queue_bytes=max_bytes,
        max_queue_messages=10_000,
        close_timeout=1.0,
    )
    started = asyncio.Event()

    async def session() -> None:
        conn.start()
        started.set()
        await asyncio.Event().wait()

    READERS.add(asyncio.create_task(session()))
    await started.wait()
    return conn


READERS: set[asyncio.Task[None]] = set()


async def read_frames(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    """``count`` frames (opcode, payload) from the client end, or up to a close frame, read
    off the loop."""

    def read() -> list[tuple[int, bytes]]:
        sock.settimeout(DEADLINE)
        buffer = bytearray()
        frames: list[tuple[int, bytes]] = []
        while len(frames) < count:
            header = parse_header(bytes(buffer))
            if header is not None and len(buffer) >= header.size + header.length:
                start = header.size
                frames.append((header.opcode, bytes(buffer[start : start + header.length])))
                del buffer[: start + header.length]
                if header.opcode == 0x8:
                    break  # a close frame: nothing follows
                continue
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            buffer += chunk
        return frames

    return await asyncio.to_thread(read)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_frames_sent_in_one_turn_go_out_in_one_write_in_order() -> None:
    app_state: dict[str, Any] = {}
    async with open_pair(app_state) as (protocol, transport, client):
        conn = await connection(protocol)
        messages = [bytes([i]) * (10 + i) for i in range(20)]
        for m in messages[:10]:  # one turn
            conn.send(m)
        assert transport.writes == []  # nothing written inside the turn
        await asyncio.sleep(0)
        assert len(transport.writes) == 1
        for m in messages[10:]:  # the next turn
            conn.send(m)
        await asyncio.sleep(0)
        assert len(transport.writes) == 2
        frames = await read_frames(client, 20)
        assert frames == [(0x2, m) for m in messages]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_broadcast_is_framed_once_and_every_reader_gets_all_of_it() -> None:
    app_state: dict[str, Any] = {}
    async with (
        open_pair(app_state) as (p1, t1, c1),
        open_pair(app_state) as (p2, t2, c2),
    ):
        conns = [await connection(p1), await connection(p2)]
        outbox = app_state[_OUTBOX_KEY]
        message = b"update" * 50
        framed: list[bytes] = []
        for conn in conns:
            conn.send(message)
            framed.append(outbox.frame(message))
        assert framed[0] is framed[1]  # one frame object for both readers
        for i in range(300):  # many turns, many frames: nothing dropped, order kept
            for conn in conns:
                conn.send(i.to_bytes(2, "big"))
            if i % 7 == 0:
                await asyncio.sleep(0)
        expected = [(0x2, message)] + [(0x2, i.to_bytes(2, "big")) for i in range(300)]
        assert await read_frames(c1, 301) == expected
        assert await read_frames(c2, 301) == expected
        assert len(t1.writes) == len(t2.writes) <= 300 // 7 + 2


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_frames_past_the_merge_limit_are_written_at_once() -> None:
    """A turn that sends a lot does not hold it all back: past 64 KiB it is written, so the
    socket's backpressure applies as it did with one write per frame."""
    app_state: dict[str, Any] = {}
    async with open_pair(app_state) as (protocol, transport, client):
        conn = await connection(protocol)
        big = b"x" * 40_000
        conn.send(big)
        conn.send(big)  # passes 64 KiB: written now
        assert len(transport.writes) == 1
        frames = await read_frames(client, 2)
        assert frames == [(0x2, big), (0x2, big)]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_reader_that_stops_reading_is_closed_with_1013() -> None:
    app_state: dict[str, Any] = {}
    async with open_pair(app_state, rcvbuf=4096) as (protocol, transport, client):
        conn = await connection(protocol, max_bytes=256 * 1024)
        payload = b"y" * 20_000
        sent = 0
        async with asyncio.timeout(DEADLINE):
            while conn.close_code is None and not conn.overflowed:
                conn.send(payload)
                sent += 1
                await asyncio.sleep(0)
        assert conn.overflowed
        await asyncio.wait_for(conn.wait_closed(), DEADLINE)
        assert conn.close_code == CloseCode.TRY_AGAIN_LATER
        # The client reads late: a prefix of what was sent, in order, then the close frame.
        frames = await read_frames(client, sent + 1)
        data = [p for op, p in frames if op == 0x2]
        assert 0 < len(data) < sent and all(p == payload for p in data)
        assert frames[-1][0] == 0x8
        assert int.from_bytes(frames[-1][1][:2], "big") == CloseCode.TRY_AGAIN_LATER


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_flush_writes_what_the_turn_sent_so_far_in_one_write() -> None:
    """A room flushes its connections once it has distributed a committed batch: the
    batch's frames go out in one write then, not after the rest of the turn."""
    app_state: dict[str, Any] = {}
    async with open_pair(app_state) as (protocol, transport, client):
        conn = await connection(protocol)
        for i in range(3):
            conn.send(bytes([i]))
        conn.flush()
        assert len(transport.writes) == 1
        conn.send(b"after")
        await asyncio.sleep(0)
        assert len(transport.writes) == 2  # the rest of the turn, at its end
        frames = await read_frames(client, 4)
        assert frames == [(0x2, b"\x00"), (0x2, b"\x01"), (0x2, b"\x02"), (0x2, b"after")]
