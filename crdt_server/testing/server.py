"""The real server (uvicorn, real SQLite files) as a child process on an ephemeral port.

One implementation with two faces: blocking methods (``start_sync``, ``stop_sync``, ``with``)
for plain pytest fixtures and sync tests, and awaitable ones (``start``, ``stop``, ``kill``,
``restart``, ``async with``) that run the blocking ones in a worker thread, so a test's event
loop keeps running while the child starts or stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from crdt_server.testing import forkserver

__all__ = ["ServerProcess", "served"]

_LISTENING = re.compile(rb"crdt-server listening on http://([^:]+):(\d+)")


@dataclass
class ServerProcess:
    """A ``crdt-server serve`` child process; ``url``/``ws_url`` once started.

    ``env`` adds environment variables (``CRDT_SERVER_*`` settings), ``args`` adds command
    line arguments. ``log`` collects the child's output (stdout and stderr), for assertions
    and for failure messages.
    """

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    anonymous: bool = True
    """Start with --allow-anonymous (the auth tests turn it off)."""
    port: int = 0
    """0 picks an ephemeral port on the first start; restarts keep the port."""
    module: str = "crdt_server"
    """The module run with ``python -m`` (a test's own entry point that wraps
    ``crdt_server.cli.main``, to load a test extension in the child)."""
    fork: bool = True
    """Fork the child from a process that has imported the server already
    (:mod:`crdt_server.testing.forkserver`: the same entry point without the interpreter's
    start-up, about 1.1 s of CPU less a start); ``False`` starts a new interpreter."""
    log: bytearray = field(default_factory=bytearray)
    process: subprocess.Popen[bytes] | forkserver.ForkedProcess | None = None
    _listening: threading.Event = field(default_factory=threading.Event)
    _drain: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/sync"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start_sync(self, timeout: float = 20.0) -> ServerProcess:
        """Start the child and return once ``/readyz`` answers 200 (or raise, with its log)."""
        self._listening.clear()
        args = [
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            *(["--allow-anonymous"] if self.anonymous else []),
            *self.args,
        ]
        env = {**os.environ, **self.env}
        if self.fork and forkserver.enabled():
            self.process = forkserver.spawn(
                self.module, args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        else:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self._drain = threading.Thread(target=self._drain_output, args=(self.process,))
        self._drain.daemon = True
        self._drain.start()
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            if self.process.poll() is not None:
                self._drain.join(5)
                raise RuntimeError(f"server exited early:\n{self.log_text()}")
            if time.monotonic() > deadline:
                self.stop_sync(signal.SIGKILL)
                raise TimeoutError(f"server did not listen in time:\n{self.log_text()}")
        while not self._ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not ready:\n{self.log_text()}")
            time.sleep(0.02)  # polling an HTTP endpoint: there is nothing to wait on
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _drain_output(self, process: subprocess.Popen[bytes] | forkserver.ForkedProcess) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.log += line
            match = _LISTENING.search(line)
            if match and not self._listening.is_set():
                self.port = int(match.group(2))
                self._listening.set()

    def log_text(self) -> str:
        return self.log.decode(errors="replace")

    def stop_sync(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send ``sig`` and wait for the exit (SIGKILL after ``timeout``); the exit code."""
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(sig)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        if self._drain is not None:
            self._drain.join(timeout)
        if process.stdout is not None:
            process.stdout.close()
        self.process = None
        return code

    def kill_sync(self) -> int:
        return self.stop_sync(signal.SIGKILL)

    def restart_sync(self) -> ServerProcess:
        """Stop, then start again on the same data directory and the same port."""
        self.stop_sync()
        return self.start_sync()

    async def start(self, timeout: float = 20.0) -> ServerProcess:
        return await asyncio.to_thread(self.start_sync, timeout)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send ``sig`` and wait for the exit; returns the exit code."""
        return await asyncio.to_thread(self.stop_sync, sig, timeout)

    async def kill(self) -> int:
        return await self.stop(signal.SIGKILL)

    async def restart(self) -> ServerProcess:
        """Start again on the same data directory and the same port."""
        await self.stop()
        return await self.start()

    def __enter__(self) -> ServerProcess:
        return self.start_sync()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_sync()

    async def __aenter__(self) -> ServerProcess:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


@contextlib.asynccontextmanager
async def served(
    data_dir: Path, env: dict[str, str] | None = None, *, anonymous: bool = False
) -> AsyncIterator[tuple[ServerProcess, httpx.AsyncClient]]:
    """A started server (tokens required unless ``anonymous``) and an HTTP client on it
    (10 s timeout); both stopped on the way out::

        async with served(tmp_path / "data", {"CRDT_SERVER_AUTH_SECRET": secret}) as (
            server,
            http,
        ):
            ...
    """
    async with (
        ServerProcess(data_dir, env=dict(env or {}), anonymous=anonymous) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        yield server, http
