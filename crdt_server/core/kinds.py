"""Where each item of a document is: the index the shape rule reads (issue 47).

An item with an origin carries no parent on the wire; its parent is its origin's (see
:mod:`crdt_server.codec.shapes`). :class:`KindIndex` keeps, for every item a document
integrated, its placement (parent, keyed or not) and what it is as a parent (a shared type
of some kind, deleted content, or other content), so that
:func:`~crdt_server.codec.shapes.fit` can place an update's items whatever the document's
size.

Kept cheap: a client's consecutive items of one placement and one sort (a run of typing, a
list filled in one go, a map entry's fields) are one run, and runs are rows of flat
``array`` columns per client (start, end, parent client, parent clock, flags): about 21
bytes a run, nothing per item. A lookup is one binary search; adding an update costs what
the update holds.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_right

from crdt_server.codec.items import ID
from crdt_server.codec.shapes import GONE, Fitted, Placement
from crdt_server.threads import share_gil

__all__ = ["KindIndex"]

_GONE = -(1 << 62)
"""The parent client of a run whose parent is gone (a GC struct). Client ids are >= 0; a
root's is ``-1 - its index`` in the root names."""
_KEYED = 1
_DELETED = 2
_TYPE_SHIFT = 2
"""Flags: keyed, deleted content, then (type ref + 1) of a shared type's item (0: none)."""


class _Runs:
    """One client's runs, as columns."""

    __slots__ = ("ends", "flags", "parent_clients", "parent_clocks", "starts")

    def __init__(self) -> None:
        self.starts = array("I")
        self.ends = array("I")
        self.parent_clients = array("q")
        self.parent_clocks = array("I")
        self.flags = array("B")

    def find(self, clock: int) -> int:
        """The row holding ``clock``, or -1."""
        at = bisect_right(self.starts, clock) - 1
        return at if at >= 0 and clock < self.ends[at] else -1

    def nbytes(self) -> int:
        return sum(
            sys.getsizeof(column)
            for column in (
                self.starts,
                self.ends,
                self.parent_clients,
                self.parent_clocks,
                self.flags,
            )
        )


class KindIndex:
    """Placements of a document's items (implements :class:`~crdt_server.codec.shapes.Lookup`)."""

    __slots__ = ("_clients", "_root_index", "_roots")

    def __init__(self) -> None:
        self._clients: dict[int, _Runs] = {}
        self._roots: list[str] = []
        self._root_index: dict[str, int] = {}

    def _row(self, id_: ID) -> tuple[_Runs, int] | None:
        runs = self._clients.get(id_[0])
        if runs is None:
            return None
        at = runs.find(id_[1])
        return None if at < 0 else (runs, at)

    def placement(self, id_: ID) -> Placement | None:
        found = self._row(id_)
        if found is None:
            return None
        runs, at = found
        client = runs.parent_clients[at]
        keyed = bool(runs.flags[at] & _KEYED)
        if client == _GONE:
            return (None, keyed)
        if client < 0:
            return (self._roots[-1 - client], keyed)
        return ((client, runs.parent_clocks[at]), keyed)

    def parent_kind(self, parent: ID) -> int | None:
        found = self._row(parent)
        if found is None:
            return None
        runs, at = found
        flags = runs.flags[at]
        made = flags >> _TYPE_SHIFT
        if made:
            return made - 1
        if flags & _DELETED or runs.parent_clients[at] == _GONE:
            return GONE
        return None

    def add(self, fitted: Fitted) -> None:
        """Index an integrated update's structs (content already indexed is skipped)."""
        for n, ((client, clock), length, (parent, keyed), ref, made) in enumerate(
            sorted(fitted.placed)
        ):
            if not n & 1023:
                share_gil()  # a whole document's index, on a worker thread
            end = clock + length
            runs = self._clients.get(client)
            if runs is None:
                runs = self._clients[client] = _Runs()
            known = runs.ends[-1] if runs.ends else 0
            if end <= known:
                continue
            clock = max(clock, known)
            if parent is None:
                parent_client, parent_clock = _GONE, 0
            elif isinstance(parent, str):
                index = self._root_index.get(parent)
                if index is None:
                    index = self._root_index[parent] = len(self._roots)
                    self._roots.append(parent)
                parent_client, parent_clock = -1 - index, 0
            else:
                parent_client, parent_clock = parent
            flags = (_KEYED if keyed else 0) | (_DELETED if ref == 1 else 0)
            flags |= (made + 1) << _TYPE_SHIFT
            last = len(runs.ends) - 1
            if (
                last >= 0
                and runs.ends[last] == clock
                and runs.flags[last] == flags
                and runs.parent_clients[last] == parent_client
                and runs.parent_clocks[last] == parent_clock
            ):
                runs.ends[last] = end
                continue
            runs.starts.append(clock)
            runs.ends.append(end)
            runs.parent_clients.append(parent_client)
            runs.parent_clocks.append(parent_clock)
            runs.flags.append(flags)

    def runs(self) -> int:
        """How many runs are indexed."""
        return sum(len(runs.starts) for runs in self._clients.values())

    def memory_bytes(self) -> int:
        """The index's memory (for the product benchmark): its columns and containers."""
        size = sys.getsizeof(self._clients) + sys.getsizeof(self._roots)
        size += sys.getsizeof(self._root_index) + sum(sys.getsizeof(r) for r in self._roots)
        for runs in self._clients.values():
            size += runs.nbytes() + 100  # the _Runs object and its dict entry
        return size
