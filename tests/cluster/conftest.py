"""Real processes sharing one store, with a real Redis this test suite owns (so it can kill it)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as redis

from crdt_server.cluster.messages import UpdatesMessage
from tests.server import ServerProcess


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisProcess:
    """A redis-server on 127.0.0.1 (no persistence), restartable on the same port."""

    port: int = field(default_factory=_free_port)
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (scripts/services installs it)")
        self.process = await asyncio.create_subprocess_exec(
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    if await client.ping():
                        return
                except (redis.ConnectionError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("redis-server did not come up")
                await asyncio.sleep(0.02)
        finally:
            await client.aclose()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self.process = None


class Listener:
    """A plain Redis subscriber to the updates channel: what crossed the bus."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub()
        self.docs: list[str] = []

    async def start(self) -> None:
        await self.pubsub.subscribe("crdt:updates")

    async def drain(self) -> list[str]:
        while (message := await self.pubsub.get_message(True, timeout=0.05)) is not None:
            self.docs.append(UpdatesMessage.decode(message["data"]).doc)
        return self.docs

    async def close(self) -> None:
        await self.pubsub.aclose()  # type: ignore[no-untyped-call]
        await self.client.aclose()


@pytest_asyncio.fixture
async def listener(redis_server: RedisProcess) -> AsyncIterator[Listener]:
    """Whatever crosses the bus's updates channel from now on."""
    heard = Listener(redis_server.url)
    await heard.start()
    try:
        yield heard
    finally:
        await heard.close()


async def eventually(done: Callable[[], bool], timeout: float = 10) -> None:
    """Wait until ``done()`` (looked at every 10 ms), at most ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not done():  # noqa: ASYNC110 (another object's state: no event to wait on)
            await asyncio.sleep(0.01)


class Heard:
    """A bus handler that records what it hears (a process with no rooms of its own)."""

    def __init__(self, committed: int = 0) -> None:
        self.committed = committed
        self.updates: list[tuple[str, list[int], list[bytes]]] = []
        self.events: list[dict[str, Any]] = []
        self.missed: list[str] = []
        self.opened: list[str] = []
        self.gaps: list[int] = []
        self.changed = asyncio.Event()

    async def until(self, done: Callable[[], bool], timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self.changed.clear()
                await self.changed.wait()

    def on_updates(self, doc: str, seqs: Sequence[int], updates: Sequence[bytes]) -> None:
        self.updates.append((doc, list(seqs), list(updates)))
        self.changed.set()

    def on_awareness(self, doc: str, origin: str, payload: bytes) -> None:
        return None

    def on_stateless(self, room: str, text: str | Mapping[str, str]) -> None:
        return None

    def on_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.changed.set()

    async def committed_seq(self) -> int:
        return self.committed

    async def on_gap(self, seqs: Sequence[int]) -> None:
        self.gaps += seqs
        self.changed.set()

    async def on_reconnect(self) -> None:
        return None

    def on_opened(self, topic: str) -> None:
        self.opened.append(topic)
        self.changed.set()

    async def on_missed(self, docs: Sequence[str]) -> None:
        self.missed += docs
        self.changed.set()


@pytest_asyncio.fixture
async def redis_server() -> AsyncIterator[RedisProcess]:
    server = RedisProcess()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def cluster(tmp_path: Path, redis_server: RedisProcess) -> AsyncIterator[list[ServerProcess]]:
    """Two server processes on one SQLite file and one Redis."""
    env = {
        "CRDT_SERVER_REDIS_URL": redis_server.url,
        "CRDT_SERVER_PRESENCE_TIMEOUT_SECONDS": "3",
        "CRDT_SERVER_COMPACT_AFTER_UPDATES": "50",
    }
    servers = [ServerProcess(tmp_path / "data", env=env) for _ in range(2)]
    for server in servers:
        await server.start()
    try:
        yield servers
    finally:
        for server in servers:
            await server.stop()
