"""The notifications feature's tables: each person's inbox (``notifications``) and the
email outbox (``notification_outbox``). Until schema version 2 they were named
``thread_notifications`` and ``thread_outbox`` (the threads feature kept them then); their
columns and meaning are unchanged (``thread`` is ``''`` for a notice not about a thread,
whose ``message`` then names what it is about). Version 1 below is the tables as those
releases made them: a store they wrote is renamed when the feature is installed."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import msgspec

from crdt_server.names import LANE_PRIORITIES, Lane
from crdt_server.storage import Table, schema_of
from crdt_server.storage.gateway import Tx, renamed, rows_as

__all__ = [
    "NOTIFICATIONS",
    "NOTIFICATION_COLUMNS",
    "OUTBOX",
    "SCHEMA",
    "Count",
    "DueOutbox",
    "GUEST_MAIL_SCHEMA",
    "GuestMailItem",
    "LanedOutboxItem",
    "MAIL_SCHEMA",
    "MailItem",
    "NOTICE_COLUMNS",
    "Notice",
    "Notification",
    "OutboxItem",
    "UnreadNotice",
    "claim_lane",
]

_R = TypeVar("_R")

_INBOX_COLUMNS = (
    "(id {id}, wedding {text} NOT NULL, sub {text} NOT NULL, reason {text} NOT NULL,"
    " thread {text} NOT NULL, message {text} NOT NULL, actor {text} NOT NULL,"
    " actor_role {text} NOT NULL, priority {text} NOT NULL, created_at {real} NOT NULL,"
    " read INTEGER NOT NULL DEFAULT 0)"
)
_OUTBOX_COLUMNS = (
    "(id {id}, wedding {text} NOT NULL, sub {text} NOT NULL, reason {text} NOT NULL,"
    " thread {text} NOT NULL, message {text} NOT NULL, priority {text} NOT NULL,"
    " created_at {real} NOT NULL, claimed_until {real} NOT NULL DEFAULT 0)"
)
_THREAD_NOTIFICATIONS = Table(
    "thread_notifications",
    _INBOX_COLUMNS,
    indexes=(
        "CREATE INDEX IF NOT EXISTS thread_notifications_sub"
        " ON {t}thread_notifications (wedding, sub, id)",
    ),
)
"""Version 1."""
_THREAD_OUTBOX = Table("thread_outbox", _OUTBOX_COLUMNS)
"""Version 1."""
NOTIFICATIONS = Table(
    "notifications",
    _INBOX_COLUMNS,
    indexes=(
        "CREATE INDEX IF NOT EXISTS notifications_sub ON {t}notifications (wedding, sub, id)",
    ),
)
OUTBOX = Table("notification_outbox", _OUTBOX_COLUMNS)

SCHEMA = schema_of(
    "notifications",
    _THREAD_NOTIFICATIONS,
    _THREAD_OUTBOX,
    migrations=[renamed(2, (_THREAD_NOTIFICATIONS, NOTIFICATIONS), (_THREAD_OUTBOX, OUTBOX))],
)
"""The inbox and the email outbox, erased with their wedding. On a store written before
notifications were a feature of their own, the tables are there already (the threads
schema created them): installing this schema adds its version row and renames them."""


MAIL_OUTBOX = Table(
    "mail_outbox",
    "(id {id}, address {text} NOT NULL, subject {text} NOT NULL, body {text} NOT NULL,"
    " created_at {real} NOT NULL, claimed_until {real} NOT NULL DEFAULT 0)",
    wedding=False,
)
MAIL_SCHEMA = schema_of("mail", MAIL_OUTBOX)
"""Emails to a bare address (a sign-in link to someone who may be no member yet), sent
by the same mailer as the notifications' outbox, at once (no digest), then deleted."""


GUEST_MAIL = Table(
    "guest_mail",
    "(id {id}, wedding {ctext} NOT NULL, guest {ctext} NOT NULL, address {text} NOT NULL,"
    " from_name {text} NOT NULL, subject {text} NOT NULL, body {text} NOT NULL,"
    " unsubscribe {text} NOT NULL, created_at {real} NOT NULL,"
    " claimed_until {real} NOT NULL DEFAULT 0)",
)
GUEST_MAIL_SCHEMA = schema_of("guest_mail", GUEST_MAIL)
"""Emails to a wedding's guests (an RSVP link), sent by the same mailer at once, then
deleted: ``From`` names the couple (the address stays ``CRDT_SERVER_EMAIL_FROM``) and the
email carries the guest's unsubscribe link. Erased with the wedding, and a guest's rows
with the guest."""


class GuestMailItem(msgspec.Struct, frozen=True):
    """A guest's email to send, as claimed."""

    id: int
    address: str
    from_name: str
    subject: str
    body: str
    unsubscribe: str


NOTIFICATION_COLUMNS = "id, reason, thread, message, actor, actor_role, priority, created_at, read"


class Notification(msgspec.Struct, frozen=True):
    """An inbox entry as :data:`NOTIFICATION_COLUMNS` holds it (``read``: 0 or 1)."""

    id: int
    reason: str
    thread: str
    message: str
    actor: str
    actor_role: str
    priority: str
    created_at: float
    read: int


class Notice(msgspec.Struct, frozen=True):
    """An inbox entry with whom it is for (the push feature reads them in order)."""

    id: int
    wedding: str
    sub: str
    reason: str
    thread: str
    message: str
    actor: str
    priority: str
    created_at: float


NOTICE_COLUMNS = "id, wedding, sub, reason, thread, message, actor, priority, created_at"


class UnreadNotice(msgspec.Struct, frozen=True):
    id: int
    message: str


class OutboxItem(msgspec.Struct, frozen=True):
    """An email to send, as claimed (``RETURNING id, reason, thread, message, priority``)."""

    id: int
    reason: str
    thread: str
    message: str
    priority: str


class LanedOutboxItem(OutboxItem, frozen=True):
    """An email to send as the urgent lane claims it (whose it is, too)."""

    wedding: str
    sub: str


LANED_COLUMNS = "id, reason, thread, message, priority, wedding, sub"
"""The columns of a :class:`LanedOutboxItem`, in its order."""


def claim_lane(
    kind: Callable[..., _R],
    table: str,
    lane: Lane,
    columns: str,
    now: float,
    until: float,
    limit: int,
) -> Tx[list[_R]]:
    """The step that claims, until ``until``, up to ``limit`` unclaimed rows of ``lane``
    from an outbox ``table`` (one with ``id``, ``priority`` and ``claimed_until``
    columns: the email outbox; the push outbox is to take the same shape), oldest first;
    each as ``kind`` of ``columns``. The ``urgent`` lane holds the urgent and emergency
    rows, the ``normal`` lane every row: a sender claims the urgent lane first, so they go
    out ahead of any backlog. A claim lapses at ``until`` (a sender that died: the row is
    claimed again, at least once)."""
    priorities = LANE_PRIORITIES[lane]
    marks = ", ".join("?" * len(priorities))
    return (
        yield from rows_as(
            kind,
            f"UPDATE {{t}}{table} SET claimed_until = ? WHERE id IN (SELECT id"  # noqa: S608
            f" FROM {{t}}{table} WHERE claimed_until < ? AND priority IN ({marks})"
            f" ORDER BY id LIMIT ?) RETURNING {columns}",
            until,
            now,
            *priorities,
            limit,
        )
    )


class DueOutbox(msgspec.Struct, frozen=True):
    """A person with emails waiting; ``urgent``: 1 if any is not of normal priority."""

    wedding: str
    sub: str
    urgent: int


class Count(msgspec.Struct, frozen=True):
    count: int


class MailItem(msgspec.Struct, frozen=True):
    """An email to a bare address, as claimed."""

    id: int
    address: str
    subject: str
    body: str
