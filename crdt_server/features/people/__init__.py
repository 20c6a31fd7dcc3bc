"""The member directory of each wedding: filled from authenticated principals as they
connect or call the API, edited through it; each person's notification settings and
unsubscribe key; people (``p_...``), their memberships, sign-in links and device sessions.
Threads and notifications build on it.

For other features: :func:`sign_in_device` starts a device session for a person and sets
its cookie on a response (an accepted invitation); :func:`send_sign_in_link` emails a
sign-in link (a new wedding's couple); :class:`DeviceSessions` makes people and
memberships (:meth:`~DeviceSessions.person`, :meth:`~DeviceSessions.add_membership`);
:class:`MailQueue` is what the notifications feature gives it to send emails."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from crdt_server.auth.permissions import LEADS
from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.events import EventLog
from crdt_server.features.people.domain import PARTICIPATION, Member, member_json, server_url
from crdt_server.features.people.extension import People, emailed, member_row
from crdt_server.features.people.extension_invitations import (
    InvitationMail,
    Invitations,
    InvitationSender,
)
from crdt_server.features.people.extension_sessions import (
    SESSION_ENDED,
    DeviceSessions,
    MailQueue,
    sign_in_code,
    sign_in_email,
)
from crdt_server.features.people.routes import member_principal, people_routes
from crdt_server.features.people.routes_invitations import (
    invitation_routes,
    start_device_session,
)
from crdt_server.features.people.routes_leaving import leaving_routes
from crdt_server.features.people.routes_session import (
    device_sign_in_allowed,
    send_sign_in_link,
    session_routes,
    sign_in_device,
)
from crdt_server.features.people.settings import PeopleSettings
from crdt_server.features.people.tables import SCHEMA, members
from crdt_server.features.people.tables_invitations import INVITATIONS_SCHEMA
from crdt_server.features.people.tables_sessions import (
    CLAIMS_SCHEMA,
    SESSIONS_SCHEMA,
    normal_email,
)

if TYPE_CHECKING:
    from crdt_server.edge.routing import ApiRoute

__all__ = [
    "FEATURE",
    "INVITATIONS_SCHEMA",
    "PARTICIPATION",
    "SCHEMA",
    "SESSIONS_SCHEMA",
    "DeviceSessions",
    "InvitationMail",
    "InvitationSender",
    "Invitations",
    "MailQueue",
    "Member",
    "People",
    "PeopleSettings",
    "emailed",
    "member_json",
    "member_principal",
    "member_row",
    "normal_email",
    "members",
    "device_sign_in_allowed",
    "send_sign_in_link",
    "server_url",
    "sign_in_code",
    "sign_in_device",
    "sign_in_email",
    "start_device_session",
]


def _build(built: Built) -> Sequence[Extension]:
    events = built.find(EventLog)
    if events is not None:
        # Device labels are personal: a session.* event is read by the person it names
        # (its data's "sub") and by who manages the members, nobody else.
        events.personal("session.", "members.manage")
    # Device sessions first: their erasure hook reads the member's addresses from the
    # directory and the invitations' records before those hooks delete them.
    return [DeviceSessions(built.revocations), People(), Invitations(events)]


def _routes() -> Sequence[ApiRoute]:
    return [*people_routes(), *invitation_routes(), *leaving_routes(), *session_routes()]


FEATURE = Feature(
    "people",
    _build,
    routes=_routes,
    schemas=(SCHEMA, INVITATIONS_SCHEMA, SESSIONS_SCHEMA, CLAIMS_SCHEMA),
    bus=frozenset({SESSION_ENDED}),
    settings=PeopleSettings,
    capabilities={
        # The member directory (names, emails, roles), removing members.
        "members.manage": LEADS,
        # Inviting people by link (never above the inviter: domain_invitations).
        "members.invite": LEADS,
    },
    # member.*: who was invited, joined, changed role, was removed (every member reads
    # them); session.*: device sessions (personal: see _build).
    event_namespaces=("member.", "session."),
)
