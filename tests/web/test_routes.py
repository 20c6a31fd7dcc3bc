"""The web app's HTTP side on a real server: its files (types, caching, nothing outside the
bundle), the redirect, token refresh, the access summary, and ``serve --demo``."""

from __future__ import annotations

import gzip
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio

from crdt_server.auth.tokens import TokenCodec
from tests.server import ServerProcess
from tests.web.conftest import demo_links

SECRET = "webapp-tests-secret-long-enough-for-hs256"
ADMIN_KEY = "webapp-admin-key"
CODEC = TokenCodec(algorithms=["HS256"], secret=SECRET.encode())
MAX_LIFETIME = 500

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    env = {
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        "CRDT_SERVER_ADMIN_API_KEY": ADMIN_KEY,
        "CRDT_SERVER_SESSION_MAX_LIFETIME_SECONDS": str(MAX_LIFETIME),
    }
    async with ServerProcess(tmp_path / "data", env=env, anonymous=False) as proc:
        yield proc


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def raw(**claims: Any) -> str:
    now = int(time.time())
    payload = {"sub": "ada", "role": "planner", "wedding": "w1", "iat": now, "exp": now + 600}
    return jwt.encode({**payload, **claims}, SECRET, algorithm="HS256")


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["detail"] and body["error"] == body["detail"]
    if field is not None:
        assert body["errors"][0]["field"] == field


async def test_the_app_files_are_served_with_their_types_and_cache_rules(
    server: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        for path in ("/", "/app"):
            response = await client.get(path)
            assert response.status_code == 307 and response.headers["location"] == "/app/"
        page = await client.get("/app/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["cache-control"] == "no-cache"
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
        script = re.search(r'src="/app/(app-[A-Z0-9]+\.js)"', page.text)
        style = re.search(r'href="/app/(app-[A-Z0-9]+\.css)"', page.text)
        assert script and style, page.text
        for name, kind in ((script[1], "text/javascript"), (style[1], "text/css")):
            response = await client.get(f"/app/{name}")
            assert response.status_code == 200 and response.headers["content-type"].startswith(kind)
            assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        worker = await client.get("/app/sw.js")
        assert worker.headers["content-type"] == "text/javascript; charset=utf-8"
        assert worker.headers["cache-control"] == "no-cache"
        assert worker.headers["service-worker-allowed"] == "/app/"
        assert script[1] in worker.text  # the app shell it keeps offline
        manifest = await client.get("/app/manifest.webmanifest")
        assert manifest.headers["content-type"] == "application/manifest+json"
        again = await client.get("/app/", headers={"If-None-Match": page.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        assert (await client.head("/app/")).status_code == 200
        for path in ("/app/nope.js", "/app/.sources", "/app/auth_secret"):
            assert_problem(await client.get(path), 404)
        # Only names of the bundle are served: nothing outside it, however the path is spelled.
        for path in ("/app/..%2fauth_secret", "/app/%2e%2e/auth_secret", "/app/../auth_secret"):
            response = await client.get(path)
            assert response.status_code == 404 and SECRET not in response.text


async def test_the_app_files_are_sent_compressed_as_the_browser_accepts(
    server: ServerProcess,
) -> None:
    """Brotli where accepted, else gzip, else as they are: the build's precompressed bodies,
    with Content-Encoding, Vary and an ETag per encoding (a 304 only for the one sent)."""
    async with httpx.AsyncClient(base_url=server.url) as client:
        plain = await client.get("/app/", headers={"Accept-Encoding": "identity"})
        name = re.search(r'src="/app/(app-[A-Z0-9]+\.js)"', plain.text)
        assert name, plain.text
        # The page names this server's transport (the app opens its socket early by it).
        assert '<meta name="crdt-app-transport" content="collab">' in plain.text
        # The app's static chunk is named by the page: fetched with the script, not after it.
        assert re.search(r'<link rel="modulepreload" href="/app/chunk-[A-Z0-9]+\.js">', plain.text)
        path = f"/app/{name[1]}"
        raw_body = (await client.get(path, headers={"Accept-Encoding": "identity"})).content
        seen: dict[str, str] = {}
        for accept, encoding in (
            ("gzip, deflate, br, zstd", "br"),
            ("gzip, deflate", "gzip"),
            ("br;q=0, gzip;q=0.5", "gzip"),
            ("*", "br"),
            ("identity", None),
            ("br;q=0, gzip;q=0", None),
            ("x" * 5000, None),
        ):
            async with client.stream("GET", path, headers={"Accept-Encoding": accept}) as sent:
                body = b"".join([part async for part in sent.aiter_raw()])
                headers = sent.headers
            assert headers.get("content-encoding") == encoding, accept[:40]
            assert headers["vary"] == "Accept-Encoding"
            assert headers["cache-control"] == "public, max-age=31536000, immutable"
            if encoding == "gzip":
                assert gzip.decompress(body) == raw_body
                assert len(body) < len(raw_body) / 2
            elif encoding == "br":
                assert len(body) < len(raw_body) / 2
            else:
                assert body == raw_body
            seen[str(encoding)] = headers["etag"]
        assert len(set(seen.values())) == 3, seen  # one ETag per representation
        gz = {"Accept-Encoding": "gzip"}
        again = await client.get(path, headers={**gz, "If-None-Match": seen["gzip"]})
        assert again.status_code == 304 and again.headers["etag"] == seen["gzip"]
        other = await client.get(path, headers={**gz, "If-None-Match": seen["br"]})
        assert other.status_code == 200


async def test_a_valid_token_is_exchanged_for_a_fresh_one_with_the_same_claims(
    server: ServerProcess,
) -> None:
    issued = int(time.time()) - 30
    token = raw(iat=issued, exp=issued + 300, name="Ada", docs={"budget": "read"})
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post("/api/token/refresh", headers=bearer(token))
        assert response.status_code == 200, response.text
        body = response.json()
        fresh = CODEC.decode(body["token"])
        assert (fresh.sub, fresh.name, fresh.role, fresh.weddings) == (
            "ada",
            "Ada",
            "planner",
            ("w1",),
        )
        assert {doc: access.value for doc, access in fresh.docs.items()} == {"budget": "read"}
        assert fresh.auth_time == issued  # the sign-in time survives the refresh
        assert fresh.exp > issued + 300 - 1 and fresh.exp <= time.time() + 300 + 1
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["expires_at"])
        # The new token works, and refreshing it again keeps the first sign-in time.
        access = await client.get("/api/weddings/w1/access", headers=bearer(body["token"]))
        assert access.status_code == 200 and access.json()["docs"]["budget"] == "read"
        again = await client.post("/api/token/refresh", headers=bearer(body["token"]))
        assert CODEC.decode(again.json()["token"]).auth_time == issued


async def test_refresh_refuses_missing_bad_expired_revoked_and_too_old_sessions(
    server: ServerProcess,
) -> None:
    now = int(time.time())
    async with httpx.AsyncClient(base_url=server.url) as client:
        refresh = "/api/token/refresh"
        assert_problem(await client.post(refresh), 401, "token")
        assert_problem(await client.post(refresh, headers=bearer("not-a-jwt")), 401, "token")
        expired = raw(iat=now - 100, exp=now - 10)
        assert_problem(await client.post(refresh, headers=bearer(expired)), 401, "token")
        forged = jwt.encode(
            {"sub": "ada", "role": "couple", "wedding": "w1", "exp": now + 60}, "x" * 40
        )
        assert_problem(await client.post(refresh, headers=bearer(forged)), 401, "token")
        no_iat = jwt.encode(
            {"sub": "ada", "role": "couple", "wedding": "w1", "exp": now + 60}, SECRET
        )
        assert_problem(await client.post(refresh, headers=bearer(no_iat)), 401, "token")
        # Past the maximum lifetime counted from the sign-in, however fresh the token.
        old = raw(iat=now - 5, exp=now + 300, auth_time=now - MAX_LIFETIME - 5)
        response = await client.post(refresh, headers=bearer(old))
        assert_problem(response, 401, "token")
        assert "maximum lifetime" in response.json()["detail"]
        # Near the end of it, the fresh token ends with the session, not later.
        ending = raw(iat=now - 5, exp=now + 300, auth_time=now - MAX_LIFETIME + 60)
        body = (await client.post(refresh, headers=bearer(ending))).json()
        assert CODEC.decode(body["token"]).exp <= now - MAX_LIFETIME + 60 + MAX_LIFETIME
        # Revoked: tokens issued before the revocation cannot be refreshed.
        before = raw(sub="eve", iat=now - 5)
        revoked = await client.post(
            "/api/admin/revoke", headers=bearer(ADMIN_KEY), json={"sub": "eve"}
        )
        assert revoked.status_code == 200
        assert_problem(await client.post(refresh, headers=bearer(before)), 401, "token")
        assert (await client.get("/api/token/refresh")).status_code == 405


async def test_access_says_what_the_role_may_open(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        friend = await client.get("/api/weddings/w1/access", headers=bearer(raw(role="friend")))
        assert friend.status_code == 200
        assert friend.json()["docs"] == {
            "timeline": "read",
            "budget": "none",
            "guests": "none",
            "seating": "none",
            "tasks": "none",
            "conflicts": "none",
        }
        couple = (
            await client.get("/api/weddings/w1/access", headers=bearer(raw(role="couple")))
        ).json()
        assert couple["role"] == "couple" and couple["sub"] == "ada"
        assert (
            set(couple["docs"].values()) == {"write", "read"}
            and couple["docs"]["conflicts"] == "read"
        )
        assert "conflicts.resolve" in couple["capabilities"]
        assert "webhooks.manage" in couple["capabilities"]
        assert couple["capabilities"] == sorted(couple["capabilities"])
        assert friend.json()["capabilities"] == []
        # By default only the couple exports the wedding (and the admin key, always).
        assert "weddings.export" in couple["capabilities"]
        planner = (await client.get("/api/weddings/w1/access", headers=bearer(raw()))).json()
        assert "weddings.export" not in planner["capabilities"]
        add = {"op": "add_guest", "guest_id": "g1", "name": "Ann"}
        made = await client.post(
            "/api/weddings/w1/docs/guests/ops", json=add, headers=bearer(raw())
        )
        assert made.status_code == 200, made.text
        exported = await client.get("/api/weddings/w1/export", headers=bearer(raw(role="couple")))
        assert exported.status_code == 200 and exported.json()["format"] == "crdt-server-wedding"
        assert_problem(await client.get("/api/weddings/w1/export", headers=bearer(raw())), 403)
        admin = await client.get("/api/weddings/w1/export", headers=bearer(ADMIN_KEY))
        assert admin.status_code == 200
        assert_problem(await client.get("/api/weddings/w2/access", headers=bearer(raw())), 403)
        assert_problem(await client.get("/api/weddings/w1/access"), 401, "token")
        assert_problem(await client.get("/api/weddings/-bad/access", headers=bearer(raw())), 404)


async def test_serve_demo_prints_links_and_seeds_once(tmp_path: Path) -> None:
    data = tmp_path / "data"

    async def snapshot(url: str, token: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=url, headers=bearer(token)) as client:
            found: dict[str, Any] = {}
            for kind in ("guests", "seating", "timeline", "budget", "tasks"):
                doc = (await client.get(f"/api/weddings/demo/docs/{kind}")).json()
                history = (await client.get(f"/api/weddings/demo/docs/{kind}/history")).json()
                found[kind] = (doc, len(history["history"]))
            return found

    async with ServerProcess(data, args=["--demo"], anonymous=False) as proc:
        demo = await demo_links(proc)
        assert set(demo.links) == {"couple", "planner", "family", "vendor", "friend"}
        for role, link in demo.links.items():
            assert link.startswith(f"{proc.url}/app/#token=")
            assert CODEC is not None and role in proc.log.decode()
        first = await snapshot(proc.url, demo.tokens["planner"])
        assert len(first["guests"][0]["guests"]) >= 110 and first["guests"][1] == 1
    async with ServerProcess(data, args=["--demo"], anonymous=False) as proc:
        demo = await demo_links(proc)
        assert await snapshot(proc.url, demo.tokens["planner"]) == first


async def test_access_lists_the_capabilities_of_the_operators_matrix(tmp_path: Path) -> None:
    """``capabilities`` follows ``CRDT_SERVER_PERMISSIONS``: a vendor given
    ``conflicts.resolve`` sees it listed; a planner the matrix takes it from does not. The
    export follows ``weddings.export``: given to the planner alone, the planner exports and
    the couple is refused."""
    every = {doc: "write" for doc in ("timeline", "budget", "guests", "seating")}
    permissions = {
        "couple": every,
        "planner": every,
        "vendor": {"timeline": "read"},
        "capabilities": {"conflicts.resolve": ["couple", "vendor"], "weddings.export": ["planner"]},
    }
    env = {"CRDT_SERVER_AUTH_SECRET": SECRET, "CRDT_SERVER_PERMISSIONS": json.dumps(permissions)}
    async with ServerProcess(tmp_path / "data", env=env, anonymous=False) as proc:
        async with httpx.AsyncClient(base_url=proc.url) as client:
            vendor = await client.get("/api/weddings/w1/access", headers=bearer(raw(role="vendor")))
            planner = await client.get("/api/weddings/w1/access", headers=bearer(raw()))
            couple = await client.get("/api/weddings/w1/access", headers=bearer(raw(role="couple")))
            add = {"op": "add_guest", "guest_id": "g1", "name": "Ann"}
            ops = "/api/weddings/w1/docs/guests/ops"
            assert (await client.post(ops, json=add, headers=bearer(raw()))).status_code == 200
            by_planner = await client.get("/api/weddings/w1/export", headers=bearer(raw()))
            by_couple = await client.get(
                "/api/weddings/w1/export", headers=bearer(raw(role="couple"))
            )
    assert "conflicts.resolve" in vendor.json()["capabilities"]
    assert "conflicts.resolve" not in planner.json()["capabilities"]
    assert "webhooks.manage" in planner.json()["capabilities"]
    assert "weddings.export" in planner.json()["capabilities"]
    assert "weddings.export" not in couple.json()["capabilities"]
    assert by_planner.status_code == 200, by_planner.text
    assert by_planner.json()["documents"]["guests"]["json"]["guests"]["g1"]["name"] == "Ann"
    assert_problem(by_couple, 403)
