"""The workers of ``serve --workers N``: a worker's command line, and its server, which
also serves the connections the other workers hand it (:mod:`crdt_server.wire.affinity`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

import uvicorn

from crdt_server.cli.process import Server
from crdt_server.edge.upgrade import STATE_KEY as GATE_KEY
from crdt_server.edge.upgrade import Gate
from crdt_server.wire.affinity import STATE_KEY as AFFINITY_KEY
from crdt_server.wire.affinity import Affinity, refuse_stopping
from crdt_server.wire.proxy import STATE_KEY as PROXY_KEY
from crdt_server.wire.proxy import App, ProxyClient, ProxyServer
from crdt_server.wire.uvicorn_private import app_state, connection_factory, keep_task

__all__ = ["WorkerServer", "die_with_parent", "worker_argv"]


def worker_argv(index: int, fd: int, heartbeat: int, *, count: int, run_dir: Path) -> list[str]:
    """The command line of worker ``index`` (see :func:`crdt_server.cli.worker_main`)."""
    return [
        sys.executable,
        "-c",
        "import sys; from crdt_server.cli import worker_main; sys.exit(worker_main(sys.argv[1:]))",
        f"--index={index}",
        f"--count={count}",
        f"--fd={fd}",
        f"--heartbeat-fd={heartbeat}",
        f"--run-dir={run_dir}",
    ]


class WorkerServer(Server):
    """A worker's server: it takes connections handed over by the other workers once its
    app has started, and stops taking them when it stops."""

    def __init__(
        self,
        config: uvicorn.Config,
        affinity: Affinity,
        *,
        shutdown_timeout: float,
        loop_stall: float = 0.0,
        heartbeat_fd: int | None = None,
    ):
        super().__init__(
            config,
            announce="",
            shutdown_timeout=shutdown_timeout,
            loop_stall=loop_stall,
            heartbeat_fd=heartbeat_fd,
        )
        self._affinity = affinity
        self._proxy = ProxyClient(
            affinity.index, affinity.count, affinity.run_dir, timeout=affinity.timeout
        )
        self._proxy_server: ProxyServer | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        affinity = self._affinity
        state = app_state(self)
        state[AFFINITY_KEY] = affinity
        state[PROXY_KEY] = self._proxy
        await super().startup(sockets=sockets)
        if not self.started or self.should_exit:
            return
        gate = app_state(self).get(GATE_KEY)
        if not isinstance(gate, Gate):
            return  # an app without the sync gate: nothing to hand over
        gate.registry.metrics.set_worker(affinity.index)
        adopted = gate.registry.metrics.adopted
        create = connection_factory(self)
        loop = asyncio.get_running_loop()

        taken_back = gate.registry.metrics.handoffs_taken_back

        def serve(sock: socket.socket, head: bytes) -> None:
            task = loop.create_task(_adopt(loop, sock, lambda: affinity.feed(create(), head)))
            keep_task(self, task)

        def adopt(sock: socket.socket, head: bytes) -> None:
            if self.should_exit:
                refuse_stopping(sock)
                return
            adopted.inc()
            serve(sock, head)

        def take_back(sock: socket.socket, head: bytes) -> None:
            # The owner did not take it in time: served here, as when it is unreachable
            # (its hand-offs are skipped for a while, so this one is not handed off again).
            taken_back.inc()
            if self.should_exit:
                refuse_stopping(sock)
                return
            serve(sock, head)

        affinity.listen(loop, adopt, take_back)

        # HTTP requests of the weddings this worker owns, from the other workers.
        metrics = gate.registry.metrics
        proxied = metrics.http_proxied
        self._proxy.on_proxied = lambda to: proxied.labels(str(to)).inc()
        self._proxy.on_served_here = metrics.http_served_off_owner.inc
        self._proxy_server = ProxyServer(
            affinity.index,
            affinity.run_dir,
            cast(App, self.config.app),  # the app itself (a worker's is never a factory)
            lambda: dict(state),
            on_adopted=metrics.http_adopted.inc,
        )
        await self._proxy_server.start()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._affinity.close()
        if self._proxy_server is not None:
            self._proxy_server.close()
        self._proxy.close()
        await super().shutdown(sockets=sockets)


async def _adopt(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, factory: Callable[[], asyncio.Protocol]
) -> None:
    try:
        await loop.connect_accepted_socket(factory, sock=sock)
    except OSError:
        sock.close()


def die_with_parent() -> None:
    """Linux: this worker gets SIGTERM when the supervisor dies (a SIGKILL of the parent
    must not leave workers serving the socket)."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
