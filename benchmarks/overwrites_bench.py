"""What finding lost writes costs: the room's item index against a wedding's size.

Every update a room integrates is decoded (:func:`codec.items.read_items`) and checked
against the room's index of map items (:mod:`crdt_server.core.overwrites`) while an extension
wants races found. This measures that cost per update as the difference between integrating
the same stream of guest edits (an RSVP, a meal: a field of an entry set, as the schema's
clients write) into a :class:`~crdt_server.core.crdt.RoomDocument` with detection and
without it, for guest lists of each ``--guests`` size, and the one-off cost of building the
index when a room loads (one decode of the document's state). Every tenth update is a
concurrent write (a replica that did not see the previous one), so the finding path is in
the figures too.

Runs are interleaved (sizes, then with and without) and each figure is the median of
``--repeat`` runs; the machine's load average is printed with them::

    .venv/bin/python -m benchmarks.overwrites_bench --guests 300 3000 --updates 5000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

from pycrdt import Doc, Map

from crdt_server.codec.items import read_delete_set, read_items
from crdt_server.codec.updates import inspect_update
from crdt_server.core.crdt import RoomDocument
from crdt_server.core.overwrites import OverwriteIndex

FIELDS = ("rsvp", "meal")
VALUES = ("accepted", "declined", "pending", "fish", "vegan", "beef")


def stream(guests: int, count: int) -> tuple[bytes, list[bytes]]:
    """A guest list of ``guests`` entries as one update, then ``count`` field edits as a
    live client sends them (each transaction's own update, as y-websocket relays a
    ``doc.on('update')``); every tenth is made on a replica that missed the edit before it
    (a race)."""
    doc: Doc[Any] = Doc(client_id=1)
    root = doc.get("guests", type=Map)
    with doc.transaction():
        for g in range(guests):
            root[f"g{g}"] = Map(
                {"name": f"Guest {g}", "rsvp": "pending", "meal": "fish", "plus_one": False}
            )
    base = doc.get_update()
    out: list[bytes] = []
    stale: Doc[Any] = Doc(client_id=0)
    stale.apply_update(base)
    sent: list[bytes] = []
    subscriptions = [d.observe(lambda event: sent.append(event.update)) for d in (doc, stale)]
    for i in range(count):
        j = i - 1 if i % 10 == 9 else i  # the race: the key the update before wrote
        key, field = f"g{(j * 7) % guests}", FIELDS[j % 2]
        value = VALUES[i % len(VALUES)]
        writer = stale if i % 10 == 9 else doc
        writer.get("guests", type=Map)[key][field] = value if writer is doc else value + "!"
        update = sent.pop()
        sent.clear()
        out.append(update)
        # The stale replica misses the update before its own; the writer gets everything.
        if writer is doc and i % 10 != 8:
            stale.apply_update(update)
        elif writer is stale:
            doc.apply_update(update)
            sent.clear()
    for d, subscription in zip((doc, stale), subscriptions, strict=True):
        d.unobserve(subscription)
    return base, out


def seconds(base: bytes, updates: list[bytes], *, detect: bool) -> tuple[float, float, int]:
    """CPU seconds to integrate ``updates`` into a room document holding ``base`` (and to
    build the index first, when detecting); how many races were found."""
    document = RoomDocument()
    document.apply(base, inspect_update(base))
    summaries = [inspect_update(u) for u in updates]
    index = OverwriteIndex()
    found = 0
    build = 0.0
    if detect:
        document.keep_deletes()
        started = time.process_time()
        index.build(read_items(document.doc.get_update()))
        build = time.process_time() - started
    started = time.process_time()
    for update, summary in zip(updates, summaries, strict=True):
        document.apply(update, summary)
        if detect:
            result = index.integrate(read_items(update), read_delete_set(document.last_deletes))
            found += len(result.overwrites)
    return time.process_time() - started, build, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guests", type=int, nargs="+", default=[300, 3000])
    parser.add_argument("--updates", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    made = {n: stream(n, args.updates) for n in args.guests}
    bare: dict[int, list[float]] = {n: [] for n in args.guests}
    cost: dict[int, list[float]] = {n: [] for n in args.guests}
    builds: dict[int, list[float]] = {n: [] for n in args.guests}
    races: dict[int, int] = {}
    for _ in range(args.repeat):
        for n, (base, updates) in made.items():
            plain, _, _ = seconds(base, updates, detect=False)
            detected, build, races[n] = seconds(base, updates, detect=True)
            bare[n].append(plain / len(updates))
            cost[n].append((detected - plain) / len(updates))
            builds[n].append(build)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"lost-write detection, {args.updates} guest edits (every tenth a race), median of")
    print(f"{args.repeat} interleaved runs; load average {load}\n")
    print(
        "| guests | integrate (us/update) | detection (us/update) | detection / integrate"
        " | index build (ms, once per load) | races found | runs (us) |"
    )
    print("|---|---|---|---|---|---|---|")
    for n in args.guests:
        c, b = statistics.median(cost[n]), statistics.median(bare[n])
        print(
            f"| {n} | {b * 1e6:.1f} | {c * 1e6:.1f} | {c / b:.2f} |"
            f" {statistics.median(builds[n]) * 1e3:.1f} | {races[n]} |"
            f" {', '.join(f'{x * 1e6:.1f}' for x in cost[n])} |"
        )


if __name__ == "__main__":
    main()
