"""Projections with two processes on one store and one Redis: one writer at a time (a lease
on the bus), so a vendor on either process converges, and the projection keeps one client;
when the writer dies, the other process takes over within a lease."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from crdt_server.auth.tokens import TokenCodec
from crdt_server.codec.updates import decode_state_vector
from tests.cluster.conftest import RedisProcess
from tests.jsclient import JsClientGroup
from tests.server import ServerProcess

SECRET = "projections-cluster-secret-at-least-32-bytes"
CODEC = TokenCodec(algorithms=["HS256"], secret=SECRET.encode())
WEDDING = "pc1"
PHONE = "+44-7700-900-Kk8"


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {CODEC.mint(sub=role, role=role, wedding=WEDDING, ttl=600)}"}


LEASE = 2.0
"""The projections' lease in these tests (``CRDT_SERVER_PROJECTION_LEASE_SECONDS``)."""


@pytest_asyncio.fixture
async def two(tmp_path: Path, redis_server: RedisProcess) -> AsyncIterator[list[ServerProcess]]:
    env = {
        "CRDT_SERVER_REDIS_URL": redis_server.url,
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        "CRDT_SERVER_PROJECTION_LEASE_SECONDS": str(LEASE),
    }
    servers = [ServerProcess(tmp_path / "data", env=env, anonymous=False) for _ in range(2)]
    for server in servers:
        await server.start()
    try:
        yield servers
    finally:
        for server in servers:
            await server.stop()


async def add_guest(http: httpx.AsyncClient, server: ServerProcess, i: int) -> dict[str, Any]:
    """Guest ``i`` added through ``server``: what a vendor reads of it."""
    body = {"op": "add_guest", "guest_id": f"g{i}", "name": f"Guest {i}", "contact": PHONE}
    done = await http.post(
        f"{server.url}/api/weddings/{WEDDING}/docs/guests/ops", json=body, headers=auth("couple")
    )
    assert done.status_code == 200, done.text
    return {"name": f"Guest {i}", "rsvp": "pending", "dietary": [], "plus_one": False}


@pytest.mark.js
@pytest.mark.asyncio
async def test_vendors_on_two_processes_converge_on_one_projection(
    two: list[ServerProcess],
) -> None:
    a, b = two
    room = f"{WEDDING}/guests"
    async with JsClientGroup() as group:
        vendors = [await group.start(), await group.start()]
        for vendor, server in zip(vendors, two, strict=True):
            token = auth("vendor")["Authorization"].removeprefix("Bearer ")
            await vendor.connect(server.ws_url, room, params={"token": token})
            await vendor.wait_synced()
        expected: dict[str, Any] = {}
        async with httpx.AsyncClient(timeout=10) as http:
            for i in range(12):
                expected[f"g{i}"] = await add_guest(http, two[i % 2], i)
        for vendor in vendors:
            await vendor.wait_for({"guests": expected}, roots={"guests": "map"}, timeout=20)
        states = [await v.state({"guests": "map"}) for v in vendors]
        vectors = [decode_state_vector(base64.b64decode(s["stateVector"])) for s in states]
        assert vectors[0] == vectors[1] and len(vectors[0]) == 1, vectors  # one writer's clocks
        for vendor in vendors:
            assert PHONE.encode() not in await vendor.received()


@pytest.mark.js
@pytest.mark.asyncio
async def test_a_writer_killed_holding_the_lease_is_taken_over_within_a_lease(
    two: list[ServerProcess],
) -> None:
    """The process writing the projection is SIGKILLed holding its lease: the vendor on the
    other process sees the next change within about a lease (it waited a fixed minute, and
    up to another minute before looking again, when the lease could not be renewed)."""
    room = f"{WEDDING}/guests"
    async with JsClientGroup() as group:
        vendors = [await group.start(), await group.start()]
        for vendor, server in zip(vendors, two, strict=True):
            token = auth("vendor")["Authorization"].removeprefix("Bearer ")
            await vendor.connect(server.ws_url, room, params={"token": token})
            await vendor.wait_synced()
        async with httpx.AsyncClient(timeout=10) as http:
            expected = {"g0": await add_guest(http, two[0], 0)}
            await vendors[1].wait_for({"guests": expected}, roots={"guests": "map"}, timeout=20)
            # The first process wrote that round (its own commit marked the projection
            # stale first) and holds the lease; the other was refused it.
            await two[0].kill()
            killed = time.monotonic()
            expected["g1"] = await add_guest(http, two[1], 1)
            await vendors[1].wait_for({"guests": expected}, roots={"guests": "map"}, timeout=30)
            took = time.monotonic() - killed
    assert took < 4 * LEASE, took


@pytest.mark.js
@pytest.mark.asyncio
async def test_a_vendor_that_moves_after_the_writer_dies_gets_every_later_change(
    two: list[ServerProcess],
) -> None:
    """As in the fault campaign: the vendor reads on the first process (which writes the
    projection), that process is SIGKILLed, the vendor reconnects to the other (which had
    not loaded the projection) while the couple goes on adding guests there: the vendor
    ends with every guest."""
    room = f"{WEDDING}/guests"
    token = auth("vendor")["Authorization"].removeprefix("Bearer ")
    async with JsClientGroup() as group, httpx.AsyncClient(timeout=10) as http:
        first = await group.start()
        await first.connect(two[0].ws_url, room, params={"token": token})
        await first.wait_synced()
        expected = {f"g{i}": await add_guest(http, two[0], i) for i in range(3)}
        await first.wait_for({"guests": expected}, roots={"guests": "map"}, timeout=20)
        await two[0].kill()
        moved = await group.start()
        await moved.connect(two[1].ws_url, room, params={"token": token})
        await moved.wait_synced()
        for i in range(3, 12):
            expected[f"g{i}"] = await add_guest(http, two[1], i)
            await asyncio.sleep(0.3)
        await moved.wait_for({"guests": expected}, roots={"guests": "map"}, timeout=8 * LEASE)
