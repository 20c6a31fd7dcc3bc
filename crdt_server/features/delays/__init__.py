"""Delays that ripple through the timeline, telling the vendors whose items moved
(``POST /api/weddings/{id}/day/delays``), and emergencies that reach the vendors of the
timeline items they name (an event of ``priority: emergency`` with ``items``): their
member accounts, else the email of their contact (the day feature's table,
:func:`crdt_server.features.day.contact_of`). Builds on the events, people, notifications
and day features."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.day import DayWatch
from crdt_server.features.delays.extension import (
    DELAY_REASON,
    DELAYED,
    EMERGENCY_VENDOR,
    DayDelays,
    TimelineNow,
)
from crdt_server.features.delays.routes import delay_routes
from crdt_server.features.events import EventLog
from crdt_server.features.notifications import Mailer, Notifications
from crdt_server.features.people import People

__all__ = [
    "FEATURE",
    "DELAYED",
    "DELAY_REASON",
    "EMERGENCY_VENDOR",
    "DayDelays",
    "TimelineNow",
]


def _build(built: Built) -> Sequence[Extension]:
    built.get(DayWatch)  # a vendor's contact is the day's table (installed with it)
    delays = DayDelays(built.core, built.get(EventLog), built.get(People), built.get(Notifications))
    mailer = built.find(Mailer)
    if mailer is not None:
        mailer.describe(DELAY_REASON, delays.say_delay, "The day runs late: your times moved")
        mailer.describe(
            EMERGENCY_VENDOR, delays.say_emergency, "An emergency about your part of the day"
        )
    return [delays]


FEATURE = Feature(
    "delays", _build, routes=delay_routes, needs=("day", "events", "people", "notifications")
)
