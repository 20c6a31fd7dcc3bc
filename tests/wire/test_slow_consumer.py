"""A client that stops reading is closed with 1013; everybody else keeps receiving."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

import pytest
from pycrdt import Array, Doc
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from crdt_server.codec.protocol import SyncStep2, SyncUpdate, decode_message, encode_sync_step1
from tests.server import ServerProcess
from tests.yclient import YClient

ROOM = "w7/timeline"
UPDATES = 200
PAYLOAD = 100_000  # bytes per update: 20 MB in all, far past every buffer on the way


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_slow_consumer_is_closed_with_1013(tmp_path: Path) -> None:
    env = {"CRDT_SERVER_OUTBOUND_QUEUE_BYTES": str(512 * 1024)}
    async with ServerProcess(tmp_path / "data", env=env) as server:
        # A reader that stalls: a tiny kernel receive buffer, and websockets stops reading
        # the socket as soon as one message waits unread.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        slow = await connect(f"{server.ws_url}/{ROOM}", sock=sock, max_size=None, max_queue=1)
        await slow.send(encode_sync_step1(b"\x00"))
        async with YClient(server.ws_url, ROOM) as writer, YClient(server.ws_url, ROOM) as reader:
            await writer.wait(writer.synced.is_set)
            await reader.wait(reader.synced.is_set)
            items = writer.doc.get("items", type=Array)
            received = reader.doc.get("items", type=Array)
            for i in range(UPDATES):
                items.append(f"{i}:" + os.urandom(PAYLOAD // 2).hex())
                await writer.flush()
                # In lockstep with a healthy reader, so every update is a frame of its own.
                await reader.wait(lambda n=i + 1: len(received) == n)
            await writer.wait(writer.is_confirmed, 60)

        # Now the stalled client reads what it was sent: a prefix, then the close frame.
        doc: Doc[Array[str]] = Doc()
        with pytest.raises(ConnectionClosed) as info:
            async with asyncio.timeout(30):
                while True:
                    frame = await slow.recv()
                    assert isinstance(frame, bytes)
                    message = decode_message(frame)
                    if isinstance(message, SyncUpdate | SyncStep2):
                        doc.apply_update(message.update)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1013
        assert len(doc.get("items", type=Array)) < UPDATES
        assert server.alive


def _server_end_open(server_port: int, client_port: int) -> bool:
    """Whether the kernel still holds the server's end of this loopback connection."""
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    with open("/proc/net/tcp") as table:
        next(table)
        return any(line.split()[1:3] == [local, remote] for line in table)


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_a_client_that_never_reads_loses_its_socket(tmp_path: Path) -> None:
    """Native stack: once the close handshake times out, the socket is aborted with a reset,
    so neither the server's buffers nor the kernel's stay with a peer that stopped reading.

    The server's end is what is checked: the reset itself may never count at the client,
    whose closed receive window can put it out of sequence (and then it is dropped)."""
    env = {
        "CRDT_SERVER_OUTBOUND_QUEUE_BYTES": str(256 * 1024),
        "CRDT_SERVER_CLOSE_TIMEOUT_SECONDS": "1",
        "CRDT_SERVER_MAX_UPDATES_PER_SECOND": "10000",
    }
    async with ServerProcess(tmp_path / "data", env=env) as server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        client_port = sock.getsockname()[1]
        # The upgrade by hand: after the 101 this client never reads again.
        sock.sendall(
            f"GET /sync/{ROOM} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        assert sock.recv(12) == b"HTTP/1.1 101"
        try:
            assert _server_end_open(server.port, client_port)
            async with YClient(server.ws_url, ROOM) as writer:
                await writer.wait(writer.synced.is_set)
                items = writer.doc.get("items", type=Array)
                # Up to 20 MB, one frame each (updates that arrive together are merged),
                # until the kernel's buffers and the queue bound are full: then 1013, the
                # close timeout (1 s) and the reset, without this client reading a byte.
                for _ in range(UPDATES):
                    items.append(os.urandom(PAYLOAD // 2).hex())
                    await writer.flush()
                    await writer.wait(writer.is_confirmed, 30)
                    if not _server_end_open(server.port, client_port):
                        break
            deadline = time.monotonic() + 15
            while _server_end_open(server.port, client_port):
                assert time.monotonic() < deadline, server.log.decode()[-1500:]
                await asyncio.sleep(0.02)  # polling the kernel; no event to wait for
            assert "slow consumer" in server.log.decode()
            assert server.alive
        finally:
            sock.close()
