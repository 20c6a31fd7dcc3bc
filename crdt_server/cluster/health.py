"""The bus's health ping: a lost Redis is noticed within a second, not at the next publish.

Pub/sub alone cannot tell a quiet bus from a dead one: a subscriber waits for messages
whether or not Redis is there, and a publish finds out only after its socket timeout (5 s),
and only if something is published. So the bus pings Redis every :data:`PING_EVERY`
seconds, each ping bounded by :data:`PING_TIMEOUT`: the first one that fails marks the bus
*lost* (one log line, ``crdt_bus_up`` 0, ``/readyz`` says ``bus: lost: ...``), and the first
that answers afterwards marks it *back* (one log line). The bus drops its subscription when
lost, and subscribes again and catches every room up from the store once back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

__all__ = ["PING_EVERY", "PING_TIMEOUT", "BusHealth"]

log = logging.getLogger("crdt_server.cluster.health")

PING_EVERY = 0.25
"""Seconds between two health pings (one is sent at once when a failure is suspected)."""
PING_TIMEOUT = 0.75
"""A ping not answered within this fails: with :data:`PING_EVERY`, a bus that stops
answering is lost within a second."""


class BusHealth:
    """Pings the bus with ``ping`` (an awaitable that raises if the bus did not answer) and
    says when the bus is lost and back."""

    def __init__(self, ping: Callable[[], Awaitable[object]]) -> None:
        self._ping = ping
        self.lost: str | None = None
        """Why the bus is lost now, or ``None`` while it answers."""
        self.losses = 0
        """Times the bus was lost."""
        self.back = asyncio.Event()
        """Set while the bus answers (what a reconnecting subscriber waits for)."""
        self.back.set()
        self._lost_since = 0.0
        self._suspect = asyncio.Event()

    def suspect(self) -> None:
        """Something failed on the bus: ping now rather than at the next tick."""
        self._suspect.set()

    async def run(self) -> None:
        """Ping for ever (a task of the bus)."""
        while True:
            why: str | None = None
            try:
                async with asyncio.timeout(PING_TIMEOUT):
                    await self._ping()
            except TimeoutError:
                why = f"no answer to a health ping within {PING_TIMEOUT:g} s"
            except Exception as exc:  # any failure of the client is the bus's failure
                why = f"health ping failed: {type(exc).__name__}: {exc}"
            self._observe(why)
            self._suspect.clear()
            try:
                async with asyncio.timeout(PING_EVERY):
                    await self._suspect.wait()
            except TimeoutError:
                pass

    def _observe(self, why: str | None) -> None:
        if why is not None and self.lost is None:
            self.lost = why
            self.losses += 1
            self._lost_since = time.monotonic()
            self.back.clear()
            log.warning(
                "lost the Redis bus (%s); serving local clients only, and catching every"
                " room up from the store once it is back",
                why,
            )
        elif why is None and self.lost is not None:
            self.lost = None
            self.back.set()
            log.warning("the Redis bus is back after %.1f s", time.monotonic() - self._lost_since)
