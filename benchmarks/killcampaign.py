"""Kill -9 campaign: confirmed updates must survive SIGKILL of the server, every time.

Each run starts (or restarts) the real server on one persistent data directory, lets
writer clients edit as fast as they can without waiting for echoes, SIGKILLs the server
after a random delay, restarts it and checks, in a fresh client per room, that every update
confirmed so far (in this run or any earlier one) is there. An update counts as confirmed
iff it is in its sender's ``confirmed`` document (which only holds what the server sent)
once the killed server's connections are closed.

    .venv/bin/python -m benchmarks.killcampaign --kills 5

Prints one line per run and a summary; exits with 1 if any confirmed update was lost
(or the server did not die by the SIGKILL), 0 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: benchmarks.* and tests.* are found from the root
    print(
        f"run it from {ROOT} as: .venv/bin/python -m benchmarks.killcampaign [options]",
        file=sys.stderr,
    )
    sys.exit(2)

from pycrdt import Map, Text  # noqa: E402

from crdt_server.documents import DOCUMENT_KINDS  # noqa: E402
from crdt_server.testing import ServerProcess, YClient  # noqa: E402
from tests.writers import MAP_NAME, TEXT_NAME, Writer  # noqa: E402

WAIT = 30.0
"""Deadline (seconds) of every wait for the server or a client."""
RUN_DEADLINE = 120.0
"""Deadline (seconds) of one whole run."""


@dataclass
class Snapshot:
    kv: dict[str, str]
    text: str


@dataclass
class RunResult:
    delay_ms: float
    exit_code: int
    written: int = 0
    confirmed: int = 0
    checked: int = 0
    lost: int = 0
    received_lost: int = 0
    unconfirmed_survived: int = 0
    recovery: float = 0.0


@dataclass
class Campaign:
    server: ServerProcess
    rooms: list[str]
    writers_per_room: int
    expected_keys: dict[str, dict[str, str]] = field(default_factory=dict)
    expected_tokens: dict[str, set[str]] = field(default_factory=dict)
    received: dict[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for room in self.rooms:
            self.expected_keys[room] = {}
            self.expected_tokens[room] = set()
            self.received[room] = set()

    async def one_run(self, run_no: int, delay: float) -> RunResult:
        server = self.server
        if not server.alive:
            await server.start(timeout=WAIT)
        writers = [
            Writer(f"c{w}@{room}", room, YClient(server.ws_url, room))
            for room in self.rooms
            for w in range(self.writers_per_room)
        ]
        try:
            for writer in writers:
                await writer.client.connect()
            for writer in writers:
                await writer.client.wait(writer.client.synced.is_set, timeout=WAIT)
            stop = asyncio.Event()
            tasks = [asyncio.create_task(w.run(run_no, stop)) for w in writers]
            await asyncio.sleep(delay)  # the experiment: kill at a random moment
            code = await server.kill()
            stop.set()
            await asyncio.gather(*tasks)
        finally:
            # The process is gone: whatever the readers still take from the socket was sent
            # before the kill. Closing ends the readers; after that nothing can arrive.
            for writer in writers:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(WAIT):
                        await writer.client.close()

        result = RunResult(delay_ms=delay * 1000, exit_code=code)
        for writer in writers:
            keys, tokens = writer.confirmed()
            result.written += len(writer.keys) + len(writer.tokens)
            result.confirmed += len(keys) + len(tokens)
            self.expected_keys[writer.room].update(keys)
            self.expected_tokens[writer.room].update(tokens)
            self.received[writer.room] |= writer.received_keys()

        started = time.monotonic()
        await server.start(timeout=WAIT)
        snapshots = await self.load_all(started, result)
        for room, snapshot in snapshots.items():
            expected = self.expected_keys[room]
            lost_keys = [k for k, v in expected.items() if snapshot.kv.get(k) != v]
            lost_tokens = [t for t in self.expected_tokens[room] if t not in snapshot.text]
            received_lost = [k for k in self.received[room] if k not in snapshot.kv]
            result.checked += len(expected) + len(self.expected_tokens[room])
            result.lost += len(lost_keys) + len(lost_tokens)
            result.received_lost += len(received_lost)
            for what, items in (
                ("confirmed keys", lost_keys),
                ("confirmed text inserts", lost_tokens),
                ("keys some client received", received_lost),
            ):
                if items:
                    print(f"  LOST in {room}: {len(items)} {what}, e.g. {sorted(items)[:5]}")
            # Report each loss once, not again in every later run.
            for k in lost_keys:
                del expected[k]
            self.expected_tokens[room].difference_update(lost_tokens)
            self.received[room].difference_update(received_lost)
            for writer in writers:
                if writer.room == room:
                    result.unconfirmed_survived += sum(
                        1 for k in writer.keys if k not in expected and k in snapshot.kv
                    )
        return result

    async def load_all(self, started: float, result: RunResult) -> dict[str, Snapshot]:
        """Load every room at once in a fresh client; the first full sync is the recovery."""
        first: list[float] = []

        async def load(room: str) -> Snapshot:
            async with YClient(self.server.ws_url, room) as fresh:
                await fresh.wait(fresh.synced.is_set, timeout=WAIT)
                if not first:
                    first.append(time.monotonic() - started)
                kv = fresh.doc.get(MAP_NAME, type=Map).to_py()
                text = str(fresh.doc.get(TEXT_NAME, type=Text))
            return Snapshot({str(k): str(v) for k, v in kv.items()}, text)

        snapshots = await asyncio.gather(*(load(room) for room in self.rooms))
        result.recovery = first[0]
        return dict(zip(self.rooms, snapshots, strict=True))


def room_names(count: int) -> list[str]:
    """``count`` rooms: the documents of wedding ``kc0``, then ``kc1``, and so on."""
    kinds = len(DOCUMENT_KINDS)
    return [f"kc{i // kinds}/{DOCUMENT_KINDS[i % kinds]}" for i in range(count)]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def campaign(args: argparse.Namespace, data_dir: Path) -> int:
    seed: int = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    rooms = room_names(args.rooms)
    print(
        f"kill campaign: {args.kills} kills, {args.writers} writers in each of {rooms}, "
        f"seed {seed}, data dir {data_dir}",
        flush=True,
    )
    server = ServerProcess(data_dir)
    state = Campaign(server, rooms, args.writers)
    results: list[RunResult] = []
    bad_exits = 0
    try:
        for run_no in range(args.kills):
            delay = rng.uniform(args.min_ms, args.max_ms) / 1000
            async with asyncio.timeout(RUN_DEADLINE):
                result = await state.one_run(run_no, delay)
            results.append(result)
            if result.exit_code != -signal.SIGKILL:
                bad_exits += 1
            print(
                f"run {run_no + 1:>4}: kill after {result.delay_ms:5.0f} ms (exit "
                f"{result.exit_code}), written {result.written:>6}, confirmed "
                f"{result.confirmed:>6}, checked {result.checked:>7}, lost {result.lost}, "
                f"received-lost {result.received_lost}, unconfirmed survived "
                f"{result.unconfirmed_survived:>5}, recovery {result.recovery * 1000:6.0f} ms",
                flush=True,
            )
    finally:
        if server.alive:
            await server.stop()
    recoveries = [r.recovery for r in results]
    lost = sum(r.lost for r in results)
    received_lost = sum(r.received_lost for r in results)
    distinct = sum(len(v) for v in state.expected_keys.values()) + sum(
        len(v) for v in state.expected_tokens.values()
    )
    print(
        f"total: runs {len(results)}, updates written {sum(r.written for r in results)}, "
        f"confirmed {sum(r.confirmed for r in results)} (distinct still checked {distinct}), "
        f"updates checked {sum(r.checked for r in results)}, updates lost {lost}, "
        f"received-by-a-client lost {received_lost}, "
        f"unconfirmed-but-survived {sum(r.unconfirmed_survived for r in results)}, "
        f"recovery p50 {statistics.median(recoveries) * 1000:.0f} ms "
        f"p90 {percentile(recoveries, 0.9) * 1000:.0f} ms max {max(recoveries) * 1000:.0f} ms, "
        f"exits other than -9: {bad_exits}, seed {seed}"
    )
    if not any(r.confirmed for r in results):
        print("no run confirmed anything: the campaign proved nothing")
        return 1
    return 1 if lost or received_lost or bad_exits else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--kills", type=int, default=100, help="runs, one SIGKILL each")
    parser.add_argument("--writers", type=int, default=3, help="writer clients per room")
    parser.add_argument("--rooms", type=int, default=2, help="rooms (documents)")
    parser.add_argument("--seed", type=int, help="seed of the kill delays (default random)")
    parser.add_argument(
        "--data-dir", type=Path, help="persistent data directory (default a temporary one)"
    )
    parser.add_argument("--min-ms", type=float, default=50, help="shortest writing before a kill")
    parser.add_argument("--max-ms", type=float, default=400, help="longest writing before a kill")
    args = parser.parse_args(argv)
    if args.kills < 1 or args.writers < 1 or args.rooms < 1:
        parser.error("--kills, --writers and --rooms must be at least 1")
    if not 0 <= args.min_ms <= args.max_ms:
        parser.error("need 0 <= --min-ms <= --max-ms")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.data_dir is not None:
        return asyncio.run(campaign(args, args.data_dir))
    with tempfile.TemporaryDirectory(prefix="killcampaign-") as tmp:
        return asyncio.run(campaign(args, Path(tmp) / "data"))


if __name__ == "__main__":
    raise SystemExit(main())
