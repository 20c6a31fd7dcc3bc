"""Version history: restore points of each document, reads as of a seq, restore."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.auth.permissions import LEADS
from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.events import EventLog
from crdt_server.features.versions.extension import VersionKeeper
from crdt_server.features.versions.routes import version_routes
from crdt_server.features.versions.settings import VersionSettings
from crdt_server.features.versions.tables import VERSIONS

__all__ = ["FEATURE"]


def _build(built: Built) -> Sequence[Extension]:
    return [VersionKeeper(built.core, events=built.get(EventLog))]


FEATURE = Feature(
    "versions",
    _build,
    needs=("events",),
    routes=version_routes,
    schemas=(VERSIONS,),
    settings=VersionSettings,
    # Restoring an earlier version of a document: who runs the wedding.
    capabilities={"versions.restore": LEADS},
    event_namespaces=("document.",),
)
