"""The wedding's event stream: domain events derived from each committed update, stored in
its transaction, read over REST and SSE, posted by people and integrations."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.events.extension import EventLog
from crdt_server.features.events.routes import event_routes
from crdt_server.features.events.settings import EventSettings

__all__ = ["FEATURE"]


def _build(built: Built) -> Sequence[Extension]:
    return [EventLog()]


FEATURE = Feature(
    "events", _build, routes=event_routes, bus=frozenset({"events"}), settings=EventSettings
)
