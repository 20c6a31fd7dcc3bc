"""The indexes a wedding's incremental findings are read from, and each group's findings.

:class:`FindingIndexes` holds what :class:`documents.findings.WeddingFindings` keeps of a
wedding (each entry's record, the indexes, the findings by group) and computes one group's
findings from them (:meth:`FindingIndexes._assignment`, :meth:`FindingIndexes._table`...);
``WeddingFindings`` keeps them current from the entries each change touched and says which
groups to evaluate again.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pycrdt import Doc

from .findings_households import HouseholdIndex
from .findings_kinds import Group, Ident
from .model import DOCUMENT_KINDS, Conflict, format_money, parse_instant
from .schema import (
    ENTITIES,
    Assignment,
    Category,
    Guest,
    Payment,
    SchemaProblem,
    Table,
    TimelineItem,
)

__all__ = ["FindingIndexes"]

_COLLECTIONS = tuple(entity.collection for ents in ENTITIES.values() for entity in ents)


class FindingIndexes:
    """The records, indexes and findings of one wedding's documents, and each group's
    evaluation from them (kept current by :class:`documents.findings.WeddingFindings`)."""

    def __init__(self) -> None:
        self.sources: dict[str, Doc[Any] | None] = dict.fromkeys(DOCUMENT_KINDS)
        """The document each kind was read from (changes are applied from it)."""
        self._records: dict[str, dict[str, Any]] = {root: {} for root in _COLLECTIONS}
        self._problems: dict[tuple[str, str], tuple[SchemaProblem, ...]] = {}
        self._currency: str | None = None
        self._total: int | None = None
        # indexes
        self._by_table: dict[str, set[str]] = defaultdict(set)
        self._on_seat: dict[tuple[str, int], set[str]] = defaultdict(set)
        self._seats: dict[str, set[int]] = defaultdict(set)
        self._labelled: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._by_category: dict[str, set[str]] = defaultdict(set)
        self._spent: dict[str, int] = defaultdict(int)  # paid and scheduled, by category
        self._scheduled_in: dict[str, int] = defaultdict(int)  # scheduled, by category
        self._paid = 0  # paid and scheduled: what the budget is committed to
        self._scheduled = 0
        self._planned = 0
        self._named: dict[str, set[str]] = defaultdict(set)  # host -> named plus-ones
        self._homes = HouseholdIndex()  # who is in which household
        self._moved: set[str] = set()  # guests whose assignment changed since evaluate
        # findings
        self._groups: dict[Group, tuple[Conflict, ...]] = {}
        self._dirty: set[Group] = set()
        self._current: dict[Ident, dict[Group, Conflict]] = {}
        self._by_path: dict[str, set[Ident]] = defaultdict(set)

    def _who(self, guest_id: str) -> str:
        guest = self._records["guests"].get(guest_id)
        return guest.name if guest is not None else f"guest '{guest_id}'"

    def _assignment(self, key: str) -> list[Conflict]:
        a: Assignment | None = self._records["assignments"].get(key)
        if a is None:
            return []
        found: list[Conflict] = []
        path = f"seating/assignments/{key}"
        guest: Guest | None = self._records["guests"].get(key)
        table: Table | None = self._records["tables"].get(a.table_id)
        if guest is None:
            found.append(
                Conflict(
                    "seating.unknown_guest",
                    (path,),
                    f"A seat is assigned to guest '{key}', who is not on the guest list.",
                )
            )
        elif guest.rsvp == "declined":
            found.append(
                Conflict(
                    "seating.declined_guest",
                    (f"guests/guests/{guest.id}", path),
                    f"{guest.name} declined but has a seat"
                    + (f" at table '{table.name}'." if table is not None else "."),
                )
            )
        if table is None:
            found.append(
                Conflict(
                    "seating.unknown_table",
                    (path,),
                    f"{self._who(key)} is seated at table '{a.table_id}', which does not exist.",
                )
            )
        elif a.seat is not None and a.seat > table.capacity:
            found.append(
                Conflict(
                    "seating.seat_out_of_range",
                    (path, f"seating/tables/{a.table_id}"),
                    f"{self._who(key)} has seat {a.seat} at table "
                    f"'{table.name}', which seats {table.capacity}.",
                )
            )
        return found

    def _unnamed(self, guest_id: str) -> bool:
        """Whether a guest brings an unnamed plus-one (who sits with them)."""
        guest: Guest | None = self._records["guests"].get(guest_id)
        return guest is not None and guest.plus_one and not self._named.get(guest_id)

    def _table(self, key: str) -> list[Conflict]:
        table: Table | None = self._records["tables"].get(key)
        guests = self._by_table.get(key, ())
        seated = len(guests)
        extra = sum(1 for g in guests if self._unnamed(g))
        if table is None or seated + extra <= table.capacity:
            return []
        who = f"{seated} guests" + (
            f" and {extra} plus-one{'s' if extra > 1 else ''}" if extra else ""
        )
        return [
            Conflict(
                "seating.table_over_capacity",
                (f"seating/tables/{key}",),
                f"Table '{table.name}' has {who} but seats {table.capacity}.",
            )
        ]

    def _household(self, key: str) -> list[Conflict]:
        found = self._homes.found.get(key)
        if found is None:
            return []
        name, members = found
        at: dict[str, list[str]] = defaultdict(list)
        assignments = self._records["assignments"]
        for guest_id in sorted(members):
            guest: Guest | None = self._records["guests"].get(guest_id)
            a: Assignment | None = assignments.get(guest_id)
            if guest is not None and guest.rsvp != "declined" and a is not None:
                at[a.table_id].append(guest_id)
        if len(at) < 2:
            return []
        tables = self._records["tables"]
        where = ", ".join(f"'{tables[t].name}'" if t in tables else f"'{t}'" for t in sorted(at))
        seated = sorted(g for people in at.values() for g in people)
        return [
            Conflict(
                "seating.household_split",
                tuple(f"seating/assignments/{g}" for g in seated),
                f"Household '{name}' is seated at {len(at)} tables ({where}); seat them together.",
            )
        ]

    def _seat(self, key: str, seat: int) -> list[Conflict]:
        table: Table | None = self._records["tables"].get(key)
        seated = self._on_seat.get((key, seat), set())
        if table is None or len(seated) < 2:
            return []
        names = ", ".join(sorted(self._who(g) for g in seated))
        return [
            Conflict(
                "seating.seat_double_booked",
                tuple(sorted(f"seating/assignments/{g}" for g in seated)),
                f"Seat {seat} at table '{table.name}' is assigned to "
                f"{len(seated)} guests: {names}.",
            )
        ]

    def _item(self, key: str) -> list[Conflict]:
        item: TimelineItem | None = self._records["items"].get(key)
        if item is None or not parse_instant(item.end) < parse_instant(item.start):
            return []
        return [
            Conflict(
                "timeline.ends_before_start",
                (f"timeline/items/{item.id}",),
                f"'{item.title}' ends ({item.end}) before it starts ({item.start}).",
            )
        ]

    def _overlap(self, code: str, label: str) -> list[Conflict]:
        field, what = (
            ("vendor", "vendor") if code == "timeline.vendor_overlap" else ("location",) * 2
        )
        items = self._records["items"]
        group = [items[i] for i in sorted(self._labelled.get((code, label), ()))]
        found: list[Conflict] = []
        for i, j in _overlapping([(parse_instant(x.start), parse_instant(x.end)) for x in group]):
            first, second = group[i], group[j]
            zone = parse_instant(first.start).tzinfo  # show the window in one offset
            start = max(parse_instant(first.start), parse_instant(second.start)).astimezone(zone)
            end = min(parse_instant(first.end), parse_instant(second.end)).astimezone(zone)
            found.append(
                Conflict(
                    code,
                    (f"timeline/items/{first.id}", f"timeline/items/{second.id}"),
                    f"'{first.title}' and '{second.title}' both use {what} "
                    f"'{getattr(first, field)}' from {start.isoformat()} to "
                    f"{end.isoformat()}.",
                )
            )
        return found

    def _money(self, amount: int) -> str:
        return format_money(amount, self._currency)

    def _payment(self, key: str) -> list[Conflict]:
        p: Payment | None = self._records["payments"].get(key)
        if p is None or p.category_id in self._records["categories"]:
            return []
        return [
            Conflict(
                "budget.unknown_category",
                (f"budget/payments/{p.id}",),
                f"Payment '{p.id}' of {self._money(p.amount)} is for category "
                f"'{p.category_id}', which does not exist.",
            )
        ]

    def _category(self, key: str) -> list[Conflict]:
        category: Category | None = self._records["categories"].get(key)
        paid = self._spent.get(key, 0)
        if category is None or paid <= category.planned:
            return []
        return [
            Conflict(
                "budget.category_over_plan",
                (f"budget/categories/{category.id}",),
                f"Payments for '{category.name}' total {self._money(paid)}"
                f"{self._split(paid, self._scheduled_in.get(key, 0))} "
                f"but the plan is {self._money(category.planned)}.",
            )
        ]

    def _split(self, committed: int, scheduled: int) -> str:
        """How much of ``committed`` is paid and how much only scheduled, in words."""
        if not scheduled:
            return " paid (none scheduled)"
        paid = self._money(committed - scheduled)
        return f" paid and scheduled ({paid} paid, {self._money(scheduled)} scheduled)"

    def _budget(self) -> list[Conflict]:
        if self._total is None:
            return []
        found: list[Conflict] = []
        total = self._money(self._total)
        if self._paid > self._total:
            found.append(
                Conflict(
                    "budget.over_total",
                    ("budget/settings/total",),
                    f"Payments total {self._money(self._paid)}"
                    f"{self._split(self._paid, self._scheduled)} but the budget is {total}.",
                )
            )
        if self._planned > self._total:
            found.append(
                Conflict(
                    "budget.plan_over_total",
                    ("budget/settings/total",),
                    f"Categories plan {self._money(self._planned)} but the budget is {total}.",
                )
            )
        return found


def _overlapping(windows: Sequence[tuple[datetime, datetime]]) -> list[tuple[int, int]]:
    """The pairs ``(i, j)``, ``i < j``, of ``windows`` (start, end) that overlap, in that
    order. A sweep in start order compares a window only with those still open when it
    starts: a label's k items cost k log k and the overlaps found, not k² comparisons (a
    long day's one location is evaluated again at every edit of one of its items)."""
    order = sorted((start, end, index) for index, (start, end) in enumerate(windows) if start < end)
    open_: list[tuple[datetime, int]] = []  # a heap of (end, index) of the open windows
    pairs: list[tuple[int, int]] = []
    for start, end, index in order:
        while open_ and open_[0][0] <= start:
            heapq.heappop(open_)  # ended: overlaps nothing that starts from here on
        # Every window still open started no later and ends after this one starts.
        pairs.extend((min(index, other), max(index, other)) for _, other in open_)
        heapq.heappush(open_, (end, index))
    pairs.sort()
    return pairs
