"""Invariant checks: the conflicts a CRDT cannot rule out, reported for people to resolve.

The layout already makes some conflicts impossible (one guest in two seats, two copies of
one guest). What remains comes from concurrent edits that each looked fine on their own
replica (two people filling the last seat of a table, one shrinking a table while another
seats a guest, a payment recorded for a category someone removed), from soft constraints
operations accept (overlapping bookings, spending over plan), or from foreign clients.

Every checker is a pure function of the documents it needs; findings are sorted, so equal
documents give equal lists on every replica.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from itertools import combinations
from typing import Any

from pycrdt import Doc

from .model import DOCUMENT_KINDS, Conflict, DocumentError, parse_instant, shown
from .schema import (
    Budget,
    GuestList,
    SchemaProblem,
    SeatingPlan,
    Timeline,
    TimelineItem,
    read_budget,
    read_guests,
    read_seating,
    read_timeline,
)

_ZERO_DECIMAL = frozenset(
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split()
)
_THREE_DECIMAL = frozenset("BHD IQD JOD KWD LYD OMR TND".split())


def format_money(amount: int, currency: str | None) -> str:
    """``1250050, "EUR"`` -> ``"12,500.50 EUR"``."""
    if currency is None:
        return f"{amount:,} (minor units, no currency set)"
    decimals = 0 if currency in _ZERO_DECIMAL else 3 if currency in _THREE_DECIMAL else 2
    if decimals == 0:
        return f"{amount:,} {currency}"
    major, minor = divmod(amount, 10**decimals)
    return f"{major:,}.{minor:0{decimals}d} {currency}"


def _invalid(kind: str, problems: Iterable[SchemaProblem]) -> list[Conflict]:
    return [Conflict(f"{kind}.invalid_entry", (p.path,), p.message) for p in problems]


def check_guests(guests: GuestList) -> list[Conflict]:
    return sorted(_invalid("guests", guests.problems))


def check_seating(seating: SeatingPlan, guests: GuestList) -> list[Conflict]:
    found = _invalid("seating", seating.problems)

    def who(guest_id: str) -> str:
        guest = guests.guests.get(guest_id)
        return guest.name if guest is not None else f"guest '{guest_id}'"

    at_table: dict[str, list[str]] = defaultdict(list)
    on_seat: dict[tuple[str, int], list[str]] = defaultdict(list)
    for assignment in seating.assignments.values():
        path = f"seating/assignments/{assignment.id}"
        guest = guests.guests.get(assignment.id)
        table = seating.tables.get(assignment.table_id)
        table_path = f"seating/tables/{assignment.table_id}"
        if guest is None:
            found.append(
                Conflict(
                    "seating.unknown_guest",
                    (path,),
                    f"A seat is assigned to guest '{assignment.id}', who is not on the guest list.",
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
                    f"{who(assignment.id)} is seated at table '{assignment.table_id}', "
                    "which does not exist.",
                )
            )
            continue
        at_table[table.id].append(assignment.id)
        if assignment.seat is None:
            continue
        on_seat[table.id, assignment.seat].append(assignment.id)
        if assignment.seat > table.capacity:
            found.append(
                Conflict(
                    "seating.seat_out_of_range",
                    (path, table_path),
                    f"{who(assignment.id)} has seat {assignment.seat} at table "
                    f"'{table.name}', which seats {table.capacity}.",
                )
            )
    for table_id, seated in at_table.items():
        table = seating.tables[table_id]
        if len(seated) > table.capacity:
            found.append(
                Conflict(
                    "seating.table_over_capacity",
                    (f"seating/tables/{table_id}",),
                    f"Table '{table.name}' has {len(seated)} guests but seats {table.capacity}.",
                )
            )
    for (table_id, seat), seated in on_seat.items():
        if len(seated) > 1:
            names = ", ".join(sorted(who(guest_id) for guest_id in seated))
            found.append(
                Conflict(
                    "seating.seat_double_booked",
                    tuple(sorted(f"seating/assignments/{guest_id}" for guest_id in seated)),
                    f"Seat {seat} at table '{seating.tables[table_id].name}' is assigned to "
                    f"{len(seated)} guests: {names}.",
                )
            )
    return sorted(found)


def _normal(label: str) -> str:
    return " ".join(label.split()).casefold()


def _overlaps(
    items: Iterable[TimelineItem], key: Callable[[TimelineItem], str | None], code: str, what: str
) -> list[Conflict]:
    groups: dict[str, list[TimelineItem]] = defaultdict(list)
    for item in items:
        label = key(item)
        if label is not None:
            groups[_normal(label)].append(item)
    found: list[Conflict] = []
    for group in groups.values():
        for first, second in combinations(sorted(group, key=lambda item: item.id), 2):
            zone = parse_instant(first.start).tzinfo  # show the window in one offset
            start = max(parse_instant(first.start), parse_instant(second.start)).astimezone(zone)
            end = min(parse_instant(first.end), parse_instant(second.end)).astimezone(zone)
            if start < end:
                found.append(
                    Conflict(
                        code,
                        (f"timeline/items/{first.id}", f"timeline/items/{second.id}"),
                        f"'{first.title}' and '{second.title}' both use {what} "
                        f"'{key(first)}' from {start.isoformat()} to {end.isoformat()}.",
                    )
                )
    return found


def check_timeline(timeline: Timeline) -> list[Conflict]:
    found = _invalid("timeline", timeline.problems)
    active: list[TimelineItem] = []
    for item in timeline.items.values():
        if parse_instant(item.end) < parse_instant(item.start):
            found.append(
                Conflict(
                    "timeline.ends_before_start",
                    (f"timeline/items/{item.id}",),
                    f"'{item.title}' ends ({item.end}) before it starts ({item.start}).",
                )
            )
        elif item.status != "cancelled":
            active.append(item)
    found += _overlaps(active, lambda item: item.vendor, "timeline.vendor_overlap", "vendor")
    found += _overlaps(active, lambda item: item.location, "timeline.location_overlap", "location")
    return sorted(found)


def check_budget(budget: Budget) -> list[Conflict]:
    found = _invalid("budget", budget.problems)

    def money(amount: int) -> str:
        return format_money(amount, budget.currency)

    spent: dict[str, int] = defaultdict(int)
    for payment in budget.payments.values():
        spent[payment.category_id] += payment.amount
        if payment.category_id not in budget.categories:
            found.append(
                Conflict(
                    "budget.unknown_category",
                    (f"budget/payments/{payment.id}",),
                    f"Payment '{payment.id}' of {money(payment.amount)} is for category "
                    f"'{payment.category_id}', which does not exist.",
                )
            )
    for category in budget.categories.values():
        paid = spent.get(category.id, 0)
        if paid > category.planned:
            found.append(
                Conflict(
                    "budget.category_over_plan",
                    (f"budget/categories/{category.id}",),
                    f"Payments for '{category.name}' total {money(paid)} "
                    f"but the plan is {money(category.planned)}.",
                )
            )
    if budget.total is not None:
        paid = sum(spent.values())
        if paid > budget.total:
            found.append(
                Conflict(
                    "budget.over_total",
                    ("budget/settings/total",),
                    f"Payments total {money(paid)} but the budget is {money(budget.total)}.",
                )
            )
        planned = sum(category.planned for category in budget.categories.values())
        if planned > budget.total:
            found.append(
                Conflict(
                    "budget.plan_over_total",
                    ("budget/settings/total",),
                    f"Categories plan {money(planned)} but the budget is {money(budget.total)}.",
                )
            )
    return sorted(found)


def check_document(kind: str, docs: Mapping[str, Doc[Any]]) -> list[Conflict]:
    """The findings about document ``kind`` of a wedding, sorted.

    ``docs`` maps kinds to the wedding's documents; the checks read the ones they need
    (seating also reads ``guests``) and treat missing ones as empty.
    """
    if kind == "guests":
        return check_guests(read_guests(docs.get("guests")))
    if kind == "seating":
        return check_seating(read_seating(docs.get("seating")), read_guests(docs.get("guests")))
    if kind == "timeline":
        return check_timeline(read_timeline(docs.get("timeline")))
    if kind == "budget":
        return check_budget(read_budget(docs.get("budget")))
    raise DocumentError(f"unknown document kind {shown(kind)}", "kind")


def check(docs: Mapping[str, Doc[Any]]) -> list[Conflict]:
    """Every finding about a wedding's documents (missing ones count as empty), sorted."""
    found: list[Conflict] = []
    for kind in DOCUMENT_KINDS:
        found += check_document(kind, docs)
    return sorted(found)
