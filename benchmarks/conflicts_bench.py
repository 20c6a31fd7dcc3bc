"""What keeping conflicts costs, and how soon they show (issue 40, goal 2).

Two measurements in one run:

1. **CPU per update** of the conflicts keeper's detection at ``--sizes`` guests (default 300
   and 3,000; tables of 10, a timeline and a budget that grow with the guest list), in this
   process: each update is a realistic domain change (an RSVP, a meal, a seat move, a
   timeline move, a payment) applied with its change recorder, as a room does. *Incremental*
   is what the keeper runs now per update (``WeddingFindings.touch`` + ``evaluate``: the
   entries the change touched); *full* is what its refresh ran before (``check`` of the four
   documents and ``related_paths`` of each finding), measured on the same updates in the
   same run, one full re-check per update (the old refresh batched a wedding's updates
   into one re-check every 0.25 to 30 s: cheaper per update under load, at that latency).
2. **Commit to ``conflict.detected``** through a real server under a modest load:
   ``--weddings`` weddings of ``--guests`` guests, each with one writer making
   ``--rate`` domain operations a second for ``--seconds`` (HTTP ops): RSVP changes, and a
   timeline item moved into and out of its vendor's other booking, so every fourth update
   opens a ``timeline.vendor_overlap`` and every fourth closes it. The latency is the
   detected event's ``at`` minus the ``at`` of the move's own event (both the store's clock
   at their commits, millisecond precision). A move whose overlap was undone (the next
   move committed) before the keeper evaluated it has no detection, correctly: it is
   counted apart. At the end each wedding's conflicts room is compared with a full check
   (``GET /conflicts``).

    .venv/bin/python -m benchmarks.conflicts_bench
    .venv/bin/python -m benchmarks.conflicts_bench --sizes 300 --updates 200 --seconds 5
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
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: benchmarks.* and tests.* are found from the root
    print(
        f"run it from {ROOT} as: .venv/bin/python -m benchmarks.conflicts_bench [options]",
        file=sys.stderr,
    )
    sys.exit(2)

from pycrdt import Doc  # noqa: E402

from crdt_server.documents import DOCUMENT_KINDS, apply_operation, check, seed  # noqa: E402
from crdt_server.documents.changes import ChangeRecorder  # noqa: E402
from crdt_server.documents.findings import WeddingFindings  # noqa: E402
from crdt_server.features.conflicts.domain_resolution import related_paths  # noqa: E402
from crdt_server.testing.server import ServerProcess  # noqa: E402

ENV = {
    "CRDT_SERVER_RATE_READ_PER_MINUTE": "0",
    "CRDT_SERVER_RATE_WRITE_PER_MINUTE": "0",
    "CRDT_SERVER_MAX_UPDATES_PER_SECOND": "100000",
}
RSVPS = ("accepted", "declined", "pending")


def wedding_ops(guests: int) -> list[dict[str, Any]]:
    """The operations that build a wedding of ``guests`` guests: tables of 10 (all but the
    last few seated), a timeline item per 10 guests, 20 budget categories and a payment per
    10 guests."""
    ops: list[dict[str, Any]] = []
    for t in range(guests // 10 + 1):
        ops.append({"op": "add_table", "table_id": f"t{t}", "name": f"Table {t}", "capacity": 10})
    for g in range(guests):
        ops.append(
            {"op": "add_guest", "guest_id": f"g{g}", "name": f"Guest {g}", "rsvp": "accepted"}
        )
        if g < guests - 5:
            ops.append({"op": "assign_seat", "guest_id": f"g{g}", "table_id": f"t{g // 10}"})
    for i in range(max(2, guests // 10)):
        hour = 10 + i % 8
        ops.append(
            {
                "op": "add_timeline_item",
                "item_id": f"i{i}",
                "title": f"Item {i}",
                "start": f"2026-06-13T{hour:02d}:00:00Z",
                "end": f"2026-06-13T{hour:02d}:30:00Z",
                "vendor": f"Vendor {i}",
            }
        )
    ops.append({"op": "set_budget_total", "total": 10**9, "currency": "EUR"})
    for c in range(20):
        ops.append(
            {"op": "set_category", "category_id": f"c{c}", "name": f"C {c}", "planned": 10**7}
        )
    for p in range(guests // 10):
        ops.append(
            {
                "op": "record_payment",
                "payment_id": f"p{p}",
                "category_id": f"c{p % 20}",
                "amount": 1000,
                "date": "2026-01-15",
            }
        )
    return ops


def _kind(op: dict[str, Any]) -> str:
    from crdt_server.documents import OPERATIONS

    return OPERATIONS[op["op"]]


def edits(guests: int, count: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` realistic domain changes of a wedding built by :func:`wedding_ops`."""
    items = max(2, guests // 10)
    found: list[dict[str, Any]] = []
    for n in range(count):
        g = f"g{rng.randrange(guests)}"
        pick = n % 5
        if pick == 0:
            found.append({"op": "set_rsvp", "guest_id": g, "rsvp": rng.choice(RSVPS)})
        elif pick == 1:
            found.append({"op": "update_guest", "guest_id": g, "meal": rng.choice(["fish", "veg"])})
        elif pick == 2:
            table = f"t{rng.randrange(guests // 10 + 1)}"
            found.append({"op": "assign_seat", "guest_id": g, "table_id": table})
        elif pick == 3:
            hour = 10 + rng.randrange(8)
            found.append(
                {
                    "op": "move_timeline_item",
                    "item_id": f"i{rng.randrange(items)}",
                    "start": f"2026-06-13T{hour:02d}:00:00Z",
                    "end": f"2026-06-13T{hour:02d}:45:00Z",
                }
            )
        else:
            found.append(
                {
                    "op": "record_payment",
                    "payment_id": f"p{guests + n}",
                    "category_id": f"c{rng.randrange(20)}",
                    "amount": 500,
                    "date": "2026-02-01",
                }
            )
    return found


def cpu_per_update(guests: int, updates: int, seed_value: int = 1) -> dict[str, Any]:
    docs: dict[str, Doc[Any]] = {kind: Doc() for kind in DOCUMENT_KINDS}
    for kind, doc in docs.items():
        seed(doc, kind, "bench")
    for op in wedding_ops(guests):
        kind = _kind(op)
        try:
            apply_operation(docs[kind], kind, op, related=docs)
        except Exception:  # a seat refused (capacity): the wedding is built anyway
            pass
    recorders = {kind: ChangeRecorder(doc, kind) for kind, doc in docs.items()}
    build_started = time.process_time()
    findings = WeddingFindings.build(docs)
    findings.evaluate()
    build = time.process_time() - build_started
    incremental = full = 0.0
    rng = random.Random(seed_value)
    applied = 0
    for op in edits(guests, updates, rng):
        kind = _kind(op)
        try:
            apply_operation(docs[kind], kind, op, related=docs)
        except Exception:
            recorders[kind].take()
            continue
        applied += 1
        touched = [(c.root, c.id) for c in recorders[kind].take()]
        started = time.process_time()
        findings.touch(kind, docs[kind], touched)
        findings.evaluate()
        incremental += time.process_time() - started
        started = time.process_time()
        for conflict in check(docs):
            related_paths(conflict, docs)
        full += time.process_time() - started
    assert findings.findings() == check(docs)  # the same findings, kept either way
    return {
        "guests": guests,
        "updates": applied,
        "incremental_us_per_update": 1e6 * incremental / max(1, applied),
        "full_us_per_update": 1e6 * full / max(1, applied),
        "ratio_full_over_incremental": full / incremental if incremental else None,
        "build_ms_once_per_load": 1000 * build,
        "findings": len(findings.findings()),
    }


# -- commit to conflict.detected through a server ------------------------------------------


def _at(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _populate(http: httpx.AsyncClient, wedding: str, guests: int) -> None:
    """The whole wedding in one update per document (built on a replica, then posted)."""
    docs: dict[str, Doc[Any]] = {}
    for kind in DOCUMENT_KINDS:
        answer = await http.get(
            f"/api/weddings/{wedding}/docs/{kind}", headers={"Accept": "application/octet-stream"}
        )
        answer.raise_for_status()
        docs[kind] = Doc()
        docs[kind].apply_update(answer.content)
    before = {kind: doc.get_state() for kind, doc in docs.items()}
    for op in wedding_ops(guests):
        kind = _kind(op)
        try:
            apply_operation(docs[kind], kind, op, related=docs)
        except Exception:
            pass
    for kind, doc in docs.items():
        sent = await http.post(
            f"/api/weddings/{wedding}/docs/{kind}/update", content=doc.get_update(before[kind])
        )
        sent.raise_for_status()


async def _warm(http: httpx.AsyncClient, wedding: str) -> None:
    """Give i1 the vendor of i0, and touch the guest list: the rooms the writer edits are
    loaded and the wedding's findings built before anything is timed (a wedding's first
    evaluation after its rooms load reads them whole: the CPU rows' full re-check)."""
    for doc, op in (
        ("timeline", {"op": "update_timeline_item", "item_id": "i1", "vendor": "Vendor 0"}),
        ("guests", {"op": "set_rsvp", "guest_id": "g0", "rsvp": "pending"}),
    ):
        answer = await http.post(f"/api/weddings/{wedding}/docs/{doc}/ops", json=op)
        answer.raise_for_status()


async def _writer(
    http: httpx.AsyncClient, wedding: str, guests: int, rate: float, seconds: float
) -> int:
    """RSVPs, and item i1 moved onto i0's slot (same vendor: an overlap) and away again."""
    rng = random.Random(wedding)
    moves: list[Callable[[], dict[str, Any]]] = [
        lambda: {"op": "set_rsvp", "guest_id": f"g{rng.randrange(guests)}", "rsvp": "pending"},
        lambda: {
            "op": "move_timeline_item",
            "item_id": "i1",
            "start": "2026-06-13T10:10:00Z",
            "end": "2026-06-13T10:40:00Z",
        },
        lambda: {"op": "set_rsvp", "guest_id": f"g{rng.randrange(guests)}", "rsvp": "accepted"},
        lambda: {
            "op": "move_timeline_item",
            "item_id": "i1",
            "start": "2026-06-13T16:00:00Z",
            "end": "2026-06-13T16:30:00Z",
        },
    ]
    loop = asyncio.get_running_loop()
    start = loop.time() + rng.random() / rate
    sent = 0
    while loop.time() < start + seconds:
        op = moves[sent % len(moves)]()
        doc = "timeline" if op["op"].endswith("item") else "guests"
        answer = await http.post(f"/api/weddings/{wedding}/docs/{doc}/ops", json=op)
        answer.raise_for_status()
        sent += 1
        delay = start + sent / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    return sent


async def _events(http: httpx.AsyncClient, wedding: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after = 0
    while True:
        answer = await http.get(
            f"/api/weddings/{wedding}/events",
            params={
                "after": after,
                "limit": 500,
                "types": "conflict.detected,timeline.item_rescheduled",
            },
        )
        page = answer.json()["events"]
        if not page:
            return found
        found += page
        after = page[-1]["seq"]


async def latency(args: argparse.Namespace) -> dict[str, Any]:
    weddings = [f"w{n}" for n in range(args.weddings)]
    with tempfile.TemporaryDirectory(prefix="conflicts-bench-") as tmp:
        server = ServerProcess(Path(tmp) / "data", env=ENV, anonymous=True)
        await server.start()
        try:
            limits = httpx.Limits(max_connections=args.weddings + 10)
            async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as http:
                for wedding in weddings:
                    await _populate(http, wedding, args.guests)
                for wedding in weddings:
                    await _warm(http, wedding)
                await asyncio.sleep(1)  # the first evaluation of each wedding (its build)
                assert server.process is not None
                pid = server.process.pid
                cpu_before = cpu_seconds(pid)
                sent = sum(
                    await asyncio.gather(
                        *(_writer(http, w, args.guests, args.rate, args.seconds) for w in weddings)
                    )
                )
                cpu = cpu_seconds(pid) - cpu_before
                await asyncio.sleep(1)
                gaps: list[float] = []
                missing = differing = 0
                for wedding in weddings:
                    moves: list[float] = []  # the moves into the overlap
                    detections: list[float] = []
                    for event in await _events(http, wedding):
                        if event["type"] == "timeline.item_rescheduled":
                            if _overlapping(event):
                                moves.append(_at(event["at"]))
                        elif event["data"].get("code") == "timeline.vendor_overlap":
                            detections.append(_at(event["at"]))
                    # each detection answers the latest move into the overlap before it
                    # (its event may be numbered after the next move out: compare times)
                    matched: set[int] = set()
                    for at in detections:
                        before = [i for i, moved in enumerate(moves) if moved <= at]
                        if before and before[-1] not in matched:
                            matched.add(before[-1])
                            gaps.append(1000 * (at - moves[before[-1]]))
                    missing += len(moves) - len(matched)
                    # what the room shows at the end is what a full check finds
                    checked = (await http.get(f"/api/weddings/{wedding}/conflicts")).json()
                    shown = (await http.get(f"/api/weddings/{wedding}/docs/conflicts")).json()
                    if sorted((c["code"], c["paths"]) for c in checked["conflicts"]) != sorted(
                        (c["code"], c["paths"]) for c in shown["conflicts"]
                    ):
                        differing += 1
        finally:
            await server.stop()
    return {
        "weddings": args.weddings,
        "guests": args.guests,
        "offered_updates_per_s": args.weddings * args.rate,
        "updates": sent,
        "detections": len(gaps),
        "missed": missing,
        "rooms_differing_from_a_full_check": differing,
        "p50_ms": statistics.median(gaps) if gaps else None,
        "p99_ms": quantile(gaps, 0.99) if gaps else None,
        "max_ms": max(gaps) if gaps else None,
        "server_cpu_ms_per_update": 1000 * cpu / max(1, sent),
    }


def _overlapping(event: dict[str, Any]) -> bool:
    return "T10:10" in json.dumps(event["data"].get("to"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="300,3000", help="guest counts for the CPU rows ('' for none)"
    )
    parser.add_argument("--updates", type=int, default=500, help="updates per CPU row")
    parser.add_argument("--weddings", type=int, default=20)
    parser.add_argument("--guests", type=int, default=300, help="guests per wedding (latency)")
    parser.add_argument("--rate", type=float, default=5.0, help="updates/s per wedding")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    result: dict[str, Any] = {"loadavg_before": os.getloadavg()}
    sizes = [int(size) for size in args.sizes.split(",") if size]
    rows = [cpu_per_update(size, args.updates) for size in sizes]
    result["cpu"] = rows
    print("| guests | incremental us/update | full re-check us/update | full / incremental |")
    print("|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['guests']:,} | {row['incremental_us_per_update']:.0f} "
            f"| {row['full_us_per_update']:.0f} | {row['ratio_full_over_incremental']:.0f}x |"
        )
    found = asyncio.run(latency(args))
    result["latency"] = found
    result["loadavg_after"] = os.getloadavg()
    print(
        f"\ncommit to conflict.detected: {found['weddings']} weddings x {found['guests']} guests,"
        f" {found['offered_updates_per_s']:.0f} updates/s offered for {args.seconds:.0f} s:"
        f" {found['detections']} detections ({found['missed']} overlaps undone before"
        f" they were evaluated; {found['rooms_differing_from_a_full_check']} rooms differing"
        " from a full check at the end),"
        f" p50 {found['p50_ms'] or 0:.0f} ms, p99 {found['p99_ms'] or 0:.0f} ms,"
        f" max {found['max_ms'] or 0:.0f} ms;"
        f" server CPU {found['server_cpu_ms_per_update']:.2f} ms/update"
    )
    print(f"load average before {result['loadavg_before']}, after {result['loadavg_after']}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
