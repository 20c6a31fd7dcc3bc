"""Who may do what, through a real server with real tokens."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pycrdt import Map
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from crdt_server.auth.tokens import TokenCodec
from crdt_server.codec.awareness import AwarenessEntry, encode_awareness_entries
from crdt_server.codec.protocol import encode_awareness
from tests.jsclient import JsClientGroup, map_set
from tests.server import ServerProcess
from tests.yclient import YClient

SECRET = "test-secret-for-hs256-tokens-only"
OTHER_SECRET = "another-secret-that-is-long-enough-x"
ADMIN_KEY = "admin-key-for-tests"
CODEC = TokenCodec(algorithms=["HS256"], secret=SECRET.encode())
ORIGIN = "https://plans.example"


def token(
    role: str = "couple", *, sub: str = "u1", wedding: str = "w1", ttl: float = 600, **extra: Any
) -> str:
    return CODEC.mint(sub=sub, role=role, wedding=wedding, ttl=ttl, **extra)


def raw_token(payload: dict[str, Any], key: Any = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=algorithm)


@pytest_asyncio.fixture
async def secure(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    env = {
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        "CRDT_SERVER_ADMIN_API_KEY": ADMIN_KEY,
        "CRDT_SERVER_ALLOWED_ORIGINS": ORIGIN,
        "CRDT_SERVER_MAX_CONNECTIONS_PER_USER": "3",
    }
    async with ServerProcess(tmp_path / "data", env=env, anonymous=False) as server:
        yield server


async def status_of(
    server: ServerProcess,
    path: str,
    *,
    tok: str | None = None,
    headers: dict[str, str] | None = None,
) -> int:
    url = f"{server.ws_url}/{path}" + (f"?token={tok}" if tok else "")
    try:
        async with connect(url, additional_headers=headers or {}):
            return 101
    except InvalidStatus as exc:
        refused = exc.response
        # Every refusal is problem+json (RFC 9457), a 429 says when to come back.
        assert refused.headers["Content-Type"] == "application/problem+json", refused.headers
        problem = json.loads(refused.body or b"{}")
        assert problem["status"] == refused.status_code and problem["detail"], problem
        if refused.status_code == 429:
            assert int(refused.headers["Retry-After"]) >= 1
        return refused.status_code


async def rooms_loaded(server: ServerProcess) -> int:
    async with httpx.AsyncClient() as http:
        return int((await http.get(f"{server.url}/readyz")).json()["rooms"])


def now() -> int:
    return int(time.time())


@pytest.mark.asyncio
async def test_refusals_at_the_upgrade_load_nothing(secure: ServerProcess) -> None:
    base = {"sub": "u1", "role": "couple", "wedding": "w1"}
    cases: list[tuple[str, str | None, dict[str, str] | None, int]] = [
        ("missing token", None, None, 401),
        ("malformed token", "not-a-jwt", None, 401),
        ("bad signature", raw_token({**base, "exp": now() + 60}, key=OTHER_SECRET), None, 401),
        ("expired", raw_token({**base, "exp": now() - 5}), None, 401),
        ("alg none", jwt.encode({**base, "exp": now() + 60}, None, algorithm="none"), None, 401),
        (
            "alg outside allowlist",
            raw_token({**base, "exp": now() + 60}, key=SECRET * 2, algorithm="HS512"),
            None,
            401,
        ),
        ("unknown role", raw_token({**base, "role": "king", "exp": now() + 60}), None, 401),
        ("missing exp", raw_token(base), None, 401),
        ("other wedding", token(wedding="w2"), None, 403),
        ("role may not see budget", token("friend"), None, 403),
        ("origin not allowed", token(), {"Origin": "https://evil.example"}, 403),
    ]
    for name, tok, headers, expected in cases:
        path = "w1/budget"
        got = await status_of(secure, path, tok=tok, headers=headers)
        assert got == expected, name
    # The same refusals with the token in an Authorization header.
    assert await status_of(secure, "w1/budget", headers={"Authorization": "Bearer junk"}) == 401
    ok = {"Authorization": f"Bearer {token()}", "Origin": ORIGIN}
    assert await rooms_loaded(secure) == 0
    assert await status_of(secure, "w1/budget", headers=ok) == 101


@pytest.mark.asyncio
async def test_hs_rs_confusion_is_refused(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_file = tmp_path / "public.pem"
    key_file.write_bytes(public_pem)
    env = {
        "CRDT_SERVER_AUTH_PUBLIC_KEY_FILE": str(key_file),
        "CRDT_SERVER_AUTH_ALGORITHMS": "RS256",
    }
    payload = {"sub": "u1", "role": "planner", "wedding": "w1", "iat": now(), "exp": now() + 60}
    async with ServerProcess(tmp_path / "data", env=env, anonymous=False) as server:
        good = jwt.encode(payload, key, algorithm="RS256")
        assert await status_of(server, "w1/guests", tok=good) == 101
        # An attacker who knows the public key signs HS256 with it as the "secret".
        forged_header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
        body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=")
        signing_input = forged_header + b"." + body
        signature = base64.urlsafe_b64encode(
            hmac.new(public_pem, signing_input, hashlib.sha256).digest()
        ).rstrip(b"=")
        forged = (signing_input + b"." + signature).decode()
        assert await status_of(server, "w1/guests", tok=forged) == 401
        assert await rooms_loaded(server) == 1


@pytest.mark.asyncio
async def test_too_many_connections_for_one_user_get_429(secure: ServerProcess) -> None:
    tok = token("planner", sub="busy")
    clients = [await YClient(secure.ws_url, "w1/guests", token=tok).connect() for _ in range(3)]
    try:
        assert await status_of(secure, "w1/guests", tok=tok) == 429
        assert await status_of(secure, "w1/guests", tok=token("planner", sub="other")) == 101
    finally:
        for client in clients:
            await client.close()


@pytest.mark.asyncio
async def test_upgrade_storm_from_one_address_gets_429(tmp_path: Path) -> None:
    env = {"CRDT_SERVER_MAX_UPGRADES_PER_SECOND": "5"}
    async with ServerProcess(tmp_path / "data", env=env) as server:
        statuses = [await status_of(server, "w1/guests") for _ in range(30)]
    assert statuses.count(101) >= 10 and 429 in statuses


@pytest.mark.asyncio
async def test_read_only_writes_are_never_applied(secure: ServerProcess) -> None:
    async with (
        YClient(secure.ws_url, "w1/guests", token=token("planner", sub="p")) as planner,
        YClient(secure.ws_url, "w1/guests", token=token("vendor", sub="v")) as vendor,
    ):
        await planner.wait(planner.synced.is_set)
        # Guests as the schema has them: the vendor reads a projection of the guest list,
        # which copies only the schema's fields of each guest.
        planner.doc.get("guests", type=Map)["g1"] = Map({"name": "Ada"})
        await planner.flush()
        ada = {"g1": {"name": "Ada"}}
        await vendor.wait(lambda: vendor.doc.get("guests", type=Map).to_py() == ada)
        for i in range(20):
            vendor.doc.get("guests", type=Map)[f"spam{i}"] = i
            await vendor.flush()
        await vendor.wait(lambda: len(vendor.denied) == 1)
        assert "read-only" in vendor.denied[0]
        # Nothing reached the document, the store or the planner.
        planner.doc.get("guests", type=Map)["g2"] = Map({"name": "Bo"})
        await planner.flush()
        await planner.wait(planner.is_confirmed)
        await vendor.wait(lambda: "g2" in vendor.doc.get("guests", type=Map).to_py())
        assert set(planner.doc.get("guests", type=Map).to_py() or {}) == {"g1", "g2"}
        assert not vendor.closed.is_set()
    async with YClient(secure.ws_url, "w1/guests", token=token("couple")) as fresh:
        await fresh.wait(fresh.synced.is_set)
        assert set(fresh.doc.get("guests", type=Map).to_py() or {}) == {"g1", "g2"}
    assert len(vendor.denied) == 1


@pytest.mark.asyncio
async def test_expired_token_closes_with_4401_on_time(secure: ServerProcess) -> None:
    tok = token("couple", ttl=2)
    exp = jwt.decode(tok, options={"verify_signature": False})["exp"]
    async with YClient(secure.ws_url, "w1/timeline", token=tok) as client:
        await client.wait(client.closed.is_set, timeout=10)
        closed_at = time.time()
    assert client.close_code == 4401
    assert closed_at - exp < 1.0


@pytest.mark.asyncio
async def test_revocation_closes_every_session_of_that_user_only(secure: ServerProcess) -> None:
    victim = [token("planner", sub="eve"), token("planner", sub="eve")]
    async with (
        YClient(secure.ws_url, "w1/guests", token=victim[0]) as a,
        YClient(secure.ws_url, "w1/timeline", token=victim[1]) as b,
        YClient(secure.ws_url, "w1/guests", token=token("couple", sub="bob")) as bystander,
    ):
        for client in (a, b, bystander):
            await client.wait(client.synced.is_set)
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{secure.url}/api/admin/revoke",
                json={"sub": "eve"},
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            )
            assert response.status_code == 200 and response.json()["closed"] == 2
            refused = await http.post(f"{secure.url}/api/admin/revoke", json={"sub": "eve"})
            assert refused.status_code == 401
        await a.wait(a.closed.is_set)
        await b.wait(b.closed.is_set)
        assert a.close_code == b.close_code == 4401
        assert not bystander.closed.is_set()
        # The old token no longer opens anything; a newer one does.
        assert await status_of(secure, "w1/guests", tok=victim[0]) == 401
        # A token issued after the revocation works (iat has one-second resolution, so
        # keep minting until the clock has moved past the revocation's second).
        deadline = time.monotonic() + 5
        while await status_of(secure, "w1/guests", tok=token("planner", sub="eve")) != 101:
            assert time.monotonic() < deadline, "a new token was never accepted"


@pytest.mark.asyncio
async def test_presence_carries_the_real_identity(secure: ServerProcess) -> None:
    # Friends may read the timeline (and publish their own presence there).
    async with (
        YClient(
            secure.ws_url, "w1/timeline", token=token("friend", sub="mallory", name="Mallory")
        ) as spoofer,
        YClient(
            secure.ws_url, "w1/timeline", token=token("couple", sub="bride", name="The Bride")
        ) as watcher,
    ):
        await spoofer.wait(spoofer.synced.is_set)
        await watcher.wait(watcher.synced.is_set)
        await spoofer.set_awareness(
            {"user": {"id": "bride", "name": "The Bride", "role": "couple", "color": "#f00"}}
        )
        mine = spoofer.doc.client_id
        await watcher.wait(lambda: mine in watcher.awareness)
        user = watcher.awareness[mine]["user"]
        assert user == {"id": "mallory", "name": "Mallory", "role": "friend", "color": "#f00"}
        # Nor can the spoofer remove the bride's presence.
        await watcher.set_awareness({"user": {"color": "#0f0"}})
        bride = watcher.doc.client_id
        await spoofer.wait(lambda: bride in spoofer.awareness)
        removal = AwarenessEntry(bride, 99, "null")
        await spoofer.send_raw(encode_awareness(encode_awareness_entries([removal])))
        async with YClient(secure.ws_url, "w1/timeline", token=token("couple", sub="x")) as late:
            await late.wait(lambda: bride in late.awareness)
            assert late.awareness[bride]["user"]["name"] == "The Bride"


@pytest.mark.asyncio
async def test_json_logs_never_carry_tokens_either(tmp_path: Path) -> None:
    env = {"CRDT_SERVER_AUTH_SECRET": SECRET, "CRDT_SERVER_LOG_FORMAT": "json"}
    server = ServerProcess(tmp_path / "data", env=env, anonymous=False)
    async with server:
        tok = token("couple")
        async with YClient(server.ws_url, "w1/guests", token=tok) as client:
            await client.wait(client.synced.is_set)
    lines = [
        line
        for line in server.log.decode().splitlines()
        if line.strip() and not line.startswith("crdt-server listening on ")
    ]
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any("w1/guests" in event["message"] for event in events)
    assert all(tok not in line for line in lines)


@pytest.mark.asyncio
async def test_query_tokens_never_reach_the_log(secure: ServerProcess) -> None:
    tok = token("couple")
    async with YClient(secure.ws_url, "w1/guests", token=tok) as client:
        await client.wait(client.synced.is_set)
    assert await status_of(secure, "w1/guests", tok="bogus.token.value") == 401
    await secure.stop()
    log = secure.log.decode()
    assert "w1/guests" in log  # the request was logged...
    assert tok not in log and "bogus.token.value" not in log  # ...its token was not


@pytest.mark.js
@pytest.mark.asyncio
async def test_cli_token_works_with_a_stock_client(secure: ServerProcess) -> None:
    command = [sys.executable, "-m", "crdt_server", "token", "--wedding", "w1"]
    command += ["--role", "planner", "--sub", "ops", "--name", "Ops"]
    command += ["--data-dir", str(secure.data_dir)]
    process = await asyncio.create_subprocess_exec(
        *command,
        env={**os.environ, "CRDT_SERVER_AUTH_SECRET": SECRET},
        stdout=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        stdout, _ = await process.communicate()
    assert process.returncode == 0
    out = stdout.decode()
    cli_token = out.strip().splitlines()[-1]
    async with JsClientGroup() as group:
        client = await group.start(version=2)
        await client.connect(secure.ws_url, "w1/seating", params={"token": cli_token})
        await client.wait_synced()
        await client.edit(map_set("tables", "t1", {"name": "Rose", "capacity": 8}))
        async with YClient(secure.ws_url, "w1/seating", token=token("couple")) as check:
            await check.wait(lambda: "t1" in (check.doc.get("tables", type=Map).to_py() or {}))


@pytest.mark.js
@pytest.mark.asyncio
async def test_sessions_endpoint_end_to_end(secure: ServerProcess) -> None:
    async with httpx.AsyncClient() as http:
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        url = f"{secure.url}/api/weddings/w1/sessions"
        response = await http.post(
            url,
            # Family operates the guest list by default (issue 47); this aunt's token
            # restores her write over the socket.
            json={
                "sub": "aunt-may",
                "name": "Aunt May",
                "role": "family",
                "docs": {"guests": "write"},
            },
            headers=admin,
        )
        assert response.status_code == 201, response.text
        session = response.json()
        bad = await http.post(url, json={"sub": "x", "role": "queen"}, headers=admin)
        assert bad.status_code == 422
        assert (await http.post(url, json={"sub": "x", "role": "family"})).status_code == 401
        assert (await http.post(url, content=b"[1", headers=admin)).status_code == 400
    assert session["url"] == secure.ws_url
    async with JsClientGroup() as group:
        client = await group.start(version=3)
        await client.connect(
            session["url"], session["rooms"]["guests"], params={"token": session["token"]}
        )
        await client.wait_synced()
        await client.edit(map_set("guests", "g-may", {"name": "May"}))
        async with YClient(secure.ws_url, "w1/guests", token=token("couple")) as check:
            await check.wait(lambda: "g-may" in (check.doc.get("guests", type=Map).to_py() or {}))
    # family may not open the budget
    assert await status_of(secure, "w1/budget", tok=session["token"]) == 403
