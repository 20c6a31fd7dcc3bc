"""Presence on the event stream: a status change reaching the other members' streams.

Starts our server on a fresh data directory; ``--members`` members of one wedding (each with
a token of their own) each hold a socket (the testing kit's y-websocket client, in the
wedding's guest list) and an event stream (``GET /api/weddings/{id}/events/stream``). One of
them changes status once a second for ``--seconds`` (``busy``, then ``online`` again: a
presence state whose content changed). A delivery's latency is the time another member's
stream read the ``presence.changed`` record of that change minus the moment the change was
sent (same machine, same clock), so it covers the socket, the presence hook, the directory's
comparison, the stream's wake-up and its write.

    .venv/bin/python -m benchmarks.presence_bench                   # 100 members, 30 s
    .venv/bin/python -m benchmarks.presence_bench --members 20 --seconds 5

No peer server has a presence record on an event stream, so the row has no peer figure.
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: benchmarks.* and tests.* are found from the root
    print(
        f"run it from {ROOT} as: .venv/bin/python -m benchmarks.presence_bench [options]",
        file=sys.stderr,
    )
    sys.exit(2)

from benchmarks.events_bench import SseStream, cpu_seconds, quantile  # noqa: E402
from crdt_server.auth.tokens import TokenCodec  # noqa: E402
from crdt_server.testing.client import YClient  # noqa: E402
from crdt_server.testing.server import ServerProcess  # noqa: E402

WEDDING = "bench"
SECRET = "presence-bench-secret-of-at-least-32-bytes"
CODEC = TokenCodec(algorithms=["HS256"], secret=SECRET.encode())
ENV = {
    "CRDT_SERVER_AUTH_SECRET": SECRET,
    "CRDT_SERVER_RATE_READ_PER_MINUTE": "0",
    "CRDT_SERVER_SSE_HEARTBEAT_SECONDS": "5",
}
CHANGER = "m0"


def token(sub: str) -> str:
    return CODEC.mint(sub=sub, role="planner" if sub == CHANGER else "couple", wedding=WEDDING)


class PresenceReader(SseStream):
    """Times the changer's ``presence.changed`` records: ``sent[status]`` is when the change
    to ``status`` was sent."""

    def __init__(
        self, sent: dict[int, float], latencies: list[float], ready: asyncio.Event
    ) -> None:
        super().__init__(ready)
        self.sent = sent
        self.latencies = latencies

    def record(self, block: bytes, now: float) -> None:
        if b"event: presence.changed" not in block:
            return
        for line in block.split(b"\n"):
            if line.startswith(b"data:"):
                data = json.loads(line[5:])["data"]
                change = data.get("section") or ""
                if data["sub"] == CHANGER and change.startswith("n"):
                    sent_at = self.sent.get(int(change[1:]))
                    if sent_at is not None:
                        self.latencies.append(now - sent_at)


async def subscribe(
    port: int, sub: str, sent: dict[int, float], latencies: list[float], ready: asyncio.Event
) -> asyncio.Transport:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(
        lambda: PresenceReader(sent, latencies, ready), "127.0.0.1", port
    )
    request = (
        f"GET /api/weddings/{WEDDING}/events/stream?types=presence.* HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        f"Authorization: Bearer {token(sub)}\r\n\r\n"
    )
    transport.write(request.encode())
    return transport


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    members = [f"m{i}" for i in range(args.members)]
    sent: dict[int, float] = {}
    per: list[list[float]] = [[] for _ in members]
    with tempfile.TemporaryDirectory(prefix="presence-bench-") as tmp:
        server = ServerProcess(Path(tmp) / "data", env=ENV, anonymous=False)
        await server.start()
        clients: list[YClient] = []
        streams: list[asyncio.Transport] = []
        try:
            for sub in members:
                client = YClient(server.ws_url, f"{WEDDING}/guests", token=token(sub))
                await client.connect()
                clients.append(client)
            async with asyncio.timeout(60):
                await asyncio.gather(*(c.synced.wait() for c in clients))
            ready = [asyncio.Event() for _ in members]
            for i, sub in enumerate(members):
                streams.append(await subscribe(server.port, sub, sent, per[i], ready[i]))
            async with asyncio.timeout(60):
                await asyncio.gather(*(r.wait() for r in ready))
            assert server.process is not None
            pid = server.process.pid
            cpu_before = cpu_seconds(pid)
            changer = clients[0]
            count = int(args.seconds)
            start = time.monotonic()
            for n in range(count):
                delay = start + n - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                # each change a new status and a new section (n<i>), so each is told once
                status = "busy" if n % 2 == 0 else "online"
                sent[n] = time.time()
                await changer.set_awareness({"status": status, "section": f"n{n}"})
            others = per[1:]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and any(len(x) < count for x in others):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            cpu = cpu_seconds(pid) - cpu_before
        finally:
            for transport in streams:
                transport.close()
            for client in clients:
                await client.close()
            await server.stop()
    ms = [x * 1000 for lat in per[1:] for x in lat]
    expected = (args.members - 1) * count
    return {
        "members": args.members,
        "changes": count,
        "deliveries": len(ms),
        "missing": expected - len(ms),
        "p50_ms": statistics.median(ms) if ms else None,
        "p99_ms": quantile(ms, 0.99) if ms else None,
        "max_ms": max(ms) if ms else None,
        "server_cpu_ms_per_change": 1000 * cpu / max(1, count),
        "loadavg": os.getloadavg()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = asyncio.run(measure(args))
    p99 = result["p99_ms"]
    print(
        f"| presence, a status change → {result['members'] - 1} members' event streams "
        f"({result['members']} members, each a socket and a stream; one change a second) | "
        f"p50 {result['p50_ms']:.1f} ms | p99 {p99:.1f} ms (goal < 50) | "
        f"max {result['max_ms']:.1f} ms | {result['deliveries']} deliveries, "
        f"{result['missing']} missing | server CPU {result['server_cpu_ms_per_change']:.2f} ms "
        f"per change | peer: none has presence on an event stream | "
        f"load average {result['loadavg']:.1f} |"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["missing"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
