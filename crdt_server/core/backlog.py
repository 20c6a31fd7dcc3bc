"""Bounded backlogs: the excess of an overload is pushed back to its writers, not queued.

A room's backlog is what it accepted but has not committed yet (its next batch and the one
being committed). Without a bound, a server offered more than it sustains takes every
update in and everyone waits behind everyone: a median echo a minute after the send. With
one, a connection that sends an update while its room is past its bound is not read again
until the room's commits bring it back under (see below): its frames wait in its small
inbox, then in the kernel, and TCP's window carries the pressure to the writer, who sends
no faster than the server commits. The server goes on committing at its own rate with
short batches, so what it accepts is echoed fast. (TCP reaches a writer only once the
kernel's buffers between them are full: about 119,000 of the product's small guest edits
on Linux's defaults, ``benchmarks.pushback_reach``; until then the wait is the kernel's.)

Two bounds, both per room:

- ``room_bound``: the most one room may have accepted and not committed.
- ``process_bound``: the most all the rooms of the process may have together. Past it, a
  room may keep its fair share of it (the bound divided among the rooms that have a
  backlog, at least one update), so one busy wedding never delays a quiet one: a room
  with at most one update waiting is never over, and a quiet wedding's room (below) is
  held to ``room_bound`` only, so its next update is always read at once. Its backlog is
  its own commits' latency, not a flood: with 150 busy rooms the fair share is 3 updates,
  which a wedding sending ten a second holds while a commit takes 300 ms.

A paused connection is read again once its room is under its bound, or once the room has
committed what it held when the pause began, whichever comes first: the room's other
writers, let in before, may keep it over all along, and a writer paused first must not
wait behind the later ones. A connection is paused at most ``pause_limit`` seconds at a
time: one still paused then is a client that keeps flooding a room that commits nothing
of what it held, and is closed with 1013 (its client reconnects later and resyncs). A
Hocuspocus socket carries several documents, so its reading never pauses for one of them:
an update for a room over its bound is not applied, is answered with SyncStatus 0, and the
session pulls what the room lacks with its own sync step 1 once the room is back under
(:mod:`crdt_server.core.session`).

Each of a room's counts is of its writers' updates: a run of them merged into one
(:meth:`~crdt_server.core.room.Room.apply_run`) counts one each, and a writer's run never
takes its room past its own bound (:meth:`Backlog.left`, read once nothing is awaited before
the run is counted); what it cannot take waits, as its next update would.

Which rooms are quiet (:meth:`Backlog.quiet`, whose updates the pacer lets through at
once, :mod:`crdt_server.core.pacing`) is judged by rate, not by backlog: under overload a busy
room's backlog is empty for a moment after each of its commits, so "nothing waiting" named
hundreds of busy rooms quiet at once (measured: up to 389 sessions in the pacer's quiet lane
during a 4x burst), and the one truly quiet wedding waited behind them. Rates are counted per
wedding (a room ``wedding/doc``'s part before the slash), not per room: a wedding's
documents share its writers, and a busy wedding spread over three documents may send each
as few updates as one quiet wedding's only document. A room is quiet while its wedding
accepted at most half the mean of the weddings that accepted anything, over the last whole
window of :data:`RATE_WINDOW` seconds and over the current one so far. When a burst
begins, the last window says nothing of it: one in which fewer than two weddings accepted
anything (the calm before), or one the current window has already passed in updates (the
load rose), is not the measure; the current window's mean so far is. The window is short
for the same reason: the busy weddings' mean in the window where they ramp up is half their
rate. (Measured in the overload benchmark, with a one-second window and the last window
always the measure: the quiet wedding, sending 10 updates a second beside busy weddings
sending 36, was judged busy for the first 1.5 to 2 seconds of every burst, its updates
paused and committed behind the busy ones'; that was its echo's p99.)

What a wedding accepts is not what it offers once its writers are held back: at 8x the
sustainable rate a busy room's commit takes a few hundred milliseconds (its p50 in the
250 ms bucket of ``crdt_commit_seconds``), its writers wait for it, and its wedding may
accept nothing for a window or two. Judged by rate alone it was quiet then (measured in
the overload benchmark: 2 to 33 busy weddings in each second of the 8x burst had commits
go ahead, in transactions of their own, beside the one truly quiet wedding). So a wedding
one of whose rooms was found over its bound is busy for :data:`PUSHED_WINDOWS` rate
windows' time (half a second) after, whatever it accepted. A quiet wedding's room is never
over by the process bound, only by its own, which a quiet wedding does not reach.

While the other rooms of the process hold at least a sixteenth of its bound
(:data:`AHEAD_FRACTION`), a quiet wedding's commit also goes ahead of the shared
transaction the busy rooms' appends are queued for (:meth:`Backlog.ahead`), in the turn
that applied it. With half the bound as the condition instead, the quiet wedding's echo
p99 at 4x the sustainable rate was 156 and 170 ms, against 66 and 49 ms with a sixteenth
(interleaved runs): at 4x the server nearly keeps up, its backlog stays lower than at 8x,
and the quiet wedding's commits mostly took the busy ones' way, three long turns of the
loop. At the sustainable rate the rooms hold a few updates, and every commit shares the
transaction.

Durations here are the process's own (``time.monotonic`` through the event loop), never
the wall clock.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Hashable

from crdt_server.core.metrics import Metrics

__all__ = ["RATE_WINDOW", "Backlog"]

RATE_WINDOW = 0.25
"""Seconds over which a wedding's accepted updates are counted to judge it quiet."""

PUSHED_WINDOWS = 2
"""A wedding whose writers were held back is busy for this many rate windows' time after,
whatever it accepted (:meth:`Backlog.quiet`)."""

AHEAD_FRACTION = 16
"""A quiet wedding's commits go ahead of the others' while the other rooms hold at least
this fraction of the process's bound (:meth:`Backlog.ahead`)."""


class Backlog:
    """The backlogs of one process's rooms (see the module docstring); bounds of 0: off."""

    def __init__(
        self,
        room_bound: int = 0,
        process_bound: int = 0,
        pause_limit: float = 10.0,
        metrics: Metrics | None = None,
        rate_window: float = RATE_WINDOW,
    ) -> None:
        self.room_bound = room_bound
        self.process_bound = process_bound
        self.pause_limit = pause_limit
        self._metrics = metrics or Metrics()
        self.total = 0
        """Updates accepted and not committed, in every room of the process."""
        self._rooms: dict[Hashable, int] = {}
        """Each room with a backlog: how many updates it holds (never 0: removed then)."""
        self._waiters: dict[Hashable, list[tuple[asyncio.Future[None], int]]] = {}
        """Each room's paused writers: a future, and how much of the room must be committed
        (counted in :attr:`_drained`) for it to resume whether or not the room is under."""
        self._drained: dict[Hashable, int] = {}
        """Updates each room with paused writers committed since its first one paused."""
        self.rate_window = rate_window
        self._window_end = 0.0
        """When the current rate window ends (loop time)."""
        self._window: dict[Hashable, int] = {}
        """Updates each wedding accepted in the current window (weddings with none: absent)."""
        self._window_total = 0
        self._last: dict[Hashable, int] = {}
        """Updates each wedding accepted in the last whole window."""
        self._last_mean = 0.0
        """The mean of :attr:`_last`'s counts (0: no wedding accepted anything then)."""
        self._pushed: dict[Hashable, float] = {}
        """When each wedding's writers were last held back (loop time), for the weddings
        held back in the last :data:`PUSHED_WINDOWS` rate windows' time."""

    def of(self, room: Hashable) -> int:
        """The backlog of ``room``."""
        return self._rooms.get(room, 0)

    def left(self, room: Hashable) -> int:
        """How many more updates ``room`` may accept before it reaches its own bound (at
        least one; unbounded: ``sys.maxsize``)."""
        if not self.room_bound:
            return sys.maxsize
        return max(1, self.room_bound - self._rooms.get(room, 0))

    def over(self, room: Hashable) -> bool:
        """Whether ``room`` is past its bound: its writers must wait (see the module). A
        room found over marks its wedding busy for a while (:meth:`quiet`)."""
        count = self._rooms.get(room, 0)
        if not count:
            return False
        if self.room_bound and count >= self.room_bound:
            return self._pushed_back(room)
        bound = self.process_bound
        if bound and self.total >= bound:
            # A quiet wedding's room is held to its own bound only: its backlog is its
            # commits' latency, not a flood, and its writers never wait for the busy ones.
            if count > max(1, bound // len(self._rooms)) and not self.quiet(room):
                return self._pushed_back(room)
        return False

    def _pushed_back(self, room: Hashable) -> bool:
        """``room`` is over its bound: its wedding is busy for a while (:meth:`quiet`)."""
        self._pushed[_wedding(room)] = asyncio.get_running_loop().time()
        return True

    def quiet(self, room: Hashable) -> bool:
        """Whether ``room``'s wedding accepts updates at a low rate: at most half the mean
        of the weddings that accepted any in the last whole window, then and in the current
        one so far (see the module docstring). If the last window had fewer than two
        weddings (a mean of one compares it with nothing) or fewer updates than the
        current one so far (a burst began), the current window's mean so far is the
        measure; with fewer than two weddings there too, every wedding is quiet. A wedding
        held back lately is never quiet (:data:`PUSHED_WINDOWS`)."""
        now = self._roll()
        wedding = _wedding(room)
        pushed = self._pushed.get(wedding)
        if pushed is not None and now - pushed < PUSHED_WINDOWS * self.rate_window:
            return False
        last, window = self._last, self._window
        if len(last) >= 2 and self._window_total <= self._last_mean * len(last):
            bound = max(1.0, self._last_mean / 2)
            return last.get(wedding, 0) <= bound and window.get(wedding, 0) <= bound
        if len(window) >= 2:
            return window.get(wedding, 0) <= max(1.0, self._window_total / len(window) / 2)
        return True

    def ahead(self, room: Hashable) -> bool:
        """Whether ``room``'s next commit goes ahead of the others' (in a transaction of its
        own, :meth:`~crdt_server.storage.base.DocumentStore.append`): its wedding is quiet
        and the other rooms of the process hold at least :data:`AHEAD_FRACTION` of its
        bound (its commits would wait for long turns of the loop then). Only then: each
        commit ahead costs a transaction of its own."""
        bound = self.process_bound
        if not bound or self.total - self.of(room) < max(1, bound // AHEAD_FRACTION):
            return False
        return self.quiet(room)

    def _roll(self) -> float:
        """Start a new rate window if the current one is over; the loop's time."""
        now = asyncio.get_running_loop().time()
        if now < self._window_end:
            return now
        if now < self._window_end + self.rate_window:  # the window just ended is whole
            self._last = self._window
            self._last_mean = self._window_total / len(self._window) if self._window else 0.0
        else:  # nothing was accepted for a whole window
            self._last, self._last_mean = {}, 0.0
        self._window, self._window_total = {}, 0
        self._window_end = now + self.rate_window
        if self._pushed:
            since = now - PUSHED_WINDOWS * self.rate_window
            self._pushed = {w: t for w, t in self._pushed.items() if t > since}
        return now

    def added(self, room: Hashable, count: int = 1) -> None:
        """``room`` accepted ``count`` more updates (of its writers': merged into one, they
        count one each, see :meth:`~crdt_server.core.room.Room.apply_run`)."""
        self._roll()
        wedding = _wedding(room)
        self._window[wedding] = self._window.get(wedding, 0) + count
        self._window_total += count
        self._rooms[room] = self._rooms.get(room, 0) + count
        self.total += count
        self._metrics.backlog_updates = self.total

    def removed(self, room: Hashable, count: int) -> None:
        """``room`` committed ``count`` updates (or dropped them: the store failed)."""
        held = self._rooms.get(room, 0)
        count = min(count, held)
        if not count:
            return
        self.total -= count
        self._metrics.backlog_updates = self.total
        if held == count:
            del self._rooms[room]
        else:
            self._rooms[room] = held - count
        waiters = self._waiters.get(room)
        if not waiters:
            return
        drained = self._drained[room] = self._drained.get(room, 0) + count
        under = not self.over(room)
        waiting = []
        for future, mark in waiters:
            if under or mark <= drained:
                if not future.done():
                    future.set_result(None)
            else:
                waiting.append((future, mark))
        self._keep(room, waiting)

    def under(self, room: Hashable) -> asyncio.Future[None]:
        """A future done once ``room`` is no longer over its bound (at once if it is not),
        or once what it holds now is committed, whichever comes first: the other writers of
        the room, let in before, keep it over while a writer paused first waits, and
        without the second condition that writer could wait past the limit while the room
        committed all along (measured at the issue's scale, 8x: 15 honest connections
        closed with 1013 in a 20 s burst)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.over(room):
            mark = self._drained.get(room, 0) + self._rooms.get(room, 0)
            self._waiters.setdefault(room, []).append((future, mark))
        else:
            future.set_result(None)
        return future

    def _keep(self, room: Hashable, waiting: list[tuple[asyncio.Future[None], int]]) -> None:
        """``room``'s paused writers are now ``waiting``; a room with none forgets them."""
        if waiting:
            self._waiters[room] = waiting
        else:
            del self._waiters[room]
            self._drained.pop(room, None)

    async def pause(self, room: Hashable) -> bool:
        """Wait while ``room`` is over its bound, at most :attr:`pause_limit` seconds;
        ``False``: it still is (the caller closes its connection with 1013)."""
        if not self.over(room):
            return True
        self._metrics.backlog_pauses.inc()
        self._metrics.reads_paused += 1
        future = self.under(room)
        try:
            async with asyncio.timeout(self.pause_limit or None):
                await future
        except TimeoutError:
            future.cancel()
            self._forget(room, future)
            self._metrics.backlog_pause_limits.inc()
            return False
        finally:
            self._metrics.reads_paused -= 1
        return True

    def _forget(self, room: Hashable, future: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(room)
        if waiters is None:
            return
        self._keep(room, [(f, mark) for f, mark in waiters if f is not future])


def _wedding(room: Hashable) -> Hashable:
    """The wedding a room's rate counts for: the part of ``wedding/doc`` before the slash."""
    return room.partition("/")[0] if isinstance(room, str) else room
