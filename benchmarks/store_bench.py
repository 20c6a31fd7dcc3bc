"""Append throughput of the document stores: many small appends from concurrent tasks.

Each process opens its own store over shared data (one SQLite file, or one fresh
PostgreSQL schema, dropped afterwards), then ``--tasks`` tasks append one small update at
a time until the process's share of ``--appends`` is done. Prints one table row per
backend and process count:

    .venv/bin/python -m benchmarks.store_bench --appends 5000 --tasks 50 --processes 1 4
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.process
import multiprocessing.queues
import multiprocessing.synchronize
import os
import queue
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from crdt_server.storage import DocumentStore, NewUpdate, PostgresStore, SqliteStore

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Job:
    backend: str
    target: str  # SQLite file, or PostgreSQL schema
    dsn: str
    tasks: int
    appends: int
    size: int


@dataclass(frozen=True)
class Result:
    started: float
    finished: float
    commits: int
    latencies: list[float]


def make_store(job: Job) -> DocumentStore:
    if job.backend == "sqlite":
        return SqliteStore(job.target)
    return PostgresStore(job.dsn, schema=job.target)


async def run_process(job: Job, barrier: multiprocessing.synchronize.Barrier) -> Result:
    store = make_store(job)
    await store.open()
    latencies: list[float] = []
    payload = os.urandom(job.size)

    async def task(index: int, count: int) -> None:
        for _ in range(count):
            began = time.perf_counter()
            await store.append([NewUpdate(doc=f"doc{index % 10}", data=payload, origin="b")])
            latencies.append(time.perf_counter() - began)

    shares = [job.appends // job.tasks + (i < job.appends % job.tasks) for i in range(job.tasks)]
    try:
        barrier.wait()  # every process has connected: start together
        started = time.time()
        await asyncio.gather(*(task(i, n) for i, n in enumerate(shares)))
        finished = time.time()
        commits = int(getattr(store, "commits", 0))
    finally:
        await store.close()
    return Result(started, finished, commits, latencies)


def process_main(
    job: Job,
    barrier: multiprocessing.synchronize.Barrier,
    out: multiprocessing.queues.Queue[Result],
) -> None:
    out.put(asyncio.run(run_process(job, barrier)))


async def postgres_schema(dsn: str, name: str, *, drop: bool) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        verb = "DROP SCHEMA IF EXISTS {} CASCADE" if drop else "CREATE SCHEMA {}"
        await conn.execute(verb.format(name))
    finally:
        await conn.close()


def collect(
    workers: Sequence[multiprocessing.process.BaseProcess],
    out: multiprocessing.queues.Queue[Result],
) -> list[Result]:
    """Every worker's result; raises as soon as one of them has died without one."""
    results: list[Result] = []
    while len(results) < len(workers):
        try:
            results.append(out.get(timeout=0.5))
        except queue.Empty:
            if any(w.exitcode not in (None, 0) for w in workers):
                for worker in workers:
                    worker.kill()
                raise SystemExit("a worker process failed (see its traceback above)") from None
    for worker in workers:
        worker.join()
    return results


def measure(backend: str, processes: int, args: argparse.Namespace) -> list[str]:
    per_process = args.appends // processes
    with tempfile.TemporaryDirectory() as tmp:
        if backend == "sqlite":
            target = str(Path(tmp) / "bench.sqlite3")
        else:
            target = f"bench_{uuid.uuid4().hex}"
            asyncio.run(postgres_schema(args.dsn, target, drop=False))
        job = Job(backend, target, args.dsn, args.tasks, per_process, args.size)
        ctx = multiprocessing.get_context("spawn")
        barrier, out = ctx.Barrier(processes), ctx.Queue()
        workers = [
            ctx.Process(target=process_main, args=(job, barrier, out)) for _ in range(processes)
        ]
        try:
            for worker in workers:
                worker.start()
            results = collect(workers, out)
        finally:
            if backend == "postgres":
                asyncio.run(postgres_schema(args.dsn, target, drop=True))
    seconds = max(r.finished for r in results) - min(r.started for r in results)
    total = per_process * processes
    commits = sum(r.commits for r in results)
    latencies = sorted(lat for r in results for lat in r.latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return [
        backend,
        str(processes),
        str(args.tasks),
        str(total),
        f"{seconds:.2f}",
        f"{total / seconds:,.0f}",
        f"{total / commits:.1f}" if commits else "-",
        f"{statistics.median(latencies) * 1000:.1f}",
        f"{p99 * 1000:.1f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backends", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"]
    )
    parser.add_argument("--appends", type=int, default=5000, help="total, over all processes")
    parser.add_argument("--tasks", type=int, default=50, help="concurrent tasks per process")
    parser.add_argument("--processes", type=int, nargs="+", default=[1], help="process counts")
    parser.add_argument("--size", type=int, default=32, help="bytes per update")
    parser.add_argument(
        "--dsn", default=os.environ.get("CRDT_TEST_POSTGRES_DSN", DEFAULT_DSN), help="PostgreSQL"
    )
    args = parser.parse_args()
    header = [
        "backend",
        "procs",
        "tasks/proc",
        "appends",
        "seconds",
        "appends/s",
        "appends/commit",
        "p50 ms",
        "p99 ms",
    ]
    rows = [header]
    for backend in args.backends:
        for processes in args.processes:
            rows.append(measure(backend, processes, args))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for n, row in enumerate(rows):
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * width for width in widths))


if __name__ == "__main__":
    main()
