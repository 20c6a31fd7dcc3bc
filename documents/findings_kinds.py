"""The kinds of finding the incremental findings keep (:data:`FINDING_KINDS`: each kind's
group, the indexes it reads, its triggers) and a finding's identity (:data:`Ident`).

The documentation of :class:`documents.findings.WeddingFindings`, apart from its code; the
code routes each trigger.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .model import Conflict

__all__ = ["FINDING_KINDS", "FindingKind", "Group", "Ident", "ident"]

Ident = tuple[str, tuple[str, ...]]
"""A finding's identity: its code and paths (what its stable id is made of)."""
Group = tuple[Any, ...]


def ident(conflict: Conflict) -> Ident:
    return conflict.code, conflict.paths


@dataclass(frozen=True, slots=True)
class FindingKind:
    """How one kind of finding is kept: the group a finding belongs to (one evaluation),
    the indexes it reads, and what marks its group for evaluation again."""

    codes: tuple[str, ...]
    group: str
    indexes: tuple[str, ...]
    triggers: tuple[str, ...]
    clock: float | None = None
    """Seconds after which the group is evaluated again although nothing changed (none
    needs it today)."""


FINDING_KINDS: tuple[FindingKind, ...] = (
    FindingKind(
        (
            "guests.invalid_entry",
            "seating.invalid_entry",
            "timeline.invalid_entry",
            "tasks.invalid_entry",
        ),
        "the entry",
        ("each entry's problems",),
        ("that entry",),
    ),
    FindingKind(
        ("guests.invalid_entry",),
        "the guests' menu",
        ("the menu's problems",),
        ("guests/menu",),
    ),
    FindingKind(
        ("budget.invalid_entry",),
        "the entry (or the budget's settings)",
        ("each entry's problems",),
        ("that entry", "budget/settings"),
    ),
    FindingKind(
        (
            "seating.unknown_guest",
            "seating.declined_guest",
            "seating.unknown_table",
            "seating.seat_out_of_range",
        ),
        "one assignment",
        ("guests by id", "tables by id", "assignments by table"),
        ("the assignment", "the guest of that id", "the assignment's table"),
    ),
    FindingKind(
        ("seating.table_over_capacity",),
        "one table",
        ("assignments by table", "named plus-ones by host"),
        (
            "the table",
            "an assignment to or from it",
            "a seated guest's plus-one (unnamed ones sit with their host)",
        ),
    ),
    FindingKind(
        ("seating.household_split",),
        "one household",
        ("households by guest (from the guest list)", "assignments by table"),
        (
            "a guest or household entry (who is in which household)",
            "an assignment of one of its people",
            "a table one of them sits at (its name)",
        ),
    ),
    FindingKind(
        ("seating.seat_double_booked",),
        "one seat of one table",
        ("assignments by seat", "seats by table", "guests by id"),
        ("an assignment to or from the seat", "the table", "a seated guest (their name)"),
    ),
    FindingKind(("timeline.ends_before_start",), "one item", (), ("the item",)),
    FindingKind(
        ("timeline.vendor_overlap", "timeline.location_overlap"),
        "one vendor or one location (its normalized label)",
        ("active items by vendor", "active items by location"),
        ("an item with that label, before or after the change",),
    ),
    FindingKind(
        ("budget.unknown_category",),
        "one payment",
        ("payments by category", "categories by id"),
        ("the payment", "its category", "budget/settings (currency)"),
    ),
    FindingKind(
        ("budget.category_over_plan",),
        "one category",
        ("sum of payments by category (paid and scheduled)", "sum of scheduled by category"),
        ("the category", "a payment to or from it", "budget/settings (currency)"),
    ),
    FindingKind(
        ("budget.over_total", "budget.plan_over_total"),
        "the budget",
        ("sum of all payments (paid and scheduled)", "sum of scheduled", "sum of all plans"),
        ("any payment", "any category", "budget/settings"),
    ),
)
"""Every kind of finding :func:`documents.check` reports, as :mod:`documents.findings` keeps it."""
