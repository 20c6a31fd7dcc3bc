"""The member directory of each wedding: filled from authenticated principals as they
connect or call the API, edited through it; each person's notification settings and
unsubscribe key; members removed by who runs the wedding, and people erased from every
wedding that knows them. Threads and notifications build on it.

How people join is the invitations feature's (:mod:`crdt_server.features.invitations`),
how they sign in on a device the sign-in feature's (:mod:`crdt_server.features.signin`).
Both were part of this package until the release after 0.1.0: their names are still
served from here for one release, with a ``DeprecationWarning`` naming their new place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from crdt_server.auth.permissions import LEADS
from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature, moved_names
from crdt_server.features.events import EventLog
from crdt_server.features.people.domain import PARTICIPATION, Member, member_json
from crdt_server.features.people.extension import People, emailed, member_row
from crdt_server.features.people.routes import member_principal, people_routes
from crdt_server.features.people.routes_leaving import leaving_routes
from crdt_server.features.people.tables import SCHEMA, members
from crdt_server.features.signin import SESSIONS_SCHEMA as _SIGN_IN_TABLES

if TYPE_CHECKING:
    from crdt_server.edge.routing import ApiRoute

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

MOVED = {
    **dict.fromkeys(
        (
            "INVITATIONS_SCHEMA",
            "InvitationMail",
            "InvitationSender",
            "Invitations",
            "start_device_session",
        ),
        "crdt_server.features.invitations",
    ),
    **dict.fromkeys(
        (
            "SESSIONS_SCHEMA",
            "DeviceSessions",
            "MailQueue",
            "device_sign_in_allowed",
            "normal_email",
            "send_sign_in_link",
            "server_url",
            "sign_in_code",
            "sign_in_device",
            "sign_in_email",
        ),
        "crdt_server.features.signin",
    ),
}
"""The names this package exported that moved to a feature of their own (deprecated
here; the CHANGELOG lists them)."""


__getattr__ = moved_names(__name__, MOVED)


def _build(built: Built) -> Sequence[Extension]:
    return [People(built.core, built.find(EventLog))]


def _routes() -> Sequence[ApiRoute]:
    return [*people_routes(), *leaving_routes()]


FEATURE = Feature(
    "people",
    _build,
    routes=_routes,
    # The sign-in feature's tables too: a member's verified address is kept there (the
    # directory runs without that feature).
    schemas=(SCHEMA, _SIGN_IN_TABLES),
    capabilities={
        # The member directory (names, emails, roles), removing members.
        "members.manage": LEADS,
    },
    # member.*: who was invited, joined, changed role, was removed (every member reads
    # them; the invitations feature makes the first two).
    event_namespaces=("member.",),
)
