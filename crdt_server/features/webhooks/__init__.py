"""Outgoing webhooks: endpoints, the outbox of events, signed deliveries with retries."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.auth.permissions import LEADS
from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.events import EventLog
from crdt_server.features.people import People
from crdt_server.features.presence import PresenceDirectory
from crdt_server.features.webhooks.commands import COMMANDS
from crdt_server.features.webhooks.domain_safety import (
    Target,
    UnsafeTarget,
    check_url,
    resolve_target,
)
from crdt_server.features.webhooks.extension import Webhooks
from crdt_server.features.webhooks.extension_presence import PresenceWebhooks
from crdt_server.features.webhooks.routes import webhook_routes
from crdt_server.features.webhooks.service_sender import Senders, SendFailed
from crdt_server.features.webhooks.settings import WebhookSettings
from crdt_server.features.webhooks.tables import SCHEMA

__all__ = [
    "FEATURE",
    "SendFailed",
    "Senders",
    "Target",
    "UnsafeTarget",
    "check_url",
    "resolve_target",
]
"""Beside the feature: its SSRF guard and pooled sender, which the push feature's delivery
uses too (every resolved address public, connect to the checked address)."""


def _build(built: Built) -> Sequence[Extension]:
    # The directory gives each endpoint's creator's current role (payloads are cut to it).
    events = built.get(EventLog)
    core = built.core
    webhooks = Webhooks(
        core.store,
        core.settings,
        core.registry.metrics.registry,
        placement=core.placement,
        people=built.find(People),
        events=events,
    )
    events.listen(webhooks.wake)
    presence = built.find(PresenceDirectory)
    if presence is None:
        return [webhooks]
    # Presence changes go to the endpoints that ask for them, on a path of their own.
    presence_hooks = PresenceWebhooks(webhooks)
    presence.listen(presence_hooks.told)
    return [webhooks, presence_hooks]


FEATURE = Feature(
    "webhooks",
    _build,
    needs=("events",),
    routes=webhook_routes,
    schemas=(SCHEMA,),
    bus=frozenset({"events"}),
    settings=WebhookSettings,
    commands=COMMANDS,
    # Integrations act for the wedding as a whole: only who runs it.
    capabilities={"webhooks.manage": LEADS},
)
