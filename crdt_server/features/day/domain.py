"""The wedding day's rules, pure: which vendors are due when, the day-of window, and each
item's live state, all derived from the timeline's JSON view and the clock (never written
into the document)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from crdt_server.documents.model import DocumentError, local_moment, parse_instant, zone_of
from crdt_server.documents.vendors import (
    NAME_PREFIX,
    Vendor,
    name_key,
    read_directory,
    vendor_key,
)

__all__ = [
    "CHECK_IN_STATUSES",
    "DAY_OPENS",
    "LEAD_TIME",
    "ItemState",
    "Window",
    "call_times",
    "day_items",
    "day_window",
    "days_with_items",
    "live_state",
    "resolve_vendor",
]

CHECK_IN_STATUSES = ("arrived", "running_late")
"""What a check-in says: the vendor is there, or is on the way and late."""
DAY_OPENS = time(5, 0)
"""The day-of window opens at this local time at the latest."""
LEAD_TIME = timedelta(hours=2)
"""The window opens this long before the day's first item (when earlier than 05:00) and
closes this long after its last item ends."""
ItemState = Literal["upcoming", "in_progress", "late", "done"]


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def holds(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_instant(value)
    except (DocumentError, ValueError):
        return None


def _active(items: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The items with readable times that are not cancelled."""
    return {
        item_id: item
        for item_id, item in items.items()
        if isinstance(item, Mapping)
        and item.get("status") != "cancelled"
        and _moment(item.get("start")) is not None
        and _moment(item.get("end")) is not None
    }


def local_day(moment: datetime, zone: str | None) -> date:
    return moment.astimezone(zone_of(zone)).date()


def day_items(timeline: Mapping[str, Any], day: date, zone: str | None) -> dict[str, Any]:
    """The day's items (by the wedding's zone, of their start), id -> item, by start."""
    items = timeline.get("items")
    found = _active(items if isinstance(items, Mapping) else {})
    chosen = {
        item_id: item for item_id, item in found.items() if local_day(_start(item), zone) == day
    }
    return dict(sorted(chosen.items(), key=lambda pair: (_start(pair[1]), pair[0])))


def _start(item: Mapping[str, Any]) -> datetime:
    moment = _moment(item.get("start"))
    assert moment is not None
    return moment


def _end(item: Mapping[str, Any]) -> datetime:
    moment = _moment(item.get("end"))
    assert moment is not None
    return moment


def days_with_items(timeline: Mapping[str, Any], zone: str | None) -> list[date]:
    """The local days on which some item starts, first first."""
    items = timeline.get("items")
    found = _active(items if isinstance(items, Mapping) else {})
    return sorted({local_day(_start(item), zone) for item in found.values()})


def day_window(timeline: Mapping[str, Any], day: date, zone: str | None) -> Window | None:
    """The day-of window of ``day``: from 05:00 in the zone, or two hours before the
    day's first item when that is earlier, until two hours after its last item ends;
    ``None`` for a day without items."""
    items = day_items(timeline, day, zone)
    if not items:
        return None
    first = min(_start(item) for item in items.values())
    last = max(_end(item) for item in items.values())
    opens = min(local_moment(day, DAY_OPENS, zone), first - LEAD_TIME)
    return Window(opens, max(last, first) + LEAD_TIME)


def call_times(timeline: Mapping[str, Any], day: date, zone: str | None) -> dict[str, datetime]:
    """Vendor key -> call time, for every vendor due on ``day`` (the wedding's date): the
    directory's call time when it falls on that day, else the start of the vendor's first
    item that day. Free-text vendors count (by their folded name)."""
    directory = read_directory(timeline)
    times: dict[str, datetime] = {}
    for vendor in directory.values():
        moment = _moment(vendor.call_time)
        if moment is not None and local_day(moment, zone) == day:
            times[vendor.id] = moment
    for item in day_items(timeline, day, zone).values():
        key = vendor_key(item, directory)
        if key is not None and key not in times:
            times[key] = _start(item)
    return times


def resolve_vendor(given: str, timeline: Mapping[str, Any]) -> tuple[str, Vendor | None] | None:
    """A check-in's ``vendor``: a directory id (its key and entry), else a free-text name
    some item carries, or its key (``name:`` and the folded name, as ``GET .../day`` shows
    it): its key, no entry; ``None`` when it names neither."""
    directory = read_directory(timeline)
    if given in directory:
        return given, directory[given]
    key = name_key(given.removeprefix(NAME_PREFIX))
    if key is None:
        return None
    items = timeline.get("items")
    for item in (items if isinstance(items, Mapping) else {}).values():
        if isinstance(item, Mapping) and vendor_key(item, directory) == key:
            return key, None
    return None


def live_state(
    item: Mapping[str, Any], vendor: str | None, now: datetime, arrived: Iterable[str]
) -> ItemState:
    """An item's state now: ``done`` when marked done or over; ``upcoming`` before it
    starts; once started, ``late`` while its vendor (key ``vendor``; in ``arrived`` once
    it checked in as arrived) has not arrived, else ``in_progress``."""
    if item.get("status") == "done" or now >= _end(item):
        return "done"
    if now < _start(item):
        return "upcoming"
    if vendor is not None and vendor not in set(arrived):
        return "late"
    return "in_progress"
