"""Races between writers on two processes are found once, whichever process sees them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from crdt_server.testing.waits import until
from tests.cluster.conftest import RedisProcess
from tests.features.conflicts.test_concurrent_edits import (
    HI,
    LO,
    MINT,
    ROOTS,
    add_guest,
    conflicts,
    events,
    guest,
    person,
)
from tests.jsclient import JsClientGroup, map_set
from tests.server import FAMILY_WRITES, ServerProcess

pytestmark = [pytest.mark.asyncio, pytest.mark.js]


@pytest_asyncio.fixture
async def pair(tmp_path: Path, redis_server: RedisProcess) -> AsyncIterator[list[ServerProcess]]:
    env = {**MINT.env, **FAMILY_WRITES, "CRDT_SERVER_REDIS_URL": redis_server.url}
    servers = [ServerProcess(tmp_path / "data", env=env, anonymous=False) for _ in range(2)]
    for server in servers:
        await server.start()
    try:
        yield servers
    finally:
        for server in servers:
            await server.stop()


@pytest.mark.timeout(120)
async def test_a_race_across_two_processes_is_one_finding(pair: list[ServerProcess]) -> None:
    one, two = pair
    async with (
        httpx.AsyncClient(base_url=one.url, timeout=10) as http_one,
        httpx.AsyncClient(base_url=two.url, timeout=10) as http_two,
        JsClientGroup() as group,
    ):
        await add_guest(http_one)
        planner = await person(group, one, "planner", "pat", HI)
        aunt = await person(group, two, "family", "aunt", LO)
        for client in (planner, aunt):
            await client.wait_for({"guests": {"g1": guest()}}, roots=ROOTS)
            await client.call("disconnect")
        await planner.edit(map_set("guests", "meal", "vegan", path=["g1"]))
        await aunt.edit(map_set("guests", "meal", "beef", path=["g1"]))
        await asyncio.gather(planner.call("reconnect"), aunt.call("reconnect"))
        for client in (planner, aunt):
            await client.wait_for({"guests": {"g1": guest(meal="vegan")}}, roots=ROOTS)

        async def found_on_both() -> list[str] | None:
            ids = [[c["id"] for c in await conflicts(http)] for http in (http_one, http_two)]
            return ids[0] if ids[0] and ids[0] == ids[1] else None

        (finding,) = await until(found_on_both, 20)
        (shown,) = await conflicts(http_two)
        assert shown["concurrent"]["lost"]["actor"] == {"sub": "aunt", "role": "family"}
        assert shown["concurrent"]["kept"]["actor"] == {"sub": "pat", "role": "planner"}
        detected = [e for e in await events(http_one) if e["type"] == "conflict.detected"]
        assert [e["data"]["id"] for e in detected] == [finding]
        # A later write through either process closes it on both.
        await aunt.edit(map_set("guests", "meal", "beef", path=["g1"]))

        async def closed() -> bool:
            return all([await conflicts(http) == [] for http in (http_one, http_two)])

        await until(closed, 20)
