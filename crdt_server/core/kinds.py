"""Where each item of a document is: the index the shape rule reads (issue 47).

An item with an origin carries no parent on the wire; its parent is its origin's (see
:mod:`crdt_server.codec.shapes`). :class:`KindIndex` keeps, for every item a document
integrated, its placement (parent and keyed or not), and the type ref of every shared
type's item, so that :func:`~crdt_server.codec.shapes.fit` can place an update's items
whatever the document's size.

Kept cheap: a client's consecutive items in one place (a run of typing, a list filled in
one go) are one run; runs are kept per client in flat ``array`` columns (start, end,
placement code), and placements are shared. A lookup is one binary search; adding an
update costs what the update holds.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_right

from crdt_server.codec.items import ID
from crdt_server.codec.shapes import GONE, Fitted, Placement

__all__ = ["KindIndex"]


class KindIndex:
    """Placements of a document's items (implements :class:`~crdt_server.codec.shapes.Lookup`)."""

    __slots__ = ("_codes", "_ends", "_places", "_code_of", "_starts", "_types")

    def __init__(self) -> None:
        self._starts: dict[int, array[int]] = {}
        self._ends: dict[int, array[int]] = {}
        self._codes: dict[int, array[int]] = {}
        self._places: list[tuple[Placement, bool]] = []
        """Placement codes: (placement, whether the content is deleted)."""
        self._code_of: dict[tuple[Placement, bool], int] = {}
        self._types: dict[ID, int] = {}

    def _run(self, id_: ID) -> int | None:
        """The placement code of the run holding ``id_``."""
        client, clock = id_
        starts = self._starts.get(client)
        if starts is None:
            return None
        at = bisect_right(starts, clock) - 1
        if at < 0 or clock >= self._ends[client][at]:
            return None
        return self._codes[client][at]

    def placement(self, id_: ID) -> Placement | None:
        code = self._run(id_)
        return None if code is None else self._places[code][0]

    def parent_kind(self, parent: ID) -> int | None:
        kind = self._types.get(parent)
        if kind is not None:
            return kind
        code = self._run(parent)
        if code is None:
            return None
        (where, _), deleted = self._places[code]
        return GONE if where is None or deleted else None

    def add(self, fitted: Fitted) -> None:
        """Index an integrated update's structs (content already indexed is skipped)."""
        for id_, length, where, ref in sorted(fitted.placed):
            client, clock = id_
            end = clock + length
            ends = self._ends.get(client)
            if ends is None:
                self._starts[client], self._ends[client] = array("I"), array("I")
                self._codes[client] = array("I")
                ends = self._ends[client]
            known = ends[-1] if ends else 0
            if end <= known:
                continue
            clock = max(clock, known)
            key = (where, ref == 1)
            code = self._code_of.get(key)
            if code is None:
                code = self._code_of[key] = len(self._places)
                self._places.append(key)
            codes = self._codes[client]
            if ends and ends[-1] == clock and codes[-1] == code:
                ends[-1] = end
            else:
                self._starts[client].append(clock)
                ends.append(end)
                codes.append(code)
        for id_, kind in fitted.types:
            self._types.setdefault(id_, kind)

    def runs(self) -> int:
        """How many runs are indexed."""
        return sum(len(starts) for starts in self._starts.values())

    def memory_bytes(self) -> int:
        """An estimate of the index's memory (for the product benchmark)."""
        size = sys.getsizeof(self._starts) * 3 + sys.getsizeof(self._types)
        for client, starts in self._starts.items():
            size += 3 * sys.getsizeof(starts) + sys.getsizeof(client)
        size += sys.getsizeof(self._places) + sys.getsizeof(self._code_of)
        size += len(self._places) * 120 + len(self._types) * 100
        return size
