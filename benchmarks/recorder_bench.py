"""What recording an update's entry changes costs: flat map fields against nested texts.

Every update a room integrates is observed by the change recorder
(:class:`documents.changes.ChangeRecorder`) while the event log wants changes. This measures
its CPU per update, as the difference between integrating the same updates into a document
with the recorder attached (and its changes taken after each update, as the room does) and
without it, for two streams of real updates over a guest list of ``--guests`` entries:

* ``flat``: a field of an entry set (an RSVP, a meal): what the schema's own clients write;
* ``nested``: a character typed into a ``Y.Text`` nested in an entry (a guest's dietary
  notes as a rich editor keeps them): an in-place edit below a field.

Runs are interleaved (flat, nested, flat, nested, ...) and each figure is the median of
``--repeat`` runs; the machine's load average is printed with them::

    .venv/bin/python -m benchmarks.recorder_bench --updates 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from pycrdt import Doc, Map, Text

from crdt_server.documents.changes import ChangeRecorder

Stream = Callable[[Map[Any], int], None]


def flat(guests: Map[Any], i: int) -> None:
    guests[f"g{i % len(guests)}"]["rsvp"] = ("accepted", "declined", "pending")[i % 3]


def nested(guests: Map[Any], i: int) -> None:
    text = guests[f"g{i % len(guests)}"]["dietary"]
    text.insert(len(str(text)) % 8, "x")


STREAMS: dict[str, Stream] = {"flat": flat, "nested": nested}


def updates(stream: Stream, guests: int, count: int) -> tuple[bytes, list[bytes]]:
    """A guest list as one update, then ``count`` updates of ``stream`` made on it."""
    doc: Doc[Any] = Doc()
    root = doc.get("guests", type=Map)
    with doc.transaction():
        for g in range(guests):
            root[f"g{g}"] = Map({"name": f"Guest {g}", "rsvp": "pending", "dietary": Text("veg")})
    base = doc.get_update()
    out: list[bytes] = []
    for i in range(count):
        state = doc.get_state()
        stream(root, i)
        out.append(doc.get_update(state))
    return base, out


def seconds(base: bytes, stream: list[bytes], *, record: bool) -> float:
    """CPU seconds to integrate ``stream`` into a document holding ``base``."""
    doc: Doc[Any] = Doc()
    doc.get("guests", type=Map)
    doc.apply_update(base)
    recorder = ChangeRecorder(doc, "guests") if record else None
    started = time.process_time()
    for update in stream:
        doc.apply_update(update)
        if recorder is not None:
            recorder.take()
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=20_000)
    parser.add_argument("--guests", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    made = {name: updates(stream, args.guests, args.updates) for name, stream in STREAMS.items()}
    costs: dict[str, list[float]] = {name: [] for name in STREAMS}
    applies: dict[str, list[float]] = {name: [] for name in STREAMS}
    for _ in range(args.repeat):
        for name, (base, stream) in made.items():  # interleaved: flat, nested, flat, ...
            bare = seconds(base, stream, record=False)
            recorded = seconds(base, stream, record=True)
            applies[name].append(bare / len(stream))
            costs[name].append((recorded - bare) / len(stream))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"change recorder, {args.updates} updates over {args.guests} guests, median of")
    print(f"{args.repeat} interleaved runs; load average {load}\n")
    print(
        "| stream | integrate (us/update) | recorder (us/update) | recorder vs flat | runs (us) |"
    )
    print("|---|---|---|---|---|")
    base_cost = statistics.median(costs["flat"])
    for name in STREAMS:
        cost = statistics.median(costs[name])
        apply = statistics.median(applies[name])
        print(
            f"| {name} | {apply * 1e6:.1f} | {cost * 1e6:.1f} | {cost / base_cost:.2f}x |"
            f" {', '.join(f'{c * 1e6:.1f}' for c in costs[name])} |"
        )


if __name__ == "__main__":
    main()
