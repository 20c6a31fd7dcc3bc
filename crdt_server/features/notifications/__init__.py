"""Notifications by email: the outbox of the threads' and other features' notices, sent
over SMTP with retries (``CRDT_SERVER_SMTP_URL``)."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.notifications.mail import Mailer
from crdt_server.features.notifications.settings import NotificationSettings
from crdt_server.features.threads.service import Threads

__all__ = ["FEATURE"]


def _build(built: Built) -> Sequence[Extension]:
    threads = built.get(Threads)
    threads.emails = bool(built.settings.fragment(NotificationSettings).smtp_url)
    return [Mailer(threads)]


FEATURE = Feature(
    "notifications",
    _build,
    bus=frozenset({"threads.outbox"}),
    settings=NotificationSettings,
)
