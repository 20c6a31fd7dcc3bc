"""Sign-in: people (``p_...``), their memberships in weddings, emailed sign-in links and
device sessions (a browser's cookie, or a native app's secret, from which short
per-wedding tokens are minted).

For other features: :func:`sign_in_device` starts a device session for a person and sets
its cookie on a response (an accepted invitation, a new wedding's couple), and
:func:`sign_in_app` one for a native app (its secret for the answer's body);
:func:`send_sign_in_link` emails a sign-in link; :class:`DeviceSessions` makes people and
memberships (:meth:`~DeviceSessions.person`, :meth:`~DeviceSessions.add_membership`);
:class:`MailQueue` is what the notifications feature gives it to send emails;
:func:`server_url` is the base of every link the server emails (never a request's
``Host``; it lives in :mod:`crdt_server.edge.links`, served here under its old name)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.events import EventLog
from crdt_server.features.signin.domain import server_url
from crdt_server.features.signin.extension import (
    SESSION_ENDED,
    DeviceSessions,
    MailQueue,
    sign_in_code,
    sign_in_email,
)
from crdt_server.features.signin.routes import (
    device_sign_in_allowed,
    links_base,
    send_sign_in_link,
    session_routes,
    sign_in_device,
)
from crdt_server.features.signin.routes_apps import (
    app_link_routes,
    app_sign_in_allowed,
    sign_in_app,
)
from crdt_server.features.signin.settings import SignInSettings
from crdt_server.features.signin.tables import (
    CHALLENGES_SCHEMA,
    CLAIMS_SCHEMA,
    SESSIONS_SCHEMA,
    normal_email,
    verified,
)

if TYPE_CHECKING:
    from crdt_server.edge.routing import ApiRoute

__all__ = [
    "CHALLENGES_SCHEMA",
    "CLAIMS_SCHEMA",
    "FEATURE",
    "SESSIONS_SCHEMA",
    "DeviceSessions",
    "MailQueue",
    "SignInSettings",
    "app_sign_in_allowed",
    "device_sign_in_allowed",
    "links_base",
    "normal_email",
    "send_sign_in_link",
    "server_url",
    "sign_in_app",
    "sign_in_code",
    "sign_in_device",
    "sign_in_email",
    "verified",
]


def _build(built: Built) -> Sequence[Extension]:
    sessions = DeviceSessions(built.core, built.revocations)
    events = built.find(EventLog)
    if events is not None:
        # Device labels are personal: a session.* event is read by the person it names
        # (its data's "sub") and by who manages the members, nobody else.
        events.personal("session.", "members.manage")
        # A device's end ends the event streams it opened, as it closes its sockets.
        sessions.ended_listeners.append(events.session_ended)
    return [sessions]


def _routes() -> Sequence[ApiRoute]:
    return [*session_routes(), *app_link_routes()]


FEATURE = Feature(
    "signin",
    _build,
    routes=_routes,
    schemas=(SESSIONS_SCHEMA, CLAIMS_SCHEMA, CHALLENGES_SCHEMA),
    bus=frozenset({SESSION_ENDED}),
    settings=SignInSettings,
    # session.*: device sessions signed in, out and revoked (personal: see _build).
    event_namespaces=("session.",),
)
