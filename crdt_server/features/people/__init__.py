"""The member directory of each wedding: filled from authenticated principals as they
connect or call the API, edited through it; each person's notification settings and
unsubscribe key. Threads and notifications build on it."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.core.hooks import Extension
from crdt_server.edge.routing import ApiRoute
from crdt_server.features import Built, Feature
from crdt_server.features.people.extension import People
from crdt_server.features.people.tables import SCHEMA

__all__ = ["FEATURE"]


def _build(built: Built) -> Sequence[Extension]:
    return [People()]


def _routes() -> Sequence[ApiRoute]:
    from crdt_server.features.people.routes import people_routes

    return people_routes()


FEATURE = Feature("people", _build, routes=_routes, schemas=(SCHEMA,))
