"""The garbage collector of a server process: no automatic collection walks the
connections.

CPython's full collection walks every tracked object, about 32 per open connection here:
with 18,000 connections one paused the event loop for 604 ms, and one runs whenever the
long-lived objects have grown by a quarter, so a ramp of connections meets several, each
longer than the last (they were the scale benchmark's p99 time to synced, issue 22).

So what survives two collections is frozen (:func:`gc.freeze`) as soon as the second is
over: automatic collections only ever walk young objects, whatever the number of
connections. Reference counting frees frozen objects as it frees any other (nearly all
garbage here: a closed connection's objects go the moment the last reference does). Only
cyclic garbage among frozen objects stays, measured at about a third of an object per
closed connection, until the full collection that runs every ``full_every`` seconds: then
the frozen objects are thawed, CPython's next full collection walks everything once (that
pause, about 33 ms per 1,000 open connections, is the price, once per period), and
freezing resumes.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

__all__ = ["SurvivorFreezer", "freeze_start_up"]

FULL_COLLECTION_AFTER = 10
"""Generation-1 collections before a full one may run (CPython's default). While survivors
are frozen a full collection walks nearly nothing; after a thaw it is the one that walks
everything."""


def freeze_start_up() -> None:
    """Collect, then freeze what start-up built (modules, the app): no later collection
    walks it, whatever the policy after it."""
    gc.collect()
    gc.freeze()


class SurvivorFreezer:
    """Installed once per process (``crdt-server serve`` and each of its workers), never in
    a test process or a library user's: it changes the whole interpreter's collector."""

    def __init__(self, full_every: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.full_every = full_every
        self.full_collections = 0
        """Full collections over everything since :meth:`install` (thaws that completed)."""
        self._clock = clock
        self._full_at = clock()
        self._thawed = False

    def install(self) -> None:
        """Freeze what start-up built (:func:`freeze_start_up`), then keep freezing."""
        freeze_start_up()
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, FULL_COLLECTION_AFTER)
        gc.callbacks.append(self._after_collection)

    def uninstall(self) -> None:
        """Back to CPython's collector: everything thawed, no more freezing."""
        if self._after_collection in gc.callbacks:
            gc.callbacks.remove(self._after_collection)
        gc.unfreeze()

    def _after_collection(self, phase: str, info: dict[str, Any]) -> None:
        # A collection of generation 1 or 2 has just moved its survivors into generation 2
        # (generations 0 and 1 are empty): those are what gets frozen. gc.collect() would be
        # a no-op inside a callback; thawing lets CPython's own next full collection run.
        if phase != "stop" or info["generation"] == 0:
            return
        if self._thawed:
            if info["generation"] < 2:
                return  # the full collection is still to come
            self._thawed = False
            self._full_at = self._clock()
            self.full_collections += 1
        elif self.full_every > 0 and self._clock() - self._full_at >= self.full_every:
            gc.unfreeze()
            self._thawed = True
            return
        gc.freeze()
