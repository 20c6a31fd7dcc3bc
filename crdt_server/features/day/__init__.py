"""The wedding day: a vendor directory's contacts, day-of mode and the day's state,
vendors' check-ins, and late and missing alerts through the durable scheduler. Delays that
ripple through the timeline (and emergencies that reach the vendors of the items they name)
are the ``delays`` feature (:mod:`crdt_server.features.delays`); each vendor's run sheet,
shared by a read-only link, is the ``runsheets`` feature
(:mod:`crdt_server.features.runsheets`).

The vendor directory itself is the timeline's ``vendors`` root
(:mod:`crdt_server.documents.vendors`); a vendor's contact is kept here, out of the
document, for the couple, the planner and the vendor's own members (:func:`contact_of`
reads it in a transaction). ``day.`` events the server makes (:data:`RESERVED`) cannot be
posted as custom events.

The names that moved to the delays feature are still found here, for one release, each
with a ``DeprecationWarning`` naming its new place.
"""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature, moved_names
from crdt_server.features.day.domain import call_times, day_items
from crdt_server.features.day.extension import (
    CHECKED_IN,
    MISSING,
    MISSING_KIND,
    OFFLINE,
    OFFLINE_KIND,
    RESERVED,
    DayWatch,
    missing,
    offline,
    told,
)
from crdt_server.features.day.extension_rooms import DayRooms
from crdt_server.features.day.routes import day_routes
from crdt_server.features.day.settings import DaySettings
from crdt_server.features.day.tables import SCHEMA, contact_of
from crdt_server.features.events import EventLog
from crdt_server.features.jobs import JobKind
from crdt_server.features.people import People
from crdt_server.features.presence import PresenceDirectory
from crdt_server.features.scheduler import Scheduler

__all__ = [
    "CHECKED_IN",
    "FEATURE",
    "MISSING",
    "MISSING_KIND",
    "OFFLINE",
    "OFFLINE_KIND",
    "RESERVED",
    "DayRooms",
    "DaySettings",
    "DayWatch",
    "call_times",
    "contact_of",
    "day_items",
]

_MOVED = {
    "DELAYED": "crdt_server.features.delays",
    "DELAY_REASON": "crdt_server.features.delays",
    "EMERGENCY_VENDOR": "crdt_server.features.delays",
    "DayDelays": "crdt_server.features.delays",
}
"""Name -> the package that serves it now: what this package exported before the day was
split (found here until the next release, with a ``DeprecationWarning``)."""


__getattr__ = moved_names(__name__, _MOVED)


def _build(built: Built) -> Sequence[Extension]:
    watch = DayWatch(
        built.core,
        built.get(Scheduler),
        built.get(EventLog),
        built.find(People),
        built.find(PresenceDirectory),
    )
    return [watch, DayRooms(built.core)]


FEATURE = Feature(
    "day",
    _build,
    needs=("scheduler", "events"),
    routes=day_routes,
    schemas=(SCHEMA,),
    settings=DaySettings,
    jobs=(JobKind(MISSING_KIND, missing, after=told), JobKind(OFFLINE_KIND, offline, after=told)),
)
