"""Delays that ripple: which items of the day a late item moves, and to when. Pure.

An item running ``minutes`` late moves by that much (its length kept). Then, in the order
of their start (ties by id), every later item *of the same day* (its start's date in the
wedding's zone) that depends on a moved item moves too, transitively:

- an item that ``follows`` a moved item moves by as much as that item did (the gap between
  them is kept);
- an item of the same vendor as a moved item moves only if it would otherwise start
  before that item's new end, and then just enough to start at that end;
- an item marked ``fixed`` (the ceremony) never moves, and an item that follows a fixed
  item does not move either (it is tied to something that keeps its time).

An item reached both ways moves by the larger amount. Earlier items, items of other days and
items that depend on nothing moved keep their times. The work is one pass over the day's
items in start order, with a dictionary per vendor: bounded by the number of items.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

__all__ = ["DelayError", "Move", "Planned", "Ripple", "ripple"]

MAX_MINUTES = 24 * 60
"""The longest delay one report may give (a day): a bound, and a typo guard."""


class DelayError(ValueError):
    """The delay cannot be made: ``field`` names what is at fault."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Planned:
    """A timeline item as the ripple reads it."""

    id: str
    start: datetime
    end: datetime
    vendor: str | None = None
    """The item's vendor key (:func:`documents.vendors.vendor_key`), if it has one."""
    follows: str | None = None
    """The id of the item it comes after."""
    fixed: bool = False


@dataclass(frozen=True)
class Move:
    """One item's old and new times."""

    id: str
    start: datetime
    end: datetime
    new_start: datetime
    new_end: datetime
    vendor: str | None = None

    @property
    def minutes(self) -> int:
        return int((self.new_start - self.start).total_seconds() // 60)


@dataclass(frozen=True)
class Ripple:
    """What a delay moves: ``moves`` (the delayed item first, then in start order), the
    fixed items of the day after it that keep their times, and the vendors of the moved
    items (each once, in the order of their first move)."""

    moves: tuple[Move, ...]
    fixed: tuple[str, ...]

    @property
    def vendors(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.vendor for m in self.moves if m.vendor is not None))


def ripple(
    items: Iterable[Planned],
    delayed: str,
    minutes: int,
    day_of: Callable[[datetime], date],
) -> Ripple:
    """The moves of ``delayed`` running ``minutes`` late (see the module docstring);
    ``day_of`` gives the wedding's day of an instant (its zone). :class:`DelayError` for an
    unknown or fixed item, or minutes outside 1 to :data:`MAX_MINUTES`."""
    if not 1 <= minutes <= MAX_MINUTES:
        raise DelayError(f"must be 1 to {MAX_MINUTES} minutes, got {minutes}", "minutes")
    by_id: Mapping[str, Planned] = {i.id: i for i in items}
    late = by_id.get(delayed)
    if late is None:
        raise DelayError("not a timeline item of this wedding", "item")
    if late.fixed:
        raise DelayError("this item is fixed: it keeps its time", "item")
    day = day_of(late.start)
    later = sorted(
        (
            i
            for i in by_id.values()
            if i.id != late.id and (i.start, i.id) > (late.start, late.id)
            and day_of(i.start) == day
        ),
        key=lambda i: (i.start, i.id),
    )  # fmt: skip
    shift = timedelta(minutes=minutes)
    moved: dict[str, timedelta] = {late.id: shift}
    ends: dict[str, datetime] = {}  # vendor -> the latest new end of its moved items
    if late.vendor is not None:
        ends[late.vendor] = late.end + shift
    fixed: list[str] = []
    for item in later:
        if item.fixed:
            fixed.append(item.id)
            continue
        if item.follows is not None and by_id.get(item.follows, item).fixed:
            continue
        by = timedelta(0)
        if item.follows is not None and item.follows in moved:
            by = moved[item.follows]
        if item.vendor is not None and item.vendor in ends:
            by = max(by, ends[item.vendor] - item.start)
        if by <= timedelta(0):
            continue
        moved[item.id] = by
        if item.vendor is not None:
            ends[item.vendor] = max(ends.get(item.vendor, item.end + by), item.end + by)
    moves = tuple(
        Move(i.id, i.start, i.end, i.start + moved[i.id], i.end + moved[i.id], i.vendor)
        for i in (late, *later)
        if i.id in moved
    )
    return Ripple(moves, tuple(fixed))
