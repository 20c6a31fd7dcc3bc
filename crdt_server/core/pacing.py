"""Round-robin turns for the peers' updates, so that one turn of the event loop stays short.

The event loop runs, in each turn, every callback that became ready before it: each readable
connection's frames, each room's commit and echo, each new connection's handshake. Under
overload every connection has frames queued, and a connection's session handles all of its
queued frames in one step, so a turn grows to seconds (measured: 1 to 3.8 s a turn during a
10x burst). Everything that takes several turns then takes tens of seconds: a guest joining
(accept, upgrade, load, sync: a dozen turns), a room's next commit (a turn to hand the batch
to the writer, one to relay it).

A :class:`Pacer` bounds the time one turn spends handling updates to about ``budget``.
Sessions report what each update cost (:meth:`Pacer.spent`). While a turn's updates have
cost less than ``budget``, a session handles its update at once (a few attribute reads, no
waiting). Past it, sessions queue (FIFO), and each later turn lets as many of them through
as its budget is expected to cover; a session let through handles up to ``slice`` of its
queued updates (so a room still commits and relays them as one batch), then queues again
at the back: connections take turns. Nothing is dropped: a waiting connection's frames stay
in its own bounded inbox, then in the kernel (the transport stops reading), as they would
behind a long turn.

A quiet room's update (its wedding takes in few updates: one that is not part of the
overload, :meth:`crdt_server.core.backlog.Backlog.quiet`) is let through at once, its cost
counted in the turn's: behind the busy connections' round robin it would wait for every
one of them (measured: a quiet wedding's echo 12 to 26 s in the product scenario at 4x
and 8x its sustainable rate), and in a lane of its own, let through first at the next
turn, it still waited a whole turn, 40 to 60 ms under overload, of the 100 ms its echo
may take (:mod:`storage._group_commit` has the commit's side of it).

Turns are shared by wedding, not by connection (start-time fair queuing): each session
waits with a tag, its wedding's share of the turns so far, and the smallest tag goes
first, so a wedding of ten connections gets the turns of one, and a wedding that sends
less than its share finds its tag the smallest. And a quiet room's update goes at once
only while its wedding is not ahead of its share: when the overload is spread over a
thousand weddings each sending one update a second, the rate judgement calls all of them
quiet (each holds 0 or 1 in a rate window), and without the share every update went at
once, the pacer let everything through, and the loop's turns grew long for all.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

from crdt_server.core.metrics import Metrics

__all__ = ["SWEEP_SLICE", "Pacer", "PacerSlot", "in_turns"]

_T = TypeVar("_T")

SWEEP_SLICE = 0.005
"""Longest a sweep over every wedding runs in one turn of the loop (:func:`in_turns`)."""

_MAX_GRANT = 4096
"""Most sessions let through in one turn."""


class PacerSlot:
    """One session's place with the pacer: the turn it was let through in, what it spent."""

    __slots__ = ("turn", "spent")

    def __init__(self) -> None:
        self.turn = -1
        self.spent = 0.0


class Pacer:
    """Turns for one event loop's sessions (see the module docstring); ``budget`` 0: off."""

    def __init__(self, budget: float, metrics: Metrics | None = None) -> None:
        self.budget = budget
        self.slice = budget / 8
        """How long one session let through may go on handling its queued updates."""
        self._metrics = metrics or Metrics()
        self._waiting: list[tuple[float, int, asyncio.Future[None], PacerSlot]] = []
        """The sessions waiting, a heap by (tag, arrival)."""
        self._arrivals = itertools.count()
        self._vtime = 0.0
        """The tag of the last session let through from the queue (start-time fair queuing's
        virtual time; 0 again whenever the queue empties)."""
        self._finish: dict[Hashable, float] = {}
        """Each share's tag after its last session queued or let through at once (the
        shares seen since the queue last emptied)."""
        self._turn = 0
        """Numbers the turns being timed."""
        self._timing = False
        """A turn is being timed (its end is scheduled)."""
        self._spent = 0.0
        """What this turn's updates cost so far."""
        self._grant = 1
        """Sessions let through per turn while others wait (tuned turn by turn)."""
        self._entered = 0
        """Sessions let through in this turn (at once or from the queue)."""
        self._granted = 0
        """Sessions let through that have not run yet: until they have, a session that comes
        back for its next update queues behind the others (round robin)."""

    @property
    def waiting(self) -> int:
        """Sessions waiting for their turn."""
        return len(self._waiting)

    async def turn(
        self, ticket: PacerSlot, quiet: bool = False, share: Hashable | None = None
    ) -> None:
        """Return when the session holding ``ticket`` may handle its next update;
        ``share``: whose share of the turns it takes (its wedding; by default its own);
        ``quiet``: its wedding is quiet (it goes at once, ahead of the busy ones' queue,
        while its share is not ahead of the others')."""
        if self.budget <= 0:
            return
        key: Hashable = ticket if share is None else share
        if quiet and self._finish.get(key, 0.0) <= self._vtime:
            self._finish[key] = self._vtime + 1.0
            return
        if not self._timing:
            self._time_turn()
        elif ticket.turn == self._turn and ticket.spent < self.slice:
            return  # let through in this turn, with some of its slice left
        elif self._waiting or self._granted or self._spent >= self.budget:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            tag = max(self._vtime, self._finish.get(key, 0.0))
            self._finish[key] = tag + 1.0
            heapq.heappush(self._waiting, (tag, next(self._arrivals), future, ticket))
            try:
                await future  # a cancelled waiter is skipped when its turn comes
            finally:
                if not future.cancelled():
                    self._granted -= 1
            return
        ticket.turn, ticket.spent = self._turn, 0.0
        self._entered += 1

    def spent(self, ticket: PacerSlot, seconds: float) -> None:
        """The update the session holding ``ticket`` was let through for cost ``seconds``."""
        ticket.spent += seconds
        self._spent += seconds

    def _time_turn(self) -> None:
        self._begin_turn()
        # Called soon: at the start of the next turn, behind what this one made ready.
        asyncio.get_running_loop().call_soon(self._next_turn)

    def _begin_turn(self) -> None:
        self._turn += 1
        self._timing = True
        self._spent = 0.0
        self._entered = 0

    def _next_turn(self) -> None:
        spent, entered, self._timing = self._spent, self._entered, False
        if not self._waiting:
            self._metrics.updates_waiting_turn = 0
            self._vtime = 0.0
            self._finish.clear()
            return
        # What one session let through cost last turn, scaled to the budget (at most doubled).
        per_session = spent / max(1, entered)
        fits = int(self.budget / per_session) if per_session > 0 else _MAX_GRANT
        self._grant = max(1, min(_MAX_GRANT, 2 * self._grant, fits))
        self._begin_turn()
        queue = self._waiting
        while queue and self._entered < self._grant:
            tag, _, future, ticket = heapq.heappop(queue)
            self._vtime = max(self._vtime, tag)
            if not future.done():
                ticket.turn, ticket.spent = self._turn, 0.0
                future.set_result(None)
                self._entered += 1
        self._granted += self._entered
        self._metrics.updates_waiting_turn = self.waiting
        # After the wake-ups just scheduled: the sessions let through run first.
        asyncio.get_running_loop().call_soon(self._next_turn)


async def in_turns(
    items: Iterable[_T], do: Callable[[_T], object], budget: float = SWEEP_SLICE
) -> None:
    """``do`` each of ``items`` in order, letting the loop turn whenever ``budget`` seconds
    have gone since it last did: a periodic sweep over every wedding of the process (who
    became away, what to publish) then costs the other connections a few milliseconds at
    a time, however many weddings there are. Measured: the presence sweep over 1,000
    weddings of 10 connected people held the loop 240 to 290 ms every 5 s, and at 150
    updates/s that was their echo's p99 (234 to 286 ms, against a p50 of 2.5 ms)."""
    started = time.perf_counter()
    for item in items:
        do(item)
        if time.perf_counter() - started >= budget:
            await asyncio.sleep(0)
            started = time.perf_counter()
