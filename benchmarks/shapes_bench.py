"""What the shape rule costs (issue 47): the kind index's memory per document, CPU per update.

Every update a room integrates is decoded and its items placed (:func:`codec.shapes.fit`)
against the room's :class:`~crdt_server.core.kinds.KindIndex` before pycrdt sees it. This
integrates the product scenario's own update stream (``benchmarks.product``: ``--members``
writers of one wedding, each sending ``--updates`` transactions on the guest list, the
timeline and the budget, as a stock client does) into a
:class:`~crdt_server.core.crdt.RoomDocument` with the rule (as shipped) and without it (the
check and the index replaced by no-ops), and reports the difference per update, and the
index's memory once the stream is in. ``benchmarks.product`` prints the same row.

Runs are interleaved (with, without, with...) and each figure is the median of
``--repeat`` runs; the machine's load average is printed with them::

    .venv/bin/python -m benchmarks.shapes_bench --members 50 --updates 200 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if not __package__:  # run as a file: benchmarks.* is found from the root
    root = Path(__file__).resolve().parents[1]
    print(
        f"run it from {root} as: .venv/bin/python -m benchmarks.shapes_bench [options]",
        file=sys.stderr,
    )
    sys.exit(2)

from pycrdt import Doc, TransactionEvent  # noqa: E402

import crdt_server.core.crdt as crdt  # noqa: E402
from crdt_server.codec.shapes import Fitted  # noqa: E402
from crdt_server.codec.updates import inspect_update  # noqa: E402
from crdt_server.core.crdt import RoomDocument  # noqa: E402
from crdt_server.core.kinds import KindIndex  # noqa: E402

KINDS = ("guests", "timeline", "budget")


@dataclass(frozen=True, slots=True)
class ShapeRow:
    """One document kind: its stream, the index's memory, and the rule's CPU per update."""

    kind: str
    updates: int
    runs: int
    index_bytes: int
    with_us: float
    without_us: float

    @property
    def cost_us(self) -> float:
        return self.with_us - self.without_us


def stream(kind: str, members: int, updates: int) -> list[bytes]:
    """The product scenario's updates of one ``kind`` document: each writer's transactions,
    taken in turns (writer 1's first, writer 2's first, ...)."""
    from benchmarks.product import _change

    per_writer: list[list[bytes]] = []
    for cid in range(1, members + 1):
        doc: Doc[Any] = Doc(client_id=cid)
        made: list[bytes] = []

        def on_transaction(event: TransactionEvent, made: list[bytes] = made) -> None:
            made.append(event.update)

        subscription = doc.observe(on_transaction)
        for n in range(updates):
            with doc.transaction():
                _change(doc, kind, cid, n)
        doc.unobserve(subscription)
        per_writer.append(made)
    return [u for turn in zip(*per_writer, strict=True) for u in turn]


def _no_fit(update: Any, lookup: Any) -> Fitted:
    return Fitted()


@contextmanager
def _without_rule() -> Iterator[None]:
    """The room document with no decode, no shape check and no index (as before issue 47)."""
    replaced: dict[str, Any] = {"read_items": lambda data: None, "fit": _no_fit}
    saved = {name: getattr(crdt, name) for name in replaced}
    add = KindIndex.add
    for name, value in replaced.items():
        setattr(crdt, name, value)
    KindIndex.add = lambda self, fitted: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(crdt, name, value)
        KindIndex.add = add  # type: ignore[method-assign]


def _integrate(updates: list[bytes], summaries: list[Any]) -> tuple[float, RoomDocument]:
    document = RoomDocument()
    started = time.process_time()
    for update, summary in zip(updates, summaries, strict=True):
        document.apply(update, summary)
    return time.process_time() - started, document


def measure(kind: str, members: int, updates: int, repeat: int) -> ShapeRow:
    data = stream(kind, members, updates)
    summaries = [inspect_update(u) for u in data]
    with_rule: list[float] = []
    without: list[float] = []
    document = RoomDocument()
    for _ in range(repeat):  # interleaved: with, without, with, ...
        seconds, document = _integrate(data, summaries)
        with_rule.append(seconds)
        with _without_rule():
            without.append(_integrate(data, summaries)[0])
    per = 1e6 / len(data)
    return ShapeRow(
        kind,
        len(data),
        document.kinds.runs(),
        document.kinds.memory_bytes(),
        statistics.median(with_rule) * per,
        statistics.median(without) * per,
    )


def rows(members: int, updates: int, repeat: int) -> list[ShapeRow]:
    return [measure(kind, members, updates, repeat) for kind in KINDS]


def table(found: list[ShapeRow], members: int, updates: int, repeat: int) -> str:
    lines = [
        f"Shape rule (kind index): {members} writers x {updates} updates per document,"
        f" CPU medians of {repeat} interleaved runs (process CPU)",
        "",
        "| document | updates | index runs | index memory KiB | µs per update with the rule"
        " | without | the rule's cost µs per update |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in found:
        lines.append(
            f"| {r.kind} | {r.updates} | {r.runs} | {r.index_bytes / 1024:.1f} | "
            f"{r.with_us:.1f} | {r.without_us:.1f} | {r.cost_us:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=50, help="writers per document")
    parser.add_argument("--updates", type=int, default=200, help="updates per writer")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs (median)")
    args = parser.parse_args(argv)
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    found = rows(args.members, args.updates, args.repeat)
    print(table(found, args.members, args.updates, args.repeat))
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
