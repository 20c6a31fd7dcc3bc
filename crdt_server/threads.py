"""Long Python work on a worker thread shares the GIL with the event loop's thread.

CPython hands the GIL over on request only after the switch interval (5 ms), and the event
loop's thread gives it up at every system call (each socket read or write, each poll). So
while a worker thread runs Python without pause (a replay of a wedding's log, decoding a
whole document), the loop waits up to 5 ms at every system call of a turn: on this
project's 2-core machine, 2,000 socket round trips took 7.6 s beside a busy thread against
0.012 s alone (a convoy), and the fault campaign's servers stopped answering for 4 to 12 s
while their restore points were taken. :func:`share_gil`, called in such work's loops,
sleeps 2 ms after every 20 ms of it on a worker thread (20 ms of the thread's own CPU
time: a pool's thread idle between two jobs has done no work, so its next job does not
begin with a pause): the loop then has the GIL to itself meanwhile (0.017 to 0.033 s
for the same round trips), and the work goes on at about nine tenths of its speed (with
a pause after every 5 ms, the full tier's 20,000-row CSV import took 83 s and its test
ran out of time).
"""

from __future__ import annotations

import asyncio
import select
import threading
import time

__all__ = ["share_gil"]

WORK = 0.02
"""Seconds of the thread's CPU time between pauses."""
PAUSE = 0.002
"""Seconds of each pause: long enough for the loop's thread to take the GIL and run a
turn's system calls without waiting."""

_MAIN = threading.main_thread()
_last = threading.local()


def share_gil() -> None:
    """On a worker thread, sleep :data:`PAUSE` once it has run :data:`WORK` seconds of CPU
    time since the last pause; nothing on the main thread or on a thread that runs an
    event loop (that work is the loop's own: an in-process server's, the testing kit's)."""
    if threading.current_thread() is _MAIN:
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # no loop on this thread: a worker
    else:
        return
    now = time.thread_time()
    since = getattr(_last, "at", None)
    if since is None or now < since:
        _last.at = now  # the first call on this thread (or a clock set back: start over)
    elif now - since >= WORK:
        # select, not time.sleep: under libfaketime (the fault campaign's jumped clocks)
        # time.sleep fails with EINVAL; select's relative timeout does not.
        select.select([], [], [], PAUSE)
        _last.at = time.thread_time()
