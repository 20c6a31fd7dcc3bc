"""What one HTTP operation costs the server, by the size of the wedding (issue 52, point 4).

For each of ``--sizes`` guests (default 300 and 3,000; the wedding of
:func:`benchmarks.conflicts_bench.wedding_ops`: tables of 10, a timeline and a budget that
grow with the guest list), a real server (a child process) is given one wedding, then one
client posts ``--ops`` domain operations one after the other (``POST .../ops``: RSVP
changes, meals, seat moves, timeline moves), each answered once committed. The row is the
server's CPU per operation (user + system of its process over the timed operations, from
``/proc``) and the operations' p50 and p99, with everything an operation brings running
(change records, events, the conflicts keeper, projections).

    .venv/bin/python -m benchmarks.operations_bench
    .venv/bin/python -m benchmarks.operations_bench --sizes 300 --ops 100

Compare two versions only in interleaved runs (A B A B A B) on one machine, with the load
average beside each figure (``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: benchmarks.* and tests.* are found from the root
    print(
        f"run it from {ROOT} as: .venv/bin/python -m benchmarks.operations_bench [options]",
        file=sys.stderr,
    )
    sys.exit(2)

from benchmarks.conflicts_bench import (  # noqa: E402
    ENV,
    _populate,
    _warm,
    cpu_seconds,
    quantile,
)
from crdt_server.testing.server import ServerProcess  # noqa: E402


def operations(guests: int, count: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """``count`` (document, operation) pairs a planner makes on a wedding of ``guests``."""
    items = max(2, guests // 10)
    found: list[tuple[str, dict[str, Any]]] = []
    for n in range(count):
        g = f"g{rng.randrange(guests)}"
        pick = n % 4
        if pick == 0:
            rsvp = rng.choice(("accepted", "pending"))
            found.append(("guests", {"op": "set_rsvp", "guest_id": g, "rsvp": rsvp}))
        elif pick == 1:
            meal = rng.choice(("fish", "veg"))
            found.append(("guests", {"op": "update_guest", "guest_id": g, "meal": meal}))
        elif pick == 2:
            found.append(("seating", {"op": "unassign_seat", "guest_id": g}))
        else:
            hour = 10 + rng.randrange(8)
            op = {
                "op": "move_timeline_item",
                "item_id": f"i{rng.randrange(items)}",
                "start": f"2026-06-13T{hour:02d}:00:00Z",
                "end": f"2026-06-13T{hour:02d}:45:00Z",
            }
            found.append(("timeline", op))
    return found


async def row(guests: int, count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="operations-bench-") as tmp:
        server = ServerProcess(Path(tmp) / "data", env=ENV, anonymous=True)
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
                await _populate(http, "w0", guests)
                await _warm(http, "w0")
                for doc in ("seating", "budget", "tasks"):  # every room loaded before timing
                    (await http.get(f"/api/weddings/w0/docs/{doc}")).raise_for_status()
                await asyncio.sleep(1)  # the keeper's first evaluation (its build)
                assert server.process is not None
                pid = server.process.pid
                ops = operations(guests, count, random.Random(guests))
                took: list[float] = []
                refused = 0
                cpu_before = cpu_seconds(pid)
                for doc, op in ops:
                    started = time.perf_counter()
                    answer = await http.post(f"/api/weddings/w0/docs/{doc}/ops", json=op)
                    took.append(time.perf_counter() - started)
                    if answer.status_code == 422:
                        refused += 1  # unassigning a guest with no seat: refused, no write
                    else:
                        answer.raise_for_status()
                cpu = cpu_seconds(pid) - cpu_before
        finally:
            await server.stop()
    return {
        "guests": guests,
        "operations": len(ops),
        "refused": refused,
        "server_cpu_ms_per_operation": 1000 * cpu / len(ops),
        "p50_ms": 1000 * statistics.median(took),
        "p99_ms": 1000 * quantile(took, 0.99),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="300,3000", help="guest counts, one row each")
    parser.add_argument("--ops", type=int, default=200, help="operations per row")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    import crdt_server

    result: dict[str, Any] = {
        "server_code": str(Path(crdt_server.__file__).parent),
        "loadavg_before": os.getloadavg(),
    }
    rows = [asyncio.run(row(int(size), args.ops)) for size in args.sizes.split(",") if size]
    result["rows"] = rows
    result["loadavg_after"] = os.getloadavg()
    print(f"server code: {result['server_code']}")
    print("| guests | operations | server CPU ms/operation | p50 ms | p99 ms |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['guests']:,} | {r['operations']} | {r['server_cpu_ms_per_operation']:.2f}"
            f" | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} |"
        )
    print(f"load average before {result['loadavg_before']}, after {result['loadavg_after']}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
