"""Who is in which household, kept current from the guests and entries that changed.

:func:`documents.households.households` reads a whole guest list: one pass over every guest.
The incremental findings need its households of two or more guests after every change, and
a large import arrives as many updates of a hundred guests or so each: a whole pass after
each made the import quadratic in the guest list. :class:`HouseholdIndex` gives the same
households (equal to the full reading of the same records, a property test holds it to
that) at a cost that follows the change: it keeps each guest's household and indexes of who
names what (a household id, a free-text name, a host), so a change re-reads only the guests
whose household it may have moved.

The full reading's rules, and what each depends on (hence what a change marks):

* a guest's *own* household (:func:`~documents.households.own_household`) reads the guest,
  the entry their ``household_id`` names, and, for a free-text household, the entry with
  the id derived from the text or else the entry of the same normalised name: a guest
  changed, or an entry that came, went or was renamed, marks the guests naming it by id,
  by derived id or by either of its names;
* a plus-one with no household of their own comes with their host's, when the host has
  one of their own or is earlier on the list (guests are read in the list's order, and a
  host earlier on it already came with theirs): a guest whose household moved marks the
  guests naming them as host, and so on down;
* a household's name is its entry's, else the one its member of the smallest id gives it.

Pure: no I/O; the caller tells it of each changed record, in the order the records' own
mapping (insertion order, as a Python ``dict`` keeps it) changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .households import own_household
from .model import household_id_of, household_key
from .schema import Guest, Household

__all__ = ["HouseholdIndex", "index_move"]

Home = tuple[str, str]
"""A household's id and the name a guest gives it."""


class HouseholdIndex:
    """The households of two or more guests of one guest list (see the module docstring)."""

    def __init__(self) -> None:
        self.found: dict[str, tuple[str, frozenset[str]]] = {}
        """Household id -> its name and its guests, for households of two or more."""
        self.of: dict[str, str] = {}
        """Guest id -> the id of their household, for the guests of :attr:`found`."""
        self._order: dict[str, int] = {}  # guest -> its place in the records' order
        self._next = 0
        self._own: dict[str, Home] = {}  # guests who name a household themselves
        self._home: dict[str, Home] = {}  # guests in a household (own, or their host's)
        self._members: dict[str, set[str]] = {}  # household id -> its guests
        self._by_id: dict[str, set[str]] = {}  # household_id -> the guests naming it
        self._by_key: dict[str, set[str]] = {}  # free text (normalised) -> guests
        self._by_derived: dict[str, set[str]] = {}  # id derived from free text -> guests
        self._names: dict[str, set[str]] = {}  # entry name (normalised) -> entry ids
        self._plus_ones: dict[str, set[str]] = {}  # host -> the guests naming them
        self._dirty: set[str] = set()  # guests to read again
        self._renamed: set[str] = set()  # entries that came, went or were renamed

    def guest_changed(self, key: str, old: Guest | None, new: Guest | None) -> None:
        """Guest ``key`` came (``old`` ``None``), went (``new`` ``None``) or changed what
        decides their household (a change of anything else needs no call)."""
        if old is None:
            self._order[key] = self._next
            self._next += 1
        if new is None:
            self._order.pop(key, None)
        for guest, sign in ((old, -1), (new, 1)):
            if guest is None:
                continue
            if guest.household_id is not None:
                index_move(self._by_id, guest.household_id, key, sign)
            elif guest.household is not None:
                index_move(self._by_key, household_key(guest.household), key, sign)
                index_move(self._by_derived, household_id_of(guest.household), key, sign)
            if guest.plus_one_of is not None:
                index_move(self._plus_ones, guest.plus_one_of, key, sign)
        self._dirty.add(key)

    def entry_changed(self, key: str, old: Household | None, new: Household | None) -> None:
        """Household entry ``key`` came, went or changed (only its name matters)."""
        if old is not None and new is not None and old.name == new.name:
            return
        for entry, sign in ((old, -1), (new, 1)):
            if entry is not None:
                name = household_key(entry.name)
                index_move(self._names, name, key, sign)
                self._dirty |= self._by_key.get(name, set())
        self._dirty |= self._by_id.get(key, set())
        self._dirty |= self._by_derived.get(key, set())
        self._renamed.add(key)

    def refresh(self, guests: Mapping[str, Guest], entries: Mapping[str, Household]) -> set[str]:
        """Read the marked guests again (``guests`` and ``entries``: the records as they
        are now); the ids of the households of :attr:`found` that came, went, or changed
        their name or guests."""
        if not (self._dirty or self._renamed):
            return set()
        marked = self._closure()
        for key in marked:
            guest = guests.get(key)
            own = None if guest is None else own_household(guest, entries, self._match)
            if own is None:
                self._own.pop(key, None)
            else:
                self._own[key] = own
        touched, self._renamed = self._renamed, set()
        order = self._order
        for key in sorted((k for k in marked if k in order), key=order.__getitem__):
            home = self._own.get(key)
            host = guests[key].plus_one_of
            if home is None and host is not None and host in order:
                if host in self._own:
                    home = self._own[host]
                elif order[host] < order[key]:
                    home = self._home.get(host)  # settled before this guest's turn
            self._settle(key, home, touched)
        for key in marked:
            if key not in order:
                self._settle(key, None, touched)
        return self._recount(touched, entries)

    def _closure(self) -> set[str]:
        """The marked guests and, down the chain, the guests naming them as host."""
        marked, self._dirty = self._dirty, set()
        todo = list(marked)
        while todo:
            for plus_one in self._plus_ones.get(todo.pop(), ()):
                if plus_one not in marked:
                    marked.add(plus_one)
                    todo.append(plus_one)
        return marked

    def _match(self, name: str) -> str | None:
        ids = self._names.get(name)
        return min(ids) if ids else None

    def _settle(self, key: str, home: Home | None, touched: set[str]) -> None:
        was = self._home.get(key)
        if home == was:
            return
        if was is not None:
            index_move(self._members, was[0], key, -1)
            touched.add(was[0])
        if home is None:
            del self._home[key]
        else:
            self._home[key] = home
            index_move(self._members, home[0], key, 1)
            touched.add(home[0])

    def _recount(self, touched: Iterable[str], entries: Mapping[str, Household]) -> set[str]:
        changed: set[str] = set()
        for household_id in touched:
            members = self._members.get(household_id, set())
            now: tuple[str, frozenset[str]] | None = None
            if len(members) > 1:
                entry = entries.get(household_id)
                name = entry.name if entry is not None else self._home[min(members)][1]
                now = (name, frozenset(members))
            was = self.found.get(household_id)
            if now == was:
                continue
            changed.add(household_id)
            for guest in was[1] if was is not None else ():
                if self.of.get(guest) == household_id:
                    del self.of[guest]
            if now is None:
                del self.found[household_id]
            else:
                self.found[household_id] = now
                self.of.update(dict.fromkeys(now[1], household_id))
        return changed


def index_move(index: dict[Any, set[Any]], key: Any, value: Any, sign: int) -> None:
    """``value`` added to (``sign`` > 0) or taken from ``index[key]``; an empty set goes."""
    if sign > 0:
        index.setdefault(key, set()).add(value)
        return
    values = index.get(key)
    if values is not None:
        values.discard(value)
        if not values:
            del index[key]
