"""The member directory through a real server: filled from tokens (a call, a WebSocket
connection), edited through its API, and the token command's email claim."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from crdt_server.auth.tokens import TokenCodec
from crdt_server.testing.waits import until
from tests.features.conversations import (
    ADMIN_AUTH,
    CODEC,
    PLANNER,
    VENDOR,
    W,
    join,
    ok,
)
from tests.server import ServerProcess
from tests.yclient import YClient


@pytest.mark.asyncio
async def test_members_come_from_tokens_and_the_directory_api(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    await join(http, PLANNER, VENDOR)
    members = (await ok(await http.get(f"{W}/members", headers=PLANNER)))["members"]
    assert {m["sub"]: m["email"] for m in members} == {
        "flo": "flo@example.com",
        "pat": "pat@example.com",
    }
    # A vendor sees names and roles, not other people's addresses.
    seen = (await ok(await http.get(f"{W}/members", headers=VENDOR)))["members"]
    assert [m.get("email") for m in seen if m["sub"] == "pat"] == [None]
    body = {"role": "family", "name": "Gran", "email": "gran@example.com"}
    put = await http.put(f"{W}/members/gran", json=body, headers=PLANNER)
    assert (await ok(put, 201))["name"] == "Gran"
    assert (await http.put(f"{W}/members/gran", json=body, headers=ADMIN_AUTH)).status_code == 200
    refused = await http.put(f"{W}/members/gran", json=body, headers=VENDOR)
    assert refused.status_code == 403
    bad = await http.put(f"{W}/members/gran", json={**body, "email": "no"}, headers=PLANNER)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "email"
    control = await http.put(f"{W}/members/%07x", json=body, headers=PLANNER)
    assert control.status_code == 400 and control.json()["errors"][0]["field"] == "sub"
    # Both answers of the PUT are in the API document (schemathesis found 200 missing).
    spec = (await http.get("/openapi.json")).json()
    put_op = spec["paths"]["/api/weddings/{wedding_id}/members/{sub}"]["put"]
    assert {"200", "201"} <= set(put_op["responses"])
    # The sessions endpoint accepts an email claim.
    session = await http.post(
        f"{W}/sessions",
        json={"sub": "newbie", "role": "friend", "email": "new@example.com"},
        headers=ADMIN_AUTH,
    )
    claims = CODEC.decode((await ok(session, 201))["token"])
    assert claims.email == "new@example.com"


def test_the_token_command_carries_an_email(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from crdt_server.cli import main

    args = ["token", "--wedding", "w1", "--role", "vendor", "--sub", "flo"]
    args += ["--email", "flo@example.com", "--data-dir", str(tmp_path), "--create-secret"]
    assert main(args) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    secret = (tmp_path / "auth_secret").read_text().strip()
    codec = TokenCodec(algorithms=["HS256"], secret=bytes.fromhex(secret))
    assert codec.decode(token).email == "flo@example.com"
    bad = [*args[:7], "--email", "not an address", "--data-dir", str(tmp_path)]
    assert main(bad) == 2


@pytest.mark.asyncio
async def test_a_websocket_connection_fills_the_directory(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = api
    token = CODEC.mint(sub="gina", role="vendor", wedding="w1", ttl=600, email="g@example.com")
    async with YClient(server.ws_url, "w1/timeline", token=token) as client:
        await client.wait(client.synced.is_set)

        async def listed() -> Any:
            members = (await ok(await http.get(f"{W}/members", headers=PLANNER)))["members"]
            return [m for m in members if m["sub"] == "gina"]

        [gina] = await until(listed)
        assert gina == {
            "sub": "gina",
            "role": "vendor",
            "name": "gina",
            "guest_fields": None,  # a token's vendor: what the role reads
            "email": "g@example.com",
            "participation": "all",
            "email_notifications": True,
            "email_confirmed": True,
        }
