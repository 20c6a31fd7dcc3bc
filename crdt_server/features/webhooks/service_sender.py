"""Signed webhook requests (Standard Webhooks) to checked addresses, over kept-alive
connections pooled per receiver, with httpx.

Each receiver (scheme, host and port of an endpoint's URL) has its own pool of keep-alive
connections (:class:`Senders`), and its connections go only to the address its name was
checked at (:func:`resolve_target`): the request's URL carries that address, so nothing
resolves the name a second time (DNS rebinding cannot swap it). The name is resolved and
checked again when the pool is older than :data:`RECHECK_SECONDS`; if it now resolves
elsewhere, the pool and its connections are dropped and a new one goes to the new address;
if it is refused, the pool is dropped and the attempt refused. The body is signed with
every secret the endpoint currently signs with (two for 24 h after a rotation), once per
attempt; the timestamp is taken when the request is built, right before it is sent. At
most :data:`MAX_RESPONSE_BYTES` of the answer are read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook

from crdt_server import clock as wall_clock
from crdt_server.features.webhooks.domain import Endpoint
from crdt_server.features.webhooks.domain_safety import (
    Target,
    UnsafeTarget,
    check_url,
    resolve_target,
)

__all__ = ["MAX_RESPONSE_BYTES", "RECHECK_SECONDS", "USER_AGENT", "Senders", "post_signed"]

MAX_RESPONSE_BYTES = 1024
"""How much of a receiver's answer is kept (shown in the deliveries list)."""
USER_AGENT = "crdt-server-webhooks/1"
RECHECK_SECONDS = 30.0
"""How long a receiver's checked address is used before its name is resolved again."""
IDLE_SECONDS = 300.0
"""A pool unused this long is closed (when another one is made)."""
MAX_SIGNERS = 4096


@dataclass(slots=True)
class _Pool:
    client: httpx.AsyncClient
    address: str
    checked_at: float
    used_at: float


class Senders:
    """Keep-alive connection pools, one per receiver (see the module docstring)."""

    @staticmethod
    def quiet_httpx() -> None:
        """httpx logs every request at INFO; each attempt is recorded (deliveries list,
        ``crdt_webhook_attempts_total``), so that line is noise and its cost was 5 % of the
        server's CPU while delivering. Left alone where logging configuration set a level."""
        logger = logging.getLogger("httpx")
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)

    def __init__(
        self,
        *,
        timeout: float,
        allow_private: bool,
        max_connections: int,
        max_keepalive: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.quiet_httpx()
        self._timeout = timeout
        self._clock = clock
        self._allow_private = allow_private
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_keepalive
        )
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._signers: dict[str, Webhook] = {}
        self.made = 0
        """Pools made so far (a dropped one is made again)."""

    async def target(self, url: str) -> tuple[httpx.AsyncClient, Target]:
        """The pool for ``url``'s receiver and the checked address to send to (resolved
        and checked again at most every :data:`RECHECK_SECONDS`). Raises
        :class:`UnsafeTarget` (and drops the pool) if the receiver is refused now."""
        host, port = check_url(url)
        key = (urlsplit(url).scheme, host, port)
        now = self._clock()
        pool = self._pools.get(key)
        if pool is None or now - pool.checked_at >= RECHECK_SECONDS:
            try:
                checked = await resolve_target(url, allow_private=self._allow_private)
            except UnsafeTarget:
                await self._drop(key)
                raise
            pool = self._pools.get(key)  # another attempt may have made or dropped it
            if pool is not None and pool.address != checked.address:
                await self._drop(key)
                pool = None
            if pool is None:
                await self._close_idle(now)
                pool = self._pools[key] = _Pool(self._client(), checked.address, now, now)
                self.made += 1
            else:
                pool.checked_at = now
        pool.used_at = now
        return pool.client, Target(url, host, pool.address, port)

    def signer(self, secret: str) -> Webhook:
        signer = self._signers.get(secret)
        if signer is None:
            if len(self._signers) >= MAX_SIGNERS:
                self._signers.clear()
            signer = self._signers[secret] = Webhook(secret)
        return signer

    async def aclose(self) -> None:
        for key in list(self._pools):
            await self._drop(key)

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=self._timeout,
            follow_redirects=False,
            trust_env=False,  # never through a proxy from the environment
            limits=self._limits,
        )

    async def _drop(self, key: tuple[str, str, int]) -> None:
        pool = self._pools.pop(key, None)
        if pool is not None:
            await pool.client.aclose()

    async def _close_idle(self, now: float) -> None:
        for key, pool in list(self._pools.items()):
            if now - pool.used_at >= IDLE_SECONDS:
                await self._drop(key)


async def post_signed(
    senders: Senders,
    endpoint: Endpoint,
    delivery: str,
    payload: str,
) -> tuple[int, str]:
    """POST ``payload`` as delivery ``delivery`` to the endpoint: the answer's status and
    the start of its body. Raises :class:`UnsafeTarget` (refused address) or
    :class:`httpx.HTTPError` (no answer)."""
    client, target = await senders.target(endpoint.url)
    now = wall_clock.now()
    stamp = int(now)
    when = datetime.fromtimestamp(stamp, UTC)
    signatures = " ".join(
        senders.signer(secret).sign(delivery, when, payload)
        for secret in endpoint.signing_secrets(now)
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
