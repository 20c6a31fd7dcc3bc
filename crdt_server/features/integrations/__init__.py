"""Integrations: signed inbound webhooks, the calendar feed, the guest list as CSV."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.auth.permissions import LEADS
from crdt_server.core.hooks import Extension
from crdt_server.edge.routing import ApiRoute
from crdt_server.features import Built, Feature
from crdt_server.features.integrations.extension import IntegrationService
from crdt_server.features.integrations.routes_calendar import calendar_routes
from crdt_server.features.integrations.routes_guests_csv import guest_csv_routes
from crdt_server.features.integrations.routes_inbound import inbound_routes
from crdt_server.features.integrations.settings import IntegrationSettings
from crdt_server.features.integrations.tables import INTEGRATIONS
from crdt_server.features.people import People

__all__ = ["FEATURE"]


def _build(built: Built) -> Sequence[Extension]:
    # The directory names the tasks' owners in the calendar feed (without it: their sub).
    return [IntegrationService(built.core, people=built.find(People))]


def _routes() -> Sequence[ApiRoute]:
    return [*inbound_routes(), *calendar_routes(), *guest_csv_routes()]


FEATURE = Feature(
    "integrations",
    _build,
    routes=_routes,
    schemas=(INTEGRATIONS,),
    settings=IntegrationSettings,
    # Integrations act for the wedding as a whole: only who runs it.
    capabilities={"inbound.manage": LEADS, "calendar.tokens": LEADS},
    event_namespaces=("integration.",),
)
