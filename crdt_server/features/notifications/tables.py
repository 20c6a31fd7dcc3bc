"""The notifications feature's tables: each person's inbox (``thread_notifications``) and
the email outbox (``thread_outbox``). They keep the names they had when the threads feature
kept them; their columns and meaning are unchanged (``thread`` is ``''`` for a notice not
about a thread, whose ``message`` then names what it is about)."""

from __future__ import annotations

import msgspec

from crdt_server.storage import Table, schema_of

__all__ = [
    "NOTIFICATIONS",
    "NOTIFICATION_COLUMNS",
    "OUTBOX",
    "SCHEMA",
    "Count",
    "DueOutbox",
    "Notification",
    "OutboxItem",
    "UnreadNotice",
]

NOTIFICATIONS = Table(
    "thread_notifications",
    "(id {id}, wedding {text} NOT NULL, sub {text} NOT NULL, reason {text} NOT NULL,"
    " thread {text} NOT NULL, message {text} NOT NULL, actor {text} NOT NULL,"
    " actor_role {text} NOT NULL, priority {text} NOT NULL, created_at {real} NOT NULL,"
    " read INTEGER NOT NULL DEFAULT 0)",
    indexes=(
        "CREATE INDEX IF NOT EXISTS thread_notifications_sub"
        " ON {t}thread_notifications (wedding, sub, id)",
    ),
)
OUTBOX = Table(
    "thread_outbox",
    "(id {id}, wedding {text} NOT NULL, sub {text} NOT NULL, reason {text} NOT NULL,"
    " thread {text} NOT NULL, message {text} NOT NULL, priority {text} NOT NULL,"
    " created_at {real} NOT NULL, claimed_until {real} NOT NULL DEFAULT 0)",
)

SCHEMA = schema_of("notifications", NOTIFICATIONS, OUTBOX)
"""The inbox and the email outbox, erased with their wedding. On a store written before
notifications were a feature of their own, the tables are there already (the threads
schema created them): installing this schema adds only its version row."""


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


class DueOutbox(msgspec.Struct, frozen=True):
    """A person with emails waiting; ``urgent``: 1 if any is not of normal priority."""

    wedding: str
    sub: str
    urgent: int


class Count(msgspec.Struct, frozen=True):
    count: int
