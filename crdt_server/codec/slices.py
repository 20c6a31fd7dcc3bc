"""One large Yjs v1 update as a sequence of smaller ones that, applied in order, build the
same document: how the room takes in a message of many items without holding the loop for
all of them at once (:meth:`~crdt_server.core.room_content.RoomContent.apply`).

A v1 update lists each client's structs as a run (``count, client, first clock``, then the
structs, each encoded on its own), then one delete set. A slice is a run of at most
``max_structs`` consecutive structs of one client, copied byte for byte under a header of
its own, with an empty delete set; the update's delete set goes with the slice the caller
chooses (:meth:`Sliced.parts`: it must come after the content it deletes), or, cut at
``max_deleted`` (a range split where it must), its first part does and the others follow
the slices as updates of deletions only. What ``max_deleted`` counts is the items a range
covers when the caller knows where items start (``items``: a room's map items, what its
recorder and index read per deletion, so a deleted text of a million characters is one
item and one part), else its clocks (at least its items). The
slices are ordered so that each one's references to content of other clients in the same
update (origins, right origins, parents) are to slices before it: an item only ever names
content that existed when it was made, so such an order exists for what a Yjs client
writes; a crafted update where none is found keeps the rest whole, as one last part.
References to content outside the update are the document's to have, as for the update
whole. Only for an update :func:`~crdt_server.codec.updates.inspect_update` accepted.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from crdt_server.codec.updates import _Reader
from crdt_server.lib0 import write_var_uint

__all__ = ["Sliced", "slice_update"]

_EMPTY_DELETE_SET = b"\x00"
_NO_STRUCTS = b"\x00"
"""An update's struct section with no client: an update of deletions only."""


@dataclass(slots=True)
class _Run:
    """One client's structs in the update: where each starts (byte offset, clock), and
    the furthest clock each needs of each other client of the update (exclusive)."""

    client: int
    starts: list[tuple[int, int]]
    end: int
    """Where its last struct ends (byte offset)."""
    end_clock: int
    """The clock after its last struct."""
    needs: list[dict[int, int] | None]
    """Per struct: the furthest clock it names of each other client (exclusive), if any;
    ``None`` also for an item of length 0, which yrs drops unread."""
    empty: list[bool]
    """Per struct: whether it is an item of length 0. A slice never begins with one (yrs
    panics on a client's run of nothing but such items): it joins the slice before."""
    done: int = 0
    """How many of its structs are in slices already."""

    def clock_at(self, index: int) -> int:
        return self.starts[index][1] if index < len(self.starts) else self.end_clock

    def offset_at(self, index: int) -> int:
        return self.starts[index][0] if index < len(self.starts) else self.end


def _runs(data: bytes) -> tuple[list[_Run], int]:
    """Every client's run, and where the delete set starts."""
    r = _Reader(data, 64)
    runs: list[_Run] = []
    for _ in range(r.uint()):
        n_structs = r.uint()
        client = r.uint()
        clock = r.uint()
        starts: list[tuple[int, int]] = []
        needs: list[dict[int, int] | None] = []
        empty: list[bool] = []
        for _ in range(n_structs):
            at = r.pos
            starts.append((at, clock))
            info = data[at]
            r.pos = at + 1
            ref = info & 0x1F
            need: dict[int, int] | None = None
            if ref == 0 or ref == 10:
                length = r.uint()
            else:
                named: list[tuple[int, int]] = []
                if info & 0x80:
                    named.append(r.item_id("origin"))
                if info & 0x40:
                    named.append(r.item_id("right origin"))
                if not info & 0xC0:
                    if r.uint() == 1:
                        r.text("parent name")
                    else:
                        named.append(r.item_id("parent"))
                    if info & 0x20:
                        r.text("parent key")
                length = r.content(ref, at)
                for other, other_clock in named if length else ():
                    if other != client:
                        need = need or {}
                        need[other] = max(need.get(other, 0), other_clock + 1)
            needs.append(need)
            empty.append(not length)
            clock += length
        runs.append(_Run(client, starts, r.pos, clock, needs, empty))
    return runs, r.pos


@dataclass(frozen=True, slots=True)
class Sliced:
    """An update's slices, in the order to apply them, each with an empty delete set, and
    the update's own delete set (encoded), or its first part and the ``rest``."""

    slices: list[bytes]
    deletes: bytes
    rest: tuple[bytes, ...] = ()
    """The delete set's further parts (encoded delete sets), each applied after every
    slice as an update of its own."""

    def parts(self, at: int = -1) -> list[bytes]:
        """The slices, the delete set (or its first part) on the one at ``at`` (default the
        last): one no earlier than the last that brings content the delete set names; then
        the delete set's other parts. With no slice, the deletions only."""
        parts = list(self.slices)
        if self.deletes != _EMPTY_DELETE_SET:
            if parts:
                parts[at] = parts[at][: -len(_EMPTY_DELETE_SET)] + self.deletes
            else:
                parts.append(_NO_STRUCTS + self.deletes)
        parts += [_NO_STRUCTS + deletes for deletes in self.rest]
        return parts


def slice_update(
    data: bytes,
    max_structs: int,
    max_deleted: int | None = None,
    items: Mapping[int, Sequence[int]] | None = None,
) -> Sliced | None:
    """``data`` (an accepted update) as updates of at most ``max_structs`` structs each
    (one may hold more, see the module docstring), in the order to apply them, and with
    ``max_deleted`` its delete set in parts of at most that many deletions: with ``items``
    (per client, the sorted first clocks of the items that count), the items a part's
    ranges cover (a range covering none counts one), else its clocks. ``None`` when it
    has no more structs than that and no more deletions."""
    runs, deletes_at = _runs(data)
    count = sum(len(run.starts) for run in runs)
    deletes = [data[deletes_at:]]
    if max_deleted is not None:
        deletes = _cut_deletes(data[deletes_at:], max_deleted, items) or [_EMPTY_DELETE_SET]
    if count <= max_structs:
        if len(deletes) == 1:
            return None
        # Few structs: they stay one slice (none when there are none).
        whole = [data[:deletes_at] + _EMPTY_DELETE_SET] if count else []
        return Sliced(whole, deletes[0], tuple(deletes[1:]))
    by_client = {run.client: run for run in runs}
    # The clock each client of the update has reached in the slices made so far; content
    # of the update not reached yet may not be named by the next slice.
    reached = {run.client: run.clock_at(0) for run in runs}

    def ready(need: dict[int, int] | None) -> bool:
        if need is None:
            return True
        for other, clock in need.items():
            run = by_client.get(other)
            # Content before the update's run of that client is the document's to have.
            if run is not None and run.starts and clock > run.starts[0][1]:
                if clock > reached[other]:
                    return False
        return True

    parts: list[bytes] = []
    while True:
        progressed = False
        for run in runs:
            count = 0
            while (
                run.done + count < len(run.starts)
                and count < max_structs
                and ready(run.needs[run.done + count])
            ):
                count += 1
            while count and run.done + count < len(run.starts) and run.empty[run.done + count]:
                count += 1
            if count:
                first, last = run.done, run.done + count
                body = data[run.offset_at(first) : run.offset_at(last)]
                header = (
                    write_var_uint(1)
                    + write_var_uint(count)
                    + write_var_uint(run.client)
                    + write_var_uint(run.clock_at(first))
                )
                parts.append(header + body + _EMPTY_DELETE_SET)
                run.done = last
                reached[run.client] = run.clock_at(last)
                progressed = True
        left = [run for run in runs if run.done < len(run.starts)]
        if not left:
            break
        if not progressed:
            parts.append(_rest(left, data))
            break
    return Sliced(parts, deletes[0], tuple(deletes[1:]))


def _cut_deletes(
    data: bytes, most: int, items: Mapping[int, Sequence[int]] | None = None
) -> list[bytes]:
    """An encoded delete set as delete sets of at most ``most`` deletions each (clocks, or
    with ``items`` the items covered, see :func:`slice_update`), in its order (a range
    split where a part ends: at an item's first clock); none for one of no clocks."""
    r = _Reader(data, 64)
    parts: list[list[tuple[int, list[tuple[int, int]]]]] = []
    left = 0
    for _ in range(r.uint()):
        client = r.uint()
        starts = None if items is None else items.get(client, ())
        for _ in range(r.uint()):
            clock = r.uint()
            length = r.uint()
            while length:
                if not left:
                    parts.append([])
                    left = most
                part = parts[-1]
                if not part or part[-1][0] != client:
                    part.append((client, []))
                if starts is None:
                    taken = cost = min(length, left)
                else:
                    first = bisect_left(starts, clock)
                    covered = bisect_left(starts, clock + length) - first
                    if covered <= left:
                        taken, cost = length, max(1, covered)
                    else:  # up to the first item past what fits (starts are increasing)
                        taken, cost = starts[first + left] - clock, left
                part[-1][1].append((clock, taken))
                clock += taken
                length -= taken
                left -= cost
    return [_encode_deletes(part) for part in parts]


def _encode_deletes(clients: list[tuple[int, list[tuple[int, int]]]]) -> bytes:
    out = bytearray(write_var_uint(len(clients)))
    for client, ranges in clients:
        out += write_var_uint(client) + write_var_uint(len(ranges))
        for clock, length in ranges:
            out += write_var_uint(clock) + write_var_uint(length)
    return bytes(out)


def _rest(left: list[_Run], data: bytes) -> bytes:
    """What is left of ``left`` runs, as one update of several clients (no delete set)."""
    out = bytearray(write_var_uint(len(left)))
    for run in left:
        out += write_var_uint(len(run.starts) - run.done)
        out += write_var_uint(run.client) + write_var_uint(run.clock_at(run.done))
        out += data[run.offset_at(run.done) : run.end]
        run.done = len(run.starts)
    return bytes(out + _EMPTY_DELETE_SET)
