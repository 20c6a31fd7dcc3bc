"""The wedding day: a vendor directory's contacts, day-of mode and the day's state,
vendors' check-ins, late and missing alerts through the durable scheduler, delays that
ripple through the timeline (telling the vendors whose items moved), emergencies that reach
the vendors of the items they name, and each vendor's run sheet, shared by a read-only
link.

The vendor directory itself is the timeline's ``vendors`` root
(:mod:`crdt_server.documents.vendors`); a vendor's contact is kept here, out of the
document, for the couple, the planner and the vendor's own members. ``day.`` events the
server makes (:data:`RESERVED`) cannot be posted as custom events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from crdt_server.auth.permissions import LEADS
from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
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
from crdt_server.features.day.extension_delays import (
    DELAY_REASON,
    DELAYED,
    EMERGENCY_VENDOR,
    DayDelays,
)
from crdt_server.features.day.extension_rooms import DayRooms
from crdt_server.features.day.routes import day_routes
from crdt_server.features.day.routes_delays import delay_routes
from crdt_server.features.day.routes_runsheet import RUN_SHEETS, runsheet_routes
from crdt_server.features.day.settings import DaySettings
from crdt_server.features.day.tables import SCHEMA
from crdt_server.features.day.tables_runsheet import SCHEMA as RUN_SHEETS_SCHEMA
from crdt_server.features.events import EventLog
from crdt_server.features.jobs import JobKind
from crdt_server.features.notifications import Mailer, Notifications
from crdt_server.features.people import People
from crdt_server.features.presence import PresenceDirectory
from crdt_server.features.scheduler import Scheduler

if TYPE_CHECKING:
    from crdt_server.edge.routing import ApiRoute

__all__ = [
    "CHECKED_IN",
    "DELAYED",
    "DELAY_REASON",
    "EMERGENCY_VENDOR",
    "FEATURE",
    "MISSING",
    "MISSING_KIND",
    "OFFLINE",
    "OFFLINE_KIND",
    "RESERVED",
    "DayDelays",
    "DayRooms",
    "DaySettings",
    "DayWatch",
]


def _build(built: Built) -> Sequence[Extension]:
    watch = DayWatch(
        built.get(Scheduler), built.get(EventLog), built.find(People), built.find(PresenceDirectory)
    )
    delays = DayDelays(built.get(EventLog), built.get(People), built.get(Notifications))
    mailer = built.find(Mailer)
    if mailer is not None:
        mailer.describe(DELAY_REASON, delays.say_delay)
        mailer.describe(EMERGENCY_VENDOR, delays.say_emergency)
    return [watch, delays, DayRooms()]


def _routes() -> list[ApiRoute]:
    # The feature's one list: the day's state and check-ins, delays, run sheets.
    return [*day_routes(), *delay_routes(), *runsheet_routes()]


FEATURE = Feature(
    "day",
    _build,
    routes=_routes,
    schemas=(SCHEMA, RUN_SHEETS_SCHEMA),
    settings=DaySettings,
    capabilities={RUN_SHEETS: LEADS},
    jobs=(JobKind(MISSING_KIND, missing, after=told), JobKind(OFFLINE_KIND, offline, after=told)),
)
