"""Conversations of the wedding: threads, messages, mentions and read marks, kept by the
server (not CRDT documents), with their section of the export. Built on the member
directory (``people``) and notifications (the inbox and the email outbox), which the
feature list must build before it."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.core.hooks import Extension
from crdt_server.edge.routing import ApiRoute
from crdt_server.features import Built, Feature
from crdt_server.features.events import EventLog
from crdt_server.features.notifications import Notifications
from crdt_server.features.people import People
from crdt_server.features.threads.domain import Viewer
from crdt_server.features.threads.export import THREADS
from crdt_server.features.threads.extension import Threads
from crdt_server.features.threads.tables import SCHEMA

__all__ = ["FEATURE", "Threads", "Viewer"]


def _build(built: Built) -> Sequence[Extension]:
    return [Threads(built.core, built.get(EventLog), built.get(People), built.get(Notifications))]


def _routes() -> Sequence[ApiRoute]:
    from crdt_server.features.threads.routes import thread_routes

    return thread_routes()


FEATURE = Feature(
    "threads",
    _build,
    needs=("events", "people", "notifications"),
    routes=_routes,
    schemas=(SCHEMA,),
    export=(THREADS,),
    # Editing and deleting other people's messages.
    capabilities={"threads.moderate": frozenset({"planner"})},
    event_namespaces=("thread.",),
)
