"""Signed webhook requests (Standard Webhooks) to checked addresses, over kept-alive
connections pooled per receiver, with aiohttp.

Each receiver (scheme, host and port of an endpoint's URL) has its own pool of keep-alive
connections (:class:`Senders`), and its connections go only to the address its name was
checked at (:func:`resolve_target`): the pool's resolver answers that address and nothing
else, so nothing resolves the name a second time (DNS rebinding cannot swap it), while the
request keeps the name in its URL: the ``Host`` header says it, and TLS sends it as the
server name and verifies the certificate against it. The name is resolved and checked again
when the pool is older than :data:`RECHECK_SECONDS`; if it now resolves elsewhere, the pool
and its connections are dropped and a new one goes to the new address; if it is refused,
the pool is dropped and the attempt refused. The body is signed with every secret the
endpoint currently signs with (two for 24 h after a rotation), once per attempt; the
timestamp is taken when the request is built, right before it is sent. At most
:data:`MAX_RESPONSE_BYTES` of the answer are read. No cookies are kept, no redirect is
followed, no proxy from the environment is used.

aiohttp, not httpx: ``benchmarks/http_clients.py`` measures each candidate client's CPU per
POST to a kept-alive local receiver; aiohttp's was several times lower than httpx's (its
response parser is C, and it makes no per-request locks, events and streams).
"""

from __future__ import annotations

import base64
import hmac
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import certifi
from aiohttp.abc import AbstractResolver, ResolveResult
from standardwebhooks import Webhook

from crdt_server import clock as wall_clock
from crdt_server.features.webhooks.domain import Endpoint
from crdt_server.features.webhooks.domain_safety import (
    UnsafeTarget,
    check_url,
    resolve_target,
)

__all__ = [
    "MAX_RESPONSE_BYTES",
    "RECHECK_SECONDS",
    "USER_AGENT",
    "SendFailed",
    "Senders",
    "post_signed",
]

MAX_RESPONSE_BYTES = 1024
"""How much of a receiver's answer is kept (shown in the deliveries list)."""
USER_AGENT = "crdt-server-webhooks/1"
RECHECK_SECONDS = 30.0
"""How long a receiver's checked address is used before its name is resolved again."""
IDLE_SECONDS = 300.0
"""A pool unused this long is closed (when another one is made)."""
KEEPALIVE_SECONDS = 30.0
"""How long an idle kept-alive connection stays open."""
MAX_SIGNERS = 4096


class SendFailed(Exception):
    """No answer from the receiver (refused, reset, TLS or protocol error); the message
    names the cause. A timeout raises :class:`TimeoutError` instead."""


class _Pinned(AbstractResolver):
    """A resolver that knows one name, at the address it was checked at."""

    def __init__(self, host: str, address: str) -> None:
        self._host = host
        self._address = address
        self._family = socket.AF_INET6 if ":" in address else socket.AF_INET

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != self._host:
            raise OSError(f"{host!r} was not checked")  # never: one receiver per pool
        return [
            {
                "hostname": host,
                "host": self._address,
                "port": port,
                "family": self._family,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


@dataclass(slots=True)
class _Pool:
    session: aiohttp.ClientSession
    address: str
    checked_at: float
    used_at: float


def default_tls() -> ssl.SSLContext:
    """Certificates verified against Mozilla's roots (certifi), as browsers would."""
    return ssl.create_default_context(cafile=certifi.where())


class Senders:
    """Keep-alive connection pools, one per receiver (see the module docstring)."""

    def __init__(
        self,
        *,
        timeout: float,
        allow_private: bool,
        max_connections: int,
        clock: Callable[[], float] = time.monotonic,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``max_connections``: per receiver; ``tls``: the context certificates are
        verified with (:func:`default_tls` when not given; tests give their own CA)."""
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._allow_private = allow_private
        self._max_connections = max_connections
        self._tls = tls
        """Made on the first https receiver (reading the roots costs tens of ms)."""
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._keys: dict[str, bytes] = {}
        self.made = 0
        """Pools made so far (a dropped one is made again)."""

    async def _pool(self, url: str) -> aiohttp.ClientSession:
        """The pool for ``url``'s receiver, to its checked address (resolved and checked
        again at most every :data:`RECHECK_SECONDS`). Raises :class:`UnsafeTarget` (and
        drops the pool) if the receiver is refused now."""
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
                session = self._session(host, checked.address, key[0])
                pool = self._pools[key] = _Pool(session, checked.address, now, now)
                self.made += 1
            else:
                pool.checked_at = now
        pool.used_at = now
        return pool.session

    async def post(
        self, url: str, headers: Mapping[str, str], body: bytes, *, keep: int = MAX_RESPONSE_BYTES
    ) -> tuple[int, bytes]:
        """POST ``body`` to ``url`` (its checked address): the answer's status and at most
        ``keep`` bytes of its body. Raises :class:`UnsafeTarget` (refused address),
        :class:`TimeoutError` (no answer in time) or :class:`SendFailed` (no answer)."""
        session = await self._pool(url)
        try:
            async with session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                kept = b""
                while len(kept) < keep:
                    chunk = await response.content.read(keep - len(kept))
                    if not chunk:
                        break
                    kept += chunk
                return response.status, kept
        except TimeoutError:
            raise
        except (aiohttp.ClientError, OSError) as exc:
            raise SendFailed(f"{type(exc).__name__}: could not reach the receiver") from exc

    def sign(self, secret: str, delivery: str, stamp: int, payload: str) -> str:
        """``v1,<base64 HMAC-SHA256 of id.timestamp.body>`` with ``secret`` (a Standard
        Webhooks ``whsec_`` secret, decoded once): what ``standardwebhooks``' ``sign``
        writes, at a third of its cost (one C call for the HMAC, no datetime)."""
        key = self._keys.get(secret)
        if key is None:
            if len(self._keys) >= MAX_SIGNERS:
                self._keys.clear()
            key = self._keys[secret] = Webhook(secret)._whsecret
        mac = hmac.digest(key, f"{delivery}.{stamp}.{payload}".encode(), "sha256")
        return "v1," + base64.b64encode(mac).decode()

    async def aclose(self) -> None:
        for key in list(self._pools):
            await self._drop(key)

    def _session(self, host: str, address: str, scheme: str) -> aiohttp.ClientSession:
        tls: ssl.SSLContext | bool = False  # plain http: no TLS at all
        if scheme == "https":
            tls = self._tls = self._tls or default_tls()
        connector = aiohttp.TCPConnector(
            resolver=_Pinned(host, address),
            use_dns_cache=False,
            limit=self._max_connections,
            ssl=tls,
            keepalive_timeout=KEEPALIVE_SECONDS,
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            trust_env=False,  # never through a proxy from the environment
            cookie_jar=aiohttp.DummyCookieJar(),  # a receiver's cookies are not kept
            auto_decompress=False,
            skip_auto_headers=("accept", "accept-encoding"),
        )

    async def _drop(self, key: tuple[str, str, int]) -> None:
        pool = self._pools.pop(key, None)
        if pool is not None:
            await pool.session.close()

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
    the start of its body. Raises :class:`UnsafeTarget` (refused address),
    :class:`TimeoutError` or :class:`SendFailed` (no answer)."""
    now = wall_clock.now()
    stamp = int(now)
    signatures = " ".join(
        senders.sign(secret, delivery, stamp, payload) for secret in endpoint.signing_secrets(now)
    )
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": delivery,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signatures,
    }
    status, kept = await senders.post(endpoint.url, headers, payload.encode())
    return status, kept.decode("utf-8", "replace")
