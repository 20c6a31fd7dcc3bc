"""The conflicts keeper's CPU per ordinary guest edit, and per part of a large import, in one
process on the server as shipped (every feature, SQLite).

The keeper's CPU is measured on the event loop's thread (``time.thread_time``): its hooks
(``on_stored``, ``on_change``, ``on_remote_changes``) and every step of its evaluations (a
task's run between two awaits: reading the touched entries, evaluating, recording the
events, writing the conflicts room as far as it runs on the loop), beside the loop
thread's CPU for the whole change.

1. **Edits**: a wedding of ``--guests`` guests (tables of 10, households of three, some
   split between two tables, a timeline and a budget: ``benchmarks.conflicts_bench``'s
   wedding), then ``--edits`` edits as the product benchmark's guest writers make them (one
   guest's RSVP or meal, by a couple member), each through the room as a client's update
   is (committed, its hooks run, the keeper's evaluation awaited).
2. **Import**: ``--rows`` new guests in households of four taken in through
   ``WeddingService.edit_off_loop`` as the CSV import does (parts of about 1,000 structs,
   each committed with its hooks), then the same rows again with each one's household
   changed. Per part: the keeper's CPU, and the longest the event loop was held (a
   heartbeat's largest gap) during the whole import.

``--profile`` prints cProfile's top entries of the edits: by own time, and by cumulative time
those of the keeper's modules.

    .venv/bin/python -m benchmarks.keeper_bench                       # 200 guests, 20,000 rows
    .venv/bin/python -m benchmarks.keeper_bench --edits 300 --rows 5000 --profile
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: benchmarks.* is found from the root
    print(
        f"run it from {ROOT} as: .venv/bin/python -m benchmarks.keeper_bench [options]",
        file=sys.stderr,
    )
    sys.exit(2)

from pycrdt import Doc, Map  # noqa: E402

from benchmarks.conflicts_bench import wedding_ops  # noqa: E402
from crdt_server.actor import Actor  # noqa: E402
from crdt_server.app import create_app  # noqa: E402
from crdt_server.core.hooks import CommitBatch, Extension, RoomView, Sender  # noqa: E402
from crdt_server.documents import OPERATIONS, OperationError, apply_operation  # noqa: E402
from crdt_server.edge.state import SERVER_STATE_KEY, Services  # noqa: E402
from crdt_server.features.conflicts.extension import ConflictsKeeper  # noqa: E402
from crdt_server.settings import Settings  # noqa: E402

WEDDING = "w1"
COUPLE = Sender(Actor("bench-couple", "couple"), "bench:couple")


class Parts(Extension):
    """Counts the guest list's commits (an import's parts)."""

    name = "bench_parts"

    def __init__(self) -> None:
        self.count = 0

    def on_stored(self, room: RoomView, batch: CommitBatch) -> None:
        if room.kind == "guests":
            self.count += 1


class Meter:
    """The loop thread's CPU spent in the keeper (its hooks and its evaluations' steps)."""

    def __init__(self, keeper: ConflictsKeeper) -> None:
        self.cpu = 0.0
        for hook in ("on_stored", "on_change", "on_remote_changes"):
            setattr(keeper, hook, self._hook(getattr(keeper, hook)))
        run = keeper._run

        async def timed_run(wedding_id: str, wedding: Any) -> None:
            await _Steps(run(wedding_id, wedding), self)

        keeper._run = timed_run  # type: ignore[method-assign]

    def _hook(self, hook: Callable[..., None]) -> Callable[..., None]:
        def timed(*args: Any) -> None:
            started = time.thread_time()
            try:
                hook(*args)
            finally:
                self.cpu += time.thread_time() - started

        return timed


class _Steps:
    """Awaits a coroutine, timing each of its steps (what runs between two awaits)."""

    def __init__(self, coro: Coroutine[Any, Any, None], meter: Meter) -> None:
        self._coro = coro
        self._meter = meter

    def __await__(self) -> Generator[Any, Any, None]:
        coro, meter = self._coro, self._meter
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            started = time.thread_time()
            try:
                yielded = coro.throw(thrown) if thrown is not None else coro.send(sent)
            except StopIteration:
                return
            finally:
                meter.cpu += time.thread_time() - started
            try:
                sent, thrown = (yield yielded), None
            except BaseException as exc:  # a cancellation: passed on to the coroutine
                sent, thrown = None, exc


@dataclass
class App:
    services: Services
    parts: Parts
    keeper: ConflictsKeeper
    meter: Meter

    async def idle(self) -> None:
        """Until the keeper's evaluations are done (and the loop turned a few times)."""
        for _ in range(3):
            await asyncio.sleep(0)
        while self.keeper._running:
            await asyncio.gather(*list(self.keeper._running))


@asynccontextmanager
async def app(data: Path) -> AsyncIterator[App]:
    settings = Settings(
        data_dir=data, room_idle_seconds=3600, auth_secret="keeper-bench-secret-of-32-bytes-or-more"
    )
    parts = Parts()
    server = create_app(settings, extensions=[parts])
    async with server.router.lifespan_context(server) as state:
        services = state[SERVER_STATE_KEY]
        assert isinstance(services, Services)
        keeper = next(e for e in services.hooks.extensions if isinstance(e, ConflictsKeeper))
        yield App(services, parts, keeper, Meter(keeper))


async def populate(one: App, guests: int) -> None:
    ops = wedding_ops(guests)
    ops += [
        {"op": "update_guest", "guest_id": f"g{g}", "household": f"House {g // 3}"}
        for g in range(guests)
    ]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for op in ops:
        by_kind.setdefault(OPERATIONS[op["op"]], []).append(op)
    weddings = one.services.weddings
    for kind in ("guests", "seating", "timeline", "budget"):

        def change(doc: Doc[Any], kind: str = kind) -> None:
            for op in by_kind.get(kind, []):
                try:
                    apply_operation(doc, kind, op)
                except OperationError:
                    pass  # a seat refused (capacity): the wedding is built anyway

        await weddings.edit(f"{WEDDING}/{kind}", change, COUPLE)
        await one.idle()


def edit_of(n: int, guest: str) -> Callable[[Doc[Any]], None]:
    def change(doc: Doc[Any]) -> None:
        entry = doc.get("guests", type=Map)[guest]
        if n % 2:
            entry["rsvp"] = ("accepted", "declined", "pending")[n % 3]
        else:
            entry["meal"] = ("fish", "beef", "vegetarian", "vegan")[n % 4]

    return change


async def edits(one: App, count: int, guests: int, seed: int) -> tuple[float, float]:
    """The keeper's and the loop thread's CPU per edit."""
    rng = random.Random(seed)
    weddings = one.services.weddings
    keeper_before, started = one.meter.cpu, time.thread_time()
    for n in range(count):
        await weddings.edit(f"{WEDDING}/guests", edit_of(n, f"g{rng.randrange(guests)}"), COUPLE)
        await one.idle()
    return (one.meter.cpu - keeper_before) / count, (time.thread_time() - started) / count


def import_change(rows: int, households: str) -> Callable[[Doc[Any]], None]:
    def change(doc: Doc[Any]) -> None:
        people = doc.get("guests", type=Map)
        with doc.transaction():
            for n in range(rows):
                household = households.format(n=n // 4)
                entry = people.get(f"csv{n:05d}")
                if isinstance(entry, Map):
                    entry["household"] = household
                else:
                    people[f"csv{n:05d}"] = Map(
                        {"name": f"Imported {n}", "household": household, "rsvp": "accepted"}
                    )

    return change


async def import_rows(one: App, rows: int, households: str) -> tuple[int, float, float]:
    """The parts, the keeper's CPU per part, the longest hold of the loop."""
    gaps: list[float] = []
    done = False

    async def heartbeat() -> None:
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    beat = asyncio.create_task(heartbeat())
    parts, keeper_before = one.parts.count, one.meter.cpu
    await one.services.weddings.edit_off_loop(
        f"{WEDDING}/guests", import_change(rows, households), COUPLE
    )
    await one.idle()
    done = True
    await beat
    parts = one.parts.count - parts
    return parts, (one.meter.cpu - keeper_before) / max(1, parts), max(gaps)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with app(Path(tmp) / "data") as one:
            await populate(one, args.guests)
            await edits(one, 20, args.guests, seed=99)  # warm: every room loaded, findings built
            profile = cProfile.Profile() if args.profile else None
            if profile is not None:
                profile.enable()
            keeper, loop = await edits(one, args.edits, args.guests, seed=1)
            if profile is not None:
                profile.disable()
            print(f"load average {_load()}")
            print("| edits | keeper us/edit | loop thread us/edit | keeper share |")
            print("|---|---|---|---|")
            print(
                f"| {args.edits} x one guest's RSVP or meal, {args.guests} guests |"
                f" {keeper * 1e6:.0f} | {loop * 1e6:.0f} | {100 * keeper / loop:.1f} % |"
            )
            if profile is not None:
                out = io.StringIO()
                stats = pstats.Stats(profile, stream=out)
                stats.sort_stats("tottime").print_stats(args.top)
                stats.sort_stats("cumulative").print_stats("conflicts|findings", args.top)
                print(out.getvalue())
            if args.rows:
                print("| import | parts | keeper ms CPU/part | longest loop hold ms |")
                print("|---|---|---|---|")
                for label, households in (
                    ("new rows", "House {n}"),
                    ("households moved", "Home {n}"),
                ):
                    parts, per_part, hold = await import_rows(one, args.rows, households)
                    print(
                        f"| {args.rows:,} {label} | {parts} | {per_part * 1e3:.1f} |"
                        f" {hold * 1e3:.0f} |"
                    )
                print(f"load average {_load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guests", type=int, default=200)
    parser.add_argument("--edits", type=int, default=400)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
