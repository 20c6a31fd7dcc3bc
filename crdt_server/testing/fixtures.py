"""What the plugin's fixtures hand out: server factories, client pools, the in-process mode.

Kept out of :mod:`crdt_server.testing.plugin`, which pytest imports on every run: this
module (pycrdt, websockets, the server's core) is imported when a fixture is first used.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from crdt_server.settings import Settings

from .client import YClient
from .inprocess import FAST_TMP, InProcessClient, InProcessServer
from .scenario import Apply, Step, apply_step_operation, play
from .server import ServerProcess
from .tokens import TokenMinter

__all__ = ["ClientPool", "InProcess", "ServerFactory"]

T = TypeVar("T")


class ServerFactory:
    """Starts real servers (``crdt-server serve`` on ephemeral ports), each with its own
    data directory under ``base``; :meth:`close` stops every one still running.

    Every server accepts the tokens of ``minter``. With ``redis_url`` the server joins the
    Redis bus there, so several such servers form a cluster.
    """

    def __init__(self, base: Path, minter: TokenMinter) -> None:
        self.base = base
        self.minter = minter
        self.servers: list[ServerProcess] = []
        self._numbers = itertools.count()

    def __call__(
        self,
        *,
        anonymous: bool = True,
        redis_url: str | None = None,
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
        start: bool = True,
    ) -> ServerProcess:
        extra = dict(self.minter.env)
        if redis_url:
            extra["CRDT_SERVER_REDIS_URL"] = redis_url
        extra.update(env or {})
        server = ServerProcess(
            data_dir or self.base / f"server-{next(self._numbers)}",
            env=extra,
            args=list(args),
            anonymous=anonymous,
        )
        self.servers.append(server)
        return server.start_sync() if start else server

    def close(self) -> None:
        for server in self.servers:
            server.stop_sync()


class ClientPool:
    """Connected :class:`YClient` objects for one server; ``async with pool:`` closes them.

    ``await pool.connect("w1/guests")`` opens a client and waits for the initial sync;
    ``token=`` authenticates it (or ``role=``/``user=``: a token is minted).
    """

    def __init__(self, ws_url: str, minter: TokenMinter) -> None:
        self.ws_url = ws_url
        self.minter = minter
        self.clients: list[YClient] = []

    async def connect(
        self,
        room: str = "w1/guests",
        *,
        token: str | None = None,
        role: str | None = None,
        user: str | None = None,
        sync: bool = True,
        timeout: float = 10.0,
    ) -> YClient:
        if token is None and (role is not None or user is not None):
            token = self.minter(user or "tester", role or "planner", room.split("/", 1)[0])
        client = YClient(self.ws_url, room, token=token)
        self.clients.append(client)
        await client.connect()
        if sync:
            await client.wait(lambda: client.synced.is_set() or client.closed.is_set(), timeout)
        return client

    async def aclose(self) -> None:
        clients, self.clients = self.clients, []
        for client in clients:
            await client.close()

    async def __aenter__(self) -> ClientPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class InProcess:
    """The in-process mode: real rooms over in-memory channels, a SQLite file in a
    temporary directory (in memory where the system offers it). Cheap enough to start one
    server per hypothesis example.

    ``async with kit.server() as server`` in async code; :meth:`play` and :meth:`run` from
    plain (sync) tests, such as ``@given`` ones.
    """

    def __init__(self, settings: Callable[[Path], Settings] | None = None) -> None:
        self._settings = settings or (
            lambda data_dir: Settings(
                data_dir=data_dir, room_idle_seconds=3600, compact_after_updates=1000
            )
        )

    @asynccontextmanager
    async def server(self, settings: Settings | None = None) -> AsyncIterator[InProcessServer]:
        """A started in-process server; closed (every task ended) after the block."""
        with tempfile.TemporaryDirectory(prefix="crdt-inprocess-", dir=FAST_TMP) as tmp:
            config = settings or self._settings(Path(tmp))
            server = InProcessServer(config.sqlite_path, config)
            await server.start()
            try:
                yield server
            finally:
                await server.aclose()

    def run(self, main: Callable[[InProcessServer], Coroutine[Any, Any, T]]) -> T:
        """Run ``await main(server)`` on a fresh event loop with a fresh server."""

        async def go() -> T:
            async with self.server() as server:
                return await main(server)

        return asyncio.run(go())

    def play(
        self,
        script: Sequence[Step],
        *,
        clients: int = 3,
        room: str = "w1/guests",
        apply: Apply = apply_step_operation,
        setup: Sequence[Any] = (),
    ) -> list[InProcessClient]:
        """Play ``script`` with ``clients`` clients of ``room`` on a fresh server; returns
        the clients once everyone is back online and settled (see :func:`play`).

        ``setup`` operations are applied by the first client and shared before the script
        starts (a common plan the script's operations refer to).
        """

        async def main(server: InProcessServer) -> list[InProcessClient]:
            members = [await server.client(room) for _ in range(clients)]
            for operation in setup:
                apply(members[0].doc, operation)
            if setup:
                await members[0].flush()
                await server.sync()
            await play(script, members, apply)
            return members

        return self.run(main)
