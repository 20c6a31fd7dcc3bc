"""Keepalive pings for a server's native WebSocket connections: one timer for all of them,
each connection ticked once per interval, the ticks spread over it."""

from __future__ import annotations

import asyncio
from typing import Protocol

__all__ = ["Pinged", "Pinger"]


class Pinged(Protocol):
    """A connection the pinger ticks (a
    :class:`~crdt_server.wire.websocket.SyncWebSocketProtocol`)."""

    def _ping(self) -> None:
        """One keepalive tick: ping a peer silent since the last one, drop one that stayed
        silent after its ping."""


class Pinger:
    """One timer for all of a server's native connections (one per connection would be two
    more objects each for the garbage collector), each connection ticked once per
    ``interval``, spread over it: connections are dealt round-robin into slots, and one
    slot is ticked every ``interval / slots`` seconds. Ticking them all in one loop turn
    wrote 18,000 pings and read 18,000 pongs at once every interval, which held every
    delivery on that process back by hundreds of milliseconds. A slot is a list, not a set:
    8 bytes a connection instead of about 45 (a set of fifty) to 84 (of a hundred); one
    leaving is looked for in its own slot alone."""

    SLOT_SECONDS = 0.1
    MAX_SLOTS = 256

    def __init__(self, interval: float) -> None:
        self.interval = interval
        count = max(1, min(self.MAX_SLOTS, round(interval / self.SLOT_SECONDS)))
        self._slots: list[list[Pinged]] = [[] for _ in range(count)]
        self._step = interval / count
        self._dealt = 0  # slot the next connection goes to
        self._due = 0  # slot ticked next
        self._next_at = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def add(self, protocol: Pinged) -> list[Pinged]:
        """Tick ``protocol`` from now on; it leaves by removing itself from the slot
        returned."""
        slot = self._slots[self._dealt]
        slot.append(protocol)
        self._dealt = (self._dealt + 1) % len(self._slots)
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._next_at = loop.time() + self._step
            self._timer = loop.call_at(self._next_at, self._tick)
        return slot

    def _tick(self) -> None:
        self._timer = None
        for protocol in list(self._slots[self._due]):
            protocol._ping()
        self._due = (self._due + 1) % len(self._slots)
        if any(self._slots):
            # Anchored to the schedule, not to now: a late tick does not push the rest back.
            self._next_at = max(self._next_at + self._step, asyncio.get_running_loop().time())
            self._timer = asyncio.get_running_loop().call_at(self._next_at, self._tick)
