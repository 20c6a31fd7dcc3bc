"""The loop watchdog: a process whose event loop stops turning ends, so it is started again.

A turn of the event loop that never returns (an update that makes pycrdt loop for ever, a
reader iterating a hostile shape) stops every wedding the process serves, ``/healthz``
and graceful shutdown with it. Nothing running on that loop, or needing the GIL, can
notice, so the watchdog needs neither: a kernel timer (``setitimer(ITIMER_REAL)``) that a
loop timer pushes back every tick (a tenth of the threshold, at most a second). When the
loop is stuck for ``CRDT_SERVER_LOOP_STALL_SECONDS`` the timer fires SIGALRM, whose handler
is :mod:`faulthandler`'s, written in C: it writes every thread's stack to stderr (the log)
and then lets SIGALRM's default action end the process. The process therefore ends *by
SIGALRM* (exit status 142 in a shell, ``-14`` for Python's ``subprocess``, "Alarm clock"),
a status nothing else in the server produces, and the supervisor (``--workers``) or the
service manager (``restart: unless-stopped``) starts it again. ``faulthandler.
dump_traceback_later(exit=True)`` would do the same from a C thread but end with
``_exit(1)``, the status of many other failures.

Each tick also measures how late it is: a turn longer than a quarter of the threshold is
counted (``crdt_loop_stalls_total``) and logged, the warning before a stall. With
``--workers`` each tick also writes a byte to the supervisor's heartbeat pipe; a worker
that stops writing (stuck, or stopped by SIGSTOP, where no signal handler runs) is killed
and started again by the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import signal
import sys

from crdt_server.core.metrics import Metrics

__all__ = ["LoopWatchdog", "tick_seconds"]

log = logging.getLogger("crdt_server.core.watchdog")


def tick_seconds(threshold: float) -> float:
    """How often the timer is pushed back: the watchdog fires after a stall of between
    ``threshold - tick`` and ``threshold`` seconds."""
    return min(1.0, threshold / 10)


class LoopWatchdog:
    """Ends this process when its event loop stops turning for ``threshold`` seconds."""

    def __init__(
        self, threshold: float, metrics: Metrics | None = None, heartbeat_fd: int | None = None
    ) -> None:
        self.threshold = threshold
        self._metrics = metrics
        self._heartbeat_fd = heartbeat_fd
        self._tick = tick_seconds(threshold)
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due = 0.0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Arm the watchdog on ``loop`` (the running one)."""
        self._loop = loop
        # chain=True: once the stacks are written, SIGALRM's default action (SIG_DFL,
        # terminate) runs. The handler is C code: it runs without the GIL or the loop.
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        faulthandler.register(signal.SIGALRM, file=sys.stderr, all_threads=True, chain=True)
        self._arm()
        self._due = loop.time() + self._tick
        self._handle = loop.call_at(self._due, self._on_tick)
        log.info("loop watchdog armed: a loop stuck for %.1f s ends the process", self.threshold)

    def stop(self) -> None:
        """Disarm (graceful shutdown, or a process that is done)."""
        signal.setitimer(signal.ITIMER_REAL, 0)
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        with contextlib.suppress(RuntimeError, ValueError):
            faulthandler.unregister(signal.SIGALRM)

    def _arm(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, self.threshold)

    def _on_tick(self) -> None:
        loop = self._loop
        assert loop is not None
        self._arm()
        now = loop.time()
        late = now - self._due
        if late > self.threshold / 4:
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
