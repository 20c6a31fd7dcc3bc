"""Emergencies: an event of ``priority: emergency`` (``POST /api/weddings/{id}/events``,
the ``events.emergency`` capability) reaches the couple and the planner at once through
every channel they have (inbox, email); members acknowledge it
(``POST .../events/{seq}/ack``, ``GET .../events/{seq}/acks``); one nobody acknowledged
within five minutes is sent once more (a scheduler job, cancelled by the first
acknowledgement). Builds on the events, people, notifications and scheduler features."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.emergencies.extension import (
    EMERGENCY,
    RESEND,
    RESEND_SECONDS,
    UNACKNOWLEDGED,
    Emergencies,
)
from crdt_server.features.emergencies.routes import emergency_routes
from crdt_server.features.emergencies.tables import SCHEMA
from crdt_server.features.events import EventLog
from crdt_server.features.notifications import Mailer, Notifications
from crdt_server.features.people import People
from crdt_server.features.scheduler import Scheduler

__all__ = ["EMERGENCY", "FEATURE", "RESEND_SECONDS", "UNACKNOWLEDGED", "Emergencies"]


def _build(built: Built) -> Sequence[Extension]:
    emergencies = Emergencies(
        built.core,
        built.get(EventLog),
        built.get(People),
        built.get(Notifications),
        built.get(Scheduler),
    )
    mailer = built.find(Mailer)
    if mailer is not None:
        mailer.describe(EMERGENCY, emergencies.say, "An emergency at the wedding")
        mailer.describe(
            UNACKNOWLEDGED, emergencies.say_again, "An emergency nobody has acknowledged yet"
        )
    return [emergencies]


FEATURE = Feature(
    "emergencies",
    _build,
    needs=("events", "people", "notifications", "scheduler"),
    routes=emergency_routes,
    schemas=(SCHEMA,),
    jobs=(RESEND,),
)
