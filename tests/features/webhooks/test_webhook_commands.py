"""``crdt-server webhooks list``: the endpoints of a store a real server wrote (SQLite and
PostgreSQL), read by the real command in a child process once the server is stopped."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from crdt_server.testing.receiver import WebhookReceiver
from crdt_server.testing.tokens import TokenMinter
from crdt_server.testing.waits import until
from tests.server import cli, served

pytestmark = [pytest.mark.timeout(120)]

SECRET = "webhook-commands-secret-at-least-32-bytes"
MINT = TokenMinter(SECRET)
ENV = {
    "CRDT_SERVER_AUTH_SECRET": SECRET,
    "CRDT_SERVER_WEBHOOK_ALLOW_PRIVATE": "true",
    # One attempt: a refused delivery is a dead letter at once.
    "CRDT_SERVER_WEBHOOK_RETRY_SCHEDULE": "0",
}


async def create(http: httpx.AsyncClient, wedding: str, url: str) -> str:
    answer = await http.post(
        f"/api/weddings/{wedding}/webhooks",
        json={"url": url, "description": "CRM"},
        headers=MINT.headers(wedding=wedding),
    )
    assert answer.status_code == 201, answer.text
    hook: str = answer.json()["id"]
    return hook


async def dead_letters(http: httpx.AsyncClient, hook: str) -> int:
    answer = await http.get(f"/api/weddings/w1/webhooks/{hook}", headers=MINT.headers())
    assert answer.status_code == 200, answer.text
    failed: int = answer.json()["health"]["failed"]
    return failed


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    """The server's and the command's store: SQLite in the data directory, or a scratch
    PostgreSQL database."""
    if request.param == "postgres":
        return {"CRDT_SERVER_DATABASE_URL": request.getfixturevalue("scratch_postgres")}
    return {}


@pytest.mark.asyncio
async def test_webhooks_list_shows_each_endpoint_from_the_store(
    backend: dict[str, str], tmp_path: Path
) -> None:
    env = {**ENV, **backend}
    data = tmp_path / "data"
    async with (
        WebhookReceiver() as good,
        WebhookReceiver(default=500) as bad,
        served(data, env) as (_, http),
    ):
        ok = await create(http, "w1", f"{good.url}?key=receivers-own-secret")
        failing = await create(http, "w1", bad.url)
        paused = await create(http, "w1", good.url)
        other = await create(http, "w2", good.url)
        answer = await http.patch(
            f"/api/weddings/w1/webhooks/{paused}", json={"enabled": False}, headers=MINT.headers()
        )
        assert answer.status_code == 200, answer.text
        posted = await http.post(
            "/api/weddings/w1/events",
            json={"type": "day.vendor_arrived", "data": {"who": "caterer"}},
            headers=MINT.headers(),
        )
        assert posted.status_code == 201, posted.text
        seq = posted.json()["seq"]
        await good.wait_for(1)
        await until(lambda: dead_letters(http, failing), 20.0)

    store = [] if backend else ["--data-dir", str(data)]
    code, out, err = await cli("webhooks", "list", "--json", *store, env=env)
    assert code == 0, err
    shown = {line["id"]: line for line in json.loads(out)}
    assert set(shown) == {ok, failing, paused, other}
    host = f"127.0.0.1:{good.port}"
    assert shown[ok] == {
        "id": ok,
        "wedding": "w1",
        "host": host,
        "state": "enabled",
        "reason": None,
        "cursor": seq,
        "last_seq": seq,
        "pending": 0,
        "dead_letters": 0,
    }
    assert shown[failing]["state"] == "failing" and shown[failing]["dead_letters"] == 1
    assert shown[failing]["cursor"] == seq and shown[failing]["host"] == f"127.0.0.1:{bad.port}"
    assert shown[paused]["state"] == "disabled" and shown[paused]["reason"]
    assert shown[paused]["cursor"] == 0  # disabled before the event: nothing handed to it
    assert shown[other]["wedding"] == "w2" and shown[other]["last_seq"] == 0
    # Never the URL's path or query (a receiver's own secret may be there).
    assert "receivers-own-secret" not in out and "/hook" not in out

    code, out, err = await cli("webhooks", "list", "--wedding", "w1", *store, env=env)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "id",
        "wedding",
        "host",
        "state",
        "cursor",
        "pending",
        "dead_letters",
    ]
    rows = {line.split()[0]: line.split() for line in lines[1:-1]}
    assert set(rows) == {ok, failing, paused}
    assert rows[failing][1:] == ["w1", f"127.0.0.1:{bad.port}", "failing", f"{seq}/{seq}", "0", "1"]
    assert lines[-1] == "3 endpoints"


def test_webhooks_list_refuses_a_missing_store_in_one_line(tmp_path: Path) -> None:
    code, out, err = asyncio.run(cli("webhooks", "list", "--data-dir", str(tmp_path)))
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"crdt-server webhooks: no store at {tmp_path / 'crdt.sqlite3'} (wrong --data-dir?)"
    ]
