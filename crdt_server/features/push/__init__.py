"""Web Push (RFC 8030, 8291, 8292): browsers' subscriptions of each member, and mentions,
urgent messages and emergencies pushed to them through a durable outbox that follows the
notifications inbox. It needs the notifications (the inbox), the member directory and
device sessions (people), and the webhook feature's SSRF guard and sender."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.notifications import Notifications
from crdt_server.features.people import People
from crdt_server.features.push.domain import quiet_until, valid_hour, zone
from crdt_server.features.push.extension import MAX_SUBSCRIPTIONS, Push
from crdt_server.features.push.routes import QuietHours, check_quiet_hours, push_routes
from crdt_server.features.push.service import keep_key
from crdt_server.features.push.settings import PushSettings
from crdt_server.features.push.tables import SCHEMA
from crdt_server.features.signin import DeviceSessions
from crdt_server.storage import Gateway

__all__ = [
    "FEATURE",
    "MAX_SUBSCRIPTIONS",
    "Push",
    "PushSettings",
    "QuietHours",
    "check_quiet_hours",
    "quiet_until",
    "valid_hour",
    "zone",
]


async def _build(built: Built) -> Sequence[Extension]:
    inbox = built.get(Notifications)
    core = built.core
    key = await keep_key(
        Gateway.of(core.store), core.settings.fragment(PushSettings).vapid_private_key
    )
    push = Push(core, key, inbox, built.get(People), built.revocations)
    inbox.queued_listeners.append(push.notified)
    sessions = built.find(DeviceSessions)
    if sessions is not None:
        sessions.ended_listeners.append(push.session_ended)
    return [push]


FEATURE = Feature(
    "push",
    _build,
    needs=("notifications", "people"),
    routes=push_routes,
    schemas=(SCHEMA,),
    settings=PushSettings,
)
