"""The throughput and fan-out rows driven by Node clients (``run.py --client node``).

``benchmarks/node/loadclient.mjs`` runs the clients as browsers do: ``ws`` sockets, one Y.Doc
per client applying everything it receives, one WebSocket frame per update, one-character
inserts into a ``Y.Text`` root of the ``guests`` document. This side starts the Node
processes, starts them together (a ``go`` line on their stdin once all are synced), reads the
server's CPU from /proc over the same window, and turns their results into the same rows as
:mod:`benchmarks.loadgen`'s scenarios, so one table compares the servers under either client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
from collections.abc import Sequence
from typing import Any

from benchmarks.loadgen import CpuWindow, Metric, Target, process_cpu_seconds, wait_server_idle
from benchmarks.servers import NODE_DIR

__all__ = ["NodeClientError", "fanout", "node_client_ready", "throughput"]

SCRIPT = NODE_DIR / "loadclient.mjs"
READY_TIMEOUT = 120.0


class NodeClientError(RuntimeError):
    """A Node client process failed or passed one of its deadlines."""


def node_client_ready() -> bool:
    """Node is on PATH and ``benchmarks/node`` has its packages (``npm ci`` there)."""
    node = os.environ.get("NODE", "node")
    return shutil.which(node) is not None and all(
        (NODE_DIR / "node_modules" / p / "package.json").is_file() for p in ("ws", "yjs")
    )


def _url(target: Target) -> str:
    return f"ws://{target.host}:{target.port}"


def _argv(target: Target, *args: str) -> list[str]:
    argv = [os.environ.get("NODE", "node"), str(SCRIPT), "--url", _url(target)]
    argv += ["--dialect", target.dialect, "--collab-path", target.collab_path]
    return [*argv, "--prefix", f"n{target.run_id}x{target.room('n')}", *args]


class _Proc:
    """One Node client process speaking the line protocol of ``loadclient.mjs``."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.result: dict[str, Any] | None = None

    @classmethod
    async def start(cls, argv: Sequence[str]) -> _Proc:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def expect(self, event: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    err = b""
                    if self.proc.stderr is not None:
                        err = await self.proc.stderr.read()
                    raise NodeClientError(
                        f"node client exited before {event!r}: {err.decode(errors='replace')}"
                    )
                message: dict[str, Any] = json.loads(line)
                if message.get("event") == "error":
                    raise NodeClientError(f"node client: {message.get('message')}")
                if message.get("event") == event:
                    return message

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await self.proc.wait()


async def _run(
    target: Target, argvs: Sequence[Sequence[str]], seconds: float
) -> tuple[CpuWindow, list[dict[str, Any]]]:
    """Start every process, let them all go at once, and return the server's CPU over the
    measuring window (from ``go`` to the last ``stop``) and each process's result."""
    procs: list[_Proc] = []
    try:
        for argv in argvs:
            procs.append(await _Proc.start(argv))
        await asyncio.gather(*(p.expect("ready", READY_TIMEOUT) for p in procs))
        cpu = CpuWindow(target.pid).start()
        clients0 = sum(process_cpu_seconds(p.proc.pid) for p in procs)
        for p in procs:
            p.go()
        await asyncio.gather(*(p.expect("stop", seconds + 120) for p in procs))
        cpu.stop()
        # The load generator here is the Node processes (this process only waits).
        cpu.client = sum(process_cpu_seconds(p.proc.pid) for p in procs) - clients0
        results = await asyncio.gather(*(p.expect("result", 300) for p in procs))
        return cpu, list(results)
    finally:
        await asyncio.gather(*(p.stop() for p in procs))


def _split(rooms: int, processes: int) -> list[int]:
    processes = max(1, min(processes, rooms))
    return [rooms // processes + (1 if i < rooms % processes else 0) for i in range(processes)]


async def throughput(
    target: Target,
    rooms: int,
    writers: int,
    duration: float,
    window: int,
    processes: int = 1,
    drain: float = 30.0,
    settle: float = 180.0,
) -> list[Metric]:
    """``rooms`` x ``writers`` Node clients, each keeping ``window`` updates in flight."""
    label = f"throughput {rooms}x{writers}"
    argvs = [
        _argv(target, "--scenario", "throughput", "--rooms", str(n), "--writers", str(writers),
              "--window", str(window), "--seconds", str(duration), "--drain", str(drain))
        for n in _split(rooms, processes)
    ]  # fmt: skip
    cpu, results = await _run(target, argvs, duration)
    # Like the Python client's run: the next run starts on a server done writing.
    await wait_server_idle(target.pid, settle, quiet=2.5)
    accepted = sum(r["accepted"] / r["wall"] for r in results)
    deliveries = sum(r["deliveries"] / r["wall"] for r in results)
    accepted_total = sum(r["accepted"] for r in results)
    converged = sum(r["converged"] for r in results)
    problems = [p for r in results for p in r["unconverged"]]
    problems += [f"{r['unechoed']} unechoed" for r in results if not r["drained"]]
    problems += [f"the server closed {r['closed']} sockets" for r in results if r["closed"]]
    for line in problems:
        print(f"  {label}: {line}", file=sys.stderr, flush=True)
    return [
        Metric(f"{label}: updates accepted/s (echoed to sender)", accepted, "{:.0f}", "higher",
               f"node, {window} in flight"),
        Metric(f"{label}: deliveries/s (updates received by members)", deliveries, "{:.0f}",
               "higher"),
        *cpu.metrics(label),
        Metric(f"{label}: server CPU ms per accepted update",
               1000.0 * cpu.server / accepted_total if accepted_total else None, "{:.3f}",
               "lower"),
        Metric(f"{label}: rooms converged (of {rooms})", converged, "{:.0f}", "higher",
               "; ".join(problems)),
    ]  # fmt: skip


async def fanout(
    target: Target, readers: int, rate: float, duration: float, drain: float = 10.0
) -> list[Metric]:
    """1 Node writer + ``readers`` Node readers in one room, ``rate`` updates/s."""
    label = f"fanout {readers} readers"
    argv = _argv(target, "--scenario", "fanout", "--readers", str(readers), "--rate", str(rate),
                 "--seconds", str(duration), "--drain", str(drain))  # fmt: skip
    cpu, (result,) = await _run(target, [argv], duration)
    count = result["count"]
    return [
        *(Metric(f"{label}: delivery latency p{q} ms", result[f"p{q}"], "{:.2f}", "lower")
          for q in (50, 95, 99)),
        Metric(f"{label}: delivery latency max ms", result["max"], "{:.1f}", "lower"),
        Metric(f"{label}: missing deliveries (of {readers * count})", result["missing"],
               "{:.0f}", "lower"),
        Metric(f"{label}: writer echo (ack) p50 ms", result["ack_p50"], "{:.2f}", "lower"),
        *cpu.metrics(label),
    ]  # fmt: skip
