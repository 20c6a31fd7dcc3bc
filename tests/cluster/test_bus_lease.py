"""The bus's leases on a real Redis: taken when free, renewed for the process that holds
it when it asks again, refused to the others until it lapses."""

from __future__ import annotations

import asyncio
import time

import pytest

from crdt_server.cluster.redis_bus import RedisBus
from tests.cluster.conftest import Heard, RedisProcess


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_lease_asked_for_again_by_its_holder_is_renewed(
    redis_server: RedisProcess,
) -> None:
    a, b = RedisBus(redis_server.url), RedisBus(redis_server.url)
    await a.start(Heard())
    await b.start(Heard())
    try:
        started = time.monotonic()
        assert await a.try_lease("projection:w1/guests@names", 1.0)
        assert not await b.try_lease("projection:w1/guests@names", 1.0)
        # A asks again before it lapses, three times: each asking holds it a second more,
        # so it is A's well past the first second.
        for _ in range(3):
            await asyncio.sleep(0.5)
            assert await a.try_lease("projection:w1/guests@names", 1.0)
            assert not await b.try_lease("projection:w1/guests@names", 1.0)
        assert time.monotonic() - started > 1.4
        # Once A stops asking, it lapses within the second, and B takes it.
        deadline = time.monotonic() + 3
        while not await b.try_lease("projection:w1/guests@names", 1.0):
            assert time.monotonic() < deadline, "the lease never lapsed"
            await asyncio.sleep(0.05)
        assert not await a.try_lease("projection:w1/guests@names", 1.0)
    finally:
        await a.close()
        await b.close()
