"""Losing Redis is noticed within a second, not at the next publish (issue 74).

A real server reaches a Redis of its own through a proxy the test cuts
(:class:`tests.partition.BlackHoleProxy`: packets dropped, nothing closed). Before the
fix, ``/readyz`` said ``bus: ok`` for about 6 s after the cut, until a publish timed out:
a subscriber waits for messages whether Redis is there or not. Now a health ping says
``lost`` within a second (``/readyz``, ``crdt_bus_up``, one log line), the server goes
on acknowledging its own clients' writes, and says ``back`` once Redis answers again; the
same when the redis-server is killed and started again.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx
import pytest
from pycrdt import Map

from tests.cluster.conftest import RedisProcess
from tests.partition import BlackHoleProxy
from tests.server import ServerProcess
from tests.yclient import YClient


async def _bus(http: httpx.AsyncClient) -> str:
    answer = await http.get("/readyz")
    assert answer.status_code == 200, answer.text  # a lost bus is reported, not fatal
    return str(answer.json()["bus"])


async def _until_bus(http: httpx.AsyncClient, prefix: str, timeout: float) -> float:
    """Poll ``/readyz`` until its ``bus`` starts with ``prefix``; the seconds it took."""
    started = time.monotonic()
    while not (bus := await _bus(http)).startswith(prefix):
        assert time.monotonic() - started < timeout, bus
        await asyncio.sleep(0.05)  # polling a route: nothing to wait on
    return time.monotonic() - started


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found is not None, name
    return float(found.group(1))


async def _acknowledged(client: YClient, key: str) -> None:
    client.doc.get("m", type=Map)[key] = key
    await client.flush()
    await client.wait(client.is_confirmed, timeout=10)


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_lost_bus_is_noticed_within_a_second(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    proxy = BlackHoleProxy(redis_server.port)
    await proxy.start()
    env = {"CRDT_SERVER_REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0"}
    server = ServerProcess(tmp_path / "data", env=env)
    await server.start()
    try:
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=10) as http,
            YClient(server.ws_url, "w1/guests") as client,
        ):
            await client.wait(client.synced.is_set)
            await _until_bus(http, "ok", 10)

            # A partition: nothing closed, nothing answered.
            proxy.cut()
            took = await _until_bus(http, "lost:", 5)
            assert took < 1.5, took  # within a second, and the polling's slack
            metrics = (await http.get("/metrics")).text
            assert _metric(metrics, "crdt_bus_up") == 0
            assert _metric(metrics, "crdt_bus_lost_total") == 1
            await _acknowledged(client, "during-the-cut")  # its own clients are served

            proxy.heal()
            await _until_bus(http, "ok", 15)
            assert _metric((await http.get("/metrics")).text, "crdt_bus_up") == 1

            # Redis itself killed, then started again on its port.
            await redis_server.stop()
            took = await _until_bus(http, "lost:", 5)
            assert took < 1.5, took
            await _acknowledged(client, "while-redis-is-down")
            await redis_server.start()
            await _until_bus(http, "ok", 15)
            metrics = (await http.get("/metrics")).text
            assert _metric(metrics, "crdt_bus_up") == 1
            assert _metric(metrics, "crdt_bus_lost_total") == 2
        log = server.log_text()
        assert log.count("lost the Redis bus") == 2, log
        assert log.count("the Redis bus is back") == 2, log
        assert "publishing on Redis failed" not in log, log
    finally:
        await server.stop()
        await proxy.close()
