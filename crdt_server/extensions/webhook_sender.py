"""One signed webhook request (Standard Webhooks) to a checked address, with httpx.

The URL's host is resolved and checked (:func:`resolve_target`) right before connecting,
and the request goes to that address (DNS rebinding cannot swap it). The body is signed
with every secret the endpoint currently signs with (two for 24 h after a rotation); the
timestamp is this attempt's. At most :data:`MAX_RESPONSE_BYTES` of the answer are read.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from crdt_server.extensions.webhook_model import Endpoint
from crdt_server.extensions.webhook_safety import resolve_target

__all__ = ["MAX_RESPONSE_BYTES", "USER_AGENT", "post_signed"]

MAX_RESPONSE_BYTES = 1024
"""How much of a receiver's answer is kept (shown in the deliveries list)."""
USER_AGENT = "crdt-server-webhooks/1"


async def post_signed(
    client: httpx.AsyncClient,
    endpoint: Endpoint,
    delivery: str,
    payload: str,
    *,
    allow_private: bool,
) -> tuple[int, str]:
    """POST ``payload`` as delivery ``delivery`` to the endpoint: the answer's status and
    the start of its body. Raises :class:`UnsafeTarget` (refused address) or
    :class:`httpx.HTTPError` (no answer)."""
    target = await resolve_target(endpoint.url, allow_private=allow_private)
    now = time.time()
    stamp = int(now)
    when = datetime.fromtimestamp(stamp, UTC)
    signatures = " ".join(
        Webhook(secret).sign(delivery, when, payload) for secret in endpoint.signing_secrets(now)
    )
    headers = {
        "host": target.host_header,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": delivery,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signatures,
    }
    request = client.build_request(
        "POST",
        target.connect_url,
        content=payload.encode(),
        headers=headers,
        # TLS is checked against the name in the URL while connecting to the checked
        # address (never resolving the name again).
        extensions={"sni_hostname": target.host},
    )
    response = await client.send(request, stream=True)
    try:
        kept = bytearray()
        async for chunk in response.aiter_raw():
            kept += chunk
            if len(kept) >= MAX_RESPONSE_BYTES:
                break
    finally:
        await response.aclose()
    text = bytes(kept[:MAX_RESPONSE_BYTES]).decode("utf-8", "replace")
    return response.status_code, text
