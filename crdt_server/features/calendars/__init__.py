"""Vendors' own calendars over CalDAV (RFC 4791), both ways: each timeline item of a
calendar's scope written as a VEVENT, and a vendor's move of one read back as a
``calendar.changed`` event with a delay proposal (never a change of the timeline). Builds
on the events feature (the event), the webhooks feature (its SSRF guard) and, when the
server runs it, the delays feature (the proposal)."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.auth.permissions import LEADS
from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.calendars.extension import CHANGED, CalendarSync
from crdt_server.features.calendars.routes import CAPABILITY, calendar_routes
from crdt_server.features.calendars.settings import CalendarSettings
from crdt_server.features.calendars.tables import SCHEMA
from crdt_server.features.delays import DayDelays
from crdt_server.features.events import EventLog

__all__ = ["CHANGED", "FEATURE", "CalendarSettings", "CalendarSync"]


def _build(built: Built) -> Sequence[Extension]:
    return [CalendarSync(built.core, built.get(EventLog), built.find(DayDelays))]


FEATURE = Feature(
    "calendars",
    _build,
    needs=("events",),
    routes=calendar_routes,
    schemas=(SCHEMA,),
    settings=CalendarSettings,
    # A calendar of the whole wedding: who runs it; a vendor's own: its members too (the
    # routes check the vendor directory).
    capabilities={CAPABILITY: LEADS},
    event_namespaces=("calendar.",),
)
