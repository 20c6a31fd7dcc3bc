"""What the plugin's fixtures hand out: server factories, client pools, the in-process mode.

Kept out of :mod:`crdt_server.testing.plugin`, which pytest imports on every run: this
module (pycrdt, websockets, the server's core) is imported when a fixture is first used.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import os
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from crdt_server.settings import Settings

from .client import YClient
from .inprocess import FAST_TMP, InProcessClient, InProcessServer, kit_settings
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
    temporary directory (in memory where the system offers it).

    ``async with kit.server() as server`` in async code (a new server each time);
    :meth:`play` and :meth:`run` from plain (sync) tests, such as ``@given`` ones.

    :meth:`play` and :meth:`run` keep one event loop and one server for all the calls (a
    hypothesis test makes hundreds), and :meth:`InProcessServer.reset` it after each call:
    every connection closed and checked, rooms unloaded, every document deleted and the
    store checked empty, client ids starting again at 1000. So each call starts from an
    empty server, as with a new one, for a fraction of the cost (no store to open and
    close, no loop and threads to start and join). A call that fails (or a server that
    cannot be reset) discards the server: the next call gets a new one. :meth:`close`
    (the ``crdt_inprocess`` fixture calls it at the end of the session) ends both.
    """

    def __init__(self, settings: Callable[[Path], Settings] | None = None) -> None:
        self._settings = settings or kit_settings
        self._runner: asyncio.Runner | None = None
        self._server: InProcessServer | None = None
        self._directory: Path | None = None
        """The kept server's files: made and removed by this kit, never by a finalizer (a
        forked child's would remove the parent's)."""
        self._owner = os.getpid()
        """The process whose loop, server and directory these are (a forked child has
        copies that are not its own to close)."""
        self.servers_started = 0
        """How many servers :meth:`play` and :meth:`run` started (1 while none failed)."""

    @asynccontextmanager
    async def server(self, settings: Settings | None = None) -> AsyncIterator[InProcessServer]:
        """A started in-process server of its own; closed (every task ended) after the block."""
        with tempfile.TemporaryDirectory(prefix="crdt-inprocess-", dir=FAST_TMP) as tmp:
            config = settings or self._settings(Path(tmp))
            server = InProcessServer(config.sqlite_path, config)
            await server.start()
            try:
                yield server
            finally:
                await server.aclose()

    async def _take(self) -> InProcessServer:
        if self._server is not None:
            server, self._server = self._server, None
            return server
        self._discard_directory()
        self._directory = Path(tempfile.mkdtemp(prefix="crdt-inprocess-", dir=FAST_TMP))
        config = self._settings(self._directory)
        server = InProcessServer(config.sqlite_path, config)
        await server.start()
        self.servers_started += 1
        return server

    async def _serve(self, main: Callable[[InProcessServer], Coroutine[Any, Any, T]]) -> T:
        server = await self._take()
        try:
            result = await main(server)
            if not server.running:  # main stopped it (to look at the store)
                await server.start()
            await server.reset()
        except BaseException:
            await server.aclose()
            raise
        self._server = server
        return result

    def _discard_directory(self) -> None:
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    def run(self, main: Callable[[InProcessServer], Coroutine[Any, Any, T]]) -> T:
        """Run ``await main(server)`` on the kit's event loop with an empty server (a reset
        one, see the class); the server is reset again once ``main`` returns."""
        if self._runner is None:
            # Its own loop, not set as the thread's current one (as asyncio.run leaves it).
            self._runner = asyncio.Runner(loop_factory=asyncio.new_event_loop)
            self._owner = os.getpid()
            # A kit nobody closed must not hang the interpreter's exit on the store's
            # threads: close it before threading joins them (plain atexit runs after).
            getattr(threading, "_register_atexit", atexit.register)(self.close)
        return self._runner.run(self._serve(main))

    def close(self) -> None:
        """Stop the kept server and close the kit's event loop (safe to call twice).

        In a child forked after the kit made its loop (``threading``'s exit hooks run there
        too, a ``multiprocessing`` child's included), it does nothing and drops nothing:
        the loop shares its epoll instance with the parent's, whose self-pipe closing it
        here (or collecting it: a loop closes itself when collected) would unregister, and
        the server's files are the parent's."""
        if os.getpid() != self._owner:
            return
        runner, self._runner = self._runner, None
        server, self._server = self._server, None
        try:
            if runner is not None:
                if server is not None:
                    runner.run(server.aclose())
                runner.close()
        finally:
            self._discard_directory()

    def play(
        self,
        script: Sequence[Step],
        *,
        clients: int = 3,
        room: str = "w1/guests",
        apply: Apply = apply_step_operation,
        setup: Sequence[Any] = (),
    ) -> list[InProcessClient]:
        """Play ``script`` with ``clients`` clients of ``room`` on an empty server; returns
        the clients once everyone is back online and settled (see :func:`play`).

        ``setup`` operations are applied by the first client and shared before the script
        starts (a common plan the script's operations refer to).
        """

        async def main(server: InProcessServer) -> list[InProcessClient]:
            # All connect, then one sync: each in turn would sync the room once per client.
            members = [await server.client(room, sync=False) for _ in range(clients)]
            await server.sync()
            for operation in setup:
                apply(members[0].doc, operation)
            if setup:
                await members[0].flush()
                await server.sync()
            await play(script, members, apply)
            return members

        return self.run(main)
