"""Slowloris defence: every HTTP request head (an upgrade included) must arrive whole within
a deadline, every request body within its own deadline at a minimum rate, and one address
may hold only so many connections whose request is unfinished.

uvicorn's HTTP protocol waits for a request head forever (its keep-alive timeout only runs
between requests), so 2,000 sockets that each send half a request line held file
descriptors until the server could not accept ``/healthz``; a body trickled a byte at a
time held its connection (and the task reading it) as long as the client liked. This
subclass of uvicorn's httptools protocol arms a timer when a connection is made (and when
a new request begins on a kept-alive one), disarms it once the head is parsed (an upgrade
then leaves this protocol for the WebSocket one), and aborts the connection when it fires.

A request with a body stays unfinished until its body has arrived: it has
``body_timeout`` seconds, plus one second for every ``MIN_BODY_BYTES_PER_SECOND`` bytes
received (a slow but honest upload keeps going; a trickle does not), and it still counts
toward its address's cap. After a response sent before the body has arrived (a 413, a
429), at most ``LINGER_BYTES`` more of it are read (and thrown away) within
``LINGER_SECONDS``, so that an honest client can finish sending and read the answer; past
that the connection is closed instead of reading the rest. Connections over an address's
cap are aborted as they are made (or, for a kept-alive connection, when its next body
begins).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from crdt_server.wire.uvicorn_private import HttpToolsProtocol

__all__ = [
    "LINGER_BYTES",
    "LINGER_SECONDS",
    "MIN_BODY_BYTES_PER_SECOND",
    "HeadDeadlineProtocol",
    "head_deadline_protocol",
]

log = logging.getLogger("crdt_server.wire.http_head")

MIN_BODY_BYTES_PER_SECOND = 1024
"""Each byte of a body received moves its deadline on by 1/this of a second."""
LINGER_BYTES = 1 << 20
"""Of a body already answered (413, 429), how much more is read before closing."""
LINGER_SECONDS = 2.0
"""How long the rest of a body already answered may take before the connection closes."""


class HeadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on each request head and body."""

    head_timeout: float = 10.0
    body_timeout: float = 30.0
    max_pending_per_address: int = 512
    pending: Counter[str] = Counter()
    """Connections per address whose first head, or whose body, is unfinished (one server
    per process)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._pending_address: str | None = None
        self._body_deadline: float | None = None
        """When the body must have arrived (moved on as bytes come); ``None``: no body is
        on its way."""
        self._linger_left: int | None = None
        """Bytes of an answered body still read before closing; ``None``: not answered."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self._count():
            log.info("too many unfinished requests from one address; dropping a connection")
            transport.abort()
            return
        self._arm(self.head_timeout, self._head_late)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._timer is None:  # the next request on a kept-alive connection
            self._arm(self.head_timeout, self._head_late)

    def on_headers_complete(self) -> None:
        self._disarm()
        if self._expects_body():
            if self._pending_address is None and not self._count():
                log.info("too many unfinished requests from one address; dropping a body")
                self.transport.abort()
                return
            self._body_deadline = self.loop.time() + self.body_timeout
            self._arm(self.body_timeout, self._body_check)
        else:
            self._release()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._linger_left is not None:
            self._linger_left -= len(body)
            if self._linger_left < 0:
                self._linger_over()
                return
        elif self._body_deadline is not None:
            self._body_deadline += len(body) / MIN_BODY_BYTES_PER_SECOND
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._finished()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self._body_deadline is not None and not self.transport.is_closing():
            # Answered before its body arrived (413, 429): the rest is only work. Read a
            # little of it, for a client that reads the answer once it has sent its body.
            self._disarm()
            self._body_deadline = None
            self._linger_left = LINGER_BYTES
            self._arm(LINGER_SECONDS, self._linger_over)
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._finished()
        super().connection_lost(exc)

    def _expects_body(self) -> bool:
        if self.parser.should_upgrade():
            return False
        for name, value in self.headers:
            if name == b"content-length":
                return value.strip() not in (b"", b"0")
            if name == b"transfer-encoding":
                return True
        return False

    def _count(self) -> bool:
        """Count this connection toward its address's unfinished requests (``False``:
        the address is at its cap, nothing counted)."""
        address = self.client[0] if self.client else ""
        pending = self.pending
        if pending[address] >= self.max_pending_per_address:
            return False
        pending[address] += 1
        self._pending_address = address
        return True

    def _arm(self, delay: float, callback: Any) -> None:
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _release(self) -> None:
        address = self._pending_address
        if address is not None:
            self._pending_address = None
            pending = self.pending
            pending[address] -= 1
            if pending[address] <= 0:
                del pending[address]

    def _finished(self) -> None:
        self._disarm()
        self._body_deadline = None
        self._linger_left = None
        self._release()

    def _head_late(self) -> None:
        self._timer = None
        log.info("a request head did not arrive within %.1f s; dropping it", self.head_timeout)
        self._finished()
        self.transport.abort()

    def _linger_over(self) -> None:
        """The rest of an answered body is too long or too slow: close, unread."""
        self._finished()
        self.transport.close()

    def _body_check(self) -> None:
        self._timer = None
        deadline = self._body_deadline
        if deadline is None:
            return
        left = deadline - self.loop.time()
        if left > 0:  # bytes came since: the deadline moved on
            self._arm(left, self._body_check)
            return
        # No line of its own: the request's access line (499, the client's body never
        # came) is the one line this costs in the log.
        self._finished()
        self.transport.abort()


def head_deadline_protocol(
    head_timeout: float, max_pending_per_address: int, body_timeout: float = 30.0
) -> type[asyncio.Protocol]:
    """The HTTP protocol class of this process, set to these limits. One class at module
    level (not one per call) so that uvicorn can hand it to worker processes by name; each
    worker sets its limits from its own settings (``crdt_server.cli.app_from_env``)."""
    HeadDeadlineProtocol.head_timeout = head_timeout
    HeadDeadlineProtocol.max_pending_per_address = max_pending_per_address
    HeadDeadlineProtocol.body_timeout = body_timeout
    return HeadDeadlineProtocol
