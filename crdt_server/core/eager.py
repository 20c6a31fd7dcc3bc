"""Start a coroutine in the caller's turn of the event loop, as Python 3.12's eager tasks
do (this project supports 3.11, whose tasks always start at the next turn).

Under overload one turn of the loop lasts 40 to 60 ms (the overload benchmark), so a task
started for a quiet wedding's commit waited that long before it began, a good part of the
100 ms its echo may take. :func:`start_now` runs the coroutine at once, up to the first
point where it must wait; only the rest, if any, becomes a task, which waits for what the
coroutine waits for and hands it every result, exception and cancellation, as awaiting it
from the start would have.

The part run at once runs inside the caller's task: a coroutine given here must not rely
on :func:`asyncio.current_task` (nor on :func:`asyncio.timeout`, which does) before its
first wait. A task cancelled before it took the coroutine up again cancels what the
coroutine waits for and closes it (its ``finally`` blocks run); one cancelled later hands
the cancellation to the coroutine, as any task does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["start_now"]


def start_now(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None] | None:
    """Run ``coro`` up to its first wait, now; the task that finishes it (named ``name``),
    or ``None`` if it finished. What it raises before its first wait is raised here."""
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    rest = _Rest(coro, waiting)
    task = asyncio.get_running_loop().create_task(rest.run(), name=name)
    task.add_done_callback(rest.abandoned)
    return task


class _Rest:
    """The rest of a coroutine that stopped to wait for ``waiting`` (a future, or ``None``
    for a bare yield): awaiting :meth:`run` goes on with it as ``await coro`` would."""

    def __init__(self, coro: Coroutine[Any, Any, None], waiting: Any) -> None:
        self._coro = coro
        self._waiting = waiting
        self._began = False

    async def run(self) -> None:
        await self

    def abandoned(self, task: asyncio.Task[None]) -> None:
        """The task ended: if it never took the coroutine up (it was cancelled first), let
        go of what the coroutine waits for and close it."""
        if self._began:
            return
        if isinstance(self._waiting, asyncio.Future):
            self._waiting.cancel()
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, None]:
        self._began = True
        coro, waiting = self._coro, self._waiting
        while True:
            try:
                sent = yield waiting  # the task waits for it, as for the coroutine's own
            except BaseException as exc:  # a failed future or a cancellation: handed on
                try:
                    waiting = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting = coro.send(sent)
                except StopIteration:
                    return
