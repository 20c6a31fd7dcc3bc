"""Presence over every process of a cluster: who is online in which document, since when,
and whether they are away, busy or typing, and where (``presence.changed`` on the event
stream)."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.events import EventLog
from crdt_server.features.people import People
from crdt_server.features.presence.domain import CHANGED, PresenceChange
from crdt_server.features.presence.extension import PresenceDirectory
from crdt_server.features.presence.routes import presence_routes
from crdt_server.features.presence.settings import PresenceSettings

__all__ = ["CHANGED", "FEATURE", "PresenceChange", "PresenceDirectory", "PresenceSettings"]


def _build(built: Built) -> Sequence[Extension]:
    return [PresenceDirectory(built.core, built.find(EventLog), built.find(People))]


FEATURE = Feature(
    "presence",
    _build,
    routes=presence_routes,
    bus=frozenset({"presence", "presence_query"}),
    settings=PresenceSettings,
)
