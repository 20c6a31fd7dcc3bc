"""Guest CSV import time: N rows posted to a real server (one process, SQLite), timed from
the request to the answer (parsed, planned, applied as one update, committed with its
guest events). Prints one Markdown table row per run; the goal is 5,000 rows under 2 s.

    .venv/bin/python -m benchmarks.csv_import              # 5,000 rows, 3 runs
    .venv/bin/python -m benchmarks.csv_import --rows 20000 --runs 1
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: benchmarks.* and tests.* are found from the root
    print(
        f"run it from {ROOT} as: .venv/bin/python -m benchmarks.csv_import [options]",
        file=sys.stderr,
    )
    sys.exit(2)

from crdt_server.testing.server import ServerProcess  # noqa: E402


def sheet(rows: int) -> bytes:
    lines = ["name,household,side,rsvp,meal,dietary,plus_one,contact"]
    lines += [
        f"Guest {i},House {i // 4},partner_a,accepted,fish,vegan; nuts,true,guest{i}@example.com"
        for i in range(rows)
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


async def one_run(rows: int, body: bytes) -> tuple[float, float]:
    """(seconds to import ``rows`` new guests, seconds to import the export back) on a
    fresh server, so no run pays for the background work of the one before."""
    csv_type = {"Content-Type": "text/csv"}
    with tempfile.TemporaryDirectory() as tmp:
        env = {"CRDT_SERVER_RATE_WRITE_PER_MINUTE": "0"}
        async with (
            ServerProcess(Path(tmp) / "data", env=env) as server,
            httpx.AsyncClient(base_url=server.url, timeout=120) as http,
        ):
            url = "/api/weddings/bench/guests.csv"
            started = time.perf_counter()
            answer = await http.post(url, content=body, headers=csv_type)
            added = time.perf_counter() - started
            assert answer.status_code == 200, answer.text[:300]
            assert len(answer.json()["added"]) == rows
            exported = await http.get(url)
            started = time.perf_counter()
            again = await http.post(url, content=exported.content, headers=csv_type)
            unchanged = time.perf_counter() - started
            assert len(again.json()["unchanged"]) == rows
    return added, unchanged


async def run(rows: int, runs: int) -> None:
    body = sheet(rows)
    results = [await one_run(rows, body) for _ in range(runs)]
    added = statistics.median(r[0] for r in results)
    unchanged = statistics.median(r[1] for r in results)
    print("| figure | value |")
    print("|---|---|")
    print(f"| CSV import, {rows:,} new guests (median of {runs} servers) | {added:.2f} s |")
    print(
        f"| CSV import, {rows:,} guests unchanged (the export imported back) | {unchanged:.2f} s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.rows, args.runs))


if __name__ == "__main__":
    main()
