"""The loop watchdog: a process whose event loop stops turning ends, so it is started again.

A turn of the event loop that never returns (an update that makes pycrdt loop for ever, a
reader iterating a hostile shape) stops every wedding the process serves, ``/healthz``
and graceful shutdown with it. Nothing running on that loop can notice, so the watchdog
is a kernel timer (``setitimer(ITIMER_REAL)``) that a loop timer pushes back every tick (a
tenth of the threshold, at most a second). When the loop has not turned for
``CRDT_SERVER_LOOP_STALL_SECONDS`` the timer fires SIGALRM, and its handler tells a stall
from a pause:

- the main thread used the CPU for at least half of that time (a loop spinning in Python):
  a stall. Every thread's stack goes to stderr (the log) and the process ends *by SIGALRM*
  (exit status 142 in a shell, ``-14`` for Python's ``subprocess``, "Alarm clock"), a
  status nothing else in the server produces; the supervisor (``--workers``) or the
  service manager (``restart: unless-stopped``) starts it again.
- it used far less: the process was *paused* (SIGSTOP then SIGCONT, a VM frozen or live
  migrated: the wall clock went on, the process's CPU time did not) or the loop is blocked
  in a call that does not return. The loop gets a grace of two ticks (at least a second):
  a paused process turns its loop at once when it runs again, and the watchdog logs the
  pause and goes on; a loop that still has not turned is stuck, and ends as above.

The handler is Python's, so it runs between two bytecodes of the main thread (or when a
blocking call is interrupted). A loop spinning in native code that holds the GIL runs no
bytecode: for it a second kernel timer counts the process's CPU time
(``ITIMER_PROF``, pushed back every tick too, which a paused process does not use), and
at twice the threshold (plus the grace) :mod:`faulthandler`'s handler, written in C,
writes every stack and lets SIGPROF end the process. A loop blocked in native code that
holds the GIL and uses no CPU is left to the supervisor's heartbeat (``--workers``).

Each tick also measures how late it is: a turn longer than a quarter of the threshold is
counted (``crdt_loop_stalls_total``) and logged, the warning before a stall, unless the
process was paused. A turn that lasts half the threshold has every thread's stack written
to stderr while it lasts (:func:`faulthandler.dump_traceback_later`, re-armed each tick: a
``Timeout`` header and the stacks, before that warning), so a stall the process survives
still says where the loop was; a paused process writes them too, when it runs again.
A tick also compares the wall clock's step with the monotonic clock's:
a wall clock that jumped (an NTP step, set by hand: tokens' ``exp`` and ``iat`` are checked
against it) is logged once per jump, and is no stall or pause: the watchdog measures only on
the monotonic clock. With ``--workers`` each tick also writes a byte to the supervisor's
heartbeat pipe; a worker that stops writing (stuck, or stopped by SIGSTOP alone while its
supervisor runs) is killed and started again by the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import signal
import sys
import time
from typing import Any

from crdt_server import clock
from crdt_server.core.metrics import Metrics

__all__ = ["JUMP_SECONDS", "LoopWatchdog", "tick_seconds"]

JUMP_SECONDS = 1.0
"""A wall clock that moved this much more or less than the monotonic one in a tick jumped."""

log = logging.getLogger("crdt_server.core.watchdog")


def tick_seconds(threshold: float) -> float:
    """How often the timer is pushed back: the watchdog fires after a stall of between
    ``threshold - tick`` and ``threshold`` seconds."""
    return min(1.0, threshold / 10)


class LoopWatchdog:
    """Ends this process when its event loop stops turning for ``threshold`` seconds, and
    not when the whole process was paused for that long."""

    def __init__(
        self, threshold: float, metrics: Metrics | None = None, heartbeat_fd: int | None = None
    ) -> None:
        self.threshold = threshold
        self._metrics = metrics
        self._heartbeat_fd = heartbeat_fd
        self._tick = tick_seconds(threshold)
        self._grace_seconds = max(1.0, 2 * self._tick)
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due = 0.0
        self._ticked_at = 0.0
        """``time.monotonic()`` at the last tick."""
        self._ticked_cpu = 0.0
        """The main thread's CPU time at the last tick."""
        self._ticked_wall = 0.0
        """The wall clock (:func:`crdt_server.clock.now`) at the last tick."""
        self._grace = False
        """The alarm found the process paused or blocked, and gave the loop a grace."""
        self._continued = False
        """SIGCONT came since the last tick."""
        self._previous: dict[int, Any] = {}
        self.pauses = 0
        """Pauses survived (for tests and the log)."""
        self.clock_jumps = 0
        """Jumps of the wall clock seen (for tests and the log)."""
        self.ticks = 0
        self._dumps = True
        """Whether long turns' stacks are written (stderr has a file descriptor)."""

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Arm the watchdog on ``loop`` (the running one, in the main thread)."""
        self._loop = loop
        for signum, handler in (
            (signal.SIGALRM, self._on_alarm),
            (signal.SIGCONT, self._on_continue),
        ):
            self._previous[signum] = signal.signal(signum, handler)
        # The C handler for a loop stuck in native code holding the GIL: it writes the
        # stacks, then SIGPROF's default action (terminate) runs.
        signal.signal(signal.SIGPROF, signal.SIG_DFL)
        faulthandler.register(signal.SIGPROF, file=sys.stderr, all_threads=True, chain=True)
        self._mark()
        self._arm()
        self._due = loop.time() + self._tick
        self._handle = loop.call_at(self._due, self._on_tick)
        log.info("loop watchdog armed: a loop stuck for %.1f s ends the process", self.threshold)

    def stop(self) -> None:
        """Disarm (graceful shutdown, or a process that is done)."""
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.setitimer(signal.ITIMER_PROF, 0)
        if self._dumps:
            faulthandler.cancel_dump_traceback_later()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        with contextlib.suppress(RuntimeError, ValueError):
            faulthandler.unregister(signal.SIGPROF)
        for signum, handler in self._previous.items():
            with contextlib.suppress(TypeError, ValueError):
                signal.signal(signum, handler)
        self._previous = {}

    def _arm(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, self.threshold)
        signal.setitimer(signal.ITIMER_PROF, 2 * self.threshold + self._grace_seconds)
        if self._dumps:
            try:
                faulthandler.dump_traceback_later(self.threshold / 2, file=sys.stderr)
            except (AttributeError, OSError, ValueError):  # a stderr with no descriptor
                self._dumps = False

    def _mark(self) -> None:
        self._ticked_at = time.monotonic()
        self._ticked_cpu = time.thread_time()  # the main thread's: the loop's
        self._ticked_wall = clock.now()

    def _on_continue(self, signum: int, frame: object) -> None:
        self._continued = True

    def _on_alarm(self, signum: int, frame: object) -> None:
        """SIGALRM: the loop has not turned for ``threshold`` seconds (or for the grace)."""
        wall = time.monotonic() - self._ticked_at
        cpu = time.thread_time() - self._ticked_cpu
        if not self._grace and (self._continued or cpu < wall / 2):
            # Paused (it turns at once now it runs again) or blocked: one more chance.
            self._grace = True
            signal.setitimer(signal.ITIMER_REAL, self._grace_seconds)
            return
        log.critical(
            "the event loop has not turned for %.1f s (main thread CPU %.1f s):"
            " writing every thread's stack and ending the process by SIGALRM",
            wall,
            cpu,
        )
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGALRM)

    def _on_tick(self) -> None:
        loop = self._loop
        assert loop is not None
        self._arm()
        now = loop.time()
        late = now - self._due
        wall = time.monotonic() - self._ticked_at
        cpu = time.thread_time() - self._ticked_cpu
        paused = self._continued or (self._grace and cpu < wall / 2)
        jump = clock.now() - self._ticked_wall - wall
        self._grace = self._continued = False
        self._mark()
        self.ticks += 1
        if abs(jump) >= JUMP_SECONDS:
            self.clock_jumps += 1
            log.warning(
                "the wall clock jumped %+.0f s (an NTP step, or set by hand); the watchdog"
                " measures on the monotonic clock and goes on, tokens' exp and iat are"
                " checked against the wall clock",
                jump,
            )
        if paused:
            self.pauses += 1
            log.warning(
                "the process was paused for about %.1f s (stopped and continued, or its"
                " machine frozen): not a stalled loop, the watchdog goes on",
                wall,
            )
        elif late > self.threshold / 4:
            if self._metrics is not None:
                self._metrics.loop_stalls.inc()
            log.warning(
                "the event loop did not turn for %.1f s (the watchdog ends the process at"
                " %.1f s: CRDT_SERVER_LOOP_STALL_SECONDS)",
                late + self._tick,
                self.threshold,
            )
        if self._heartbeat_fd is not None:
            try:
                os.write(self._heartbeat_fd, b".")
            except BlockingIOError:
                pass  # the supervisor has not read the last ones yet: it knows we live
            except OSError:
                self._heartbeat_fd = None  # the supervisor is gone (the worker dies with it)
        self._due = now + self._tick
        self._handle = loop.call_at(self._due, self._on_tick)
