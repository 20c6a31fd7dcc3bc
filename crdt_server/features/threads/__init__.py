"""Conversations of the wedding: threads, messages, mentions and read marks, kept by the
server (not CRDT documents), with their section of the export."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.core.hooks import Extension
from crdt_server.edge.routing import ApiRoute
from crdt_server.features import Built, Feature
from crdt_server.features.events.log import EventLog
from crdt_server.features.threads.db import SCHEMA
from crdt_server.features.threads.export import THREADS

__all__ = ["FEATURE"]


# The service and the routes are imported when used: the people directory, which the
# service needs, reads this package's tables (importing it must not import the service).
def _build(built: Built) -> Sequence[Extension]:
    from crdt_server.features.threads.service import Threads

    return [Threads(built.get(EventLog))]


def _routes() -> Sequence[ApiRoute]:
    from crdt_server.features.threads.routes import thread_routes

    return thread_routes()


FEATURE = Feature("threads", _build, routes=_routes, schemas=(SCHEMA,), export=(THREADS,))
