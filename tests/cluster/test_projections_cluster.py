"""Projections with two processes on one store and one Redis: one writer at a time (a lease
on the bus), so a vendor on either process converges, and the projection keeps one client."""

from __future__ import annotations

import base64
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


@pytest_asyncio.fixture
async def two(tmp_path: Path, redis_server: RedisProcess) -> AsyncIterator[list[ServerProcess]]:
    env = {"CRDT_SERVER_REDIS_URL": redis_server.url, "CRDT_SERVER_AUTH_SECRET": SECRET}
    servers = [ServerProcess(tmp_path / "data", env=env, anonymous=False) for _ in range(2)]
    for server in servers:
        await server.start()
    try:
        yield servers
    finally:
        for server in servers:
            await server.stop()


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
                server = two[i % 2]
                body = {"op": "add_guest", "guest_id": f"g{i}", "name": f"Guest {i}"}
                body["contact"] = PHONE
                done = await http.post(
                    f"{server.url}/api/weddings/{WEDDING}/docs/guests/ops",
                    json=body,
                    headers=auth("couple"),
                )
                assert done.status_code == 200, done.text
                expected[f"g{i}"] = {
                    "name": f"Guest {i}",
                    "rsvp": "pending",
                    "dietary": [],
                    "plus_one": False,
                }
        for vendor in vendors:
            await vendor.wait_for({"guests": expected}, roots={"guests": "map"}, timeout=20)
        states = [await v.state({"guests": "map"}) for v in vendors]
        vectors = [decode_state_vector(base64.b64decode(s["stateVector"])) for s in states]
        assert vectors[0] == vectors[1] and len(vectors[0]) == 1, vectors  # one writer's clocks
        for vendor in vendors:
            assert PHONE.encode() not in await vendor.received()
