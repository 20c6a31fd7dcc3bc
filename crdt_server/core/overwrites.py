"""Writes that a concurrent write made vanish: found from the Yjs items, not from observers.

A Yjs map keeps one value per key. When two clients write one key concurrently (both saw the
same value, or none), the item of the higher client id wins and the other is deleted as it
integrates; when someone edits a field of an entry that someone else removed meanwhile, the
edit is deleted with the entry. Observers see neither (the losing write may change nothing
observable), so this module reads the items themselves (:func:`codec.items.read_items`) and
the delete set of the transaction that integrated them
(``shared/designs/concurrent-writes.md``):

- a new map item deleted by its own integration, but not by its own update, lost a race (or
  was written into a removed entry);
- an old map item deleted by an integration that did not name it as the new item's origin
  was overwritten concurrently (the new item won);
- an old field deleted by an integration whose own update removed the field's entry, but
  which that update did not delete itself, was an edit its remover never saw.

Items that carry an origin name no key on the wire, so :class:`OverwriteIndex` keeps every
map item's slot (its parent and key), the current item of each slot and that item's value.
It is built once from a document's state and kept current from each integrated update;
lookups per update cost what the update holds, whatever the document's size. Nothing here
knows the wedding domain: a slot is a root map key or a key of a map nested under one.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right, insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crdt_server import clock as wall_clock
from crdt_server.codec.items import ID, DecodedUpdate, Item

__all__ = ["Found", "ItemRef", "Overwrite", "OverwriteIndex", "finding_id"]

Deletes = Mapping[int, list[tuple[int, int]]]
Slot = tuple[str | ID, str]
"""A map slot: its parent (a root's name, or the id of the map type's item) and its key."""

_TYPE_NAMES = {0: "array", 1: "map", 2: "text", 3: "xml_element", 4: "xml_fragment"}
_MAX_FIELDS = 100


@dataclass(frozen=True, slots=True)
class ItemRef:
    """One write: its item, the Yjs client that made it, its value as JSON, when it was
    integrated here (``None``: before this process loaded the document)."""

    id: ID
    value: Any
    at: float | None


@dataclass(frozen=True, slots=True)
class Overwrite:
    """A write that did not take effect. ``kind`` is ``"concurrent_edit"`` (``loser`` lost to
    ``winner``, written concurrently, for the same key) or ``"edited_removed_entry"``
    (``loser`` was written into an entry someone removed without having seen it; ``winner`` is
    ``None``). ``path`` names the key from its root (``("guests", "g1", "meal")``).
    ``new_won`` is true when the update that made it visible holds the winner (its author
    replaced a value they had not seen); ``new_lost`` when it holds the lost write (else
    the lost write was committed before, and for a removed entry this update removed it)."""

    kind: str
    path: tuple[str, ...]
    loser: ItemRef
    winner: ItemRef | None
    new_won: bool
    new_lost: bool

    @property
    def id(self) -> str:
        return finding_id(self.kind, self.loser.id, self.winner.id if self.winner else None)


@dataclass(slots=True)
class Found:
    """What one integrated update did to the document's map slots."""

    overwrites: list[Overwrite] = field(default_factory=list)
    written: list[tuple[str, ...]] = field(default_factory=list)
    """Paths the update wrote having seen the value it replaced (or writing a new key)."""
    clients: set[int] = field(default_factory=set)
    """The Yjs clients whose new items the update holds."""
    items: list[tuple[tuple[str, ...], ID]] = field(default_factory=list)
    """Each map slot the integration changed, by its path, with the item that did it: the
    new item now current there, or the old one it removed (in the order met). The same
    content integrated by two processes names the same items: an identity for what it
    did, whoever integrates it (the events' keys)."""


def finding_id(kind: str, a: ID, b: ID | None) -> str:
    """A finding's id from its two items: two processes that see the same race agree."""
    text = f"{kind}|{a[0]}:{a[1]}|{'' if b is None else f'{b[0]}:{b[1]}'}"
    return "cw:" + hashlib.sha1(text.encode()).hexdigest()[:20]


def _value(item: Item) -> Any:
    content = item.content
    if content.ref == 8 and content.value:
        return content.value[-1]
    if content.ref == 7:
        type_ref, name = content.value
        return {"type": _TYPE_NAMES.get(type_ref, "type"), **({"name": name} if name else {})}
    if content.ref in (4, 5):
        return content.value
    return None


def _contains(deletes: Deletes, item: ID) -> bool:
    """Whether ``deletes`` (per client, ``(clock, length)`` ranges sorted by clock, as Yjs
    encodes them) covers ``item``."""
    ranges = deletes.get(item[0])
    if not ranges:
        return False
    clock = item[1]
    i = bisect_right(ranges, (clock, float("inf"))) - 1
    return i >= 0 and clock < ranges[i][0] + ranges[i][1]


class OverwriteIndex:
    """Every map item of one document: its slot, each slot's current item and value."""

    def __init__(self) -> None:
        self._starts: dict[int, list[int]] = {}
        """Per client, the sorted first clocks of its map items."""
        self._items: dict[ID, tuple[int, Slot]] = {}
        """Map item (its first id) -> (its length, its slot)."""
        self._current: dict[Slot, ID] = {}
        self._values: dict[ID, tuple[Any, float | None]] = {}
        """The current items' values and integration times."""
        self._children: dict[ID, set[str]] = {}
        """A map type's item -> the keys written under it."""
        self._pending: dict[ID, Any] = {}
        """Values of items being indexed, until they are known to be current or not."""

    def __len__(self) -> int:
        return len(self._items)

    # -- building --------------------------------------------------------------------

    def build(self, state: DecodedUpdate) -> None:
        """Index a document's whole state (its ``get_update()``, decoded)."""
        self._resolve(state.items)
        for item, (_, slot) in self._items.items():
            if not _contains(state.deletes, item):
                self._current[slot] = item
        for item in self._current.values():
            self._values[item] = (self._pending.get(item), None)
        self._pending.clear()

    def _resolve(self, items: Iterable[Item]) -> list[tuple[Item, Slot]]:
        """The map items among ``items`` with their slots: an item with a key names its
        slot; an item with an origin shares its origin's slot when the origin is a map item
        (of this batch, in any order, or already indexed). Anything else is not a map item."""
        found: list[tuple[Item, Slot]] = []
        waiting: dict[ID, list[Item]] = {}
        for item in items:
            if item.id in self._items:
                continue
            slot: Slot | None = None
            if item.key is not None and item.parent is not None:
                slot = (item.parent, item.key)
            elif item.origin is not None and item.parent is None:
                known = self._find(item.origin)
                if known is None:
                    waiting.setdefault(item.origin, []).append(item)
                    continue
                slot = known
            if slot is None:
                continue
            todo = [(item, slot)]
            while todo:
                one, at = todo.pop()
                found.append((one, at))
                self._add(one, at)
                for offset in range(one.length):
                    for later in waiting.pop((one.id[0], one.id[1] + offset), ()):
                        todo.append((later, at))
        return found

    def _add(self, item: Item, slot: Slot) -> None:
        if item.id in self._items:
            return
        client, clock = item.id
        starts = self._starts.setdefault(client, [])
        if not starts or clock > starts[-1]:
            starts.append(clock)
        else:
            insort(starts, clock)
        self._items[item.id] = (item.length, slot)
        if isinstance(slot[0], tuple):
            self._children.setdefault(slot[0], set()).add(slot[1])
        self._pending[item.id] = _value(item)

    def _find(self, id_: ID) -> Slot | None:
        """The slot of the map item holding ``id_`` (merged deleted items span clocks)."""
        client, clock = id_
        starts = self._starts.get(client)
        if not starts:
            return None
        i = bisect_right(starts, clock) - 1
        if i < 0:
            return None
        length, slot = self._items[(client, starts[i])]
        return slot if clock < starts[i] + length else None

    def starts(self, clients: Iterable[int]) -> dict[int, list[int]]:
        """Per client of ``clients``, the sorted first clocks of its map items: copies, to
        count on a worker thread the entries a delete set covers (a bisect per range)."""
        return {c: list(self._starts[c]) for c in clients if c in self._starts}

    def _in(self, deletes: Deletes) -> list[ID]:
        """The indexed map items inside ``deletes``' ranges."""
        out: list[ID] = []
        for client, ranges in deletes.items():
            starts = self._starts.get(client)
            if not starts:
                continue
            for start, length in ranges:
                i = max(0, bisect_right(starts, start) - 1)
                while i < len(starts) and starts[i] < start + length:
                    first = (client, starts[i])
                    if starts[i] + self._items[first][0] > start:
                        out.append(first)
                    i += 1
        return out

    # -- reading ---------------------------------------------------------------------

    def path(self, slot: Slot) -> tuple[str, ...] | None:
        """The names from the root down to ``slot``'s key, if every parent is a map key."""
        names = [slot[1]]
        parent = slot[0]
        for _ in range(64):
            if isinstance(parent, str):
                names.append(parent)
                return tuple(reversed(names))
            known = self._items.get(parent)
            if known is None:
                return None
            names.append(known[1][1])
            parent = known[1][0]
        return None

    def alive(self, item: ID) -> bool:
        known = self._items.get(item)
        return known is not None and self._current.get(known[1]) == item

    def value(self, item: ID) -> Any:
        """An item's value as JSON; a map type's is its current fields' values."""
        stored = self._values.get(item)
        value = stored[0] if stored else self._pending.get(item)
        if isinstance(value, dict) and value.get("type") == "map":
            fields: dict[str, Any] = {}
            for key in sorted(self._children.get(item, ()))[:_MAX_FIELDS]:
                current = self._current.get((item, key))
                if current is not None:
                    inner = self._values.get(current)
                    fields[key] = inner[0] if inner else None
            return fields
        return value

    @staticmethod
    def _new_value(item: ID, values: Mapping[ID, Any], new: list[tuple[Item, Slot]]) -> Any:
        """The value of a new item that never became current: a map's, its fields written
        in the same update."""
        value = values.get(item)
        if isinstance(value, dict) and value.get("type") == "map":
            return {slot[1]: values.get(one.id) for one, slot in new if slot[0] == item}
        return value

    def _ref(self, item: ID) -> ItemRef:
        stored = self._values.get(item)
        return ItemRef(item, self.value(item), stored[1] if stored else None)

    # -- one integration -------------------------------------------------------------

    def integrate(self, update: DecodedUpdate, deletes: Deletes) -> Found:
        """Bring the index up to date with one integrated update (``update`` decoded;
        ``deletes`` the delete set of the transaction that integrated it: what it newly
        deleted) and say which writes did not take effect.

        The update's own delete set (for a client that synced from a state vector, the whole
        document's) is read only when the integration removed an entry: whether the remover
        had seen each of its fields."""
        now = wall_clock.now()
        found = Found()
        new = self._resolve(update.items)
        for item in update.items:
            found.clients.add(item.id[0])
        new_ids = {item.id for item, _ in new}
        lost, replaced = self._take_new(new, new_ids, deletes, now, found)
        # After every new item is current: a new entry's value is its new fields.
        for path, previous, winning in replaced:
            loser, winner = self._ref(previous), self._ref(winning)
            if loser.value != winner.value:
                found.overwrites.append(
                    Overwrite("concurrent_edit", path, loser, winner, new_won=True, new_lost=False)
                )
            else:
                found.written.append(path)
        self._report_lost(lost, new, deletes, now, found)
        for item, _ in new:
            self._pending.pop(item.id, None)
        self._remove_deleted(update, deletes, new_ids, found)
        return found

    def _take_new(
        self,
        new: list[tuple[Item, Slot]],
        new_ids: set[ID],
        deletes: Deletes,
        now: float,
        found: Found,
    ) -> tuple[list[tuple[Item, Slot]], list[tuple[tuple[str, ...], ID, ID]]]:
        """Make the new items current where they are: the keys written (in ``found``), the
        new items deleted in the same integration (lost), and the old values they replaced
        that their authors had not seen (path, old item, new item)."""
        by_id = {item.id: item for item, _ in new}
        successors = {item.origin for item, _ in new if item.origin in new_ids}
        """New items a later item of the same update overwrote: its author's own churn."""

        def seen(item: Item) -> ID | None:
            """The old item a new one was written over (through its author's own earlier
            writes of the key in the same update)."""
            origin = item.origin
            while origin in new_ids:
                origin = by_id[origin].origin
            return origin

        values = self._pending
        lost: list[tuple[Item, Slot]] = []
        replaced: list[tuple[tuple[str, ...], ID, ID]] = []
        for item, slot in new:
            if _contains(deletes, item.id):
                if item.id not in successors:
                    lost.append((item, slot))
                continue
            previous = self._current.get(slot)
            self._current[slot] = item.id
            self._values[item.id] = (values.pop(item.id, None), now)
            path = self.path(slot)
            if path is None:
                continue
            found.items.append((path, item.id))
            if (
                previous is not None
                and previous not in new_ids
                and previous != seen(item)
                and _contains(deletes, previous)
            ):
                replaced.append((path, previous, item.id))
            else:
                found.written.append(path)
        return lost, replaced

    def _report_lost(
        self,
        lost: list[tuple[Item, Slot]],
        new: list[tuple[Item, Slot]],
        deletes: Deletes,
        now: float,
        found: Found,
    ) -> None:
        """The new items that lost as they came in: an edit of an entry removed meanwhile,
        or a value that lost the race for its key to another."""
        lost_ids = {item.id for item, _ in lost}
        for item, slot in lost:
            parent = slot[0]
            if parent in lost_ids:
                continue  # a field of an entry that lost: the entry's finding says it
            path = self.path(slot)
            if path is None:
                continue
            loser = ItemRef(item.id, self._new_value(item.id, self._pending, new), now)
            if isinstance(parent, tuple) and not self.alive(parent):
                found.overwrites.append(
                    Overwrite(
                        "edited_removed_entry", path, loser, None, new_won=False, new_lost=True
                    )
                )
                continue
            current = self._current.get(slot)
            if current is None or current == item.id or _contains(deletes, current):
                continue  # the key was removed in this integration: nothing won over it
            winner = self._ref(current)
            if winner.value != loser.value:
                found.overwrites.append(
                    Overwrite("concurrent_edit", path, loser, winner, new_won=False, new_lost=True)
                )

    def _remove_deleted(
        self, update: DecodedUpdate, deletes: Deletes, new_ids: set[ID], found: Found
    ) -> None:
        """Old items this integration deleted: keys removed, and fields of removed entries
        (an edit lost when whoever removed the entry had not seen it)."""
        gone = [old for old in self._in(deletes) if old not in new_ids]
        removed = {old for old in gone if old in self._children}
        """Entries (map types) this integration removed."""
        for old in gone:
            _, slot = self._items[old]
            if self._current.get(slot) != old:
                continue
            del self._current[slot]
            stored = self._values.pop(old, None)
            if (where := self.path(slot)) is not None:
                found.items.append((where, old))
            parent = slot[0]
            if parent in removed and not _contains(update.deletes, old):
                # The entry was removed by this update (its own delete set holds the entry)
                # by someone who had not seen this field's value: their edit is lost.
                if not _contains(update.deletes, parent):
                    continue  # removed as the loser of a race for its key: reported there
                path = self.path(slot)
                if path is not None:
                    ref = ItemRef(old, *(stored or (None, None)))
                    found.overwrites.append(
                        Overwrite(
                            "edited_removed_entry", path, ref, None, new_won=False, new_lost=False
                        )
                    )
