"""Presence over every process of a cluster: who is online in which document, since when."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.presence.extension import PresenceDirectory
from crdt_server.features.presence.routes import presence_routes

__all__ = ["FEATURE", "PresenceDirectory"]


def _build(built: Built) -> Sequence[Extension]:
    return [PresenceDirectory()]


FEATURE = Feature(
    "presence", _build, routes=presence_routes, bus=frozenset({"presence", "presence_query"})
)
