"""Webhook latency: from an event's commit to its receivers, with 10 endpoints.

    .venv/bin/python -m benchmarks.webhooks                      # 10 endpoints, 5 events/s, 10 s
    .venv/bin/python -m benchmarks.webhooks --endpoints 2 --seconds 1   # a smoke run

Starts a real server (SQLite, a fresh data directory) and ``--endpoints`` real receivers
(Starlette on uvicorn, in this process, each verifying every request with
``standardwebhooks``), subscribes each to the wedding's events, then posts custom events at
``--rate`` per second for ``--seconds``. Latency is the receiver's arrival time minus the
event's commit time (its ``at``, written by the server in the committing transaction; same
machine, same clock, millisecond precision). Prints one Markdown table of figures.
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

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: benchmarks.* and tests.* are found from the root
    print(
        f"run it from {ROOT} as: .venv/bin/python -m benchmarks.webhooks [options]", file=sys.stderr
    )
    sys.exit(2)

import httpx  # noqa: E402
from standardwebhooks import Webhook  # noqa: E402

from crdt_server.auth.tokens import TokenCodec  # noqa: E402
from crdt_server.testing.receiver import WebhookReceiver  # noqa: E402
from crdt_server.testing.server import ServerProcess  # noqa: E402

SECRET = "webhook-benchmark-secret-at-least-32-bytes"


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def measure(
    endpoints: int, rate: float, seconds: float, synchronous: str = "full"
) -> list[tuple[str, str]]:
    token = TokenCodec(algorithms=["HS256"], secret=SECRET.encode()).mint(
        sub="bench", role="planner", wedding="w1", ttl=3600
    )
    auth = {"Authorization": f"Bearer {token}"}
    env = {
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        "CRDT_SERVER_WEBHOOK_ALLOW_PRIVATE": "true",
        "CRDT_SERVER_RATE_EVENTS_PER_MINUTE": "1000000",
        "CRDT_SERVER_SQLITE_SYNCHRONOUS": synchronous,
    }
    receivers = [WebhookReceiver() for _ in range(endpoints)]
    with tempfile.TemporaryDirectory() as tmp:
        async with ServerProcess(Path(tmp) / "data", env=env, anonymous=False) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                for r in receivers:
                    await r.__aenter__()
                try:
                    secrets = []
                    for r in receivers:
                        answer = await http.post(
                            "/api/weddings/w1/webhooks", json={"url": r.url}, headers=auth
                        )
                        answer.raise_for_status()
                        secrets.append(answer.json()["secret"])
                    count = max(1, int(rate * seconds))
                    assert server.process is not None
                    cpu_before = cpu_seconds(server.process.pid)
                    start = time.monotonic()
                    for i in range(count):
                        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
                        answer = await http.post(
                            "/api/weddings/w1/events",
                            json={"type": "custom.bench", "data": {"i": i}},
                            headers=auth,
                        )
                        answer.raise_for_status()
                    for r in receivers:
                        await r.wait_for(count, timeout=60 + seconds)
                    cpu = cpu_seconds(server.process.pid) - cpu_before
                finally:
                    for r in receivers:
                        await r.__aexit__(None, None, None)
    latencies: list[float] = []
    for r, secret in zip(receivers, secrets, strict=True):
        hook = Webhook(secret)
        for got in r.received:
            body = hook.verify(got.body, got.headers)
            at = datetime.fromisoformat(body["data"]["at"].replace("Z", "+00:00")).timestamp()
            latencies.append(max(0.0, got.at - at) * 1000)
    ids = {
        (i, json.loads(g.body)["data"]["seq"]) for i, r in enumerate(receivers) for g in r.received
    }
    return [
        ("deliveries (endpoints × events)", f"{len(latencies)} ({len(ids)} distinct)"),
        ("webhook latency p50 from commit to receiver", f"{statistics.median(latencies):.1f} ms"),
        ("webhook latency p99 from commit to receiver", f"{percentile(latencies, 99):.1f} ms"),
        ("webhook latency max", f"{max(latencies):.1f} ms"),
        (
            "server CPU per event (commit and its deliveries to every endpoint)",
            f"{cpu / count * 1000:.1f} ms",
        ),
        ("machine load average (1 min) at the end", f"{os.getloadavg()[0]:.1f}"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--rate", type=float, default=5.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--sqlite-synchronous",
        choices=("full", "normal"),
        default="full",
        help="CRDT_SERVER_SQLITE_SYNCHRONOUS of the server (full: the default)",
    )
    args = parser.parse_args()
    rows = asyncio.run(measure(args.endpoints, args.rate, args.seconds, args.sqlite_synchronous))
    shape = (
        f"{args.endpoints} endpoints, {args.rate:g} events/s, {args.seconds:g} s,"
        f" synchronous={args.sqlite_synchronous}"
    )
    print(f"| figure ({shape}) | ours |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
