"""``GET /api/local-demo`` hands out sign-in links only on a local demo server, and only to
this machine."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.server import ServerProcess

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]


async def test_the_demo_links_go_only_to_this_machine_of_a_local_demo(tmp_path: Path) -> None:
    env = {"CRDT_SERVER_TRUSTED_PROXIES": "127.0.0.1"}
    async with ServerProcess(tmp_path / "data", env=env) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            local = await http.get("/api/local-demo")
            assert local.status_code == 200
            assert local.headers["cache-control"] == "no-store"
            body = local.json()
            assert body["wedding"] == "demo"
            roles = [link["role"] for link in body["links"]]
            assert sorted(roles) == ["couple", "family", "friend", "planner", "vendor"]
            assert all("/app/#token=" in link["url"] for link in body["links"])
            # From elsewhere (through a trusted proxy): nothing.
            far = await http.get("/api/local-demo", headers={"X-Forwarded-For": "203.0.113.5"})
            assert far.status_code == 404
            assert far.headers["content-type"].startswith("application/problem+json")
    async with ServerProcess(tmp_path / "closed", anonymous=False) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/api/local-demo")).status_code == 404
