"""The time rules of the wedding documents (instants, wall clocks, days, due offsets, time
zones) and reading a wedding's time zone (re-exported by :mod:`documents.model`).

Depends only on the standard library.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, date, datetime, time, tzinfo
from functools import cache

from .model_rules import DocumentError, shown

__all__ = [
    "DUE_OFFSET_PATTERN",
    "TIME_ZONE_PATTERN",
    "day",
    "due_offset",
    "in_zone",
    "instant",
    "local_moment",
    "parse_instant",
    "time_zone",
    "wall_or_instant",
    "zone_of",
]

DUE_OFFSET_PATTERN = re.compile(r"([+-])([0-9]{1,3})([DWM])")
"""A due date relative to the wedding date: a sign (``-`` before, ``+`` after), a count and a
unit (``D`` days, ``W`` weeks, ``M`` calendar months): ``-6M`` is six months before."""
TIME_ZONE_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_+/-]{0,63}")
"""The characters an IANA zone name is made of (checked before the zone database is asked)."""


def instant(value: object) -> str:
    """An ISO 8601 date and time with a time zone; canonical form keeps the offset."""
    hint = "an ISO 8601 date and time with a time zone, like '2026-06-13T15:30:00+02:00'"
    if not isinstance(value, str):
        raise DocumentError(f"must be {hint}, got {shown(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise DocumentError(f"must be {hint}, got {shown(value)}") from None
    if moment.utcoffset() is None:
        raise DocumentError(f"must include a time zone, like '+02:00' or 'Z', got {shown(value)}")
    return moment.isoformat()


def parse_instant(value: str) -> datetime:
    """The aware datetime of a value that passed :func:`instant`."""
    return datetime.fromisoformat(value)


def wall_or_instant(value: object) -> str:
    """A time an operation gives a timeline item: an :func:`instant` (with its offset), or a
    wall clock without one (``2026-10-25T11:00``), which :func:`in_zone` reads in the
    wedding's time zone. Stored items always carry an offset (:func:`instant`)."""
    hint = (
        "an ISO 8601 date and time, like '2026-06-13T15:30:00+02:00' or, in the wedding's "
        "time zone, '2026-06-13T15:30'"
    )
    # A date alone (which fromisoformat reads as midnight) is no time of day.
    if not isinstance(value, str) or len(value) > 64 or value[10:11] not in ("T", " "):
        raise DocumentError(f"must be {hint}, got {shown(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise DocumentError(f"must be {hint}, got {shown(value)}") from None
    return moment.isoformat()


def in_zone(value: str, zone: str | None) -> str:
    """``value`` (checked by :func:`wall_or_instant`) as the wedding's zone writes it: the
    same instant, with the zone's offset on that date (so a Sunday after the autumn change
    says ``+01:00`` in Berlin where the Friday said ``+02:00``); a wall clock without an
    offset is read in the zone (a time the spring change skips moves on by the gap, a time
    the autumn change repeats is its first occurrence, as ``zoneinfo`` reads ``fold=0``).
    Without a zone, an instant is kept as written and a wall clock is refused."""
    moment = datetime.fromisoformat(value)
    if zone is None:
        if moment.utcoffset() is None:
            raise DocumentError(
                "must include a time zone, like '+02:00' or 'Z' (the wedding's profile "
                f"names no time zone), got {shown(value)}"
            )
        return moment.isoformat()
    tz = zoneinfo.ZoneInfo(zone)
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=tz)
    try:
        return moment.astimezone(UTC).astimezone(tz).isoformat()
    except OverflowError:  # within a day of year 1 or 9999: no instant in the zone
        raise DocumentError(f"is out of range in {zone}, got {shown(value)}") from None


def due_offset(value: object) -> str:
    """A due date relative to the wedding date (:data:`DUE_OFFSET_PATTERN`, ``-6M``)."""
    if not isinstance(value, str) or DUE_OFFSET_PATTERN.fullmatch(value) is None:
        raise DocumentError(
            "must be a sign, a count and a unit (D days, W weeks, M months) relative to the"
            f" wedding date, like '-6M' (six months before), got {shown(value)}"
        )
    return value


def day(value: object) -> str:
    if not isinstance(value, str):
        raise DocumentError(f"must be an ISO 8601 date like '2026-06-13', got {shown(value)}")
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise DocumentError(
            f"must be an ISO 8601 date like '2026-06-13', got {shown(value)}"
        ) from None


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def zone_of(name: object) -> tzinfo:
    """The time zone a wedding names (its profile's ``time_zone``), or UTC when it names
    none, or one this host's zone database does not know."""
    if isinstance(name, str) and name in _zones():
        return zoneinfo.ZoneInfo(name)
    return UTC


def local_moment(day: date, at: time, zone: object) -> datetime:
    """``at`` o'clock on ``day`` in the wedding's zone (:func:`zone_of`): when something
    of that day (a reminder, a payment due) happens for the wedding."""
    return datetime.combine(day, at, zone_of(zone))


def time_zone(value: object) -> str:
    """An IANA time zone name (``Europe/Lisbon``), one the zone database knows."""
    hint = "an IANA time zone name like 'Europe/Lisbon'"
    if not isinstance(value, str) or TIME_ZONE_PATTERN.fullmatch(value) is None:
        raise DocumentError(f"must be {hint}, got {shown(value)}")
    # A name from the database's own list: never a path handed to the file system.
    if value not in _zones():
        raise DocumentError(f"must be {hint}; {shown(value)} is not a known zone")
    return value
