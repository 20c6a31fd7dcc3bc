"""What a vendor's projection of the guest list costs per guests update.

A real room over a SQLite store (in process, no socket) receives ``--updates`` updates of a
guest list of ``--guests`` guests, one at a time, each answered once committed (an RSVP or a
meal set by a client, every fifth one a word typed into a guest's notes). Two modes, run
interleaved (plain, projected, plain, projected...), medians of ``--repeat`` runs:

* ``plain``: nobody reads the vendor's projection (it is not loaded: nothing is done for it);
* ``projected``: the vendor's projection room is loaded (a vendor reads it), so every commit
  brings it up to date; the run ends once it holds the last update.

It prints CPU and wall time per update of each mode and the difference; the machine's load
average is printed with them::

    .venv/bin/python -m benchmarks.projections_bench --updates 2000 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from typing import Any

from pycrdt import Doc, Map, Text

from crdt_server.actor import Actor
from crdt_server.codec.updates import inspect_update
from crdt_server.core.hooks import Core, Hooks, Sender
from crdt_server.core.weddings import WeddingService
from crdt_server.documents.domain import WEDDINGS
from crdt_server.features import install_tables
from crdt_server.features.projections import FEATURE as PROJECTIONS
from crdt_server.features.projections import Projections
from crdt_server.testing.inprocess import in_process_server

WEDDING = "bench"
COUPLE = Sender(Actor("couple", "couple"), "c1")


def guest_list(guests: int) -> tuple[Doc[Any], bytes]:
    doc: Doc[Any] = Doc()
    root = doc.get("guests", type=Map)
    with doc.transaction():
        for g in range(guests):
            root[f"g{g}"] = Map(
                {
                    "name": f"Guest {g}",
                    "rsvp": "pending",
                    "dietary": ["vegan"] if g % 7 == 0 else [],
                    "contact": f"+44 7700 900{g:03d}",
                    "notes": Text("Private: table near the door"),
                }
            )
    return doc, doc.get_update()


def next_update(doc: Doc[Any], i: int) -> bytes:
    root = doc.get("guests", type=Map)
    guest = root[f"g{(i * 37) % len(root)}"]
    state = doc.get_state()
    if i % 5 == 4:
        guest["notes"].insert(0, "x")
    elif i % 2:
        guest["rsvp"] = ("accepted", "declined", "pending")[i % 3]
    else:
        guest["meal"] = ("fish", "beef", "veg")[i % 3]
    return doc.get_update(state)


async def run(mode: str, guests: int, count: int) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, projection rounds) for ``count`` updates."""
    hooks = Hooks()
    async with in_process_server(hooks=hooks) as server:
        await install_tables(server.store, [PROJECTIONS])
        weddings = WeddingService(server.registry, server.store, WEDDINGS)
        core = Core(server.settings, server.store, server.registry, weddings)
        projections = Projections(core)
        hooks.add([projections])
        await hooks.start(core)
        doc, base = guest_list(guests)
        room = await server.registry.acquire(f"{WEDDING}/guests")
        await room.wait_committed(await room.apply(base, inspect_update(base), COUPLE))
        projection = f"{WEDDING}/guests@vendor"
        held = None
        if mode == "projected":
            held = await server.registry.acquire(projection)
            await projections.current(projection)
        updates = [next_update(doc, i) for i in range(count)]
        rounds = projections.rounds
        cpu, wall = time.process_time(), time.perf_counter()
        for update in updates:
            index = await room.apply(update, inspect_update(update), COUPLE)
            await room.wait_committed(index)
        if held is not None:
            await projections.current(projection)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        rounds = projections.rounds - rounds
        if held is not None:
            view = held.doc.get("guests", type=Map).to_py() or {}
            assert len(view) == guests and all("notes" not in g for g in view.values())
            server.registry.release(held)
        server.registry.release(room)
        await hooks.close()
    return cpu, wall, rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--guests", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float, int]]] = {"plain": [], "projected": []}
    for _ in range(args.repeat):
        for mode in results:
            results[mode].append(asyncio.run(run(mode, args.guests, args.updates)))
    print(f"{args.updates} updates of a guest list of {args.guests}, median of {args.repeat}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    medians: dict[str, tuple[float, float]] = {}
    for mode, runs in results.items():
        cpu = statistics.median(r[0] for r in runs) / args.updates * 1e6
        wall = statistics.median(r[1] for r in runs) / args.updates * 1e6
        rounds = statistics.median(r[2] for r in runs)
        medians[mode] = (cpu, wall)
        spread = ", ".join(f"{r[0] / args.updates * 1e6:.0f}" for r in runs)
        print(
            f"{mode:>10}: CPU {cpu:7.0f} us/update (runs: {spread}), wall {wall:7.0f} us/update,"
            f" projection rounds {rounds:.0f}"
        )
    extra_cpu = medians["projected"][0] - medians["plain"][0]
    extra_wall = medians["projected"][1] - medians["plain"][1]
    print(f"projection: +{extra_cpu:.0f} us CPU, +{extra_wall:.0f} us wall per guests update")


if __name__ == "__main__":
    main()
