"""The wedding day: delays that ripple through the timeline (and tell the vendors whose
items moved), emergencies that reach the vendors of the items they name, and each vendor's
run sheet, shared by a read-only link.

The vendor directory itself is the timeline's ``vendors`` root
(:mod:`crdt_server.documents.vendors`). Builds on the events, people and notifications
features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from crdt_server.auth.permissions import LEADS
from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.day.extension_delays import (
    DELAY_REASON,
    DELAYED,
    EMERGENCY_VENDOR,
    DayDelays,
)
from crdt_server.features.day.routes_delays import delay_routes
from crdt_server.features.day.routes_runsheet import RUN_SHEETS, runsheet_routes
from crdt_server.features.day.tables_runsheet import SCHEMA as RUN_SHEETS_SCHEMA
from crdt_server.features.events import EventLog
from crdt_server.features.notifications import Mailer, Notifications
from crdt_server.features.people import People

if TYPE_CHECKING:
    from crdt_server.edge.routing import ApiRoute

__all__ = ["DELAYED", "DELAY_REASON", "EMERGENCY_VENDOR", "FEATURE", "DayDelays"]


def _build(built: Built) -> Sequence[Extension]:
    delays = DayDelays(built.get(EventLog), built.get(People), built.get(Notifications))
    mailer = built.find(Mailer)
    if mailer is not None:
        mailer.describe(DELAY_REASON, delays.say_delay)
        mailer.describe(EMERGENCY_VENDOR, delays.say_emergency)
    return [delays]


def _routes() -> list[ApiRoute]:
    # Both route modules' routes: the feature's one list.
    return [*delay_routes(), *runsheet_routes()]


FEATURE = Feature(
    "day",
    _build,
    routes=_routes,
    schemas=(RUN_SHEETS_SCHEMA,),
    capabilities={RUN_SHEETS: LEADS},
)
