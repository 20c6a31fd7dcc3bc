"""The one way out to Kannel: its ``sendsms`` HTTP interface, through aiohttp.

The configured URL carries the smsbox's user and password (in its userinfo, or as
``username``/``password`` in its query); each text adds ``to``, ``text`` (UTF-8), ``from``,
``coding`` (2 for UCS-2), and a ``dlr-url`` with ``dlr-mask`` 31 (delivered, failed,
buffered, accepted by the SMSC, rejected by it), which Kannel fetches with GET. Nothing
of a text is logged: only whether Kannel took it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import aiohttp

from crdt_server.features.sms.domain import encoding_of

__all__ = ["DLR_MASK", "Kannel", "SendResult"]

log = logging.getLogger("crdt_server.sms")

DLR_MASK = 31
"""Every delivery report type: 1 delivered, 2 failed, 4 buffered, 8 accepted by the SMSC,
16 rejected by the SMSC."""


@dataclass(frozen=True, slots=True)
class SendResult:
    """What Kannel said: ``taken`` (2xx: queued for the SMSC), or ``permanent`` (a 4xx
    that no retry mends: a bad number, a refused sender), else a failure to retry."""

    taken: bool
    permanent: bool = False
    status: int = 0


class Kannel:
    """A sender to one smsbox (one aiohttp session, closed with :meth:`aclose`)."""

    def __init__(self, url: str, sender: str, timeout: float) -> None:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        if parts.username:
            query.setdefault("username", unquote(parts.username))
        if parts.password:
            query.setdefault("password", unquote(parts.password))
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port:
            netloc += f":{parts.port}"
        self._base = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        self._auth = query
        self._sender = sender
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, to: str, text: str, dlr_url: str) -> SendResult:
        """Hand one text to Kannel."""
        params = {
            **self._auth,
            "to": to,
            "text": text,
            "charset": "UTF-8",
            "dlr-mask": str(DLR_MASK),
            "dlr-url": dlr_url,
        }
        if encoding_of(text) == "ucs2":
            params["coding"] = "2"
        if self._sender:
            params["from"] = self._sender
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.get(f"{self._base}?{urlencode(params)}") as answer:
                await answer.read()
                status = answer.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("Kannel's sendsms could not be reached (%s); retrying", type(exc).__name__)
            return SendResult(False)
        if 200 <= status < 300:
            return SendResult(True, status=status)
        # 4xx: Kannel refused this text (a number it cannot route, a text too long); a 403
        # (its user or password) or a 5xx is the gateway's and is retried.
        permanent = 400 <= status < 500 and status not in (403, 408, 429)
        log.warning("Kannel's sendsms answered %d", status)
        return SendResult(False, permanent, status)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
