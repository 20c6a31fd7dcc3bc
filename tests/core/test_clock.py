"""The server's one clock (issue 54): a fake clock swaps it without patching ``time.time``;
its ``advance`` wakes the timers it makes due and runs its runners; token expiry is checked
against it, not against PyJWT's reading of the real time."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import jwt
import pytest

from crdt_server import clock
from crdt_server.auth.tokens import TokenCodec, TokenError

pytestmark = pytest.mark.timeout(30)

START = datetime(2031, 6, 1, 9, 0, tzinfo=UTC)
SECRET = b"clock-test-secret-at-least-32-bytes-long"


def test_use_swaps_the_clock_every_reader_sees_and_restores_it() -> None:
    fake = clock.FakeClock(START)
    with clock.use(fake):
        assert clock.now() == START.timestamp()
        assert clock.utcnow() == START
        assert clock.today().isoformat() == "2031-06-01"
        assert clock.current() is fake
    assert isinstance(clock.current(), clock.SystemClock)
    assert abs(clock.now() - time.time()) < 5


@pytest.mark.asyncio
async def test_advance_wakes_due_sleepers_in_order_and_no_others() -> None:
    fake = clock.FakeClock(START)
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await fake.sleep(seconds)
        woke.append(name)

    tasks = [
        asyncio.create_task(sleeper(name, seconds))
        for name, seconds in (("day", 86400), ("hour", 3600), ("week", 7 * 86400))
    ]
    await asyncio.sleep(0)
    await fake.advance(3599)
    assert woke == []
    await fake.advance(86400)
    assert woke == ["hour", "day"]
    await fake.advance(7 * 86400)
    assert woke == ["hour", "day", "week"]
    await asyncio.gather(*tasks)
    with pytest.raises(ValueError, match="never goes back"):
        await fake.advance(-1)


@pytest.mark.asyncio
async def test_wait_returns_on_the_event_or_when_the_clock_passes_the_timeout() -> None:
    fake = clock.FakeClock(START)
    event = asyncio.Event()
    waiting = asyncio.create_task(fake.wait(event, 60))
    await asyncio.sleep(0)
    await fake.advance(59)
    assert not waiting.done()
    await fake.advance(1)
    assert await waiting is False
    again = asyncio.create_task(fake.wait(event, 60))
    await asyncio.sleep(0)
    event.set()
    assert await asyncio.wait_for(again, 5) is True


@pytest.mark.asyncio
async def test_advance_runs_the_runners_after_the_timers_and_until_unregistered() -> None:
    fake = clock.FakeClock(START)
    seen: list[float] = []

    async def runner() -> None:
        seen.append(fake.now())

    forget = fake.on_advance(runner)
    await fake.advance(10)
    assert seen == [START.timestamp() + 10]
    forget()
    await fake.advance(10)
    assert len(seen) == 1


@pytest.mark.asyncio
async def test_call_at_calls_when_the_clock_reads_the_moment_unless_cancelled() -> None:
    fake = clock.FakeClock(START)
    at = START.timestamp()
    called: list[str] = []
    with clock.use(fake):
        clock.call_at(at + 60, called.append, "minute")
        off = clock.call_at(at + 30, called.append, "cancelled")
        clock.call_at(at + 3600, called.append, "hour")
        off.cancel()
        await fake.advance(59)
        assert called == []
        await fake.advance(1)
        assert called == ["minute"]
        await fake.advance(3600)
        assert called == ["minute", "hour"]
        # A moment already past: called at once, not at the next advance.
        past = asyncio.Event()
        clock.call_at(at, past.set)
        await asyncio.wait_for(past.wait(), 5)


@pytest.mark.asyncio
async def test_the_system_clocks_call_at_runs_on_real_time() -> None:
    cancelled, later = asyncio.Event(), asyncio.Event()
    clock.call_at(time.time() + 0.01, cancelled.set).cancel()
    clock.call_at(time.time() + 0.02, later.set)
    await asyncio.wait_for(later.wait(), 5)
    assert not cancelled.is_set()  # due before the one that ran


@pytest.mark.asyncio
async def test_the_system_clock_waits_on_real_time() -> None:
    real = clock.SystemClock()
    event = asyncio.Event()
    assert await real.wait(event, 0.01) is False
    event.set()
    assert await real.wait(event, 10) is True
    assert real.on_advance(lambda: asyncio.sleep(0)) is not None


def _token(**claims: object) -> str:
    base = {"sub": "ana", "role": "couple", "wedding": "w1"}
    return jwt.encode({**base, **claims}, SECRET, algorithm="HS256")


def test_a_token_expires_by_the_servers_clock_not_the_real_time() -> None:
    codec = TokenCodec(algorithms=["HS256"], secret=SECRET, leeway=30)
    at = START.timestamp()
    # Issued and expiring in 2031: by the real time it is not yet valid; by the clock it is.
    token = _token(iat=int(at), exp=int(at) + 3600)
    with clock.use(clock.FakeClock(START)):
        assert codec.decode(token).sub == "ana"
    with clock.use(clock.FakeClock(at + 3600 + 29)):
        assert codec.decode(token).sub == "ana"  # within the leeway
    with clock.use(clock.FakeClock(at + 3600 + 30)), pytest.raises(TokenError, match="expired"):
        codec.decode(token)
    # A token the real time would accept is expired by a clock set later.
    now = int(time.time())
    fresh = _token(iat=now, exp=now + 600)
    assert codec.decode(fresh).sub == "ana"
    with clock.use(clock.FakeClock(now + 3600)), pytest.raises(TokenError, match="expired"):
        codec.decode(fresh)


def test_nbf_and_iat_are_checked_against_the_clock_with_leeway() -> None:
    codec = TokenCodec(algorithms=["HS256"], secret=SECRET, leeway=30)
    at = int(START.timestamp())
    later = _token(iat=at, exp=at + 3600, nbf=at + 600)
    with clock.use(clock.FakeClock(START)), pytest.raises(TokenError, match="not valid yet"):
        codec.decode(later)
    with clock.use(clock.FakeClock(at + 600 - 30)):
        assert codec.decode(later).sub == "ana"
    future = _token(iat=at + 3600, exp=at + 7200)
    with clock.use(clock.FakeClock(START)), pytest.raises(TokenError, match="'iat'"):
        codec.decode(future)
    with clock.use(clock.FakeClock(at + 3600 - 60)):
        assert codec.decode(future).sub == "ana"  # the minute of skew
    bad = _token(iat=at, exp=at + 3600, nbf="soon")
    with clock.use(clock.FakeClock(START)), pytest.raises(TokenError, match="'nbf'"):
        codec.decode(bad)


def test_minted_tokens_are_dated_by_the_clock() -> None:
    codec = TokenCodec(algorithms=["HS256"], secret=SECRET)
    with clock.use(clock.FakeClock(START)):
        claims = codec.decode(codec.mint(sub="ana", role="couple", wedding="w1", ttl=60))
    assert claims.iat == START.timestamp() and claims.exp == START.timestamp() + 60


@pytest.mark.asyncio
async def test_the_kits_fixture_is_the_process_clock(crdt_clock: clock.FakeClock) -> None:
    assert clock.current() is crdt_clock
    start = clock.now()
    sleeping = asyncio.create_task(clock.sleep(86400))
    await asyncio.sleep(0)
    await crdt_clock.advance(86400)
    await asyncio.wait_for(sleeping, 5)
    assert clock.now() == start + 86400
