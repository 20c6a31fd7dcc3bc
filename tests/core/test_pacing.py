"""The pacer: under overload the sessions' updates take turns, and a turn of the event loop
stays short enough that other work (a handshake, a commit) is not queued behind all of it."""

from __future__ import annotations

import asyncio
import time

import pytest

from crdt_server.core.pacing import Pacer, PacerSlot, in_turns

UPDATE_SECONDS = 0.0005
"""What handling one update costs in these tests (busy, as the real work is)."""


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def _update(pacer: Pacer, ticket: PacerSlot, seconds: float) -> None:
    """One update as a session handles it: wait for its turn, work, report the cost."""
    await pacer.turn(ticket)
    started = time.perf_counter()
    _busy(seconds)
    pacer.spent(ticket, time.perf_counter() - started)


async def _sessions(
    pacer: Pacer, sessions: int, updates: int, log: list[int], cost: float = UPDATE_SECONDS
) -> None:
    """``sessions`` sessions with ``updates`` updates each already queued (as in overload),
    each costing ``cost``."""

    async def session(k: int) -> None:
        ticket = PacerSlot()
        for _ in range(updates):
            await _update(pacer, ticket, cost)
            log.append(k)

    async with asyncio.timeout(30):
        await asyncio.gather(*(session(k) for k in range(sessions)))


async def _handled_before_ten_turns(budget: float) -> tuple[int, int]:
    """How many updates were handled before a chain of ten callbacks, each scheduled by the
    one before (what a handshake or a commit needs: several turns), got to its end."""
    log: list[int] = []
    done = asyncio.get_running_loop().create_future()
    seen: list[int] = []

    def step(n: int) -> None:
        if n == 10:
            seen.append(len(log))
            done.set_result(None)
        else:
            asyncio.get_running_loop().call_soon(step, n + 1)

    work = asyncio.ensure_future(_sessions(Pacer(budget), 20, 100, log))
    asyncio.get_running_loop().call_soon(step, 0)
    await work
    await done
    return seen[0], len(log)


@pytest.mark.timeout(60)
@pytest.mark.asyncio
async def test_other_work_does_not_wait_behind_every_queued_update() -> None:
    unpaced, total = await _handled_before_ten_turns(0.0)
    assert unpaced == total == 2000  # one turn: every session drained its whole queue
    paced, total = await _handled_before_ten_turns(0.02)
    assert total == 2000
    assert paced < total // 2, paced


@pytest.mark.timeout(60)
@pytest.mark.asyncio
async def test_connections_take_turns_and_every_update_is_handled() -> None:
    log: list[int] = []
    pacer = Pacer(0.01)
    await _sessions(pacer, 10, 20, log, cost=0.002)  # past a slice: one update per turn
    assert sorted(log) == sorted(k for k in range(10) for _ in range(20))
    assert pacer.waiting == 0
    # Once every session has waited (from the first turn's end), they go round robin:
    # between two updates of one session, every other session with updates left has one.
    start = max(log.index(k) for k in range(10)) + 1
    done = dict.fromkeys(range(10), 0)
    for k in log[:start]:
        done[k] += 1
    base = dict(done)
    for k in log[start:]:
        done[k] += 1
        rounds = [done[s] - base[s] for s in range(10) if done[s] < 20]
        assert not rounds or max(rounds) - min(rounds) <= 1, (k, done)


@pytest.mark.timeout(60)
@pytest.mark.asyncio
async def test_a_waiting_session_that_is_cancelled_gives_its_turn_away() -> None:
    pacer = Pacer(0.001)
    handled: list[str] = []

    async def session(name: str) -> None:
        ticket = PacerSlot()
        for _ in range(2):
            await _update(pacer, ticket, 0.002)  # past the budget: whoever comes next waits
            handled.append(name)

    first = asyncio.ensure_future(session("first"))
    second = asyncio.ensure_future(session("second"))
    await asyncio.sleep(0)  # first handled one update and waits; second waits for its first
    assert handled == ["first"] and pacer.waiting == 2
    second.cancel()
    async with asyncio.timeout(5):
        await first
    assert handled == ["first", "first"] and second.cancelled()
    assert pacer.waiting == 0
    assert pacer._granted == 0  # nobody is owed a turn: the next update goes at once


@pytest.mark.timeout(10)
@pytest.mark.asyncio
async def test_a_zero_budget_never_waits() -> None:
    pacer = Pacer(0.0)
    _busy(0.01)
    ticket = PacerSlot()
    for _ in range(100):
        await pacer.turn(ticket)
        pacer.spent(ticket, 1.0)
    assert pacer.waiting == 0


@pytest.mark.timeout(30)
@pytest.mark.asyncio
async def test_a_quiet_rooms_update_goes_ahead_of_the_queued_busy_ones() -> None:
    # 50 busy sessions with queued updates keep the pacer's queue full; a quiet room's
    # update (its wedding is quiet) comes after all of them are queued. Round robin
    # would let it through after every queued session had its turn; a lane of its own
    # after a turn; it goes at once, in this turn.
    pacer = Pacer(0.002)
    log: list[int | str] = []
    busy = asyncio.ensure_future(_sessions(pacer, 50, 4, log, cost=0.001))  # type: ignore[arg-type]
    for _ in range(100):  # a few turns: the sessions start, the first ones use the budget
        if pacer.waiting >= 40:
            break
        await asyncio.sleep(0)
    assert pacer.waiting >= 40
    started = len(log)
    quiet = PacerSlot()
    waited = pacer.turn(quiet, quiet=True)
    with pytest.raises(StopIteration):  # it returned without waiting for a turn
        waited.send(None)
    pacer.spent(quiet, 0.001)  # its cost counts in this turn's
    log.append("quiet")
    assert log.index("quiet") == started
    await busy
    assert len(log) == 50 * 4 + 1  # every busy update still handled


@pytest.mark.timeout(10)
@pytest.mark.asyncio
async def test_a_sweep_in_turns_lets_the_loop_turn_every_budget() -> None:
    """in_turns: 30 items of 1 ms each with a budget of 5 ms run in at least 5 turns of the
    loop (a ticker scheduled beside it runs between them), in order, each once."""
    done: list[int] = []
    turns = 0

    def work(item: int) -> None:
        until = time.perf_counter() + 0.001
        while time.perf_counter() < until:
            pass
        done.append(item)

    async def ticker() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = turns
    await in_turns(range(30), work, budget=0.005)
    ticking.cancel()
    assert done == list(range(30))
    assert turns - before >= 4


@pytest.mark.timeout(30)
@pytest.mark.asyncio
async def test_turns_are_shared_by_wedding_not_by_connection() -> None:
    """Start-time fair queuing: a wedding of ten connections with updates queued gets the
    turns of one; a wedding of one connection gets as many."""
    pacer = Pacer(0.002)
    log: list[str] = []

    async def session(wedding: str, updates: int) -> None:
        ticket = PacerSlot()
        for _ in range(updates):
            await pacer.turn(ticket, share=wedding)
            started = time.perf_counter()
            _busy(0.001)
            pacer.spent(ticket, time.perf_counter() - started)
            log.append(wedding)

    async with asyncio.timeout(20):
        await asyncio.gather(*(session("big", 10) for _ in range(10)), session("small", 40))
    assert log.count("big") == 100 and log.count("small") == 40
    # While both have updates left, they alternate: of the first 60, the small wedding's
    # connection had about half (round robin by connection would give it a tenth).
    assert log[:60].count("small") >= 25, log[:60]


@pytest.mark.timeout(30)
@pytest.mark.asyncio
async def test_quiet_goes_at_once_only_while_its_wedding_is_not_ahead_of_its_share() -> None:
    """Spread over many weddings, every wedding looks quiet by rate; each then goes at once
    once per share of the turns, and the rest take turns, so the pacer still paces."""
    pacer = Pacer(0.002)
    log: list[str] = []

    async def session(wedding: str, updates: int) -> None:
        ticket = PacerSlot()
        for _ in range(updates):
            await pacer.turn(ticket, quiet=True, share=wedding)
            started = time.perf_counter()
            _busy(0.0005)
            pacer.spent(ticket, time.perf_counter() - started)
            log.append(wedding)

    work = asyncio.gather(*(session(f"w{k}", 5) for k in range(40)))
    for _ in range(200):
        if pacer.waiting >= 20:
            break
        await asyncio.sleep(0)
    assert pacer.waiting >= 20  # not every update went at once
    async with asyncio.timeout(20):
        await work
    assert sorted(log) == sorted(f"w{k}" for k in range(40) for _ in range(5))
