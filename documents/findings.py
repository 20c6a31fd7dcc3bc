"""Invariant findings kept current from what each change touched, not re-checked whole.

:func:`documents.check` reads a wedding's four documents and checks everything: its cost
grows with the wedding. :class:`WeddingFindings` gives the same findings (equal lists, a
property test holds it to that) at a cost that follows the change: it keeps each entry's
record and a few indexes (assignments by table and by seat, active timeline items by vendor
and by location, payments by category, the budget's sums), and the findings split into
*groups*, each a small function of a few entries and indexes. A change re-reads the entries
it touched (:meth:`WeddingFindings.touch`), updates the indexes, and marks the groups whose
inputs changed; :meth:`WeddingFindings.evaluate` recomputes only those.

Each kind of finding declares its group, the indexes it reads and its triggers in
:data:`FINDING_KINDS` (the documentation, in :mod:`documents.findings_kinds`; the code below
routes each trigger). The records, the indexes and each group's evaluation from them are
:class:`~documents.findings_groups.FindingIndexes`, which :class:`WeddingFindings` extends.
No finding depends on the clock today (a ``clock`` trigger would be a period after which a group is
marked again); every trigger is an entry change.

Pure: no I/O, nothing of the server; the caller says which entries changed and gives the
documents (rebuilt whole with :meth:`WeddingFindings.build` when a wedding is loaded, or when
a document was replaced by one the changes did not come from).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from pycrdt import Doc, Map

from .changes import EntryChange
from .findings_groups import FindingIndexes
from .findings_households import index_move
from .findings_kinds import FINDING_KINDS, FindingKind, Group, Ident, ident
from .model import DOCUMENT_KINDS, PAYMENT, Conflict, DocumentError, normal_label, parse_instant
from .schema import (
    ENTITIES,
    RECORDS,
    Assignment,
    Category,
    Guest,
    Household,
    Payment,
    SchemaProblem,
    Table,
    Task,
    TimelineItem,
    read_budget_settings,
    read_entry,
    read_menu_fields,
)

__all__ = ["FINDING_KINDS", "FindingKind", "Ident", "WeddingFindings", "ident"]

_KIND_OF_ROOT = {entity.collection: kind for kind, ents in ENTITIES.items() for entity in ents}
_ENTITY_OF_ROOT = {entity.collection: entity for ents in ENTITIES.values() for entity in ents}
_FIELDS = {
    root_name: {field.name: field for field in entity.fields}
    for root_name, entity in _ENTITY_OF_ROOT.items()
}
_SETTINGS = "settings"
_MENU = "menu"
_LABELS = (("vendor", "timeline.vendor_overlap"), ("location", "timeline.location_overlap"))


BETWEEN_EVERY = 64
"""Entries :meth:`WeddingFindings.build` reads between two calls of its ``between`` (about
2 ms of a guest list's)."""


class WeddingFindings(FindingIndexes):
    """The findings of one wedding's documents, kept current by :meth:`touch`."""

    # -- building and changing ------------------------------------------------------------

    @classmethod
    def build(
        cls, docs: Mapping[str, Doc[Any]], between: Callable[[], object] | None = None
    ) -> WeddingFindings:
        """Everything read from ``docs`` (missing kinds are empty); call :meth:`evaluate`
        next for the findings. ``between`` is called every :data:`BETWEEN_EVERY` entries
        (a worker thread's pause for the event loop)."""
        found = cls()
        read = 0
        for kind in DOCUMENT_KINDS:
            doc = docs.get(kind)
            found.sources[kind] = doc
            if doc is None:
                continue
            with doc.transaction():
                for entity in ENTITIES[kind]:
                    collection = doc.get(entity.collection, type=Map)
                    for key in list(collection.keys()):
                        found._read(doc, entity.collection, key)
                        read += 1
                        if between is not None and read % BETWEEN_EVERY == 0:
                            between()
                if kind == "budget":
                    found._read_settings(doc)
                if kind == "guests":
                    found._read_menu(doc)
        return found

    def touch(self, kind: str, doc: Doc[Any], entries: Iterable[tuple[str, str]]) -> None:
        """Entries ``(root, id)`` of document ``kind`` (whose content is ``doc``) changed:
        read them again and mark the groups they feed."""
        with doc.transaction():
            for root_name, key in entries:
                if root_name == _SETTINGS and kind == "budget":
                    self._read_settings(doc)
                elif root_name == _MENU and kind == "guests":
                    self._read_menu(doc)
                elif _KIND_OF_ROOT.get(root_name) == kind:
                    self._read(doc, root_name, key)

    def apply(self, kind: str, doc: Doc[Any], changes: Iterable[EntryChange]) -> None:
        """What :meth:`touch` does for the entries ``changes`` touched, reading from the
        changes what they say: a field (or several) set in an entry whose record is valid
        is checked by its rule alone, without reading the entry from ``doc``. Anything
        else (an entry that came, went or was overwritten whole, a text edited in place,
        an entry with a problem, a payment, whose date rule reads two fields) is read from
        ``doc``, after the others: ``doc`` is at least as new as every change."""
        rest = [(c.root, c.id) for c in changes if not self._patched(kind, c)]
        if rest:
            self.touch(kind, doc, rest)

    def _patched(self, kind: str, change: EntryChange) -> bool:
        root_name = change.root
        entity = _ENTITY_OF_ROOT.get(root_name)
        if (
            entity is None
            or entity is PAYMENT
            or _KIND_OF_ROOT[root_name] != kind
            or change.action != "updated"
            or change.replaced
            or change.edited
            or change.before.keys() != change.after.keys()  # an entry written whole
            or "value" in change.after  # a plain value written over the entry
            or (root_name, change.id) in self._problems
        ):
            return False
        records = self._records[root_name]
        old = records.get(change.id)
        if old is None:
            return False
        fields = _FIELDS[root_name]
        values: dict[str, Any] = {}
        for name, stored in change.after.items():
            field = fields.get(name)
            if field is None:
                continue  # not a field of the schema: nothing reads it
            if stored is None:
                if field.required:
                    return False
                values[name] = field.default
                continue
            try:
                values[name] = field.rule(stored)
            except DocumentError:
                return False  # a problem: read whole, as it says
        record = replace(old, **values)
        if record != old:
            records[change.id] = record
            getattr(self, f"_{root_name}_changed")(change.id, old, record)
        return True

    def _read(self, doc: Doc[Any], root_name: str, key: str) -> None:
        collection = doc.get(root_name, type=Map)
        problems: list[SchemaProblem] = []
        record = None
        if key in collection:
            entity = _ENTITY_OF_ROOT[root_name]
            record = read_entry(entity, RECORDS[entity], key, collection[key], problems)
        before = self._problems.get((root_name, key), ())
        if tuple(problems) != before:
            if problems:
                self._problems[root_name, key] = tuple(problems)
            else:
                del self._problems[root_name, key]
            self._dirty.add(("entry", root_name, key))
        records = self._records[root_name]
        old = records.get(key)
        if old == record:
            return
        if record is None:
            del records[key]
        else:
            records[key] = record
        getattr(self, f"_{root_name}_changed")(key, old, record)

    def _read_menu(self, doc: Doc[Any]) -> None:
        problems: list[SchemaProblem] = []
        read_menu_fields(doc, problems)
        if tuple(problems) != self._problems.get((_MENU, ""), ()):
            if problems:
                self._problems[_MENU, ""] = tuple(problems)
            else:
                self._problems.pop((_MENU, ""), None)
            self._dirty.add(("entry", _MENU, ""))

    def _read_settings(self, doc: Doc[Any]) -> None:
        settings, problems = read_budget_settings(doc)
        if tuple(problems) != self._problems.get(("settings", ""), ()):
            self._problems["settings", ""] = tuple(problems)
            self._dirty.add(("entry", "settings", ""))
        if (settings["currency"], settings["total"]) == (self._currency, self._total):
            return
        currency_changed = settings["currency"] != self._currency
        self._currency, self._total = settings["currency"], settings["total"]
        self._dirty.add(("budget",))
        if currency_changed:  # every message with an amount (rare: a budget's currency)
            self._dirty.update(("category", c) for c in self._records["categories"])
            for category, payments in self._by_category.items():
                if category not in self._records["categories"]:
                    self._dirty.update(("payment", p) for p in payments)

    # What each kind of entry feeds (see FINDING_KINDS): the indexes, and the groups.

    def _guests_changed(self, key: str, old: Guest | None, new: Guest | None) -> None:
        self._dirty.add(("assignment", key))
        assignment: Assignment | None = self._records["assignments"].get(key)
        if assignment is not None and assignment.seat is not None:
            self._dirty.add(("seat", assignment.table_id, assignment.seat))
        if old is None or new is None or _membership(old) != _membership(new):
            self._homes.guest_changed(key, old, new)  # who is in which household
        self._moved.add(key)  # an answer changed: who of its household may be seated
        hosts = {key}  # whose unnamed plus-one may have come or gone: their table's count
        for guest, sign in ((old, -1), (new, 1)):
            if guest is not None and guest.plus_one_of is not None:
                index_move(self._named, guest.plus_one_of, key, sign)
                hosts.add(guest.plus_one_of)
        for host in hosts:
            seat: Assignment | None = self._records["assignments"].get(host)
            if seat is not None:
                self._dirty.add(("table", seat.table_id))

    def _households_changed(self, key: str, old: Household | None, new: Household | None) -> None:
        self._homes.entry_changed(key, old, new)  # free-text guests match entries by name

    def _tables_changed(self, key: str, old: Table | None, new: Table | None) -> None:
        self._dirty.add(("table", key))
        self._dirty.update(("assignment", g) for g in self._by_table.get(key, ()))
        self._moved.update(self._by_table.get(key, ()))  # their households name the table
        self._dirty.update(("seat", key, s) for s in self._seats.get(key, ()))

    def _assignments_changed(
        self, key: str, old: Assignment | None, new: Assignment | None
    ) -> None:
        self._dirty.add(("assignment", key))
        self._moved.add(key)
        for a, sign in ((old, -1), (new, 1)):
            if a is None:
                continue
            self._dirty.add(("table", a.table_id))
            index_move(self._by_table, a.table_id, key, sign)
            if a.seat is not None:
                self._dirty.add(("seat", a.table_id, a.seat))
                index_move(self._on_seat, (a.table_id, a.seat), key, sign)
                if sign > 0:
                    self._seats[a.table_id].add(a.seat)
                elif (a.table_id, a.seat) not in self._on_seat:
                    seats = self._seats[a.table_id]
                    seats.discard(a.seat)
                    if not seats:
                        del self._seats[a.table_id]

    def _items_changed(self, key: str, old: TimelineItem | None, new: TimelineItem | None) -> None:
        self._dirty.add(("item", key))
        for item, sign in ((old, -1), (new, 1)):
            if item is None or not _active(item):
                continue
            for field, code in _LABELS:
                label = getattr(item, field)
                if label is not None:
                    group = (code, normal_label(label))
                    self._dirty.add(("overlap", *group))
                    index_move(self._labelled, group, key, sign)

    def _categories_changed(self, key: str, old: Category | None, new: Category | None) -> None:
        self._dirty.update((("category", key), ("budget",)))
        self._planned += (new.planned if new else 0) - (old.planned if old else 0)
        if (old is None) != (new is None):  # its payments' category came or went
            self._dirty.update(("payment", p) for p in self._by_category.get(key, ()))

    def _payments_changed(self, key: str, old: Payment | None, new: Payment | None) -> None:
        self._dirty.update((("payment", key), ("budget",)))
        for p, sign in ((old, -1), (new, 1)):
            if p is None:
                continue
            self._dirty.add(("category", p.category_id))
            index_move(self._by_category, p.category_id, key, sign)
            self._spent[p.category_id] += sign * p.amount
            if not self._spent[p.category_id] and p.category_id not in self._by_category:
                del self._spent[p.category_id]
            self._paid += sign * p.amount
            if p.scheduled:
                self._scheduled_in[p.category_id] += sign * p.amount
                if not self._scheduled_in[p.category_id]:
                    del self._scheduled_in[p.category_id]
                self._scheduled += sign * p.amount

    def _tasks_changed(self, key: str, old: Task | None, new: Task | None) -> None:
        """Tasks feed no finding of their own (a task's entry problems are reported as
        every entry's are)."""

    def _vendors_changed(self, key: str, old: object, new: object) -> None:
        """The vendor directory feeds no finding of its own (an entry's problems are
        reported as every entry's are)."""

    # -- findings -------------------------------------------------------------------------

    def evaluate(self) -> set[Ident]:
        """Recompute the groups marked since the last call; the identities of the findings
        that came, went or changed (their message) meanwhile."""
        changed: set[Ident] = set()
        self._refresh_households()
        dirty, self._dirty = self._dirty, set()
        for group in dirty:
            new = tuple(self._evaluate(group))
            old = self._groups.get(group, ())
            if new == old:
                continue
            if new:
                self._groups[group] = new
            else:
                self._groups.pop(group, None)
            for conflict in old:
                key = ident(conflict)
                holders = self._current[key]
                del holders[group]
                if not holders:
                    del self._current[key]
                    for path in conflict.paths:
                        index_move(self._by_path, path, key, -1)
                changed.add(key)
            for conflict in new:
                key = ident(conflict)
                if key not in self._current:
                    self._current[key] = {}
                    for path in conflict.paths:
                        index_move(self._by_path, path, key, 1)
                self._current[key][group] = conflict
                changed.add(key)
        return changed

    def _refresh_households(self) -> None:
        """Mark the households whose people were moved or answered, and those whose name
        or people changed (the guests and household entries that changed read again: see
        :class:`~documents.findings_households.HouseholdIndex`)."""
        records = self._records
        homes = self._homes
        for household_id in homes.refresh(records["guests"], records["households"]):
            self._dirty.add(("household", household_id))
        for guest_id in self._moved:
            holder = homes.of.get(guest_id)
            if holder is not None:
                self._dirty.add(("household", holder))
        self._moved.clear()

    def get(self, key: Ident) -> Conflict | None:
        """The current finding of identity ``key``, if any."""
        holders = self._current.get(key)
        return None if not holders else max(holders.values())

    def findings(self) -> list[Conflict]:
        """Every current finding, sorted: what :func:`documents.check` gives for the
        documents as touched (once :meth:`evaluate` has run)."""
        return sorted(max(holders.values()) for holders in self._current.values())

    def related(self, conflict: Conflict) -> tuple[str, ...]:
        """What the conflicts feature's ``related_paths`` gives, from the indexes."""
        if conflict.code != "seating.table_over_capacity" or not conflict.paths:
            return ()
        table = conflict.paths[0].rsplit("/", 1)[-1]
        return tuple(sorted(f"seating/assignments/{g}" for g in self._by_table.get(table, ())))

    def touching(self, paths: Iterable[str]) -> set[Ident]:
        """The current findings whose entries (or related entries) include one of
        ``paths``: whose writers may have changed."""
        found: set[Ident] = set()
        for path in paths:
            found |= self._by_path.get(path, set())
            if path.startswith("seating/assignments/"):
                a = self._records["assignments"].get(path.rsplit("/", 1)[-1])
                key = (
                    ("seating.table_over_capacity", (f"seating/tables/{a.table_id}",))
                    if a
                    else None
                )
                if key is not None and key in self._current:
                    found.add(key)
        return found

    def _evaluate(self, group: Group) -> list[Conflict]:
        what = group[0]
        if what == "entry":
            root_name = group[1]
            kind = (
                "budget"
                if root_name == _SETTINGS
                else "guests"
                if root_name == _MENU
                else _KIND_OF_ROOT[root_name]
            )
            problems = self._problems.get((root_name, group[2]), ())
            return [Conflict(f"{kind}.invalid_entry", (p.path,), p.message) for p in problems]
        if what == "assignment":
            return self._assignment(group[1])
        if what == "table":
            return self._table(group[1])
        if what == "seat":
            return self._seat(group[1], group[2])
        if what == "household":
            return self._household(group[1])
        if what == "item":
            return self._item(group[1])
        if what == "overlap":
            return self._overlap(group[1], group[2])
        if what == "payment":
            return self._payment(group[1])
        if what == "category":
            return self._category(group[1])
        assert what == "budget"
        return self._budget()


def _membership(guest: Guest) -> tuple[str | None, str | None, str | None]:
    """What of a guest decides their household (an answer or a meal does not)."""
    return guest.household, guest.household_id, guest.plus_one_of


def _active(item: TimelineItem) -> bool:
    """Whether an item takes part in overlaps (see :func:`documents.invariants`)."""
    return item.status != "cancelled" and not parse_instant(item.end) < parse_instant(item.start)
