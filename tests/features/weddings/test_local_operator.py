"""The local operator (issue 50, point 7): a plain ``./scripts/serve`` (loopback, no admin
key) lets the person at the machine create a wedding from the app's first page without a
credential; any server with an admin key, or a caller with a token, does not."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.server import ServerProcess

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

NEW = {
    "names": ["Ann Lee", "Bo Chen"],
    "date": "2027-06-12",
    "time_zone": "Europe/Lisbon",
    "currency": "EUR",
    "email": "ann@example.com",
}


async def test_only_the_local_operator_of_a_loopback_server_creates_without_a_key(
    tmp_path: Path,
) -> None:
    async with ServerProcess(tmp_path / "plain", anonymous=False) as plain:
        async with httpx.AsyncClient(base_url=plain.url) as http:
            options = await http.get("/api/sign-in/options")
            assert options.json() == {"create_wedding": True, "open_signup": False}
            made = await http.post("/api/weddings", json=NEW)
            assert made.status_code == 201, made.text
            # A script, not the app's page: the wedding, no device session.
            assert made.json()["signed_in"] is False and "set-cookie" not in made.headers
            # From the app's page (same origin): signed in as the couple.
            page = await http.post("/api/weddings", json=NEW, headers={"Origin": plain.url})
            assert page.status_code == 201 and page.json()["signed_in"] is True
            assert "crdt_session=" in page.headers["set-cookie"]
            # A token is not the local operator.
            token = await http.post(
                "/api/weddings", json=NEW, headers={"Authorization": "Bearer x.y.z"}
            )
            assert token.status_code in (401, 403)
    env = {"CRDT_SERVER_ADMIN_API_KEY": "a-key-long-enough-for-the-admin-api"}
    async with ServerProcess(tmp_path / "keyed", env=env, anonymous=False) as keyed:
        async with httpx.AsyncClient(base_url=keyed.url) as http:
            options = await http.get("/api/sign-in/options")
            assert options.json() == {"create_wedding": False, "open_signup": False}
            refused = await http.post("/api/weddings", json=NEW)
            assert refused.status_code == 401
            assert refused.headers["content-type"] == "application/problem+json"
