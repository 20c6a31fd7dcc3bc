"""The ``/sync`` sessions' keepalive: one timer for all of a registry's sessions, each
session ticked once per :data:`KEEPALIVE_SECONDS`, the ticks spread over it.

A timer of its own per session (``loop.call_later``, re-armed at every tick) was about 600
bytes more on every idle connection (the timer handle, its arguments, its place in the
loop's heap; issue 76). Here a session is one entry in a list: 8 bytes (a set of a hundred
takes 84 bytes an entry), and a session leaving is looked for in its slot's list alone, a
hundredth of them. The wire's WebSocket pings (:class:`crdt_server.wire.keepalive.Pinger`)
are spread over their interval the same way.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

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


class Keepalive:
    """One timer for every ``/sync`` session of a registry: sessions are dealt round-robin
    into slots, and one slot is ticked every ``interval / slots`` seconds, so each session
    is ticked once per ``interval`` (its first tick within an interval of joining) and no
    loop turn ticks more than a slot's share of them. The timer runs only while a session
    is in a slot."""

    SLOT_SECONDS = 0.1
    MAX_SLOTS = 256

    def __init__(self, interval: float = KEEPALIVE_SECONDS) -> None:
        self.interval = interval
        count = max(1, min(self.MAX_SLOTS, round(interval / self.SLOT_SECONDS)))
        self._slots: list[list[Ticked]] = [[] for _ in range(count)]
        self._step = interval / count
        self._dealt = 0  # slot the next session goes to
        self._due = 0  # slot ticked next
        self._next_at = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def add(self, session: Ticked) -> int:
        """Tick ``session`` from now on; returns its slot, for :meth:`remove`."""
        slot = self._dealt
        self._slots[slot].append(session)
        self._dealt = (slot + 1) % len(self._slots)
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._next_at = loop.time() + self._step
            self._timer = loop.call_at(self._next_at, self._tick)
        return slot

    def remove(self, session: Ticked, slot: int) -> None:
        """Tick ``session`` (added to ``slot``) no more."""
        sessions = self._slots[slot]
        for i, other in enumerate(sessions):
            if other is session:
                del sessions[i]
                return

    def __len__(self) -> int:
        """Sessions ticked."""
        return sum(len(slot) for slot in self._slots)

    def close(self) -> None:
        """Stop ticking (the registry is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for slot in self._slots:
            slot.clear()

    def _tick(self) -> None:
        self._timer = None
        for session in list(self._slots[self._due]):
            try:
                session.keepalive_tick()
            except Exception:  # one session's failure never stops the others' ticks
                log.exception("keepalive tick failed")
        self._due = (self._due + 1) % len(self._slots)
        if any(self._slots):
            # Anchored to the schedule, not to now: a late tick does not push the rest back.
            loop = asyncio.get_running_loop()
            self._next_at = max(self._next_at + self._step, loop.time())
            self._timer = loop.call_at(self._next_at, self._tick)
