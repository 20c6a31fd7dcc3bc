"""Keepalive pings for a server's native WebSocket connections: one timer for all of them,
each connection ticked once per interval, the ticks spread over it
(:class:`crdt_server.ticks.SpreadTicks`)."""

from __future__ import annotations

import logging
from typing import Protocol

from crdt_server.ticks import SpreadTicks

__all__ = ["Pinged", "Pinger"]

log = logging.getLogger("crdt_server.wire.keepalive")


class Pinged(Protocol):
    """A connection the pinger ticks (a
    :class:`~crdt_server.wire.websocket.SyncWebSocketProtocol`)."""

    def _ping(self) -> None:
        """One keepalive tick: ping a peer silent since the last one, drop one that stayed
        silent after its ping."""


class Pinger(SpreadTicks[Pinged]):
    """One timer for all of a server's native connections (:class:`SpreadTicks`)."""

    def __init__(self, interval: float) -> None:
        super().__init__(interval, _ping, log)


def _ping(protocol: Pinged) -> None:
    protocol._ping()
