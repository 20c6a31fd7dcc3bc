"""Webhook latency: from an event's commit to its receivers, with 10 endpoints.

    .venv/bin/python -m benchmarks.webhooks                      # 10 endpoints, 5 events/s, 10 s
    .venv/bin/python -m benchmarks.webhooks --endpoints 2 --seconds 1   # a smoke run
    .venv/bin/python -m benchmarks.webhooks --emergency-behind 10000    # the priority lane

Starts a real server (SQLite, a fresh data directory) and ``--endpoints`` real receivers
(Starlette on uvicorn, in this process, each verifying every request with
``standardwebhooks``), subscribes each to the wedding's events, then posts custom events at
``--rate`` per second for ``--seconds``. Latency is the receiver's arrival time minus the
event's commit time (its ``at``, written by the server in the committing transaction; same
machine, same clock, millisecond precision). Prints one Markdown table of figures.

``--emergency-behind N`` measures the priority lane instead: N normal custom events are
committed while the one endpoint is paused (so all N are queued for it) and before an SSE
subscriber connects from seq 0 (so all N are its backlog); then the endpoint is enabled
again, and an emergency is posted at once. The figures are the time from the emergency's
commit to its arrival on the subscriber's priority lane and at the receiver, and how much of
the backlog each had received by then.
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


async def _stream(
    http: httpx.AsyncClient, auth: dict[str, str], opened: asyncio.Event, seen: dict[str, float]
) -> None:
    """Read the event stream from seq 0: when the emergency came on the priority lane
    (``seen["priority"]``) and how many normal records came before it."""
    headers = {**auth, "Last-Event-ID": "0"}
    async with http.stream("GET", "/api/weddings/w1/events/stream", headers=headers) as stream:
        stream.raise_for_status()
        opened.set()
        kind, normal = "", 0
        async for line in stream.aiter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                if kind == "priority":
                    event = json.loads(line[5:])
                    seen["priority"] = time.time() - _at(event["at"])
                    seen["normal_before"] = normal
                    return
                normal += 1


def _at(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


async def measure_lane(backlog: int) -> list[tuple[str, str]]:
    """An emergency behind ``backlog`` queued normal events (see the module docstring)."""
    token = TokenCodec(algorithms=["HS256"], secret=SECRET.encode()).mint(
        sub="bench", role="planner", wedding="w1", ttl=3600
    )
    auth = {"Authorization": f"Bearer {token}"}
    env = {
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        "CRDT_SERVER_WEBHOOK_ALLOW_PRIVATE": "true",
        "CRDT_SERVER_RATE_EVENTS_PER_MINUTE": "1000000",
        "CRDT_SERVER_RATE_READ_PER_MINUTE": "0",
    }
    receiver = WebhookReceiver()
    seen: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            ServerProcess(Path(tmp) / "data", env=env, anonymous=False) as server,
            httpx.AsyncClient(base_url=server.url, timeout=60) as http,
            receiver,
        ):
            hook = "/api/weddings/w1/webhooks"
            created = await http.post(hook, json={"url": receiver.url}, headers=auth)
            created.raise_for_status()
            endpoint = f"{hook}/{created.json()['id']}"
            paused = await http.patch(endpoint, json={"enabled": False}, headers=auth)
            paused.raise_for_status()
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(backlog):
                queue.put_nowait(i)

            async def poster() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    answer = await http.post(
                        "/api/weddings/w1/events",
                        json={"type": "custom.bench", "data": {"i": i}},
                        headers=auth,
                    )
                    answer.raise_for_status()

            await asyncio.gather(*(poster() for _ in range(8)))
            opened = asyncio.Event()
            reading = asyncio.create_task(_stream(http, auth, opened, seen))
            await asyncio.wait_for(opened.wait(), 30)
            resumed = await http.patch(endpoint, json={"enabled": True}, headers=auth)
            resumed.raise_for_status()
            posted = await http.post(
                "/api/weddings/w1/events",
                json={"type": "custom.bench", "priority": "emergency", "data": {"i": -1}},
                headers=auth,
            )
            posted.raise_for_status()
            seq = posted.json()["seq"]
            await asyncio.wait_for(reading, 60)

            async def arrived() -> bool:
                return any(json.loads(g.body)["data"]["seq"] == seq for g in receiver.received)

            deadline = time.monotonic() + 60
            while not await arrived() and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            got = receiver.received
            first = next(i for i, g in enumerate(got) if json.loads(g.body)["data"]["seq"] == seq)
            body = json.loads(got[first].body)
            webhook = got[first].at - _at(body["data"]["at"])
    return [
        ("normal events queued ahead of the emergency", f"{backlog}"),
        (
            "emergency, commit to the SSE subscriber's priority lane",
            f"{seen['priority'] * 1000:.0f} ms",
        ),
        ("normal records the subscriber had read by then", f"{int(seen['normal_before'])}"),
        ("emergency, commit to the webhook receiver", f"{webhook * 1000:.0f} ms"),
        ("normal deliveries the receiver had by then", f"{first}"),
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
    parser.add_argument(
        "--emergency-behind",
        type=int,
        default=0,
        help="measure the priority lane: an emergency behind this many queued normal events",
    )
    args = parser.parse_args()
    if args.emergency_behind:
        lane = asyncio.run(measure_lane(args.emergency_behind))
        print(f"| figure (an emergency behind {args.emergency_behind} queued events) | ours |")
        print("|---|---|")
        for name, value in lane:
            print(f"| {name} | {value} |")
        return
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
