"""Deletion is erasure; tokens cannot outlive their welcome (issue 15, items 7 and 8).

Each test does what an attacker (or a regulator) would: write personal data over a real
WebSocket client, delete, grep every byte of the data directory, reconnect with the old
token, read over HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from pycrdt import Map
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from crdt_server.auth.tokens import TokenCodec
from crdt_server.testing.receiver import WebhookReceiver
from tests.server import ServerProcess
from tests.yclient import YClient

SECRET = "test-secret-for-hs256-tokens-only"
ADMIN = {"Authorization": "Bearer admin-key-for-tests"}
CODEC = TokenCodec(algorithms=["HS256"], secret=SECRET.encode())
CANARY = "Zebulon Quiggleworth"
CONTACT = "zebulon.quiggleworth@canary.example"


def token(sub: str = "u1", wedding: str = "w1", ttl: float = 600) -> str:
    return CODEC.mint(sub=sub, role="couple", wedding=wedding, ttl=ttl)


def signed(payload: dict[str, Any]) -> str:
    """A token signed with the server's secret, with any payload JSON can carry."""

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    head = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(json.dumps(payload).encode())
    signature = hmac.new(SECRET.encode(), head, hashlib.sha256).digest()
    return (head + b"." + b64(signature)).decode()


@pytest_asyncio.fixture
async def secure(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    env = {"CRDT_SERVER_AUTH_SECRET": SECRET, "CRDT_SERVER_ADMIN_API_KEY": "admin-key-for-tests"}
    async with ServerProcess(tmp_path / "data", env=env, anonymous=False) as server:
        yield server


def bytes_found(data_dir: Path, needle: str) -> list[str]:
    """Every file under ``data_dir`` whose bytes contain ``needle`` (``grep -a -r``)."""
    raw = needle.encode()
    return [str(p) for p in data_dir.rglob("*") if p.is_file() and raw in p.read_bytes()]


async def upgrade_status(server: ServerProcess, room: str, tok: str) -> int:
    try:
        async with connect(f"{server.ws_url}/{room}?token={tok}"):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def write_guests(server: ServerProcess, tok: str, guests: dict[str, str]) -> YClient:
    client = await YClient(server.ws_url, "w1/guests", token=tok).connect()
    await client.wait(client.synced.is_set)
    root = client.doc.get("guests", type=Map)
    for guest_id, name in guests.items():
        root[guest_id] = Map({"name": name, "rsvp": "pending", "contact": CONTACT + guest_id})
    await client.flush()
    await client.wait(client.is_confirmed)  # echoed: committed
    return client


@pytest.mark.asyncio
async def test_a_deleted_wedding_is_gone_from_disk_and_stays_gone(secure: ServerProcess) -> None:
    old = token()
    client = await write_guests(secure, old, {"g-1": CANARY})
    async with httpx.AsyncClient(base_url=secure.url) as http:
        # The conflicts room and the seating plan hold it too (a seat for the guest).
        ops = {"op": "assign_seat", "guest_id": "g-1", "table_id": "t1", "seat": 1}
        r = await http.post(
            "/api/weddings/w1/docs/seating/ops",
            json=ops,
            headers={"Authorization": f"Bearer {old}"},
        )
        assert r.status_code in (200, 422), r.text
        assert bytes_found(secure.data_dir, CANARY)  # the test can see it before
        response = await http.delete("/api/weddings/w1", headers=ADMIN)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "done"
        assert bytes_found(secure.data_dir, CANARY) == []
        assert bytes_found(secure.data_dir, CONTACT) == []
        await client.wait(client.closed.is_set)
        assert client.close_code == 4404
        # A stock client reconnecting with its still valid token (it would send its whole
        # state in step 2) is refused at the upgrade; so is every HTTP request.
        assert await upgrade_status(secure, "w1/guests", old) == 410
        auth = {"Authorization": f"Bearer {old}"}
        for method, path in [
            ("GET", "/api/weddings/w1/docs/guests"),
            ("POST", "/api/weddings/w1/docs/guests/ops"),
            ("GET", "/api/weddings/w1/presence"),
            ("DELETE", "/api/weddings/w1"),
        ]:
            r = await http.request(method, path, headers=auth, json={"op": "add_guest"})
            assert r.status_code == 410, (method, path, r.text)
            assert r.headers["content-type"] == "application/problem+json"
        assert (await http.get("/api/weddings/w1/erasure", headers=ADMIN)).json()[
            "status"
        ] == "done"
        # It stays gone across a restart.
        await secure.restart()
        assert await upgrade_status(secure, "w1/guests", old) == 410
        assert (await http.get("/api/weddings/w1/docs/guests", headers=auth)).status_code == 410
        # Only the admin can let the id be used again; then it starts empty.
        assert (await http.delete("/api/weddings/w1/tombstone", headers=auth)).status_code == 401
        lifted = await http.delete("/api/weddings/w1/tombstone", headers=ADMIN)
        assert lifted.status_code == 200, lifted.text
        fresh = await http.get("/api/weddings/w1/docs/guests", headers=auth)
        assert fresh.status_code == 200 and CANARY not in fresh.text
        other = await http.get("/api/weddings/w2/erasure", headers=ADMIN)
        assert other.status_code == 404


@pytest.mark.asyncio
async def test_a_reader_holding_the_log_gets_202_then_done(secure: ServerProcess) -> None:
    client = await write_guests(secure, token(), {"g-1": CANARY})
    await client.close()
    reader = sqlite3.connect(secure.data_dir / "crdt.sqlite3", isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM updates").fetchone()  # holds its snapshot
        async with httpx.AsyncClient(base_url=secure.url) as http:
            response = await http.delete("/api/weddings/w1", headers=ADMIN)
            assert response.status_code == 202, response.text
            status_url = response.json()["status_url"]
            assert (await http.get(status_url, headers=ADMIN)).json()["status"] == "pending"
            reader.execute("COMMIT")
            deadline = time.monotonic() + 10
            while (await http.get(status_url, headers=ADMIN)).json()["status"] != "done":
                assert time.monotonic() < deadline, "the erasure never finished"
                await asyncio.sleep(0.05)  # polling the status URL, as a client would
            assert bytes_found(secure.data_dir, CANARY) == []
    finally:
        reader.close()


@pytest.mark.asyncio
async def test_erasing_a_guest_rewrites_the_logs_without_them(secure: ServerProcess) -> None:
    client = await write_guests(secure, token(), {"g-1": CANARY, "g-2": "Ada Keeper"})
    try:
        async with httpx.AsyncClient(base_url=secure.url) as http:
            r = await http.post("/api/weddings/w1/guests/g-1/erase", headers=ADMIN)
            assert r.status_code == 200 and r.json()["found"] is True, r.text
            # Connected clients see the removal like any edit.
            await client.wait(lambda: "g-1" not in client.doc.get("guests", type=Map))
            assert bytes_found(secure.data_dir, CANARY) == []
            assert bytes_found(secure.data_dir, CONTACT + "g-1") == []
            auth = {"Authorization": f"Bearer {token()}"}
            doc = (await http.get("/api/weddings/w1/docs/guests", headers=auth)).text
            assert "Ada Keeper" in doc and CANARY not in doc
            bad = await http.post("/api/weddings/w1/guests/bad%20id/erase", headers=ADMIN)
            assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "guest_id"
        await secure.restart()  # what is on disk is the erased document
        async with httpx.AsyncClient(base_url=secure.url) as http:
            doc = (await http.get("/api/weddings/w1/docs/guests", headers=auth)).text
            assert "Ada Keeper" in doc and CANARY not in doc
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_revocations_survive_a_restart(secure: ServerProcess) -> None:
    victim = token(sub="eve")
    async with httpx.AsyncClient(base_url=secure.url) as http:
        r = await http.post("/api/admin/revoke", json={"sub": "eve"}, headers=ADMIN)
        assert r.status_code == 200, r.text
    assert await upgrade_status(secure, "w1/guests", victim) == 401
    await secure.restart()
    assert await upgrade_status(secure, "w1/guests", victim) == 401
    assert await upgrade_status(secure, "w1/guests", token(sub="bob")) == 101


@pytest.mark.asyncio
async def test_absurd_or_endless_tokens_are_refused_with_401(secure: ServerProcess) -> None:
    now = int(time.time())
    base = {"sub": "u1", "role": "couple", "wedding": "w1"}
    cases = {
        "exp 1e308": {**base, "iat": now, "exp": 1e308},
        "exp 400 digits": {**base, "iat": now, "exp": 10**400},
        "exp negative": {**base, "iat": now, "exp": -1},
        "exp true": {**base, "iat": now, "exp": True},
        "no iat": {**base, "exp": now + 60},
        "iat in the future": {**base, "iat": now + 3600, "exp": now + 7200},
        "iat 1e308": {**base, "iat": 1e308, "exp": now + 60},
        "31 days": {**base, "iat": now, "exp": now + 31 * 86400},
    }
    for name, payload in cases.items():
        assert await upgrade_status(secure, "w1/guests", signed(payload)) == 401, name
    # NaN: JSON as Python writes it; no standard JSON, still no 500.
    nan = signed({**base, "iat": now, "exp": float("nan")})
    assert await upgrade_status(secure, "w1/guests", nan) == 401
    async with httpx.AsyncClient(base_url=secure.url) as http:
        r = await http.get(
            "/api/weddings/w1/docs/guests",
            headers={"Authorization": f"Bearer {signed(cases['exp 400 digits'])}"},
        )
        assert r.status_code == 401, r.text
    ok = signed({**base, "iat": now, "exp": now + 29 * 86400})
    assert await upgrade_status(secure, "w1/guests", ok) == 101


@pytest.mark.slow
@pytest.mark.asyncio
async def test_another_process_learns_revocations_and_erasures_from_the_store(
    secure: ServerProcess,
) -> None:
    # A second server on the same store and no bus between them: it can only learn from
    # the store (what a process that missed the bus event relies on).
    other = ServerProcess(secure.data_dir, env=secure.env, anonymous=False)
    async with other:
        victim = token(sub="eve")
        assert await upgrade_status(other, "w1/guests", victim) == 101
        async with httpx.AsyncClient(base_url=secure.url) as http:
            assert (
                await http.post("/api/admin/revoke", json={"sub": "eve"}, headers=ADMIN)
            ).status_code == 200
            assert (await http.delete("/api/weddings/w2", headers=ADMIN)).status_code == 200
        deadline = time.monotonic() + 15
        while (
            await upgrade_status(other, "w1/guests", victim) != 401
            or await upgrade_status(other, "w2/guests", token(wedding="w2")) != 410
        ):
            assert time.monotonic() < deadline, "the other process never learned"
            await asyncio.sleep(0.2)


# -- every copy (issue 35, item 6) ---------------------------------------------------------

GUEST_NAME = "Ottoline Vexbridge"
GUEST_CONTACT = "ottoline.vexbridge@canary.example"
GUEST_DIET = "no-quinceberries-ever"
MEMBER_NAME = "Barnaby Whistlecroft"
MEMBER_EMAIL = "barnaby.whistlecroft@canary.example"
MEMBER_BODY = "the florist owes barnabyplums"
MEMBER_NOTE = "barnabys van is the green one"
CANARIES = (
    GUEST_NAME,
    GUEST_CONTACT,
    GUEST_DIET,
    MEMBER_NAME,
    MEMBER_EMAIL,
    MEMBER_BODY,
    MEMBER_NOTE,
)


async def sqlite_rows(path: Path) -> dict[str, str]:
    """Every table of the SQLite file (from ``sqlite_master``), its rows as one text."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: repr(db.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables}
    finally:
        db.close()


async def postgres_rows(dsn: str) -> dict[str, str]:
    """Every table of the database (from ``information_schema``), its rows as one text."""
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            " AND table_type = 'BASE TABLE'"
        )
        found = {}
        for schema, table in tables:
            rows = await conn.fetch(f'SELECT * FROM "{schema}"."{table}"')
            found[f"{schema}.{table}"] = repr([tuple(r) for r in rows])
        return found
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_erasure_reaches_every_table_and_file_on_sqlite(tmp_path: Path) -> None:
    await erase_everywhere(tmp_path, "")


@pytest.mark.asyncio
async def test_erasure_reaches_every_table_on_postgres(
    tmp_path: Path, scratch_postgres: str
) -> None:
    await erase_everywhere(tmp_path, scratch_postgres)


async def erase_everywhere(tmp_path: Path, dsn: str) -> None:
    """A guest and a member are written (the member a thread message and a custom event),
    delivered to a webhook (whose stored delivery payloads quote them), then erased: no
    table the store has (listed from its own catalogue) nor any file keeps a word of
    them."""
    env = {
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        "CRDT_SERVER_ADMIN_API_KEY": "admin-key-for-tests",
        "CRDT_SERVER_WEBHOOK_ALLOW_PRIVATE": "true",
        "CRDT_SERVER_WEBHOOK_RETRY_SCHEDULE": "0,1",
    }
    if dsn:
        env["CRDT_SERVER_DATABASE_URL"] = dsn
    planner = {"Authorization": f"Bearer {CODEC.mint(sub='pat', role='planner', wedding='w1')}"}
    member = CODEC.mint(
        sub="barn", role="vendor", wedding="w1", name=MEMBER_NAME, email=MEMBER_EMAIL
    )
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        WebhookReceiver() as receiver,
    ):
        hook = await http.post(
            "/api/weddings/w1/webhooks", json={"url": receiver.url}, headers=planner
        )
        assert hook.status_code == 201, hook.text
        op = {
            "op": "add_guest",
            "guest_id": "g-1",
            "name": GUEST_NAME,
            "contact": GUEST_CONTACT,
            "dietary": [GUEST_DIET],
        }
        r = await http.post("/api/weddings/w1/docs/guests/ops", json=op, headers=planner)
        assert r.status_code == 200, r.text
        vendor = {"Authorization": f"Bearer {member}"}
        assert (await http.get("/api/weddings/w1/members", headers=vendor)).status_code == 200
        thread = await http.post(
            "/api/weddings/w1/threads",
            json={"subject": "Flowers", "participants": ["barn"]},
            headers=planner,
        )
        assert thread.status_code == 201, thread.text
        message = await http.put(
            f"/api/weddings/w1/threads/{thread.json()['id']}/messages/m1",
            json={"body": MEMBER_BODY},
            headers=vendor,
        )
        assert message.status_code == 201, message.text
        note = {"type": "custom.arrival", "data": {"note": MEMBER_NOTE}}
        posted = await http.post("/api/weddings/w1/events", json=note, headers=vendor)
        assert posted.status_code == 201, posted.text
        got = await receiver.wait_for(4)
        bodies = b"".join(g.body for g in got)
        for canary in (GUEST_NAME, MEMBER_BODY, MEMBER_NOTE):
            assert canary.encode() in bodies, canary

        async def rows() -> dict[str, str]:
            if dsn:
                return await postgres_rows(dsn)
            return await sqlite_rows(server.data_dir / "crdt.sqlite3")

        before = await rows()
        assert any(GUEST_NAME in text for text in before.values())  # the test sees them
        assert any(MEMBER_BODY in text for text in before.values())
        assert any(MEMBER_NOTE in text for text in before.values())
        r = await http.post("/api/weddings/w1/guests/g-1/erase", headers=ADMIN)
        assert r.status_code == 200, r.text
        r = await http.delete("/api/weddings/w1/members/barn", headers=ADMIN)
        assert r.status_code == 204, r.text

        async def leftovers() -> list[tuple[str, str]]:
            tables = await rows()
            return [(t, c) for t, text in tables.items() for c in CANARIES if c in text]

        left = await leftovers()
        assert left == [], left
        assert len(before) >= 20  # every table was listed, not only a few
        for canary in CANARIES:
            assert bytes_found(server.data_dir, canary) == [], canary
