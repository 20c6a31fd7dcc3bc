"""What an idle ``/sync`` connection costs the server, counted in-process (issue 76).

The server is the real one (the app on uvicorn with the native WebSocket protocol, as
``crdt-server serve`` runs it) on the test's own event loop; the clients are in a process
of their own (``tests/wire/idleclients.py``), so what ``tracemalloc`` finds here after they
connected is the server's. Counted, never timed: the bounds hold on a loaded machine as on
an idle one.

At 10,000 idle connections the benchmark's figure (``benchmarks.run --scenarios
connections``: server RSS per connection) had grown from 7,988 bytes at a3ed4f3 to 10,188;
most of it was here: a keepalive timer of its own per session (about 600 bytes), a
coroutine frame more held by every connection (about 300 bytes), a stateless messages'
bucket on sessions that never read one.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import sys
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvicorn

from crdt_server.app import create_app
from crdt_server.cli.process import uvicorn_config
from crdt_server.settings import Settings
from tests.server import ROOT

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]

DEADLINE = 60.0
ROOMS = 20
PER_ROOM = 10
"""Connections per room, as in the benchmark's connections scenario."""

MAX_BYTES_PER_CONNECTION = 6_300
"""What the server's process may allocate for one more idle, synced connection to a loaded
room: its socket's transport, the upgrade's leftovers, the WebSocket protocol, the
connection and its session, their coroutines and the task that runs them, its place in
the room and in the presence records. With Python 3.11: 5,79x to 5,84x bytes when this was written,
7,203 before issue 76's fixes (6,034 at a3ed4f3)."""
MAX_BLOCKS_PER_CONNECTION = 70
"""Memory blocks (mostly Python objects) per idle connection: 64.9 when this was written,
77.8 before issue 76's fixes (66.1 at a3ed4f3)."""


@asynccontextmanager
async def _server(tmp_path: Path) -> AsyncIterator[int]:
    """The app under uvicorn with the native WebSocket protocol, as ``serve`` runs it."""
    settings = Settings(
        data_dir=tmp_path / "data",
        allow_anonymous=True,
        max_upgrades_per_second=1_000_000,
        max_connections_per_address=1_000_000,
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(settings, create_app(settings)))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(DEADLINE):
            while not server.started:
                assert not serving.done(), "the server did not start"
                await asyncio.sleep(0.01)  # uvicorn says it has started by a flag only
        yield port
    finally:
        server.should_exit = True
        await serving


@asynccontextmanager
async def _clients(port: int, per_room: int, rooms: list[str]) -> AsyncIterator[_Clients]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.wire.idleclients",
        str(port),
        str(per_room),
        *rooms,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        yield _Clients(child, per_room * len(rooms))
    finally:
        assert child.stdin is not None
        child.stdin.close()  # they close
        try:
            async with asyncio.timeout(DEADLINE):
                await child.wait()
        except TimeoutError:
            child.kill()
            await child.wait()


class _Clients:
    def __init__(self, child: asyncio.subprocess.Process, count: int) -> None:
        self._child = child
        self.count = count

    async def connect(self) -> None:
        """Open them all, synced."""
        assert self._child.stdin is not None and self._child.stdout is not None
        self._child.stdin.write(b"go\n")
        line = await self._child.stdout.readline()
        assert line == f"synced {self.count}\n".encode(), line


def _timers() -> int:
    """Timers due (a cancelled one may wait in the loop's heap until its time)."""
    return sum(isinstance(o, asyncio.TimerHandle) and not o.cancelled() for o in gc.get_objects())


async def test_an_idle_connection_costs_the_server_a_bounded_few_kilobytes(
    tmp_path: Path,
) -> None:
    """Idle, synced connections to loaded rooms (10 a room) cost the server's process no
    more than :data:`MAX_BYTES_PER_CONNECTION` and :data:`MAX_BLOCKS_PER_CONNECTION` each,
    and no timer of their own (the keepalive of every ``/sync`` session is one timer)."""
    rooms = [f"/sync/idle-{uuid.uuid4().hex[:12]}/guests" for _ in range(ROOMS)]
    async with (
        asyncio.timeout(DEADLINE * 2),
        _server(tmp_path) as port,
        # Each room loaded, and whatever the server makes on first use made, first.
        _clients(port, 1, rooms) as first,
        _clients(port, PER_ROOM, rooms) as idle,
    ):
        await first.connect()
        gc.collect()
        timers = _timers()
        tracemalloc.start()
        try:
            await idle.connect()
            gc.collect()
            snapshot = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        more_timers = _timers() - timers
        stats = snapshot.statistics("lineno")
        size = sum(s.size for s in stats) / idle.count
        blocks = sum(s.count for s in stats) / idle.count
        where = "\n".join(f"  {s.size / idle.count:7.1f} {s.traceback}" for s in stats[:15])
        assert size <= MAX_BYTES_PER_CONNECTION, f"{size:.0f} bytes each:\n{where}"
        assert blocks <= MAX_BLOCKS_PER_CONNECTION, f"{blocks:.1f} blocks each:\n{where}"
        assert more_timers < idle.count // 10, f"{more_timers} more timers for {idle.count}"
