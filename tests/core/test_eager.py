"""crdt_server.core.eager: a coroutine started in the caller's turn goes on, after its first
wait, exactly as a task started for it would: results, exceptions and cancellation."""

from __future__ import annotations

import asyncio

import pytest

from crdt_server.core.eager import start_now

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(10)]


async def test_a_coroutine_that_needs_no_wait_is_done_before_start_now_returns() -> None:
    log: list[str] = []

    async def commit() -> None:
        log.append("committed")

    assert start_now(commit(), "c") is None
    assert log == ["committed"]


async def test_what_it_raises_before_its_first_wait_is_raised_at_once() -> None:
    async def broken() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        start_now(broken(), "c")


async def test_after_its_first_wait_a_task_finishes_it_with_every_result() -> None:
    loop = asyncio.get_running_loop()
    first: asyncio.Future[int] = loop.create_future()
    second: asyncio.Future[int] = loop.create_future()
    log: list[object] = []

    async def commit() -> None:
        log.append("began")
        log.append(await first)
        await asyncio.sleep(0)  # a bare yield, as asyncio.sleep(0) makes
        try:
            await second
        except KeyError as exc:  # an exception set on what it waits for reaches it
            log.append(repr(exc))
        log.append(asyncio.current_task() is task)

    task = start_now(commit(), "c")
    assert task is not None and task.get_name() == "c"
    assert log == ["began"]  # up to its first wait, in this turn
    first.set_result(7)
    await asyncio.sleep(0.01)
    second.set_exception(KeyError("k"))
    await task
    assert log == ["began", 7, "KeyError('k')", True]


async def test_cancelling_the_task_cancels_what_it_waits_for_and_reaches_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    first: asyncio.Future[None] = loop.create_future()
    second: asyncio.Future[None] = loop.create_future()
    log: list[str] = []

    async def commit() -> None:
        await first
        try:
            await second
        except asyncio.CancelledError:
            log.append("cancelled")
            raise

    task = start_now(commit(), "c")
    assert task is not None
    first.set_result(None)
    await asyncio.sleep(0.01)  # the task took it up: it waits for the second now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert second.cancelled() and log == ["cancelled"]


async def test_a_task_cancelled_before_it_took_the_coroutine_up_closes_it() -> None:
    waiting: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    log: list[str] = []

    async def commit() -> None:
        try:
            await waiting
        finally:
            log.append("closed")

    task = start_now(commit(), "c")
    assert task is not None
    task.cancel()  # before its first step
    with pytest.raises(asyncio.CancelledError):
        await task
    assert waiting.cancelled() and log == ["closed"]
