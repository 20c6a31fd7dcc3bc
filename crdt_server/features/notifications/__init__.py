"""Notifications: each person's inbox, and the email outbox sent over SMTP with retries
(``CRDT_SERVER_SMTP_URL``). Threads and conflicts notify people through it; it needs the
member directory (names, addresses, unsubscribe keys), not threads."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.core.hooks import Extension
from crdt_server.edge.routing import ApiRoute
from crdt_server.features import Built, Feature
from crdt_server.features.invitations import Invitations
from crdt_server.features.notifications.domain_mail import (
    display_name,
    envelope,
    subject_line,
)
from crdt_server.features.notifications.extension import (
    OUTBOX_MESSAGE,
    OVERWRITTEN,
    Notifications,
    Teller,
    ThreadQuote,
    Told,
    mark_read,
    notice_rows,
    notify,
    queued_email,
    queued_guest_email,
    unread_about,
)
from crdt_server.features.notifications.extension_mail import Mailer
from crdt_server.features.notifications.settings import NotificationSettings
from crdt_server.features.notifications.tables import (
    GUEST_MAIL_SCHEMA,
    MAIL_SCHEMA,
    SCHEMA,
    Notice,
    claim_lane,
)
from crdt_server.features.people import People
from crdt_server.features.signin import DeviceSessions

__all__ = [
    "FEATURE",
    "MAIL_SCHEMA",
    "OVERWRITTEN",
    "Mailer",
    "NotificationSettings",
    "Notice",
    "Notifications",
    "Teller",
    "ThreadQuote",
    "Told",
    "claim_lane",
    "display_name",
    "envelope",
    "mark_read",
    "notice_rows",
    "notify",
    "queued_email",
    "queued_guest_email",
    "subject_line",
    "unread_about",
]


def _build(built: Built) -> Sequence[Extension]:
    inbox = Notifications(built.core)
    sessions = built.find(DeviceSessions)
    if sessions is not None:
        sessions.post = inbox  # sign-in links go out through the one outbox and mailer
    invitations = built.find(Invitations)
    if invitations is not None:
        invitations.post = inbox  # and invitation emails
    return [inbox, Mailer(built.core, inbox, built.get(People))]


def _routes() -> Sequence[ApiRoute]:
    from crdt_server.features.notifications.routes import notification_routes

    return notification_routes()


FEATURE = Feature(
    "notifications",
    _build,
    needs=("people",),
    routes=_routes,
    schemas=(SCHEMA, MAIL_SCHEMA, GUEST_MAIL_SCHEMA),
    bus=frozenset({OUTBOX_MESSAGE}),
    settings=NotificationSettings,
)
