"""Another wedding's view of a long operation: a thread polls ``/healthz`` (what every
other wedding's requests wait behind) while the operation runs, and the figures say what
the polls waiting meanwhile took (issue 73, point 1: the goal is a p99 under 100 ms on a
quiet 2-core machine, and the loop watchdog never firing)."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

__all__ = ["Poller", "measured", "p99", "polling"]


class Poller(threading.Thread):
    """GET /healthz every 10 ms on its own thread (and its own connection), timing each."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.samples: list[tuple[float, float]] = []
        """(when it was sent, seconds it took)"""
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as http:
            while not self.stop.is_set():
                sent = time.perf_counter()
                try:
                    ok = http.get("/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False  # the server is gone (the watchdog): an endless wait
                took = time.perf_counter() - sent if ok else math.inf
                self.samples.append((sent, took))
                self.stop.wait(0.01 if ok else 0.5)

    def window(self, start: float, end: float) -> list[float]:
        """The times of the polls that were waiting at some point in [start, end]."""
        return [took for sent, took in self.samples if sent <= end and sent + took >= start]


@contextmanager
def polling(url: str) -> Iterator[Poller]:
    """A :class:`Poller` of ``url`` polling while the block runs, stopped and joined after."""
    poller = Poller(url)
    poller.start()
    try:
        yield poller
    finally:
        poller.stop.set()
        poller.join()


def p99(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


async def measured(
    poller: Poller, what: str, run: Callable[[], Awaitable[None]], *, record: bool = False
) -> dict[str, Any]:
    """Run ``run`` and what /healthz took meanwhile; ``record``: a failure of ``run`` (the
    server ended by the loop watchdog, say) is recorded in the figures, not raised."""
    await asyncio.sleep(0.3)  # a quiet stretch before
    start = time.perf_counter()
    outcome = "ok"
    try:
        await run()
    except Exception as exc:
        if not record:
            raise
        outcome = f"failed: {type(exc).__name__}: {exc}"[:200]
    took = time.perf_counter() - start
    await asyncio.sleep(0.5)  # what follows the answer (the commit, derived work)
    times = poller.window(start, time.perf_counter())
    figures = {
        "what": what,
        "seconds": round(took, 3),
        "healthz_polls": len(times),
        "healthz_p99_ms": round(1000 * p99(times), 1),
        "healthz_max_ms": round(1000 * max(times), 1),
        "outcome": outcome,
    }
    print(json.dumps(figures))
    return figures
