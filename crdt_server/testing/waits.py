"""Waiting with a deadline: poll an async check until it holds (never a bare sleep)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["until"]

T = TypeVar("T")


async def until(
    check: Callable[[], Awaitable[T]], deadline: float = 10.0, *, every: float = 0.05
) -> T:
    """Await ``check()`` every ``every`` seconds until it answers something truthy, and
    return that; fail (``AssertionError``) once ``deadline`` seconds have passed::

        shown = await until(lambda: detail(http, hook))
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        value = await check()
        if value:
            return value
        assert loop.time() < end, "condition not met before the deadline"
        await asyncio.sleep(every)
