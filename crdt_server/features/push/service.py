"""Push delivery: the VAPID key kept in the store, and one push request (RFC 8030) to a
checked address through the webhook feature's pooled sender.

An endpoint is a URL a browser's push service gave and a client sent us, so it passes the
webhook SSRF guard (every address its name resolves to is public; the request connects to
the checked address, TLS verified for the endpoint's own name; checked again when the
pool's check is 30 s old) plus a rule of push's own: ``https`` only.
``CRDT_SERVER_PUSH_ALLOW_PRIVATE`` lifts both (tests).
"""

from __future__ import annotations

import hashlib

from crdt_server import clock
from crdt_server.features.push.domain import VapidKey, encrypt
from crdt_server.features.push.tables import KeyRow, SubscriptionRow
from crdt_server.features.webhooks import Senders, UnsafeTarget, check_url, resolve_target
from crdt_server.storage import Gateway
from crdt_server.storage.gateway import Sql, Tx, rows_as

__all__ = ["USER_AGENT", "check_endpoint", "check_scheme", "keep_key", "push_once", "topic_of"]

USER_AGENT = "crdt-server-push/1"


def check_scheme(endpoint: str, *, allow_private: bool) -> None:
    """The push-only rule: ``https`` (plain ``http`` only with ``allow_private``)."""
    check_url(endpoint)
    if not endpoint.startswith("https://") and not allow_private:
        raise UnsafeTarget(
            "a push endpoint must be https (set CRDT_SERVER_PUSH_ALLOW_PRIVATE=true in tests)"
        )


async def check_endpoint(endpoint: str, *, allow_private: bool) -> None:
    """Raise :class:`UnsafeTarget` (its message safe to show) unless the endpoint may
    receive pushes now."""
    check_scheme(endpoint, allow_private=allow_private)
    await resolve_target(endpoint, allow_private=allow_private)


async def keep_key(db: Gateway, configured: str) -> VapidKey:
    """The VAPID key: the configured one, or the store's (a new one is inserted only if
    none is there, then the stored one is read back: two hosts starting at once sign
    with the same key)."""
    if configured:
        return VapidKey.parse(configured)
    fresh = VapidKey.generate().pem()

    def tx() -> Tx[str]:
        yield Sql(
            "INSERT INTO {t}push_keys (name, private_key, created_at) VALUES ('vapid', ?, ?)"
            " ON CONFLICT DO NOTHING",
            (fresh, clock.now()),
        )
        [row] = yield from rows_as(
            KeyRow, "SELECT private_key FROM {t}push_keys WHERE name = 'vapid'"
        )
        return row.private_key

    return VapidKey.parse(await db.run(tx()))


def topic_of(tag: str) -> str:
    """A ``Topic`` header for ``tag`` (at most 32 characters of the URL-safe base64
    alphabet, RFC 8030 5.4): a message with the same topic replaces one still queued."""
    return hashlib.sha256(tag.encode()).hexdigest()[:32]


async def push_once(
    senders: Senders,
    key: VapidKey,
    subject: str,
    subscription: SubscriptionRow,
    payload: bytes,
    *,
    ttl: int,
    urgency: str,
    topic: str,
    allow_private: bool,
) -> int:
    """Send one encrypted message; the push service's status. Raises
    :class:`UnsafeTarget` (refused address), :class:`TimeoutError` or :class:`SendFailed`
    (no answer)."""
    check_scheme(subscription.endpoint, allow_private=allow_private)
    body = encrypt(payload, subscription.p256dh, subscription.auth)
    headers = {
        "content-type": "application/octet-stream",
        "content-encoding": "aes128gcm",
        "ttl": str(ttl),
        "urgency": urgency,
        "topic": topic,
        "user-agent": USER_AGENT,
        "authorization": key.authorization(subscription.endpoint, subject, clock.now()),
    }
    # To the checked address, TLS checked against the endpoint's own name (the name is
    # never resolved a second time); the answer's status is all we need.
    status, _ = await senders.post(subscription.endpoint, headers, body)
    return status
