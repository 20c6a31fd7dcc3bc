"""The member directory of each wedding: filled from authenticated principals as they
connect or call the API, edited through it; each person's notification settings and
unsubscribe key. Threads and notifications build on it."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.auth.permissions import LEADS
from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.people.domain import PARTICIPATION, Member, member_json
from crdt_server.features.people.extension import People, emailed, member_row
from crdt_server.features.people.routes import member_principal, people_routes
from crdt_server.features.people.tables import SCHEMA, members

__all__ = [
    "FEATURE",
    "PARTICIPATION",
    "SCHEMA",
    "Member",
    "People",
    "emailed",
    "member_json",
    "member_principal",
    "member_row",
    "members",
]


def _build(built: Built) -> Sequence[Extension]:
    return [People()]


FEATURE = Feature(
    "people",
    _build,
    routes=people_routes,
    schemas=(SCHEMA,),
    # The member directory (names, emails, roles).
    capabilities={"members.manage": LEADS},
)
