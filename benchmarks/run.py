"""Benchmark driver: start each server, run the scenarios against it, print one Markdown table.

    .venv/bin/python -m benchmarks.run --quick
    .venv/bin/python -m benchmarks.run --servers ours,pycrdt-websocket,y-websocket \\
        --scenarios fanout,throughput --conn-sizes 1000,5000,10000

Every scenario size runs on a fresh server process and data directory, the servers one after
the other (so they never compete for the two cores), scenario by scenario (so slow drift of
the machine hits every server alike). Columns are the servers, then ``ours / peer`` ratios
for every peer: below 1 is better for ``lower`` rows, above 1 for ``higher`` rows.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: benchmarks.* and tests.* are found from the root
    print(f"run it from {ROOT} as: .venv/bin/python -m benchmarks.run [options]", file=sys.stderr)
    sys.exit(2)

from benchmarks import loadgen, nodeclient  # noqa: E402
from benchmarks.coldrooms import coldrooms  # noqa: E402
from benchmarks.loadgen import Metric, Target  # noqa: E402
from benchmarks.servers import ServerProcess, ServerSpec, node_ready, server_specs  # noqa: E402

SCENARIOS = ("fanout", "throughput", "connections", "coldload", "presence", "multiplex")
OPTIONAL_SCENARIOS = ("overload", "coldrooms")
"""Run only when named in ``--scenarios`` (minutes each: not in the standard rows)."""


@dataclass
class Sizes:
    fanout_readers: tuple[int, ...] = (10, 100)
    fanout_rate: float = 50.0
    fanout_seconds: float = 10.0
    tp_rooms: int = 10
    tp_writers: int = 10
    tp_seconds: float = 10.0
    tp_window: int = 8
    tp_node_window: int = 32
    """Updates in flight per writer with ``--client node`` (as an independent harness ran)."""
    node_processes: int = 1
    """Node client processes the throughput rooms are split over (``--client node``)."""
    tp_budget: int = 4000
    conn_sizes: tuple[int, ...] = (1000, 5000)
    conn_per_room: int = 10
    conn_concurrency: int = 100
    cold_updates: int = 10_000
    cold_restarts: int = 5
    presence_clients: tuple[int, ...] = (10, 100)
    presence_rounds: int = 100
    presence_rate: float = 20.0
    mux_weddings: int = 500
    mux_readers: int = 50
    mux_rate: float = 20.0
    mux_seconds: float = 5.0
    mux_span: int = 1
    """Weddings per app in ``multiplex``: above 1, the variant for ``ours-collab-2workers``
    (one wedding owned by each worker; per-wedding ``/collab/{w}`` sockets, then one bare
    ``/collab`` socket spanning them: :func:`benchmarks.loadgen.multiplex_span`)."""
    ov_rooms: int = 1000
    ov_writers: int = 10
    ov_sustainable: float = 500.0
    """What one process sustains in the product scenario (updates/s); the overload
    scenario offers 4x and 8x it."""
    ov_seconds: float = 60.0
    cr_rooms: int = 1000
    """coldrooms: rooms stored before the restart, each loaded by its reconnecting members."""
    cr_updates: int = 20
    cr_members: int = 1

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            fanout_seconds=5.0,
            tp_seconds=5.0,
            tp_budget=2500,
            conn_sizes=(1000,),
            cold_restarts=3,
            presence_rounds=60,
            mux_weddings=200,
            mux_readers=20,
        )


Runner = Callable[[Target], Awaitable[list[Metric]]]


NODE_SCENARIOS = ("fanout", "throughput")
"""The scenarios ``--client node`` drives with Node clients; the others keep the Python one."""


def scenario_runs(name: str, sizes: Sizes, client: str = "raw") -> list[tuple[str, Runner]]:
    """(label, runner) per size of a scenario; each runs on a fresh server."""
    s = sizes
    if client == "node" and name == "fanout":
        return [
            (
                f"fanout-{n}",
                partial(
                    nodeclient.fanout, readers=n, rate=s.fanout_rate, duration=s.fanout_seconds
                ),
            )
            for n in s.fanout_readers
        ]
    if client == "node" and name == "throughput":
        runner = partial(
            nodeclient.throughput,
            rooms=s.tp_rooms,
            writers=s.tp_writers,
            duration=s.tp_seconds,
            window=s.tp_node_window,
            processes=s.node_processes,
        )
        return [("throughput", runner)]
    if name == "fanout":
        return [
            (
                f"fanout-{n}",
                partial(loadgen.fanout, readers=n, rate=s.fanout_rate, duration=s.fanout_seconds),
            )
            for n in s.fanout_readers
        ]
    if name == "throughput":
        runner = partial(
            loadgen.throughput,
            rooms=s.tp_rooms,
            writers=s.tp_writers,
            duration=s.tp_seconds,
            window=s.tp_window,
            budget=s.tp_budget,
        )
        return [("throughput", runner)]
    if name == "connections":
        return [
            (
                f"connections-{k}",
                partial(
                    loadgen.connections,
                    count=k,
                    per_room=s.conn_per_room,
                    concurrency=s.conn_concurrency,
                ),
            )
            for k in s.conn_sizes
        ]
    if name == "coldload":
        runner = partial(loadgen.coldload, updates=s.cold_updates, restarts=s.cold_restarts)
        return [("coldload", runner)]
    if name == "presence":
        return [
            (
                f"presence-{n}",
                partial(
                    loadgen.presence, clients=n, rounds=s.presence_rounds, rate=s.presence_rate
                ),
            )
            for n in s.presence_clients
        ]
    if name == "multiplex":
        runner = partial(
            loadgen.multiplex,
            sockets=s.mux_weddings,
            readers=s.mux_readers,
            rate=s.mux_rate,
            duration=s.mux_seconds,
            span=s.mux_span,
        )
        return [("multiplex" if s.mux_span == 1 else f"multiplex-span{s.mux_span}", runner)]
    if name == "overload":
        runner = partial(
            loadgen.overload,
            rooms=s.ov_rooms,
            writers=s.ov_writers,
            sustainable=s.ov_sustainable,
            duration=s.ov_seconds,
        )
        return [("overload", runner)]
    if name == "coldrooms":
        runner = partial(coldrooms, rooms=s.cr_rooms, updates=s.cr_updates, members=s.cr_members)
        return [("coldrooms", runner)]
    raise ValueError(f"unknown scenario {name}")


PROFILED = ("ours", "ours-baseline")
"""The servers ``--profile`` records (not ``ours-2workers`` and the other variants)."""


@dataclass
class Profiler:
    """Optional py-spy recording of our server during one run (by default, throughput).

    With ``ours-baseline`` in the run, its server is recorded too, into a second file named
    after the first (``profile-ours-baseline.txt`` beside ``profile.txt``).
    """

    output: Path | None
    seconds: float
    run: str = "throughput"
    """The label of the run to record (``fanout-100``, ``connections-5000``, ...)."""
    process: subprocess.Popen[bytes] | None = None

    def start(self, server: ServerProcess, label: str) -> None:
        if self.output is None or server.spec.name not in PROFILED or label != self.run:
            return
        output = self.output
        if server.spec.name != "ours":  # ours-baseline: a second file beside the first
            output = output.with_name(f"{output.stem}-{server.spec.name}{output.suffix}")
        py_spy = ROOT / ".venv" / "bin" / "py-spy"
        argv = [str(py_spy if py_spy.exists() else "py-spy"), "record", "--pid", str(server.pid)]
        argv += ["--duration", str(max(1, round(self.seconds))), "--rate", "200"]
        argv += ["--nonblocking", "--format", _profile_format(output)]
        argv += ["-o", str(output)]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        try:
            _, err = process.communicate(timeout=self.seconds + 30)
            if process.returncode:
                print(f"py-spy failed: {err.decode(errors='replace')}", file=sys.stderr)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self.process = None


def _profile_format(path: Path) -> str:
    return {".svg": "flamegraph", ".json": "speedscope", ".txt": "raw"}.get(path.suffix, "raw")


async def run_one(
    spec: ServerSpec,
    label: str,
    runner: Runner,
    run_root: Path,
    client: str,
    profiler: Profiler,
) -> list[Metric]:
    run_dir = run_root / f"{spec.name}-{label}"
    run_dir.mkdir(parents=True)
    server = ServerProcess(spec, run_dir)
    if client == "node":  # the scenarios without a Node runner keep the Python client
        client = "raw"
    async with server:
        target = Target(
            server.host, server.port, server.pid, spec.dialect, client,
            collab_path=spec.collab_path,
        )  # fmt: skip

        async def restart() -> None:
            await server.restart()
            target.host, target.port, target.pid = server.host, server.port, server.pid

        target.restart = restart
        profiler.start(server, label)
        # The load generator's own garbage collector stays off while it measures: with
        # 5,000 peers its full collections took up to 230 ms, and they landed in the
        # latency figures of whichever server happened to be running.
        gc.collect()
        gc.disable()
        try:
            async with asyncio.timeout(900):
                metrics = await runner(target)
            if spec.name.startswith("ours"):
                # Every room of ours converges (with --workers too): a room that does not is
                # a bug, reported as this run's error rather than as a figure.
                loadgen.check_converged(metrics, spec.name)
            return metrics
        finally:
            gc.enable()
            profiler.stop()


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    node = shutil.which("node")
    node_version = ""
    if node:
        node_version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
    ).stdout.strip()
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "crdt_server", "storage", "documents"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "ours": f"{head}{' + uncommitted changes' if dirty else ''}",
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "node": node_version,
        "kernel": platform.release(),
        "loadavg at start": loadavg(),
    }


def median_metric(metrics: list[Metric]) -> Metric:
    """One row value from repeated runs: the median of the values that were measured."""
    values = [m.value for m in metrics if m.value is not None]
    first = metrics[0]
    if len(metrics) == 1:
        return first
    note = "; ".join(sorted({m.note for m in metrics if m.note}))
    if len(values) < len(metrics):
        note = f"{len(metrics) - len(values)} of {len(metrics)} runs n/a" + (
            f"; {note}" if note else ""
        )
    return replace(first, value=statistics.median(values) if values else None, note=note)


def render(
    results: dict[str, dict[str, Metric]], servers: list[str], better: dict[str, str]
) -> str:
    rows: list[str] = []
    for per_server in results.values():
        for name in per_server:
            if name not in rows:
                rows.append(name)
    peers = [s for s in servers if s != "ours"] if "ours" in servers else []
    header = ["metric", "better", *servers, *[f"ours / {p}" for p in peers]]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for row in rows:
        cells = [row, better.get(row, "")]
        for s in servers:
            metric = results.get(s, {}).get(row)
            cells.append(metric.text() if metric else "n/a")
        ours = results.get("ours", {}).get(row)
        for p in peers:
            theirs = results.get(p, {}).get(row)
            if (
                ours is None
                or theirs is None
                or not ours.ratio
                or ours.value is None
                or theirs.value is None
            ):
                cells.append("")
            elif theirs.value == 0:
                cells.append("=" if ours.value == 0 else "")
            else:
                cells.append(f"{ours.value / theirs.value:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    # SIGTERM/SIGINT cancel the run, so every started server is still stopped (by PID).
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    specs = server_specs()
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for s in servers:
        if s not in specs:
            raise SystemExit(f"unknown server {s!r}; known: {', '.join(specs)}")
        if specs[s].argv[0] == os.environ.get("NODE", "node") and not node_ready():
            raise SystemExit(f"{s} needs `npm ci` in benchmarks/node (see benchmarks/README.md)")
    if args.client == "node" and not nodeclient.node_client_ready():
        raise SystemExit("--client node needs node and `npm ci` in benchmarks/node")
    for s in scenarios:
        if s not in SCENARIOS + OPTIONAL_SCENARIOS:
            known = ", ".join(SCENARIOS + OPTIONAL_SCENARIOS)
            raise SystemExit(f"unknown scenario {s!r}; known: {known}")
    sizes = Sizes.quick() if args.quick else Sizes()
    if args.conn_sizes:
        sizes.conn_sizes = tuple(int(x) for x in args.conn_sizes.split(","))
    if args.tp_seconds:
        sizes.tp_seconds = args.tp_seconds
    if args.tp_window:
        sizes.tp_window = sizes.tp_node_window = args.tp_window
    if args.node_processes:
        sizes.node_processes = args.node_processes
    for name in (
        "ov_rooms", "ov_writers", "ov_sustainable", "ov_seconds",
        "cr_rooms", "cr_updates", "cr_members",
        "mux_weddings", "mux_readers", "mux_seconds", "mux_span",
    ):  # fmt: skip
        if getattr(args, name) is not None:
            setattr(sizes, name, getattr(args, name))
    seconds = sizes.fanout_seconds if args.profile_run.startswith("fanout") else sizes.tp_seconds
    profiler = Profiler(args.profile, seconds, args.profile_run)

    info = machine()
    mode = "quick" if args.quick else "full"
    print(
        f"# crdt-server benchmark ({mode}, client={args.client}, repeat={args.repeat})\n",
        flush=True,
    )
    print(", ".join(f"{k}: {v}" for k, v in info.items()), flush=True)
    runs: dict[str, dict[str, list[Metric]]] = {s: {} for s in servers}
    better: dict[str, str] = {}
    errors: list[str] = []
    run_root = Path(tempfile.mkdtemp(prefix="crdt-bench-"))
    started = time.perf_counter()
    try:
        for scenario in scenarios:
            for label, runner in scenario_runs(scenario, sizes, args.client):
                for attempt in range(1, args.repeat + 1):
                    for s in servers:
                        run_label = label if args.repeat == 1 else f"{label}#{attempt}"
                        t0 = time.perf_counter()
                        try:
                            metrics = await run_one(
                                specs[s], run_label, runner, run_root, args.client, profiler
                            )
                        except Exception as exc:
                            errors.append(f"{s} {run_label}: {exc!r}")
                            if args.verbose:
                                traceback.print_exc()
                            print(
                                f"  {run_label:18} {s:18} FAILED: {exc!r}",
                                file=sys.stderr,
                                flush=True,
                            )
                            continue
                        for m in metrics:
                            runs[s].setdefault(m.name, []).append(m)
                            better.setdefault(m.name, m.better)
                        print(
                            f"  {run_label:18} {s:18} done in {time.perf_counter() - t0:5.1f} s",
                            file=sys.stderr,
                            flush=True,
                        )
    finally:
        if args.keep:
            print(f"run directory kept: {run_root}", file=sys.stderr)
        else:
            shutil.rmtree(run_root, ignore_errors=True)
    results = {s: {name: median_metric(ms) for name, ms in r.items()} for s, r in runs.items()}
    print()
    print(render(results, servers, better))
    print()
    print(f"sizes: {json.dumps(asdict(sizes))}")
    print(f"total time: {time.perf_counter() - started:.0f} s")
    print(f"loadavg at end: {loadavg()}")
    for s in servers:
        print(f"- {s}: {specs[s].notes}")
    if errors:
        print("\nerrors:")
        for e in errors:
            print(f"- {e}")
    if args.json:
        payload = {
            "machine": info,
            "sizes": asdict(sizes),
            "client": args.client,
            "repeat": args.repeat,
            "results": {s: {k: asdict(m) for k, m in r.items()} for s, r in results.items()},
            "runs": {s: {k: [m.value for m in ms] for k, ms in r.items()} for s, r in runs.items()},
            "errors": errors,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 1 if errors else 0


def main() -> int:
    if "--product" in sys.argv[1:]:
        # The product scenario (issue 40) has its own options: benchmarks/product.py --help.
        from benchmarks import product

        return product.main([a for a in sys.argv[1:] if a != "--product"])
    if "--scale" in sys.argv[1:]:
        # The scale profile (issue 22) has its own options: benchmarks/scale.py --help.
        from benchmarks import scale

        return scale.main([a for a in sys.argv[1:] if a != "--scale"])
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--servers", default="ours,pycrdt-websocket")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer connections")
    parser.add_argument("--conn-sizes", help="comma-separated connection counts, e.g. 1000,10000")
    parser.add_argument("--tp-seconds", type=float, help="throughput measuring window")
    parser.add_argument("--tp-window", type=int, help="throughput: updates in flight per writer")
    parser.add_argument("--ov-rooms", type=int, help="overload: weddings (default 1000)")
    parser.add_argument("--ov-writers", type=int, help="overload: writers per wedding (10)")
    parser.add_argument(
        "--ov-sustainable", type=float, help="overload: the rate one process sustains (500/s)"
    )
    parser.add_argument("--ov-seconds", type=float, help="overload: seconds per burst (60)")
    parser.add_argument("--cr-rooms", type=int, help="coldrooms: rooms stored (default 1000)")
    parser.add_argument("--cr-updates", type=int, help="coldrooms: updates per room (20)")
    parser.add_argument(
        "--cr-members", type=int, help="coldrooms: members per room reconnecting (1)"
    )
    parser.add_argument("--mux-weddings", type=int, help="multiplex: weddings (apps) opened")
    parser.add_argument("--mux-readers", type=int, help="multiplex: fan-out readers")
    parser.add_argument("--mux-seconds", type=float, help="multiplex: fan-out seconds")
    parser.add_argument(
        "--mux-span",
        type=int,
        help="multiplex: weddings per app, one owned by each worker (2 with"
        " --servers ours-collab-2workers: /collab/{w} per wedding against one bare /collab)",
    )
    parser.add_argument(
        "--client",
        choices=("raw", "websockets", "node"),
        default="raw",
        help="load-generator transport; node: Node clients as browsers run them (benchmarks/"
        f"node/loadclient.mjs) for {' and '.join(NODE_SCENARIOS)}, the raw client elsewhere",
    )
    parser.add_argument(
        "--node-processes", type=int, help="--client node: processes for the throughput rooms"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run every scenario this many times (servers alternating); print medians",
    )
    parser.add_argument("--profile", type=Path, help="py-spy output (.svg/.json/.txt)")
    parser.add_argument(
        "--profile-run",
        default="throughput",
        help="label of the run to profile (throughput, fanout-100, connections-5000, ...)",
    )
    parser.add_argument("--json", type=Path, help="also write raw results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep data dirs and server logs")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    try:
        return asyncio.run(main_async(args))
    except asyncio.CancelledError:
        print("interrupted; every server started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
