"""Structural gatekeeper for Yjs v1 update bytes, run before anything reaches pycrdt.

pycrdt's Rust decoder (yrs) trusts counts read from the wire: a few crafted header bytes can
make it reserve hundreds of megabytes, panic (``pyo3 PanicException``, a ``BaseException``),
blow its stack on deeply nested values, or read strings as UTF-8 without checking them.
:func:`inspect_update` walks the whole lib0 v1 encoding in pure Python and raises
:class:`UpdateError` unless the bytes are a well-formed update. It never allocates in
proportion to a count read from the input: every count is first checked against the bytes
left (each element takes at least one byte), and ``Any`` nesting is walked iteratively up
to ``max_depth``. On success it returns an :class:`UpdateSummary` (clock ranges per client
and what the update builds on), with which :func:`integrable` tells whether a document has
everything the update needs to integrate whole, and :func:`pending_after` whether a document
still lacks part of it after it was applied.

Stricter than yjs where yjs never writes the bytes in question, or where yrs would read
them differently from yjs (then our checked view would not be what yrs reads):

* GC/Skip info bytes must be exactly 0/10; their length must be > 0. Parent info is 0 or 1.
* Type refs 0-6 only, one byte. XmlHook (5) is refused: yjs writes a hook name after it,
  yrs 0.28 does not read one. Legacy ContentJSON (ref 2) is refused: yrs 0.28 reads one
  string more than the count yjs writes. yjs 13 never creates ContentJSON for new edits.
* A client may appear only once in the struct section and once in the delete set.
* An item may name (as origin, right origin or parent) only earlier clocks of its own client:
  content that existed when it was made. yrs does not check this.
* Clocks and clock + length fit in u32 (yrs clocks); every varuint is at most 8 bytes and
  <= 2**53 - 1. Strings must be strict UTF-8. JSON text in Embed/Format is not parsed
  (yrs rejects bad JSON cleanly).

Items of length 0 (empty string, Deleted/Any of length 0) are accepted: yrs drops them. They
are counted in ``struct_count`` but not in the clock ranges.

``max_items`` bounds what one received message may make the server read, whatever its size
in bytes (a 7 MiB update of 190,000 one-character guests passes the message size limit and
costs seconds in every Python reader of its items): the structs and delete ranges are counted
from the counts the encoding declares before them (each client's struct count before its
structs, each delete-set client's range count before its ranges), and the update is refused
with :class:`OverItemLimit` as soon as the running count passes the limit, before the items
that count announces are read. A refusal therefore reads at most the items of the clients
before it (fewer than ``max_items``), and one of the usual one-client update none at all.

Out of scope (document-level, not per-update): how deeply types nest through parent IDs. A
chain of ~100k nested maps (under 1 MB, possibly spread over many updates) crashes yrs with a
stack overflow when the chain is deleted; limit document size/depth elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn

from crdt_server.threads import share_gil

__all__ = [
    "OverItemLimit",
    "UpdateError",
    "UpdateSummary",
    "decode_state_vector",
    "inspect_update",
    "integrable",
    "pending_after",
]

_U32_MAX = 0xFFFFFFFF
_MAX_SAFE = (1 << 53) - 1
# Deleting every byte below 0xF0 from valid UTF-8 leaves one byte per astral code point,
# i.e. per character that takes two UTF-16 code units.
_BELOW_F0 = bytes(range(0xF0))
_ANY_EMPTY = frozenset((120, 121, 126, 127))  # true, false, null, undefined: no payload
_NO_IDS: frozenset[tuple[int, int]] = frozenset()


class UpdateError(ValueError):
    """The bytes are not a well-formed Yjs v1 update (message says where/why)."""


class OverItemLimit(UpdateError):
    """The update declares more structs and delete ranges than ``max_items`` allows
    (see :func:`inspect_update`); nothing past the count that passed it was read."""

    def __init__(self, counted: int, limit: int) -> None:
        super().__init__(
            f"the update holds more than {limit} structs and delete ranges "
            f"({counted} counted when it was refused)"
        )
        self.counted = counted
        self.limit = limit


@dataclass(frozen=True, slots=True)
class UpdateSummary:
    """What an update contains, per client.

    ``structs`` maps a client to ``(first clock, end clock)`` (end is exclusive) of the
    structs in the update with content (Skip structs and zero-length items do not count).
    ``deletes`` maps a client to the largest end clock (exclusive) of its non-empty delete
    ranges. ``struct_count`` counts all structs (items, GC, Skip); ``is_empty`` is true when
    there are no structs and no non-empty delete ranges.
    """

    structs: dict[int, tuple[int, int]]
    deletes: dict[int, int]
    struct_count: int
    is_empty: bool
    needs: dict[int, int]
    """Per client, the clock a document must already have reached for the update's own
    structs to follow on without a gap (the start of its run, or the end of a Skip)."""
    refs: dict[int, int]
    """Per client, the end clock (exclusive) of everything the update refers to by ID in
    other clients (origins, right origins, parents) and of its delete ranges: that content
    must exist once the update's own structs are in."""
    parents: frozenset[tuple[int, int]] = frozenset()
    """The IDs its items name as their parent (any client, its own included). A Yjs client
    only ever names a shared type so; see :attr:`types`."""
    types: tuple[tuple[int, int], ...] = ()
    """The IDs of its items that are shared types (content ref 7): the items a later
    update may name as a parent."""
    items: int = 0
    """Its structs and delete ranges, as it declares them: what ``max_items`` counts."""
    deleted: int = 0
    """The clocks its delete ranges cover, summed: a bound on the items it deletes."""


class _Reader:
    """Cursor over the input. Running off the end raises IndexError (callers convert it)."""

    __slots__ = ("data", "pos", "size", "max_depth")

    def __init__(self, data: bytes, max_depth: int) -> None:
        self.data = data
        self.pos = 0
        self.size = len(data)
        self.max_depth = max_depth

    def fail(self, why: str, at: int | None = None) -> NoReturn:
        where = self.pos if at is None else at
        raise UpdateError(f"{why} (at byte {where} of {self.size})")

    def uint(self) -> int:
        """lib0 varuint: 7 bits per byte, little-endian, at most 8 bytes, <= 2**53 - 1."""
        data = self.data
        pos = self.pos
        b = data[pos]
        if b < 0x80:
            self.pos = pos + 1
            return b
        num = b & 0x7F
        shift = 7
        while True:
            pos += 1
            b = data[pos]
            num |= (b & 0x7F) << shift
            if b < 0x80:
                break
            shift += 7
            if shift > 49:
                self.fail("varuint longer than 8 bytes")
        self.pos = pos + 1
        if num > _MAX_SAFE:
            self.fail("varuint larger than 2**53 - 1")
        return num

    def count(self, min_size: int, what: str) -> int:
        """A count whose elements take at least ``min_size`` bytes each, checked to fit."""
        at = self.pos
        n = self.uint()
        left = self.size - self.pos
        if n * min_size > left:
            self.fail(f"{what} {n} cannot fit in the {left} bytes left", at)
        return n

    def clock(self, what: str) -> int:
        at = self.pos
        n = self.uint()
        if n > _U32_MAX:
            self.fail(f"{what} {n} does not fit in u32", at)
        return n

    def raw(self, what: str) -> bytes:
        """lib0 varUint8Array: varuint length, then that many bytes."""
        at = self.pos
        n = self.uint()
        start = self.pos
        end = start + n
        if end > self.size:
            self.fail(f"{what} of {n} bytes runs past the end", at)
        self.pos = end
        return self.data[start:end]

    def text(self, what: str) -> int:
        """lib0 varString, strictly UTF-8; returns its length in UTF-16 code units."""
        start = self.pos
        raw = self.raw(what)
        if raw.isascii():
            return len(raw)
        try:
            s = raw.decode()
        except UnicodeDecodeError as exc:
            self.fail(f"{what} is not valid UTF-8 ({exc.reason})", start)
        return len(s) + len(raw.translate(None, _BELOW_F0))

    def any(self) -> None:
        """Skip one lib0 Any value, walking nested arrays/objects without recursion."""
        data = self.data
        remaining: list[int] = []  # values still to read in each open container
        in_object: list[bool] = []
        while True:
            if in_object and in_object[-1]:
                self.text("object key")
            at = self.pos
            tag = data[at]
            self.pos = at + 1
            if tag == 117 or tag == 118:  # array / object
                if len(remaining) >= self.max_depth:
                    self.fail(f"Any value nested deeper than {self.max_depth}", at)
                n = self.count(1 if tag == 117 else 2, "Any container length")
                if n:
                    remaining.append(n)
                    in_object.append(tag == 118)
                    continue
            elif tag == 119:
                self.text("Any string")
            elif tag == 125:
                self.varint()
            elif tag == 124 or tag == 123 or tag == 122:  # float32 / float64 / bigint64
                end = at + (5 if tag == 124 else 9)
                if end > self.size:
                    self.fail("Any number runs past the end", at)
                self.pos = end
            elif tag == 116:
                self.raw("Any binary")
            elif tag not in _ANY_EMPTY:
                self.fail(f"unknown Any type tag {tag}", at)
            # One value finished: close every container it completes.
            while remaining:
                remaining[-1] -= 1
                if remaining[-1]:
                    break
                remaining.pop()
                in_object.pop()
            else:
                return

    def varint(self) -> None:
        """Skip a lib0 signed varint (first byte: continuation, sign, 6 bits)."""
        data = self.data
        at = pos = self.pos
        b = data[pos]
        num = b & 0x3F
        shift = 6
        while b & 0x80:
            if shift > 48:
                self.fail("varint longer than 8 bytes", at)
            pos += 1
            b = data[pos]
            num |= (b & 0x7F) << shift
            shift += 7
        self.pos = pos + 1
        if num > _MAX_SAFE:
            self.fail("varint magnitude larger than 2**53 - 1", at)

    def item_id(self, what: str) -> tuple[int, int]:
        return self.uint(), self.clock(f"{what} clock")

    def content(self, ref: int, at: int) -> int:
        """Skip an item's content; returns the item's length in clock units."""
        if ref == 4:
            return self.text("string content")
        if ref == 8:
            n = self.count(1, "Any content length")
            for _ in range(n):
                self.any()
            return n
        if ref == 1:
            return self.uint()
        if ref == 6:
            self.text("format key")
            self.text("format value")
        elif ref == 7:
            type_at = self.pos
            type_ref = self.data[type_at]
            self.pos = type_at + 1
            if type_ref == 3:
                self.text("XmlElement name")
            elif type_ref == 5:
                self.fail("XmlHook types are not supported (yrs misreads them)", type_at)
            elif type_ref > 6:
                self.fail(f"unknown type ref {type_ref}", type_at)
        elif ref == 3:
            self.raw("binary content")
        elif ref == 5:
            self.text("embed content")
        elif ref == 9:
            self.text("subdocument guid")
            self.any()
        elif ref == 2:
            self.fail("legacy JSON content is not supported (yrs misreads it)", at)
        else:
            self.fail(f"unknown content ref {ref}", at)
        return 1


def _read_update(r: _Reader, max_items: int | None) -> UpdateSummary:
    uint = r.uint
    structs: dict[int, tuple[int, int]] = {}
    needs: dict[int, int] = {}
    refs: dict[int, int] = {}
    parents: set[tuple[int, int]] = set()
    types: list[tuple[int, int]] = []
    seen: set[int] = set()
    struct_count = 0
    limit = _MAX_SAFE if max_items is None else max_items

    def refer(ref: tuple[int, int], client: int, clock: int, at: int) -> None:
        # A Yjs item only ever names content that existed when it was made: in its own
        # client that is an earlier clock; in another, content the document must have.
        ref_client, ref_clock = ref
        if ref_client == client:
            if ref_clock >= clock:
                r.fail(f"item {client}#{clock} refers to its own future {ref_clock}", at)
        elif ref_clock >= refs.get(ref_client, 0):
            refs[ref_client] = ref_clock + 1

    for _ in range(r.count(3, "client count")):
        n_structs = r.count(2, "struct count")
        if struct_count + n_structs > limit:  # before reading any of them
            raise OverItemLimit(struct_count + n_structs, limit)
        at = r.pos
        client = uint()
        if client in seen:
            r.fail(f"client {client} appears twice", at)
        seen.add(client)
        clock = r.clock("start clock")
        first, end, need = _read_structs(r, n_structs, client, clock, refer, parents, types)
        struct_count += n_structs
        if first >= 0:
            structs[client] = (first, end)
            needs[client] = need

    deletes, items, deleted = _read_delete_set(r, refs, struct_count, limit)
    if r.pos != r.size:
        r.fail(f"{r.size - r.pos} trailing bytes after the delete set")
    empty = not struct_count and not deletes
    return UpdateSummary(
        structs,
        deletes,
        struct_count,
        empty,
        needs,
        refs,
        frozenset(parents) if parents else _NO_IDS,
        tuple(types),
        items,
        deleted,
    )


def _read_structs(
    r: _Reader,
    n_structs: int,
    client: int,
    clock: int,
    refer: Callable[[tuple[int, int], int, int, int], None],
    parents: set[tuple[int, int]],
    types: list[tuple[int, int]],
) -> tuple[int, int, int]:
    """Read one client's ``n_structs`` structs from ``clock`` on (the parents they name
    into ``parents``, the shared types they make into ``types``): the first and end clocks
    of their content (first -1 for none) and the clock the document must hold before them
    (-1 for none)."""
    data = r.data
    uint = r.uint
    first = -1
    end = clock
    need = -1
    after_gap = True  # the next struct with content starts where the document must be
    for n in range(n_structs):
        if not n & 1023:
            share_gil()  # a whole document's state on a worker thread
        at = r.pos
        info = data[at]
        r.pos = at + 1
        ref = info & 0x1F
        if ref == 0 or ref == 10:
            if info != ref:
                r.fail(f"GC/Skip struct with flag bits set (info {info:#x})", at)
            length = uint()
            if not length:
                r.fail("GC/Skip struct of length 0", at)
        else:
            if info & 0x80:
                refer(r.item_id("origin"), client, clock, at)
            if info & 0x40:
                refer(r.item_id("right origin"), client, clock, at)
            if not info & 0xC0:
                parent_at = r.pos
                parent_info = uint()
                if parent_info == 1:
                    r.text("parent name")
                elif parent_info == 0:
                    parent = r.item_id("parent")
                    refer(parent, client, clock, at)
                    parents.add(parent)
                else:
                    r.fail(f"parent info {parent_info} is neither 0 nor 1", parent_at)
                if info & 0x20:
                    r.text("parent key")
            length = r.content(ref, at)
            if ref == 7:
                types.append((client, clock))
        new_clock = clock + length
        if new_clock > _U32_MAX:
            r.fail(f"clock {clock} + length {length} of client {client} exceeds u32", at)
        if ref == 10:
            after_gap = True
        elif length:
            if first < 0:
                first = clock
            if after_gap:
                need = clock
                after_gap = False
            end = new_clock
        clock = new_clock
    return first, end, need


def _read_delete_set(
    r: _Reader, refs: dict[int, int], items: int, limit: int
) -> tuple[dict[int, int], int, int]:
    """Read the update's delete set: the end of each client's deleted ranges (which the
    document must reach, added to ``refs``), ``items`` counted on with its ranges, and the
    clocks they cover."""
    uint = r.uint
    deletes: dict[int, int] = {}
    deleted = 0
    seen: set[int] = set()
    for _ in range(r.count(2, "delete-set client count")):
        at = r.pos
        client = uint()
        if client in seen:
            r.fail(f"delete-set client {client} appears twice", at)
        seen.add(client)
        best = 0
        n_ranges = r.count(2, "delete range count")
        items += n_ranges
        if items > limit:  # before reading any of them
            raise OverItemLimit(items, limit)
        for _ in range(n_ranges):
            at = r.pos
            start = uint()
            stop = start + uint()
            if stop > _U32_MAX:
                r.fail(f"delete range end {stop} of client {client} exceeds u32", at)
            deleted += stop - start
            if stop > start and stop > best:
                best = stop
        if best:
            deletes[client] = best
            if best > refs.get(client, 0):
                refs[client] = best
    return deletes, items, deleted


def inspect_update(
    data: bytes, *, max_depth: int = 64, max_items: int | None = None
) -> UpdateSummary:
    """Check that ``data`` is a well-formed Yjs v1 update and summarise it.

    Raises :class:`UpdateError` (and nothing else) for any malformed or hostile input;
    :class:`OverItemLimit`, one of them, for an update of more than ``max_items`` structs
    and delete ranges (``None``: no bound; see the module docstring). ``max_depth`` bounds
    the nesting of arrays/objects inside ``Any`` values.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    r = _Reader(data, max_depth)
    try:
        return _read_update(r, max_items)
    except IndexError:
        raise UpdateError(f"update truncated: unexpected end of {r.size} bytes") from None


def decode_state_vector(data: bytes) -> dict[int, int]:
    """Decode a lib0 state vector (varuint n, then n x (client, clock)) with the same checks."""
    if not isinstance(data, bytes):
        data = bytes(data)
    r = _Reader(data, 0)
    state: dict[int, int] = {}
    try:
        for _ in range(r.count(2, "state vector length")):
            at = r.pos
            client = r.uint()
            if client in state:
                r.fail(f"client {client} appears twice", at)
            state[client] = r.clock("clock")
    except IndexError:
        raise UpdateError(f"state vector truncated: unexpected end of {r.size} bytes") from None
    if r.pos != r.size:
        r.fail(f"{r.size - r.pos} trailing bytes after the state vector")
    return state


def integrable(summary: UpdateSummary, state: Mapping[int, int]) -> bool:
    """True if a document whose state vector is ``state`` has everything the update builds
    on: no clock gap before any of its structs, and every item it names by ID (in other
    clients) and every range it deletes exists once its own structs are in. Applied to such
    a document, the update integrates whole and leaves nothing pending."""
    get = state.get
    for client, need in summary.needs.items():
        if get(client, 0) < need:
            return False
    structs = summary.structs
    for client, end in summary.refs.items():
        have = get(client, 0)
        run = structs.get(client)
        if run is not None and run[1] > have:
            have = run[1]
        if end > have:
            return False
    return True


def pending_after(summary: UpdateSummary, state: dict[int, int]) -> bool:
    """True if, given the document's state vector after applying the update, some of the
    update's structs or delete ranges are not integrated (their end clock is beyond it)."""
    get = state.get
    for client, (_, end) in summary.structs.items():
        if end > get(client, 0):
            return True
    for client, end in summary.deletes.items():
        if end > get(client, 0):
            return True
    return False
