"""One attempt of a webhook delivery, and how it settles.

The attempt reads the endpoint's creator's current role (once per batch of claimed
deliveries), cuts the payload to what that role may read now, signs and posts it; how it
went becomes the statements that record the attempt and settle the delivery (delivered,
retried on the schedule, or failed: a dead letter). The dispatcher
(:class:`crdt_server.features.webhooks.extension.Webhooks`) leases deliveries, starts the
attempts and commits their statements with its next transaction (see its module docstring).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram

from crdt_server import clock
from crdt_server.auth.permissions import PermissionMatrix
from crdt_server.features.events import EventLog, readable_event
from crdt_server.features.webhooks.domain import Endpoint
from crdt_server.features.webhooks.domain_safety import UnsafeTarget
from crdt_server.features.webhooks.service import WebhookEndpoints
from crdt_server.features.webhooks.service_sender import Senders, SendFailed, post_signed
from crdt_server.features.webhooks.tables import Leased, Statement
from crdt_server.times import rfc3339

if TYPE_CHECKING:
    from crdt_server.features.people import Member, People

__all__ = [
    "DeliveryMetrics",
    "Settle",
    "attempt",
    "creator_of",
    "cut_payload",
    "reader_of",
    "settled",
]

log = logging.getLogger("crdt_server.webhooks")

Settle = Callable[[Endpoint, str, int, float, str, int, str, str], None]
"""Told how an attempt went: ``(endpoint, delivery, attempts, event_at, outcome, status,
error, answer)``."""


class DeliveryMetrics:
    """The counters and the latency histogram of delivery attempts."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "crdt_webhook_attempts",
            "Webhook delivery attempts by outcome (delivered, rejected: a non-2xx answer, "
            "gone: 410, error: no answer, refused: unsafe address, withheld: its creator "
            "may no longer read the event's document)",
            ["outcome"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "crdt_webhook_dead_letters",
            "Deliveries failed after their last attempt",
            registry=registry,
        )
        self.latency = Histogram(
            "crdt_webhook_delivery_seconds",
            "From the event's commit to its receiver's 2xx",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
            registry=registry,
        )


async def creator_of(
    people: People | None,
    endpoint: Endpoint,
    creators: dict[tuple[str, str], asyncio.Future[Member | None]],
) -> tuple[bool, Member | None]:
    """Whether the endpoint has a creator, and their directory entry (``None``: not in
    the directory, or no directory), read once per batch."""
    if not endpoint.creator:
        return False, None
    if people is None:
        return True, None
    key = (endpoint.wedding, endpoint.creator)
    found = creators.get(key)
    if found is None:
        read: Awaitable[Member | None] = people.member(*key)
        found = creators[key] = asyncio.ensure_future(read)
    return True, await asyncio.shield(found)


Reader = tuple[str, str, str | None]
"""Who a delivery is cut for: a role, a subject and the guest fields they read (``None``:
what the role reads)."""


def reader_of(endpoint: Endpoint, member: Member | None) -> Reader | None:
    """Who an endpoint's deliveries are cut for: its creator's ``(role, sub)`` as the
    directory has them now, an operator creator's role fixed at creation, or ``None`` (an
    unknown creator)."""
    if member is not None:
        return member.role, member.sub, member.guest_fields
    if endpoint.role:
        return endpoint.role, endpoint.creator, None
    return None


def cut_payload(
    payload: str,
    reader: Reader | None,
    permissions: PermissionMatrix,
    events: EventLog | None,
) -> str | None:
    """``payload`` as ``reader``'s role may read it now (``None``: an unknown creator,
    every field with a read rule cut); ``None`` if that role may not read its document
    at all."""
    body = json.loads(payload)
    item = body.get("data") if isinstance(body, dict) else None
    doc = item.get("doc") if isinstance(item, dict) else None
    role, sub, fields = ("", "", None) if reader is None else reader
    if isinstance(item, dict) and events is not None:
        if not events.may_read(item, permissions, role, sub):
            return None  # a personal event (session.*) of someone else
    if not isinstance(item, dict) or not isinstance(doc, str):
        return payload  # no document's event (a custom one, a test)
    if reader is not None and not permissions.access(role, doc, None, fields).can_read:
        return None
    if not permissions.hidden_fields(role, doc, fields):
        return payload
    body["data"] = readable_event(item, permissions, role, fields)
    return json.dumps(body, separators=(",", ":"))


async def attempt(
    leased: Leased,
    known: Endpoint | None,
    creators: dict[tuple[str, str], asyncio.Future[Member | None]] | None,
    *,
    manage: WebhookEndpoints,
    people: People | None,
    events: EventLog | None,
    permissions: PermissionMatrix,
    senders: Senders | None,
    timeout_seconds: float,
    settle: Settle,
) -> None:
    """Attempt one leased delivery (to ``known``, or the endpoint read from ``manage``):
    its payload cut to what its creator may read now, signed and posted; ``settle`` is
    told how it went (nothing is sent that its creator might not read)."""
    delivery, wedding = leased.id, leased.wedding
    payload, attempts, event_at = leased.payload, int(leased.attempts), float(leased.event_at)
    endpoint = known or await manage.endpoint(wedding, leased.endpoint)
    if endpoint is None:
        return  # deleted meanwhile, with its deliveries
    status, error, answer = 0, "", ""
    outcome = "error"
    cut: str | None = payload
    member: Member | None = None
    try:
        created, member = await creator_of(people, endpoint, {} if creators is None else creators)
        if created:
            cut = cut_payload(payload, reader_of(endpoint, member), permissions, events)
    except Exception:
        log.exception("could not read the creator of webhook endpoint %s", endpoint.id)
        cut = None  # nothing is sent that its creator might not read; retried later
        error = "could not read its creator's role; retrying"
    if cut is None and not error:
        reader = reader_of(endpoint, member)
        role = reader[0] if reader is not None else "?"
        error = f"its creator's role ({role}) may not read this event's document now"
        settle(endpoint, delivery, attempts, event_at, "withheld", 0, error, "")
        return
    if cut is None:
        settle(endpoint, delivery, attempts, event_at, "error", 0, error, "")
        return
    payload = cut
    try:
        async with asyncio.timeout(timeout_seconds + 1):
            assert senders is not None
            status, answer = await post_signed(
                senders, endpoint, leased.webhook_id or delivery, payload
            )
    except UnsafeTarget as exc:
        error, outcome = f"refused: {exc}", "refused"
    except TimeoutError:
        error = f"no answer within {timeout_seconds:g} s"
    except SendFailed as exc:
        error = str(exc)
    if status:
        if 200 <= status < 300:
            outcome = "delivered"
        elif status == 410:
            outcome, error = "gone", "410 Gone: the endpoint was disabled"
        else:
            outcome, error = "rejected", f"HTTP {status}"
    settle(endpoint, delivery, attempts, event_at, outcome, status, error, answer)


def settled(
    metrics: DeliveryMetrics,
    schedule: Sequence[float],
    owner: str,
    endpoint: Endpoint,
    delivery: str,
    attempts: int,
    event_at: float,
    outcome: str,
    status: int,
    error: str,
    answer: str,
) -> list[Statement]:
    """The statements that record an attempt's ``outcome`` and settle its delivery
    (delivered, retried on ``schedule``, or failed: a dead letter), held by ``owner``."""
    metrics.attempts.labels(outcome).inc()
    now = clock.now()
    statements: list[Statement] = [
        (
            "INSERT INTO {t}webhook_attempts (wedding, endpoint, delivery, at, ok, status)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (endpoint.wedding, endpoint.id, delivery, now, int(outcome == "delivered"), status),
        )
    ]
    settle = (
        "UPDATE {t}webhook_deliveries SET status = ?, next_at = ?, lease_until = 0,"
        " last_status = ?, last_error = ?, last_response = ?, done_at = ?"
        " WHERE id = ? AND lease_owner = ?"
    )
    if outcome == "delivered":
        metrics.latency.observe(max(0.0, now - event_at))
        state, next_at, done = "delivered", now, now
    elif outcome in ("gone", "withheld") or attempts >= len(schedule):
        state, next_at, done = "failed", now, now
        metrics.dead_letters.inc()
    else:
        state, next_at, done = "pending", now + schedule[attempts], 0.0
    statements.append((settle, (state, next_at, status, error, answer, done, delivery, owner)))
    if outcome == "gone":
        statements.append(
            (
                "UPDATE {t}webhook_endpoints SET disabled = ? WHERE id = ?",
                (f"the receiver answered 410 Gone at {rfc3339(now)}", endpoint.id),
            )
        )
    if error:
        statements.append(
            (
                "UPDATE {t}webhook_endpoints SET last_error = ?, last_error_at = ? WHERE id = ?",
                (error, now, endpoint.id),
            )
        )
        log.info(
            "webhook %s to endpoint %s: %s (attempt %d, %s)",
            delivery,
            endpoint.id,
            outcome,
            attempts,
            state,
        )
    return statements
