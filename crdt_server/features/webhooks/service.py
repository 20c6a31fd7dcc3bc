"""Outgoing webhook endpoints and their deliveries as the API manages them: create (with
``Idempotency-Key``), list, show with health, change (re-enable, pause), delete, rotate the
secret, queue a test, list and replay deliveries. Sending them is
:class:`crdt_server.features.webhooks.extension.Webhooks`' dispatcher; both work on the same
:class:`~crdt_server.features.webhooks.tables.WebhookTables`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from crdt_server import clock
from crdt_server.features.events import last_event_seq
from crdt_server.features.webhooks.domain import (
    Delivery,
    Endpoint,
    EndpointHealth,
    IdempotencyConflict,
    creator_needle,
    new_id,
    new_secret,
    scope_json,
)
from crdt_server.features.webhooks.tables import (
    AttemptCounts,
    Count,
    IdempotentRequest,
    Statement,
    StatusCount,
    WebhookTables,
)
from crdt_server.names import (
    CUSTOM_EVENT_NAMESPACES,
    LANE_PRIORITIES,
    RESERVED_EVENT_TYPES,
    Lane,
)
from crdt_server.storage import Once, StoredEvent
from crdt_server.times import rfc3339

__all__ = ["ROTATION_SECONDS", "WebhookEndpoints", "insert_delivery", "sent_ahead_ids"]

ROTATION_SECONDS = 24 * 3600.0
"""How long the old secret keeps signing beside the new one after a rotation."""


def insert_delivery(
    endpoint: Endpoint,
    delivery: str,
    seq: int | None,
    kind: str,
    payload: str,
    event_at: float,
    next_at: float,
    *,
    owner: str = "",
    lease_until: float = 0.0,
    lane: Lane = "normal",
    webhook_id: str = "",
) -> Statement:
    """A new delivery on ``lane``; with an ``owner``, taken by that process for its first
    attempt now until ``lease_until`` (saving a claim: the attempt is counted and leased
    in the same statement). ``webhook_id``: what its attempts send as ``webhook-id``
    (default: ``delivery``); the same for an event's deliveries on both lanes."""
    return (
        "INSERT INTO {t}webhook_deliveries (id, wedding, endpoint, event_seq, type,"
        " payload, status, next_at, created_at, event_at, attempts, lease_until,"
        " lease_owner, lane, webhook_id)"
        " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING"
        " RETURNING id, wedding, endpoint, payload, attempts, event_at, webhook_id, lane,"
        " lease_owner",
        (
            delivery,
            endpoint.wedding,
            endpoint.id,
            seq,
            kind,
            payload,
            next_at,
            clock.now(),
            event_at,
            int(bool(owner)),
            lease_until if owner else 0.0,
            owner,
            lane,
            webhook_id or delivery,
        ),
    )


async def sent_ahead_ids(
    tables: WebhookTables,
    endpoint: str,
    page: Sequence[StoredEvent],
    known: dict[tuple[str, int], str],
) -> dict[tuple[str, int], str]:
    """The ``webhook-id`` of each urgent event of ``page`` queued on the urgent lane
    before (committed: one read, only for a page holding urgent events)."""
    seqs = [
        e.seq
        for e in page
        if e.priority in LANE_PRIORITIES["urgent"] and (endpoint, e.seq) not in known
    ]
    if not seqs:
        return {}
    marks = ", ".join("?" * len(seqs))
    rows = await tables.read_as(
        _SentAhead,
        "SELECT event_seq, webhook_id FROM {t}webhook_deliveries"  # noqa: S608
        f" WHERE endpoint = ? AND lane = 'urgent' AND event_seq IN ({marks})",
        endpoint,
        *seqs,
    )
    return {(endpoint, int(r.event_seq)): r.webhook_id for r in rows}


class _SentAhead(msgspec.Struct, frozen=True):
    event_seq: int
    webhook_id: str


class WebhookEndpoints:
    """The endpoints of every wedding over ``tables``; ``wake`` tells the dispatcher there
    is something to send now."""

    def __init__(self, tables: WebhookTables, wake: Callable[[], None]) -> None:
        self.tables = tables
        self._wake = wake

    async def create(
        self,
        wedding: str,
        url: str,
        events: list[str],
        description: str,
        *,
        docs: frozenset[str] | None = None,
        viewer: str | None = None,
        creator: str = "",
        role: str = "",
        once: Once | None = None,
    ) -> tuple[Endpoint, str, bool]:
        """A new endpoint receiving the wedding's events from now on (of ``docs`` and for
        ``viewer``, as :class:`storage.EventFilter` has them: what its creator may see), its
        secret, and True. With ``once``, a key already used (within its lifetime) creates
        nothing and gives the endpoint it created, its current secret, and False; raises
        :class:`IdempotencyConflict` if it was used with another body. ``creator``: who
        answers for it (a revocation or erasure of them disables it); ``role``: an operator
        creator's role (:attr:`Endpoint.role`). Raises
        :class:`LookupError` if the wedding is erased."""
        if once is not None:
            earlier = await self._created_with(wedding, once)
            if earlier is not None:
                return earlier
        hook, secret, now = new_id("wh"), new_secret(), clock.now()
        after = await last_event_seq(self.tables.gateway, wedding)
        scope = scope_json(docs, viewer, creator, role)
        values = (hook, wedding, url, description, json.dumps(events), secret, after, now, scope)
        if once is None:
            statements: list[Statement] = [
                (
                    "INSERT INTO {t}webhook_endpoints (id, wedding, url, description, events,"
                    " secret, after_seq, created_at, scope, urgent_after_seq)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*values, after),
                )
            ]
        else:
            # The key row first; the endpoint only if that row is this call's (a concurrent
            # call with the same key creates nothing and reads the winner's).
            statements = [
                (
                    "DELETE FROM {t}webhook_idempotency WHERE scope = ? AND key = ?"
                    " AND expires_at <= ?",
                    (once.scope, once.key, now),
                ),
                (
                    "INSERT INTO {t}webhook_idempotency (scope, key, wedding, fingerprint,"
                    " endpoint, expires_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (once.scope, once.key, wedding, once.fingerprint, hook, once.expires_at),
                ),
                (
                    "INSERT INTO {t}webhook_endpoints (id, wedding, url, description, events,"
                    " secret, after_seq, created_at, scope, urgent_after_seq) SELECT"
                    " CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT),"
                    " CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT),"
                    " CAST(? AS DOUBLE PRECISION), CAST(? AS TEXT), CAST(? AS BIGINT)"
                    " WHERE EXISTS (SELECT 1 FROM {t}webhook_idempotency"
                    " WHERE scope = ? AND key = ? AND endpoint = ?)",
                    (*values, after, once.scope, once.key, hook),
                ),
            ]
        await self.tables.transaction(statements)
        endpoint = await self.endpoint(wedding, hook)
        if endpoint is not None:
            return endpoint, secret, True
        if once is not None:
            earlier = await self._created_with(wedding, once)
            if earlier is not None:
                return earlier
        raise LookupError(wedding)  # erased meanwhile: its trigger dropped the rows

    async def _created_with(self, wedding: str, once: Once) -> tuple[Endpoint, str, bool] | None:
        found = await self.tables.read_one_as(
            IdempotentRequest,
            "SELECT fingerprint, endpoint FROM {t}webhook_idempotency"
            " WHERE scope = ? AND key = ? AND expires_at > ?",
            once.scope,
            once.key,
            clock.now(),
        )
        if found is None:
            return None
        if found.fingerprint != once.fingerprint:
            raise IdempotencyConflict("this Idempotency-Key was used with another body")
        endpoint = await self.endpoint(wedding, found.endpoint)
        if endpoint is None:
            raise IdempotencyConflict("the endpoint created with this Idempotency-Key is deleted")
        return endpoint, endpoint.secret, False

    async def count(self, wedding: str) -> int:
        found = await self.tables.read_one_as(
            Count, "SELECT COUNT(*) FROM {t}webhook_endpoints WHERE wedding = ?", wedding
        )
        return 0 if found is None else int(found.count)

    async def endpoints(self, wedding: str, *, after: str, limit: int) -> list[Endpoint]:
        return await self.tables.endpoints(
            "WHERE wedding = ? AND id > ? ORDER BY id LIMIT ?", wedding, after, limit
        )

    async def endpoint(self, wedding: str, hook: str) -> Endpoint | None:
        for found in await self.tables.endpoints("WHERE wedding = ? AND id = ?", wedding, hook):
            return found
        return None

    async def health(self, endpoint: Endpoint) -> EndpointHealth:
        since = clock.now() - 24 * 3600
        attempts = await self.tables.read_one_as(
            AttemptCounts,
            "SELECT COUNT(*), COALESCE(SUM(1 - ok), 0) FROM {t}webhook_attempts"
            " WHERE endpoint = ? AND at > ?",
            endpoint.id,
            since,
        )
        counts = await self.tables.read_as(
            StatusCount,
            "SELECT status, COUNT(*), MIN(next_at) FROM {t}webhook_deliveries"
            " WHERE endpoint = ? AND status IN ('pending', 'failed') GROUP BY status",
            endpoint.id,
        )
        by_status = {c.status: c for c in counts}
        pending = by_status.get("pending", StatusCount("pending", 0, 0.0))
        failed = by_status.get("failed", StatusCount("failed", 0, 0.0))
        return EndpointHealth(
            0 if attempts is None else int(attempts.count),
            0 if attempts is None else int(attempts.failures),
            int(pending.count),
            int(failed.count),
            float(pending.first) if pending.count and not endpoint.disabled else None,
        )

    async def delete(self, wedding: str, hook: str) -> bool:
        """Delete the endpoint with its deliveries and attempts; whether it existed."""
        _, _, deleted = await self.tables.transaction(
            [
                ("DELETE FROM {t}webhook_deliveries WHERE endpoint = ?", (hook,)),
                ("DELETE FROM {t}webhook_attempts WHERE endpoint = ?", (hook,)),
                (
                    "DELETE FROM {t}webhook_endpoints WHERE wedding = ? AND id = ? RETURNING id",
                    (wedding, hook),
                ),
            ]
        )
        return bool(deleted)

    async def forget_entity(self, wedding: str, entity_id: str, paths: Sequence[str] = ()) -> int:
        """Erasure of an entry (a guest): delete the wedding's deliveries whose payload names
        it (their events quote its fields) or one of its ``paths`` (a finding about the
        entry quotes the values that crossed), whatever their state; how many went."""
        quoted = json.dumps(entity_id)
        named = [n for p in paths for n in (json.dumps(p), json.dumps(p)[:-1] + "/")]
        needles = (f'"id":{quoted}', f'"guest_id":{quoted}', *named)
        has = " OR ".join(self.tables.contains("payload") for _ in needles)
        (deleted,) = await self.tables.transaction(
            [
                (
                    f"DELETE FROM {{t}}webhook_deliveries WHERE wedding = ? AND ({has})"
                    " RETURNING id",
                    (wedding, *needles),
                )
            ]
        )
        return len(deleted)

    async def forget_member(self, wedding: str, sub: str) -> int:
        """Erasure of a member: delete the deliveries of the thread events they caused (the
        events themselves go with the member's threads data: messages' bodies are quoted
        in them) and of the custom events they posted (whose data the events feature
        erases); how many went."""
        has = self.tables.contains("payload")
        reserved = sorted(RESERVED_EVENT_TYPES)
        kinds = " OR ".join("type LIKE ?" for _ in ("thread.", *CUSTOM_EVENT_NAMESPACES))
        (deleted,) = await self.tables.transaction(
            [
                (
                    f"DELETE FROM {{t}}webhook_deliveries WHERE wedding = ? AND ({kinds})"  # noqa: S608
                    f" AND type NOT IN ({', '.join('?' for _ in reserved)})"
                    f" AND {has} RETURNING id",
                    (
                        wedding,
                        *(f"{k}%" for k in ("thread.", *CUSTOM_EVENT_NAMESPACES)),
                        *reserved,
                        '"actor":{"sub":' + json.dumps(sub) + ",",
                    ),
                )
            ]
        )
        return len(deleted)

    async def disable_created_by(self, sub: str, wedding: str | None, reason: str) -> int:
        """Disable the enabled endpoints ``sub`` created (in ``wedding``, or every wedding
        with ``None``), saying ``reason``; how many. Their cursors stop where they are, so a
        manager re-enabling one (and taking it over) resumes it there."""
        has = self.tables.contains("scope")
        text = f"UPDATE {{t}}webhook_endpoints SET disabled = ? WHERE disabled = '' AND {has}"
        args: tuple[Any, ...] = (reason, creator_needle(sub))
        if wedding is not None:
            text += " AND wedding = ?"
            args += (wedding,)
        (disabled,) = await self.tables.transaction([(text + " RETURNING id", args)])
        return len(disabled)

    async def rotate(self, wedding: str, hook: str) -> str | None:
        """A new secret; the current one keeps signing beside it for 24 h. None: no such
        endpoint."""
        secret = new_secret()
        (rotated,) = await self.tables.transaction(
            [
                (
                    "UPDATE {t}webhook_endpoints SET old_secret = secret, old_until = ?,"
                    " secret = ? WHERE wedding = ? AND id = ? RETURNING id",
                    (clock.now() + ROTATION_SECONDS, secret, wedding, hook),
                )
            ]
        )
        return secret if rotated else None

    async def update(
        self,
        endpoint: Endpoint,
        *,
        enabled: bool | None = None,
        url: str | None = None,
        events: list[str] | None = None,
        description: str | None = None,
        scope: str | None = None,
    ) -> Endpoint | None:
        """Change an endpoint; the endpoint as it now is (None: deleted meanwhile).

        Disabling it (``enabled=False``) pauses it: nothing is sent, its cursor stays
        where it is. Enabling a disabled endpoint resumes it where it stopped: the
        deliveries a receiver answered 410 start again from the start of the schedule
        (same ``webhook-id``), pending ones resume, and the events committed meanwhile are
        delivered (those still within the event retention). New ``events`` patterns apply
        to the events not yet queued for it. A new ``scope`` (:func:`scope_json`) is who
        answers for it from now on, and what it receives (re-assignment)."""
        now = clock.now()
        where = " WHERE wedding = ? AND id = ?"
        key = (endpoint.wedding, endpoint.id)
        statements: list[Statement] = []
        if url is not None:
            statements.append(("UPDATE {t}webhook_endpoints SET url = ?" + where, (url, *key)))
        if events is not None:
            statements.append(
                ("UPDATE {t}webhook_endpoints SET events = ?" + where, (json.dumps(events), *key))
            )
        if description is not None:
            statements.append(
                ("UPDATE {t}webhook_endpoints SET description = ?" + where, (description, *key))
            )
        if scope is not None:
            statements.append(("UPDATE {t}webhook_endpoints SET scope = ?" + where, (scope, *key)))
        if enabled is False and not endpoint.disabled:
            reason = f"paused through the API at {rfc3339(now)}"
            statements.append(
                ("UPDATE {t}webhook_endpoints SET disabled = ?" + where, (reason, *key))
            )
        if enabled and endpoint.disabled:
            statements += [
                (
                    "UPDATE {t}webhook_deliveries SET status = 'pending', attempts = 0,"
                    " next_at = ?, lease_until = 0, done_at = 0"
                    " WHERE endpoint = ? AND status = 'failed' AND last_status = 410",
                    (now, endpoint.id),
                ),
                ("UPDATE {t}webhook_endpoints SET disabled = ''" + where, key),
            ]
        if statements:
            await self.tables.transaction(statements)
            self._wake()
        return await self.endpoint(*key)

    async def send_test(self, endpoint: Endpoint) -> str:
        """Queue a ``webhook.test`` delivery to the endpoint now; its id."""
        now = clock.now()
        delivery = new_id("msg")
        data = {"endpoint": endpoint.id, "wedding": endpoint.wedding, "at": rfc3339(now)}
        body = {"type": "webhook.test", "timestamp": rfc3339(now), "data": data}
        payload = json.dumps(body, separators=(",", ":"))
        kind = "webhook.test"
        await self.tables.transaction(
            [insert_delivery(endpoint, delivery, None, kind, payload, now, now)]
        )
        self._wake()
        return delivery

    async def deliveries(
        self, endpoint: Endpoint, *, status: str | None, after: str | None, limit: int
    ) -> list[Delivery]:
        """The endpoint's deliveries, newest first."""
        where = "endpoint = ?"
        args: list[Any] = [endpoint.id]
        if status is not None:
            where += " AND status = ?"
            args.append(status)
        if after is not None:
            where += " AND id < ?"
            args.append(after)
        return await self.tables.deliveries(f"WHERE {where} ORDER BY id DESC LIMIT ?", *args, limit)

    async def delivery(self, endpoint: Endpoint, delivery: str) -> Delivery | None:
        for found in await self.tables.deliveries(
            "WHERE endpoint = ? AND id = ?", endpoint.id, delivery
        ):
            return found
        return None

    async def replay(self, endpoint: Endpoint, delivery: str) -> bool:
        """Attempt a finished (failed or delivered) delivery again, from the start of the
        schedule, with the same ``webhook-id``; False if it is still pending."""
        (replayed,) = await self.tables.transaction(
            [
                (
                    "UPDATE {t}webhook_deliveries SET status = 'pending', attempts = 0,"
                    " next_at = ?, lease_until = 0, done_at = 0"
                    " WHERE endpoint = ? AND id = ? AND status <> 'pending' RETURNING id",
                    (clock.now(), endpoint.id, delivery),
                )
            ]
        )
        self._wake()
        return bool(replayed)
