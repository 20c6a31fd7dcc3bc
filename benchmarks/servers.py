"""The servers under test: how to start each one, wait until it serves, and stop it by PID.

Every server prints ``... listening on http://HOST:PORT`` once bound (``--port 0`` style),
logs to a file in its run directory (never a pipe that could fill up), and is stopped with
SIGTERM, then SIGKILL after a deadline. :class:`ServerProcess` is an async context manager,
so a scenario that fails still stops its server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

__all__ = ["PEERS", "ROOT", "ServerProcess", "ServerSpec", "node_ready", "server_specs"]

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
NODE_DIR = BENCH / "node"
_LISTENING = re.compile(r"listening on http://([^:/\s]+):(\d+)")


@dataclass(frozen=True)
class ServerSpec:
    name: str
    argv: tuple[str, ...]
    """Command; ``{data_dir}`` is replaced by the run's data directory."""
    dialect: str = "y-websocket"
    collab_path: str = "/"
    """Where a ``hocuspocus`` dialect's socket opens."""
    env: tuple[tuple[str, str], ...] = ()
    notes: str = ""
    cwd: str = ""
    """Working directory of the process; empty: this repository."""

    def process_options(self) -> tuple[Path, dict[str, str]]:
        """Where the process runs and its environment. The working directory matters for
        ``python -m``: it comes first on the import path, before the environment's."""
        return Path(self.cwd or ROOT), {**os.environ, **dict(self.env), "PYTHONUNBUFFERED": "1"}


PEERS = ("pycrdt-websocket", "y-websocket", "hocuspocus")

OURS_ENV: tuple[tuple[str, str], ...] = (
    # Anonymous clients: the peers have no auth either.
    ("CRDT_SERVER_ALLOW_ANONYMOUS", "1"),
    # Per-address and per-connection abuse limits off: every simulated client comes from
    # 127.0.0.1, and the writers send far faster than anyone types. (Settings a server does
    # not know are ignored, so this also runs against older versions.)
    ("CRDT_SERVER_MAX_UPGRADES_PER_SECOND", "1000000"),
    ("CRDT_SERVER_MAX_CONNECTIONS_PER_ADDRESS", "1000000"),
    ("CRDT_SERVER_MAX_UPDATES_PER_SECOND", "1000000"),
    ("CRDT_SERVER_MAX_AWARENESS_PER_SECOND", "1000000"),
)
"""Environment of our server in every run (everything else keeps its default)."""


def _python(venv: Path) -> str:
    candidate = venv / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


def _open_log(path: Path, data_dir: Path) -> BinaryIO:
    data_dir.mkdir(parents=True, exist_ok=True)
    return open(path, "wb")


def _read(path: Path) -> str:
    return path.read_text(errors="replace")


def node_ready() -> bool:
    return (NODE_DIR / "node_modules").is_dir()


def ours_spec(
    name: str, *args: str, env: tuple[tuple[str, str], ...] = (), notes: str
) -> ServerSpec:
    """Our server as ``name``: ``crdt-server serve`` with extra ``args`` and ``env``."""
    serve = ("-m", "crdt_server", "serve", "--host", "127.0.0.1", "--port", "0")
    options = ("--data-dir", "{data_dir}", "--log-level", "warning", *args)
    command = (_python(ROOT / ".venv"), *serve, *options)
    return ServerSpec(name, command, env=(*OURS_ENV, *env), notes=notes)


def baseline_spec() -> ServerSpec | None:
    """``ours-baseline``: our server from another checkout (``BENCH_BASELINE_SRC``).

    For before/after figures of a change: ``git worktree add /tmp/before REV`` and run with
    ``BENCH_BASELINE_SRC=/tmp/before --servers ours,ours-baseline``. The checkout's
    ``crdt_server`` (and ``documents``, ``storage``) come first on the server's import path;
    the interpreter and installed dependencies are this repository's.
    """
    source = os.environ.get("BENCH_BASELINE_SRC")
    if not source:
        return None
    path = Path(source).resolve()
    if not (path / "crdt_server").is_dir():
        raise SystemExit(f"BENCH_BASELINE_SRC={source}: no crdt_server package there")
    spec = ours_spec(
        "ours-baseline",
        env=(("PYTHONPATH", str(path)),),
        notes=f"crdt-server from {path} (BENCH_BASELINE_SRC)",
    )
    # Run from the checkout: ``python -m`` puts the working directory first on the import
    # path, so from this repository's directory it would import this repository's server.
    return dataclasses.replace(spec, cwd=str(path))


def server_specs() -> dict[str, ServerSpec]:
    ours = _python(ROOT / ".venv")
    peer = _python(BENCH / ".venv-peer") if (BENCH / ".venv-peer").exists() else ours
    node = os.environ.get("NODE", "node")
    specs = {
        "ours": ours_spec(
            "ours", notes="crdt-server: SQLite WAL, synchronous=FULL, echo after commit"
        ),
        "ours-normal": ours_spec(
            "ours-normal",
            env=(("CRDT_SERVER_SQLITE_SYNCHRONOUS", "normal"),),
            notes="crdt-server, SQLite synchronous=NORMAL: echo after commit, no fsync per commit",
        ),
        "ours-2workers": ours_spec(
            "ours-2workers",
            "--workers", "2",
            "--redis-url", os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"),
            notes="crdt-server, 2 worker processes on one SQLite file, Redis bus between them",
        ),
        "ours-collab": dataclasses.replace(
            ours_spec(
                "ours-collab",
                notes="crdt-server's Hocuspocus path: /collab, many documents on one socket",
            ),
            dialect="hocuspocus",
            collab_path="/collab",
        ),
        "ours-collab-2workers": dataclasses.replace(
            ours_spec(
                "ours-collab-2workers",
                "--workers", "2",
                "--redis-url", os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"),
                notes="crdt-server's Hocuspocus path on 2 worker processes with the Redis bus"
                " (/collab/{w} handed to the wedding's owner, bare /collab served where it"
                " lands)",
            ),
            dialect="hocuspocus",
            collab_path="/collab",
        ),
        "pycrdt-websocket": ServerSpec(
            "pycrdt-websocket",
            (peer, str(BENCH / "peer_pycrdt_websocket.py"), "--port", "0",
             "--data-dir", "{data_dir}"),
            notes="pycrdt-websocket ASGIServer + SQLiteYStore on uvicorn; echo before the write",
        ),
        "y-websocket": ServerSpec(
            "y-websocket",
            (node, str(NODE_DIR / "y-websocket-server.mjs"), "--port", "0",
             "--data-dir", "{data_dir}"),
            notes="@y/websocket-server setupWSConnection + y-leveldb persistence",
        ),
        "hocuspocus": ServerSpec(
            "hocuspocus",
            (node, str(NODE_DIR / "hocuspocus-server.mjs"), "--port", "0",
             "--data-dir", "{data_dir}"),
            dialect="hocuspocus",
            notes="@hocuspocus/server + extension-sqlite",
        ),
    }  # fmt: skip
    baseline = baseline_spec()
    if baseline is not None:
        specs[baseline.name] = baseline
        # The same checkout's Hocuspocus path (/collab), beside ours-collab.
        specs["ours-collab-baseline"] = dataclasses.replace(
            baseline,
            name="ours-collab-baseline",
            dialect="hocuspocus",
            collab_path="/collab",
            notes=f"{baseline.notes}, its Hocuspocus path: /collab",
        )
    return specs


@dataclass
class ServerProcess:
    """One server process on one data directory; restartable on the same directory."""

    spec: ServerSpec
    run_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    launched_at: float = 0.0
    """``time.perf_counter()`` when the last start spawned the process."""
    listening_at: float = 0.0
    """When its log said ``listening on`` (the log is polled every 50 ms)."""
    serving_at: float = 0.0
    """When a probe client first synced (:meth:`_wait_serving`)."""
    _logs: list[Path] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, timeout: float = 30.0) -> ServerProcess:
        self.starts += 1
        log_path = self.run_dir / f"server-{self.starts}.log"
        self._logs.append(log_path)
        argv = [a.replace("{data_dir}", str(self.data_dir)) for a in self.spec.argv]
        log = _open_log(log_path, self.data_dir)
        cwd, env = self.spec.process_options()
        self.launched_at = time.perf_counter()
        try:
            self.process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            match = _LISTENING.search(_read(log_path))
            if match:
                self.listening_at = time.perf_counter()
                self.host, self.port = match.group(1), int(match.group(2))
                break
            if self.process.returncode is not None:
                raise RuntimeError(f"{self.spec.name} exited early:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.spec.name} did not start:\n{self.log_tail()}")
            await asyncio.sleep(0.05)
        await self._wait_serving(deadline)
        self.serving_at = time.perf_counter()
        return self

    async def _wait_serving(self, deadline: float) -> None:
        """Ready = a WebSocket to a probe room opens and the server greets it."""
        from benchmarks.loadgen import Target, YPeer

        target = Target(
            self.host, self.port, self.pid, self.spec.dialect, collab_path=self.spec.collab_path
        )
        last: BaseException | None = None
        while time.monotonic() < deadline:
            peer = YPeer(target, "probe")
            try:
                await peer.open()
                await peer.wait_synced(timeout=max(0.5, deadline - time.monotonic()))
                await peer.close()
                return
            except (OSError, TimeoutError, ConnectionError) as exc:
                last = exc
                if peer.conn is not None:
                    peer.conn.abort()
            await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.spec.name} not serving ({last!r}):\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        if not self._logs or not self._logs[-1].exists():
            return ""
        return "\n".join(self._logs[-1].read_text(errors="replace").splitlines()[-lines:])

    async def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit status."""
        process = self.process
        if process is None:
            return None
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                process.kill()
        code = await asyncio.wait_for(process.wait(), timeout)
        self.process = None
        return code

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def __aenter__(self) -> ServerProcess:
        try:
            return await self.start()
        except BaseException:
            await self.stop()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
