"""The server's one wall clock: what every route, extension, timer and table reads as "now".

Product code never calls ``time.time()``, ``datetime.now()``, ``datetime.utcnow()`` or
``date.today()``: it calls :func:`now` (Unix seconds), :func:`utcnow` (an aware UTC
``datetime``), :func:`sleep`, :func:`wait` and :func:`call_at` (timers: a socket's token
expiry) here, and a layer test (``tests/project/test_clock_layer.py``) finds no other
reader of the wall clock in ``crdt_server/`` and ``documents/``. So a test, or the testing
kit, swaps the clock of the whole process with :func:`use` (a :class:`FakeClock`) instead
of patching ``time.time``, and everything that dates a row, checks an expiry or waits for
a due time sees the same time.

:meth:`FakeClock.advance` moves the fake time forward, wakes the timers it makes due (a
:func:`sleep` or :func:`wait` whose deadline passed, a :func:`call_at` whose moment came:
a socket whose token expired is closed) and then runs every job runner registered with
:meth:`FakeClock.on_advance` (the scheduler's: the jobs that became due are done before
``advance`` returns), so a test says "three days later" and sees what three days later
looks like, at once.

Durations stay on ``time.monotonic`` where they measure the process's own elapsed time
and never name a moment: rate-limit buckets, latency histograms, read budgets, deadlines of
a wait inside one request, the loop watchdog. Those must not jump when the wall clock is
set (NTP, a VM resumed), nor when a test moves the fake clock by a week (a rate limiter
that saw a week pass would refill every bucket, a latency histogram would record a week);
they are never stored nor compared with a stored time, so the fake clock has nothing to
say to them. Anything stored, shown, compared with a stored time or a token's claims, or
waited for until a wall-clock moment (a job's due time), goes through this module.

This module is shared vocabulary: it imports nothing of the project.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any, Protocol

__all__ = [
    "Clock",
    "FakeClock",
    "SystemClock",
    "Timer",
    "call_at",
    "current",
    "now",
    "sleep",
    "today",
    "use",
    "utcnow",
    "wait",
]

Runner = Callable[[], Awaitable[object]]
"""What :meth:`Clock.on_advance` registers: a coroutine function that does the work a
moved clock made due (the scheduler's "run the due jobs")."""


class Timer(Protocol):
    """What :func:`call_at` returns: a pending call that can be called off."""

    def cancel(self) -> object:
        """Call it off (nothing if it ran already)."""
        ...


class Clock(Protocol):
    """A wall clock and its timers (:class:`SystemClock` or :class:`FakeClock`)."""

    def now(self) -> float:
        """Unix seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` of this clock have passed."""
        ...

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        """Wait for ``event`` at most ``seconds`` of this clock; whether it was set."""
        ...

    def call_at(self, when: float, callback: Callable[..., object], *args: object) -> Timer:
        """Call ``callback(*args)`` on the running loop once this clock reads ``when``
        (Unix seconds; at once if it is past)."""
        ...

    def on_advance(self, runner: Runner) -> Callable[[], None]:
        """Register ``runner`` to be awaited each time the clock is moved by hand (a fake
        clock's :meth:`FakeClock.advance`; the system clock never is). Returns the
        function that unregisters it."""
        ...


def _nothing() -> None:
    return None


class SystemClock:
    """The real time (``time.time``) and asyncio's timers."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        if event.is_set():
            return True
        try:
            async with asyncio.timeout(max(0.0, seconds)):
                await event.wait()
        except TimeoutError:
            return event.is_set()
        return True

    def call_at(self, when: float, callback: Callable[..., object], *args: object) -> Timer:
        # The loop's own timer, on its monotonic time: the wait is measured from now.
        return asyncio.get_running_loop().call_later(max(0.0, when - time.time()), callback, *args)

    def on_advance(self, runner: Runner) -> Callable[[], None]:
        return _nothing


class FakeClock:
    """A clock that moves only when told (:meth:`advance`, :meth:`set`): for tests and
    the testing kit. Its timers wake when it passes their deadline; its runners run after.
    """

    def __init__(self, start: float | datetime = 1_781_000_000.0) -> None:
        self._now = start.timestamp() if isinstance(start, datetime) else float(start)
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._runners: list[Runner] = []

    def now(self) -> float:
        return self._now

    def _timer(self, seconds: float) -> asyncio.Future[None]:
        return self._timer_at(self._now + max(0.0, seconds))

    def _timer_at(self, when: float) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (when, next(self._order), future))
        return future

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        await self._timer(seconds)

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        if event.is_set():
            return True
        if seconds <= 0:
            await asyncio.sleep(0)
            return event.is_set()
        timer = self._timer(seconds)
        waiter: asyncio.Future[bool] = asyncio.ensure_future(event.wait())
        racing: set[asyncio.Future[Any]] = {timer, waiter}
        try:
            await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            timer.cancel()
        return event.is_set()

    def call_at(self, when: float, callback: Callable[..., object], *args: object) -> Timer:
        if when <= self._now:
            return asyncio.get_running_loop().call_soon(callback, *args)
        timer = self._timer_at(when)

        def fire(done: asyncio.Future[None]) -> None:
            if not done.cancelled():
                callback(*args)

        timer.add_done_callback(fire)
        return timer

    def on_advance(self, runner: Runner) -> Callable[[], None]:
        self._runners.append(runner)

        def forget() -> None:
            if runner in self._runners:
                self._runners.remove(runner)

        return forget

    async def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward (never back), wake every timer now due, in
        deadline order, and await every registered runner (the scheduler runs the jobs
        now due): when this returns, what the new time made due is done."""
        if seconds < 0:
            raise ValueError("a clock never goes back")
        await self.set(self._now + seconds)

    async def set(self, at: float | datetime) -> None:
        """Move the clock to ``at`` (never back); see :meth:`advance`."""
        target = at.timestamp() if isinstance(at, datetime) else float(at)
        if target < self._now:
            raise ValueError("a clock never goes back")
        self._now = target
        while self._timers and self._timers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._timers)
            if not future.done():
                future.set_result(None)
        # Let the woken tasks run up to their next await before the runners start.
        for _ in range(3):
            await asyncio.sleep(0)
        for runner in list(self._runners):
            await runner()


_current: Clock = SystemClock()


def current() -> Clock:
    """The clock the process runs on now."""
    return _current


@contextmanager
def use(clock: Clock) -> Iterator[Clock]:
    """Run the process on ``clock`` inside the ``with`` block (then the one before)."""
    global _current
    before, _current = _current, clock
    try:
        yield clock
    finally:
        _current = before


def now() -> float:
    """Unix seconds, by the process's clock."""
    return _current.now()


def utcnow() -> datetime:
    """Now as an aware UTC ``datetime``, by the process's clock."""
    return datetime.fromtimestamp(_current.now(), UTC)


def today() -> date:
    """Today's date in UTC, by the process's clock."""
    return utcnow().date()


async def sleep(seconds: float) -> None:
    """Sleep ``seconds`` of the process's clock (a fake clock wakes it when advanced)."""
    await _current.sleep(seconds)


async def wait(event: asyncio.Event, seconds: float) -> bool:
    """Wait for ``event`` at most ``seconds`` of the process's clock; whether it was set."""
    return await _current.wait(event, seconds)


def call_at(when: float, callback: Callable[..., object], *args: object) -> Timer:
    """Call ``callback(*args)`` on the running loop when the process's clock reads ``when``
    (Unix seconds: a token's ``exp``), at once if that is past; ``cancel()`` calls it off.
    A fake clock calls it from :meth:`FakeClock.advance` (before its runners)."""
    return _current.call_at(when, callback, *args)
