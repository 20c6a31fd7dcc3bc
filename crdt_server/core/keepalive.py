"""The ``/sync`` sessions' keepalive: one timer for all of a registry's sessions, each
session ticked once per :data:`KEEPALIVE_SECONDS`, the ticks spread over it
(:class:`crdt_server.ticks.SpreadTicks`, as the wire's WebSocket pings are).
"""

from __future__ import annotations

import logging
from typing import Protocol

from crdt_server.ticks import SpreadTicks

__all__ = ["KEEPALIVE_SECONDS", "Keepalive", "Ticked"]

log = logging.getLogger("crdt_server.core.keepalive")

KEEPALIVE_SECONDS = 10.0
"""A ``/sync`` connection sent nothing for a tick this long is sent an empty awareness
update: y-websocket drops a socket that received nothing for 30 s
(``messageReconnectTimeout``), and the server never echoes a client's own awareness, so a
lone, idle editor would otherwise reconnect every half minute."""


class Ticked(Protocol):
    """A session the keepalive ticks (:class:`crdt_server.core.session._Session`)."""

    def keepalive_tick(self) -> None:
        """One tick: send something if nothing was sent since the last one."""


class Keepalive(SpreadTicks[Ticked]):
    """One timer for every ``/sync`` session of a registry (:class:`SpreadTicks`)."""

    def __init__(self, interval: float = KEEPALIVE_SECONDS) -> None:
        super().__init__(interval, _tick, log)


def _tick(session: Ticked) -> None:
    session.keepalive_tick()
