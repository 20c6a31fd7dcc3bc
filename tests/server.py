"""Run the real server (uvicorn, real SQLite files) as a subprocess on an ephemeral port."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

_LISTENING = re.compile(rb"crdt-server listening on http://([^:]+):(\d+)")


@dataclass
class ServerProcess:
    """A ``crdt-server serve`` child process; ``url``/``ws_url`` once started."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    anonymous: bool = True
    """Start with --allow-anonymous (the auth tests turn it off)."""
    process: asyncio.subprocess.Process | None = None
    port: int = 0
    log: bytearray = field(default_factory=bytearray)
    _drain: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/sync"

    async def start(self, timeout: float = 20.0) -> ServerProcess:
        env = {**os.environ, **self.env}
        port_args = ["--port", str(self.port)]
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "crdt_server",
            "serve",
            "--host",
            "127.0.0.1",
            *port_args,
            "--data-dir",
            str(self.data_dir),
            *(["--allow-anonymous"] if self.anonymous else []),
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        async with asyncio.timeout(timeout):
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    raise RuntimeError(f"server exited early:\n{self.log.decode(errors='replace')}")
                self.log += line
                match = _LISTENING.search(line)
                if match:
                    self.port = int(match.group(2))
                    break
        self._drain = asyncio.create_task(self._drain_output())
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    response = await client.get(f"{self.url}/readyz", timeout=2)
                    if response.status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"server not ready:\n{self.log.decode(errors='replace')}")
                await asyncio.sleep(0.02)

    async def _drain_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while True:
            line = await self.process.stdout.readline()
            if not line:
                return
            self.log += line

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send ``sig`` and wait for the exit; returns the exit code."""
        process = self.process
        if process is None:
            return 0
        if process.returncode is None:
            process.send_signal(sig)
        try:
            async with asyncio.timeout(timeout):
                code = await process.wait()
        except TimeoutError:
            process.kill()
            code = await process.wait()
        if self._drain is not None:
            await self._drain
        self.process = None
        return code

    async def kill(self) -> int:
        return await self.stop(signal.SIGKILL)

    async def restart(self) -> ServerProcess:
        """Start again on the same data directory and the same port."""
        await self.stop()
        return await self.start()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def __aenter__(self) -> ServerProcess:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
