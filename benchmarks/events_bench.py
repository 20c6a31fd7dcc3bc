"""Event delivery: commit to Server-Sent Events subscribers (issue 16's benchmark row).

Starts our server on a fresh data directory, opens ``--subscribers`` streams on
``GET /api/weddings/{id}/events/stream`` and has one y-protocols client (the load generator's
``YPeer``) send ``--rate`` updates a second to the wedding's timeline for ``--seconds``: each
adds one timeline item, so each yields one ``timeline.item_added`` event. A delivery's
latency is the time its subscriber read the event minus the
event's ``at`` (the store's clock at commit, millisecond precision, same machine), so it
covers derivation, the commit, the wake-up, the store read and the stream.

    .venv/bin/python -m benchmarks.events_bench                 # 10 subscribers, 100/s, 20 s
    .venv/bin/python -m benchmarks.events_bench --seconds 5 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: benchmarks.* and tests.* are found from the root
    print(
        f"run it from {ROOT} as: .venv/bin/python -m benchmarks.events_bench [options]",
        file=sys.stderr,
    )
    sys.exit(2)

from pycrdt import Doc, Map, TransactionEvent  # noqa: E402

from benchmarks.loadgen import Target, YPeer, close_peers, open_peers  # noqa: E402
from crdt_server.codec.protocol import encode_update  # noqa: E402
from crdt_server.testing.server import ServerProcess  # noqa: E402

WEDDING = "bench"
WRITER_ID = 4242
ENV = {
    "CRDT_SERVER_RATE_READ_PER_MINUTE": "0",
    "CRDT_SERVER_MAX_UPDATES_PER_SECOND": "100000",
    "CRDT_SERVER_SSE_HEARTBEAT_SECONDS": "5",
}


def _at(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class SseStream(asyncio.Protocol):
    """A lean Server-Sent Events client (HTTP/1.1, chunked): parsing in ``data_received``,
    no task per event, so many streams cost the load generator little. Each complete
    record (its lines, ``\n``-joined) goes to :meth:`record` with the time it arrived."""

    def __init__(self, ready: asyncio.Event) -> None:
        self.ready = ready
        self.raw = b""
        self.body = b""
        self.head_done = False

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.raw += data
        if not self.head_done:
            head, sep, rest = self.raw.partition(b"\r\n\r\n")
            if not sep:
                return
            if b" 200 " not in head.split(b"\r\n", 1)[0]:
                raise RuntimeError(f"stream refused: {head[:100]!r}")
            self.head_done, self.raw = True, rest
            self.ready.set()
        while True:  # de-chunk
            size_line, sep, rest = self.raw.partition(b"\r\n")
            if not sep:
                break
            size = int(size_line, 16)
            if len(rest) < size + 2:
                break
            self.body += rest[:size]
            self.raw = rest[size + 2 :]
        *records, self.body = self.body.replace(b"\r\n", b"\n").split(b"\n\n")
        for block in records:
            self.record(block, now)

    def record(self, block: bytes, now: float) -> None:
        """One record of the stream, arrived at ``now`` (Unix time)."""


class SseReader(SseStream):
    """Times each event once (by its seq): from its commit (``at``) to its arrival."""

    def __init__(self, latencies: list[float], seen: set[int], ready: asyncio.Event) -> None:
        super().__init__(ready)
        self.latencies = latencies
        self.seen = seen

    def record(self, block: bytes, now: float) -> None:
        lines = block.split(b"\n")
        if not any(line.startswith(b"id:") for line in lines):
            return  # not a stored event: presence.changed, a priority record, a comment
        for line in lines:
            if line.startswith(b"data:"):
                event = json.loads(line[5:])
                if event["seq"] not in self.seen:
                    self.seen.add(event["seq"])
                    self.latencies.append(now - _at(event["at"]))


async def subscribe(
    port: int, ready: asyncio.Event, latencies: list[float], seen: set[int]
) -> asyncio.Transport:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(
        lambda: SseReader(latencies, seen, ready), "127.0.0.1", port
    )
    request = (
        f"GET /api/weddings/{WEDDING}/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Accept: text/event-stream\r\n\r\n"
    )
    transport.write(request.encode())
    return transport


def item_updates(count: int) -> list[bytes]:
    """``count`` real Yjs updates of a timeline, each adding one item (one event each)."""
    doc: Doc[Any] = Doc(client_id=WRITER_ID)
    items = doc.get("items", type=Map)
    updates: list[bytes] = []

    def keep(event: TransactionEvent) -> None:
        updates.append(event.update)

    subscription = doc.observe(keep)
    for i in range(count):
        items[f"i{i}"] = Map(
            {"title": f"Item {i}", "start": "2026-06-13T13:00:00Z", "end": "2026-06-13T14:00:00Z"}
        )
    doc.unobserve(subscription)
    return [encode_update(u) for u in updates]


async def write(target: Target, rate: float, seconds: float) -> int:
    """Send the updates on schedule (not one after the other); returns how many."""
    messages = item_updates(int(rate * seconds))
    opened: list[YPeer] = []
    try:
        writer = (await open_peers(target, [WEDDING], opened))[0]
        start = time.monotonic()
        for i, message in enumerate(messages):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.send(message)
        writer.on_update = lambda *_: None
    finally:
        await close_peers(opened)
    return len(messages)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="events-bench-") as tmp:
        server = ServerProcess(Path(tmp) / "data", env=ENV, anonymous=True)
        await server.start()
        try:
            limits = httpx.Limits(max_connections=args.subscribers + 80)
            async with (
                httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as http,
            ):
                # warm up the room (load, seed) before anything is timed
                await http.get(f"/api/weddings/{WEDDING}/docs/timeline")
                per: list[list[float]] = [[] for _ in range(args.subscribers)]
                seen: list[set[int]] = [set() for _ in range(args.subscribers)]
                ready = [asyncio.Event() for _ in range(args.subscribers)]
                subs = [
                    await subscribe(server.port, ready[i], per[i], seen[i])
                    for i in range(args.subscribers)
                ]
                async with asyncio.timeout(30):
                    await asyncio.gather(*(r.wait() for r in ready))
                assert server.process is not None
                pid = server.process.pid
                cpu_before = cpu_seconds(pid)
                target = Target("127.0.0.1", server.port, pid)
                sent = await write(target, args.rate, args.seconds)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and any(len(s) < sent for s in seen):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                cpu = cpu_seconds(pid) - cpu_before
                for transport in subs:
                    transport.close()
        finally:
            await server.stop()
    latencies = [x for lat in per for x in lat]
    ms = [x * 1000 for x in latencies]
    return {
        "subscribers": args.subscribers,
        "rate": args.rate,
        "seconds": args.seconds,
        "updates": sent,
        "deliveries": len(latencies),
        "missing": args.subscribers * sent - len(latencies),
        "p50_ms": statistics.median(ms) if ms else None,
        "p99_ms": quantile(ms, 0.99) if ms else None,
        "max_ms": max(ms) if ms else None,
        "server_cpu_ms_per_update": 1000 * cpu / max(1, sent),
        "loadavg": os.getloadavg()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = asyncio.run(measure(args))
    print(
        f"| event delivery, commit → {result['subscribers']} SSE subscribers at "
        f"{result['rate']:g} updates/s | p50 {result['p50_ms']:.1f} ms | "
        f"p99 {result['p99_ms']:.1f} ms | max {result['max_ms']:.1f} ms | "
        f"{result['deliveries']} deliveries, {result['missing']} missing | "
        f"server CPU {result['server_cpu_ms_per_update']:.2f} ms per update "
        f"(commit, its event and its deliveries) | load average {result['loadavg']:.1f} |"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["missing"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
