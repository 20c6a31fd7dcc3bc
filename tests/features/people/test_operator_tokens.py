"""An operator's token (``crdt-server token``) reads and writes as its role but is no
member: neither a call nor a socket puts it in Members (nor in the owner picker, which
lists Members), on SQLite and PostgreSQL; ``--member`` (or ``--email``) makes one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from crdt_server.testing.waits import until
from tests.features.conversations import CODEC, ENV, PLANNER, SECRET, W, ok
from tests.server import ServerProcess
from tests.yclient import YClient

pytestmark = [pytest.mark.timeout(90)]


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> str:
    return "" if request.param == "sqlite" else str(request.getfixturevalue("scratch_postgres"))


@pytest_asyncio.fixture
async def api(
    database: str, tmp_path: Path
) -> AsyncIterator[tuple[ServerProcess, httpx.AsyncClient]]:
    env = dict(ENV)
    if database:
        env["CRDT_SERVER_DATABASE_URL"] = database
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        yield server, http


def cli_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *extra: str
) -> str:
    from crdt_server.cli import main

    monkeypatch.setenv("CRDT_SERVER_AUTH_SECRET", SECRET)
    args = ["token", "--wedding", "w1", "--role", "planner", "--sub", "ops", "--name", "CLI reader"]
    assert main([*args, *extra]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


async def subs(http: httpx.AsyncClient) -> set[str]:
    members = (await ok(await http.get(f"{W}/members", headers=PLANNER)))["members"]
    return {m["sub"] for m in members}


@pytest.mark.asyncio
async def test_an_operator_token_is_no_member_unless_the_operator_says_so(
    api: tuple[ServerProcess, httpx.AsyncClient],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, http = api
    token = cli_token(monkeypatch, capsys)
    assert CODEC.decode(token).member is False
    operator = {"Authorization": f"Bearer {token}"}
    # It works as its role: reads the members, writes the timeline over a socket.
    await ok(await http.get(f"{W}/members", headers=operator))
    await ok(await http.get(f"{W}/access", headers=operator))
    async with YClient(server.ws_url, "w1/timeline", token=token) as client:
        await client.wait(client.synced.is_set)
        # A real member connecting after it is listed: the directory has caught up.
        member = CODEC.mint(sub="gina", role="vendor", wedding="w1", ttl=600)
        async with YClient(server.ws_url, "w1/timeline", token=member) as other:
            await other.wait(other.synced.is_set)

            async def gina_listed() -> Any:
                return "gina" in await subs(http)

            await until(gina_listed)
    assert await subs(http) == {"pat", "gina"}
    # --member: the operator says this token's holder is a member.
    named = cli_token(monkeypatch, capsys, "--member")
    assert CODEC.decode(named).member is True
    await ok(await http.get(f"{W}/members", headers={"Authorization": f"Bearer {named}"}))
    assert "ops" in await subs(http)


def test_a_member_claim_that_is_not_a_boolean_is_refused() -> None:
    import jwt

    from crdt_server import clock
    from crdt_server.auth.tokens import TokenError

    now = int(clock.now())
    payload = {"sub": "a", "role": "planner", "wedding": "w1", "iat": now, "exp": now + 60}
    for bad in ("false", 0, None, [False]):
        forged = jwt.encode({**payload, "member": bad}, SECRET, algorithm="HS256")
        with pytest.raises(TokenError, match="member"):
            CODEC.decode(forged)
    assert CODEC.decode(jwt.encode(payload, SECRET, algorithm="HS256")).member is True
