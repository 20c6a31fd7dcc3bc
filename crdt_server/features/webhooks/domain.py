"""The outgoing webhooks' records: endpoints, their health, deliveries, and their ids.

Rows of the webhook tables (:mod:`crdt_server.features.webhooks.tables`) become these
frozen values; ``json()`` is how the API shows each (never an endpoint's secrets).
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from typing import Any

from crdt_server import clock
from crdt_server.errors import Conflict
from crdt_server.features.events import event_json
from crdt_server.storage import StoredEvent
from crdt_server.times import rfc3339

__all__ = [
    "Delivery",
    "Endpoint",
    "EndpointHealth",
    "IdempotencyConflict",
    "creator_needle",
    "new_id",
    "new_secret",
    "payload_of",
    "scope_json",
    "scope_of",
]


class IdempotencyConflict(Conflict):
    """An ``Idempotency-Key`` reused with another body (or for a deleted endpoint): a
    domain :class:`~crdt_server.errors.Conflict` (409 at the edge)."""


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


_last_stamp = 0


def new_id(prefix: str) -> str:
    """A server id that sorts by creation (milliseconds, kept strictly increasing within
    this process so a batch sorts in its order), then at random (across processes)."""
    global _last_stamp
    _last_stamp = max(int(clock.now() * 1000), _last_stamp + 1)
    return f"{prefix}_{_last_stamp:012x}{secrets.token_hex(6)}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    wedding: str
    url: str
    description: str
    events: list[str]
    secret: str
    old_secret: str
    old_until: float
    disabled: str
    """Why the endpoint no longer receives anything (empty: it does)."""
    last_error: str
    last_error_at: float
    created_at: float
    docs: frozenset[str] | None = None
    """The documents whose events it receives: those its creator could read (``None``:
    every document)."""
    viewer: str | None = None
    """The audience filter of its creator (``None``: every audience; see
    :class:`storage.EventFilter`), so a thread's events go only where its participants'
    would."""
    creator: str = ""
    """The subject who created it (or last re-enabled it): a revocation or an erasure of
    them disables it (empty: created before creators were recorded, or by the admin)."""
    role: str = ""
    """The role of the operator's token that created it (empty: a member created it).
    Operators are not members: the directory has no entry for them, so its deliveries are
    cut to this role, as it was when the endpoint was created."""

    def signing_secrets(self, now: float) -> list[str]:
        if self.old_secret and self.old_until > now:
            return [self.secret, self.old_secret]
        return [self.secret]

    def json(self) -> dict[str, Any]:
        """As the API lists it: never its secrets."""
        return {
            "id": self.id,
            "url": self.url,
            "description": self.description,
            "events": self.events,
            "enabled": not self.disabled,
            "disabled_reason": self.disabled or None,
            "created_at": rfc3339(self.created_at),
            "old_secret_expires_at": (
                rfc3339(self.old_until)
                if self.old_secret and self.old_until > clock.now()
                else None
            ),
        }


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    attempts_24h: int
    failures_24h: int
    pending: int
    failed: int
    next_attempt: float | None

    def json(self, endpoint: Endpoint) -> dict[str, Any]:
        rate = None if not self.attempts_24h else 1 - self.failures_24h / self.attempts_24h
        return {
            "success_rate_24h": rate,
            "attempts_24h": self.attempts_24h,
            "failures_24h": self.failures_24h,
            "last_error": endpoint.last_error or None,
            "last_error_at": rfc3339(endpoint.last_error_at) if endpoint.last_error else None,
            "next_attempt": rfc3339(self.next_attempt) if self.next_attempt else None,
            "pending": self.pending,
            "failed": self.failed,
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    endpoint: str
    event_seq: int | None
    type: str
    status: str
    attempts: int
    next_at: float
    last_status: int
    last_error: str
    last_response: str
    created_at: float
    done_at: float

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "seq": self.event_seq,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt": rfc3339(self.next_at) if self.status == "pending" else None,
            "last_status": self.last_status or None,
            "last_error": self.last_error or None,
            "last_response": self.last_response or None,
            "created_at": rfc3339(self.created_at),
            "done_at": rfc3339(self.done_at) if self.done_at else None,
        }


def scope_json(
    docs: frozenset[str] | None, viewer: str | None, creator: str = "", role: str = ""
) -> str:
    """An endpoint's scope as stored: what its creator could see when creating it, who
    that was (see :func:`creator_needle`) and, for an operator's token, its role (kept
    before the creator, which :func:`creator_needle` finds at the end)."""
    scope: dict[str, Any] = {"docs": None if docs is None else sorted(docs), "viewer": viewer}
    if role:
        scope["role"] = role
    return json.dumps({**scope, "creator": creator})


def creator_needle(sub: str) -> str:
    """What a stored scope contains when ``sub`` created the endpoint (the JSON string is
    escaped, so no other subject's scope contains it)."""
    return '"creator": ' + json.dumps(sub) + "}"


def scope_of(text: str) -> tuple[frozenset[str] | None, str | None, str, str]:
    scope = json.loads(text) if text else {}
    docs = scope.get("docs")
    return (
        (None if docs is None else frozenset(docs)),
        scope.get("viewer"),
        scope.get("creator", ""),
        scope.get("role", ""),
    )


def payload_of(event: StoredEvent) -> str:
    """The Standard Webhooks body of an event."""
    body = {"type": event.type, "timestamp": rfc3339(event.at), "data": event_json(event)}
    return json.dumps(body, separators=(",", ":"))
