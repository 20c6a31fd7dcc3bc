"""One timer for many members, each ticked once per interval, the ticks spread over it.

The server keeps two such schedules: the native WebSocket pings of
:mod:`crdt_server.wire.keepalive` and the ``/sync`` sessions' keepalive of
:mod:`crdt_server.core.keepalive`. A timer of its own per member (``loop.call_later``,
re-armed at every tick) was about 600 bytes more on every idle connection (the timer
handle, its arguments, its place in the loop's heap; issue 76), and ticking every member in
one loop turn wrote 18,000 pings and read 18,000 pongs at once each interval, which held
every delivery of that process back by hundreds of milliseconds (issue 22). Here a member
is one entry in a list: 8 bytes (a set of a hundred takes 84 bytes an entry), and one
leaving is looked for in its own slot's list alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["SpreadTicks"]

T = TypeVar("T")


class SpreadTicks(Generic[T]):
    """Members are dealt round-robin into slots, and one slot is ticked every
    ``interval / slots`` seconds (``tick(member)`` for each of its members), so each member
    is ticked once per ``interval`` (its first tick within an interval of joining) and no
    loop turn ticks more than a slot's share of them. The timer runs only while a member is
    in a slot. A tick that raises is logged on ``log``; the others go on."""

    SLOT_SECONDS = 0.1
    MAX_SLOTS = 256

    def __init__(self, interval: float, tick: Callable[[T], None], log: logging.Logger) -> None:
        self.interval = interval
        count = max(1, min(self.MAX_SLOTS, round(interval / self.SLOT_SECONDS)))
        self._slots: list[list[T]] = [[] for _ in range(count)]
        self._step = interval / count
        self._tick_one = tick
        self._log = log
        self._dealt = 0  # slot the next member goes to
        self._due = 0  # slot ticked next
        self._next_at = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def add(self, member: T) -> list[T]:
        """Tick ``member`` from now on; returns its slot, for :meth:`remove`."""
        slot = self._slots[self._dealt]
        slot.append(member)
        self._dealt = (self._dealt + 1) % len(self._slots)
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._next_at = loop.time() + self._step
            self._timer = loop.call_at(self._next_at, self._tick)
        return slot

    @staticmethod
    def remove(member: T, slot: list[T]) -> None:
        """Tick ``member`` (added to ``slot``) no more."""
        for i, other in enumerate(slot):
            if other is member:
                del slot[i]
                return

    def __len__(self) -> int:
        """Members ticked."""
        return sum(len(slot) for slot in self._slots)

    def close(self) -> None:
        """Stop ticking, every member dropped."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for slot in self._slots:
            slot.clear()

    def _tick(self) -> None:
        self._timer = None
        for member in list(self._slots[self._due]):
            try:
                self._tick_one(member)
            except Exception:  # one member's failure never stops the others' ticks
                self._log.exception("tick failed")
        self._due = (self._due + 1) % len(self._slots)
        if any(self._slots):
            # Anchored to the schedule, not to now: a late tick does not push the rest back.
            loop = asyncio.get_running_loop()
            self._next_at = max(self._next_at + self._step, loop.time())
            self._timer = loop.call_at(self._next_at, self._tick)
