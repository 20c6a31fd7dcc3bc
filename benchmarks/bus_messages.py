"""CPU per message on the Redis bus (``crdt_server.cluster.redis_bus.RedisBus``), the way a
worker publishes and hears: committed updates in bursts (a group commit publishes one
message per room in one pipeline), every message heard by every process, its own included.

    .venv/bin/python -m benchmarks.bus_messages --redis-url redis://127.0.0.1:6379/9
    .venv/bin/python -m benchmarks.bus_messages --redis-url redis://127.0.0.1:PORT/0 \
        --messages 20000 --burst 4 --rounds 3

A publisher runs in a child process: a started ``RedisBus`` that publishes ``--messages``
update messages (``--size`` bytes of update each), ``--burst`` per turn of its event loop,
and hears them back (a subscriber hears its own channel's messages too). This process runs
another ``RedisBus`` that has the 50 rooms open (a room's updates are published only while
another process has it open) and hears them from the other process. The figures are each
process's own CPU (``time.process_time``) per message: the publisher's from its first
publish until the listener has heard the last message (its own copies arrive at the same
time), the listener's from the first message heard to the last. Which Redis reply parser redis-py
uses (``hiredis`` when installed) is printed with them. Rounds are medians.

Pub/sub channels are shared by every database of a Redis server: use a private server
(``redis-server --port PORT``) or one nobody else publishes ``crdt:*`` on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: the publisher is started as this module
    print(
        f"run it from {ROOT} as: .venv/bin/python -m benchmarks.bus_messages [options]",
        file=sys.stderr,
    )
    sys.exit(2)

from redis.utils import HIREDIS_AVAILABLE  # noqa: E402

from crdt_server.cluster.redis_bus import RedisBus  # noqa: E402

DEADLINE = 120.0
"""Seconds a round may take before it is given up (a lost message, a stopped Redis)."""


class Heard:
    """A bus handler that counts the updates heard from other processes."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.first_cpu = 0.0
        self.last_cpu = 0.0
        self.done = asyncio.Event()

    def on_updates(self, doc: str, seqs: Sequence[int], updates: Sequence[bytes]) -> None:
        self.count += 1
        if self.count == 1:
            self.first_cpu = time.process_time()
        if self.count == self.expected:
            self.last_cpu = time.process_time()
            self.done.set()

    def on_awareness(self, doc: str, origin: str, payload: bytes) -> None:
        return None

    def on_stateless(self, room: str, text: str | Mapping[str, str]) -> None:
        return None

    def on_event(self, event: dict[str, Any]) -> None:
        return None

    async def committed_seq(self) -> int:
        return 0

    async def on_gap(self, seqs: Sequence[int]) -> None:
        return None

    async def on_reconnect(self) -> None:
        return None

    def on_opened(self, topic: str) -> None:
        return None

    async def on_missed(self, docs: Sequence[str]) -> None:
        return None


async def publish(url: str, messages: int, burst: int, size: int) -> None:
    """The child: publish, hear everything back, print the CPU per message as JSON."""
    bus = RedisBus(url)
    heard = Heard(0)
    await bus.start(heard)
    update = b"u" * size
    rooms = {f"w{seq}/guests" for seq in range(50)}
    async with asyncio.timeout(DEADLINE):  # the listener says which rooms it has open
        while not all(bus.open_elsewhere(room) for room in rooms):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # the listener is subscribed
    cpu0 = time.process_time()
    for first in range(1, messages + 1, burst):
        for seq in range(first, min(first + burst, messages + 1)):
            bus.publish_updates(f"w{seq % 50}/guests", [seq], [update])
        await asyncio.sleep(0)  # one turn: the publish loop sends the burst in a pipeline
    await asyncio.to_thread(sys.stdin.readline)  # the listener heard the last one
    cpu = time.process_time() - cpu0
    await bus.close()
    print(json.dumps({"publish_and_hear_own_us": 1e6 * cpu / messages}), flush=True)


async def one_round(url: str, messages: int, burst: int, size: int) -> tuple[float, float]:
    heard = Heard(messages)
    bus = RedisBus(url)
    await bus.start(heard)
    for room in range(50):
        bus.watch(f"w{room}/guests")
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.bus_messages", "--publisher", "--redis-url", url,
        "--messages", str(messages), "--burst", str(burst), "--size", str(size),
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert child.stdin is not None and child.stdout is not None
        async with asyncio.timeout(DEADLINE):
            if (await child.stdout.readline()).strip() != b"ready":
                raise RuntimeError("the publisher did not start")
            child.stdin.write(b"go\n")
            await child.stdin.drain()
            await heard.done.wait()
            child.stdin.write(b"heard\n")
            await child.stdin.drain()
            own = float(json.loads(await child.stdout.readline())["publish_and_hear_own_us"])
    finally:
        if child.returncode is None:
            child.kill()
        await child.wait()
        await bus.close()
    other = 1e6 * (heard.last_cpu - heard.first_cpu) / max(1, messages - 1)
    return own, other


async def main(args: argparse.Namespace) -> None:
    if args.publisher:
        await publish(args.redis_url, args.messages, args.burst, args.size)
        return
    parser = "hiredis" if HIREDIS_AVAILABLE else "redis-py's own (pure Python)"
    print(f"reply parser: {parser}; {args.messages} messages of {args.size} bytes, "
          f"{args.burst} per turn")  # fmt: skip
    owns, others = [], []
    for index in range(args.rounds):
        own, other = await one_round(args.redis_url, args.messages, args.burst, args.size)
        owns.append(own)
        others.append(other)
        print(f"round {index + 1}: publish + hear own {own:.1f} us/message, "
              f"hear another's {other:.1f} us/message")  # fmt: skip
    print(f"median: publish + hear own {statistics.median(owns):.1f} us/message, "
          f"hear another's {statistics.median(others):.1f} us/message")  # fmt: skip


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--messages", type=int, default=20_000)
    p.add_argument("--burst", type=int, default=4, help="messages published per loop turn")
    p.add_argument("--size", type=int, default=60, help="bytes of update per message")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--publisher", action="store_true", help=argparse.SUPPRESS)
    asyncio.run(main(p.parse_args()))


if __name__ == "__main__":
    cli()
