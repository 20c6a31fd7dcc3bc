"""Work a feature derives from a wedding's commits, done off the commit path.

A feature that keeps something in line with a wedding's documents (the reminders of its
payments and tasks, the day's call times) marks the wedding from its commit hooks with the
entries a commit touched, and a :class:`Follower` runs the feature's work for each marked
wedding in a task of its own, one wedding at a time. What is marked while a wedding waits
merges into its turn (any mark of every entry makes it every entry), so a burst of commits
costs one run per wedding, not one per commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

__all__ = ["Follower"]


class Follower:
    """Runs ``work(wedding, entries)`` for each wedding :meth:`mark` ed since its last run.

    ``entries`` is the set of entry ids marked, or ``None`` for every entry. A run that
    raises is logged (``what`` failed, with no content of the wedding's) and not retried:
    the wedding's next mark runs it again, and each feature marks every entry when a room
    loads, so a change committed just before a crash is caught up.
    """

    def __init__(
        self,
        name: str,
        work: Callable[[str, set[str] | None], Awaitable[None]],
        log: logging.Logger,
        what: str,
    ) -> None:
        self.name = name
        self._work = work
        self._log = log
        self._what = what
        self._marked: dict[str, set[str] | None] = {}
        """Wedding -> the entries to look at (``None``: every one)."""
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def mark(self, wedding: str, entries: set[str] | None = None) -> None:
        """``entries`` of ``wedding`` changed (``None``: look at every one); never waits."""
        if wedding in self._marked:
            known = self._marked[wedding]
            self._marked[wedding] = None if known is None or entries is None else known | entries
        else:
            self._marked[wedding] = entries
        self._idle.clear()
        self._wake.set()

    async def settled(self) -> None:
        """Wait until every wedding marked so far has been run (tests)."""
        await self._idle.wait()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._marked:
                wedding = next(iter(self._marked))
                entries = self._marked.pop(wedding)
                try:
                    await self._work(wedding, entries)
                except Exception:
                    self._log.exception("%s failed", self._what)
            self._idle.set()
