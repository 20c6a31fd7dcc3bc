"""The wedding's event stream: domain events derived from each committed update, stored in
its transaction, read over REST and SSE, posted by people and integrations."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.auth.permissions import LEADS
from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.events.domain import event_json, readable_event
from crdt_server.features.events.extension import EmergencyRaised, Ephemeral, EventLog, keyed_on
from crdt_server.features.events.routes import (
    CustomEvent,
    PostedEvent,
    custom_event_data,
    event_routes,
    viewer_of,
)
from crdt_server.features.events.settings import EventSettings
from crdt_server.features.events.tables import (
    EVENT_TABLES,
    SCHEMA,
    add_events,
    erase_entity_events,
    forget_events_of,
    last_event_seq,
    purge_events,
    read_events,
    store_events,
)
from crdt_server.names import CUSTOM_EVENT_NAMESPACES

__all__ = [
    "EVENT_TABLES",
    "FEATURE",
    "CustomEvent",
    "EmergencyRaised",
    "Ephemeral",
    "EventLog",
    "EventSettings",
    "PostedEvent",
    "add_events",
    "custom_event_data",
    "erase_entity_events",
    "event_json",
    "forget_events_of",
    "last_event_seq",
    "purge_events",
    "read_events",
    "readable_event",
    "store_events",
    "viewer_of",
]


def _build(built: Built) -> Sequence[Extension]:
    return [EventLog(built.core, keyed=keyed_on(built.core.store))]


FEATURE = Feature(
    "events",
    _build,
    routes=event_routes,
    bus=frozenset({"events"}),
    settings=EventSettings,
    schemas=(SCHEMA,),
    # Custom events (day.vendor_arrived...): whoever runs or serves the day.
    # Emergencies (``priority: emergency``): everyone who may be there on the day, family
    # included, though they may post nothing else.
    capabilities={
        "events.post": LEADS | {"vendor"},
        "events.emergency": LEADS | {"vendor", "family"},
    },
    # Clients' custom events and the events derived from the wedding documents.
    event_namespaces=(
        *CUSTOM_EVENT_NAMESPACES,
        "guest.",
        "seating.",
        "timeline.",
        "budget.",
        "task.",
    ),
)
