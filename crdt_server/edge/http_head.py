"""Slowloris defence: every HTTP request head (an upgrade included) must arrive whole within
a deadline, and one address may hold only so many connections whose head is unfinished.

uvicorn's HTTP protocol waits for a request head forever (its keep-alive timeout only runs
between requests), so 2,000 sockets that each send half a request line held file
descriptors until the server could not accept ``/healthz``. This subclass of uvicorn's
httptools protocol arms a timer when a connection is made (and when a new request begins
on a kept-alive one), disarms it once the head is parsed (an upgrade then leaves this
protocol for the WebSocket one), and aborts the connection when it fires. Connections
over an address's cap are aborted as they are made.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from crdt_server.edge.uvicorn_private import HttpToolsProtocol

__all__ = ["HeadDeadlineProtocol", "head_deadline_protocol"]

log = logging.getLogger("crdt_server.edge.http_head")


class HeadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on each request head."""

    head_timeout: float = 10.0
    max_pending_per_address: int = 512
    pending: Counter[str] = Counter()
    """Connections per address whose first head is unfinished (one server per process)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._pending_address: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else ""
        pending = self.pending
        if pending[address] >= self.max_pending_per_address:
            log.info("too many unfinished requests from one address; dropping a connection")
            transport.abort()
            return
        pending[address] += 1
        self._pending_address = address
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:  # the next request on a kept-alive connection
            self._arm()

    def on_headers_complete(self) -> None:
        self._head_done()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_late)

    def _head_done(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        address = self._pending_address
        if address is not None:
            self._pending_address = None
            pending = self.pending
            pending[address] -= 1
            if pending[address] <= 0:
                del pending[address]

    def _head_late(self) -> None:
        self._head_timer = None
        log.info("a request head did not arrive within %.1f s; dropping it", self.head_timeout)
        self._head_done()
        self.transport.abort()


def head_deadline_protocol(
    head_timeout: float, max_pending_per_address: int
) -> type[asyncio.Protocol]:
    """The HTTP protocol class of this process, set to these limits. One class at module
    level (not one per call) so that uvicorn can hand it to worker processes by name; each
    worker sets its limits from its own settings (``crdt_server.cli.app_from_env``)."""
    HeadDeadlineProtocol.head_timeout = head_timeout
    HeadDeadlineProtocol.max_pending_per_address = max_pending_per_address
    return HeadDeadlineProtocol
