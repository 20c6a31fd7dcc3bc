"""Native apps sign in through a real server, a real SMTP receiver and both stores (issue
80): a sign-in asked for with a PKCE challenge (RFC 7636, S256) completes only with its
verifier, into a device secret in the body (no cookie, no ``Origin`` rule); a code read
from the mailbox without the verifier signs nobody in; the secret refreshes at
``/api/session/refresh`` (``Authorization: Device``) and is refused everywhere outside
``/api/session``; such a device is listed, renamed and ended like a browser's, ended by
sign-out-all and by its person's erasure, and its socket closes with 4401; an invitation
accepted by an app gives one too; the app-link files come from the settings."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from crdt_server import clock
from crdt_server.app import create_app
from crdt_server.features.signin import SignInSettings
from crdt_server.settings import Settings, SettingsError
from crdt_server.testing.waits import until
from tests.features.conversations import ADMIN_AUTH, CODEC, COUPLE, ENV, W, ok
from tests.features.signin.test_sessions import Running, cookie_of, put_member
from tests.features.test_feature_list import MINT, SECRET, serving
from tests.server import ServerProcess
from tests.yclient import YClient

pytestmark = [pytest.mark.timeout(120)]

_APP_CODE = re.compile(r"/app/sign-in-app#code=([A-Za-z0-9_-]+)")


def pkce() -> tuple[str, str]:
    """A fresh (verifier, S256 challenge), as an app makes them (RFC 7636 appendix B)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def app_links(running: Running, address: str) -> list[str]:
    found = []
    for message in running.inbox.messages:
        if message["To"] == address and message["Subject"] == "Your sign-in link":
            match = _APP_CODE.search(message.get_content())
            if match:
                found.append(match.group(1))
    return found


async def app_link(running: Running, address: str, challenge: str, count: int) -> str:
    """Ask for a sign-in link as an app does and wait for the ``count``-th app link."""
    asked = await running.http.post(
        "/api/sign-in",
        json={"email": address, "client": "app", "code_challenge": challenge},
    )
    assert asked.status_code == 202, asked.text

    async def arrived() -> bool:
        return len(app_links(running, address)) >= count

    await until(arrived)
    return app_links(running, address)[count - 1]


async def complete_as_app(
    running: Running, code: str, verifier: str | None, **headers: str
) -> httpx.Response:
    body: dict[str, Any] = {"code": code, "client": "app", "device_name": "Cam's phone"}
    if verifier is not None:
        body["code_verifier"] = verifier
    return await running.http.post("/api/sign-in/complete", json=body, headers=headers)


def device(secret: str) -> dict[str, str]:
    return {"Authorization": f"Device {secret}"}


def field_of(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["field"])


@pytest.mark.asyncio
async def test_an_app_signs_in_with_its_verifier_and_refreshes_with_its_secret(
    running: Running,
) -> None:
    http = running.http
    await put_member(http, "w1", "cam", role="couple", name="Cam", email="cam@example.com")
    # What an app's request must say: a challenge with client app, and only then.
    verifier, challenge = pkce()
    for body, field in (
        ({"client": "app"}, "code_challenge"),
        ({"code_challenge": challenge}, "code_challenge"),
        ({"client": "app", "code_challenge": "short"}, "code_challenge"),
        ({"client": "app", "code_challenge": challenge, "code_challenge_method": "plain"}, ""),
        ({"client": "desktop", "code_challenge": challenge}, "client"),
    ):
        refused = await http.post("/api/sign-in", json={"email": "cam@example.com", **body})
        assert refused.status_code in (400, 422), (body, refused.text)
        assert not field or field_of(refused) == field, refused.text
    code = await app_link(running, "cam@example.com", challenge, 1)

    # No Origin rule for an app (it has no page), and no cookie: the secret in the body.
    done = await complete_as_app(running, code, verifier, Origin="https://evil.example")
    answer = await ok(done)
    assert "set-cookie" not in done.headers and done.headers["cache-control"] == "no-store"
    secret = answer["device_secret"]
    assert len(secret) >= 43 and (answer["wedding"], answer["sub"]) == ("w1", "cam")
    sid = CODEC.decode(answer["token"]).sid
    assert sid is not None

    # The secret refreshes, from no page at all or any page: a token carrying the sid.
    for headers in ({}, {"Origin": "https://evil.example"}):
        fresh = await ok(
            await http.post("/api/session/refresh", json={"wedding": "w1"}, headers={
                **device(secret), **headers
            })
        )  # fmt: skip
        assert CODEC.decode(fresh["token"]).sid == sid and "device_secret" not in fresh
    # ... and is refused on every route outside /api/session, never an access token.
    for method, path in (
        ("GET", f"{W}/access"),
        ("GET", f"{W}/members"),
        ("POST", "/api/token/refresh"),
    ):
        refused = await http.request(method, path, headers=device(secret))
        assert refused.status_code == 401, (path, refused.text)
        assert field_of(refused) == "Authorization"
    wrong = await http.post("/api/session/refresh", json={}, headers=device("z" * 43))
    assert wrong.status_code == 401 and field_of(wrong) == "Authorization"

    # A browser of the same person sees the phone, renames it; the app sees it too.
    browser = cookie_of(await running.complete(await running.link("cam@example.com", 1)))
    listed = (await ok(await running.session(browser, "devices", "GET")))["devices"]
    phone = next(d for d in listed if d["label"] == "Cam's phone")
    assert phone["id"] == sid and not phone["current"]
    renamed = await running.session(browser, f"devices/{sid}", "PATCH", json={"label": "iPad"})
    assert (await ok(renamed))["label"] == "iPad"
    bad = await running.session(browser, f"devices/{sid}", "PATCH", json={"label": ""})
    assert bad.status_code == 422
    nobody = await running.session(browser, "devices/d_nope", "PATCH", json={"label": "x"})
    assert nobody.status_code == 404
    seen = await ok(await http.get("/api/session/devices", headers=device(secret)))
    assert [d["label"] for d in seen["devices"] if d["current"]] == ["iPad"]

    # Its socket closes with 4401 when the browser ends it; its secret stops.
    token = (await ok(await http.post("/api/session/refresh", json={}, headers=device(secret))))[
        "token"
    ]
    async with YClient(running.server.ws_url, "w1/timeline", token=token) as app:
        await app.wait(app.synced.is_set)
        assert (await running.session(browser, f"devices/{sid}", "DELETE")).status_code == 204
        await app.wait(app.closed.is_set, timeout=10)
        assert app.close_code == 4401
    ended = await http.post("/api/session/refresh", json={}, headers=device(secret))
    assert ended.status_code == 401

    # Signing out everywhere (from the browser) ends a second app's device too, and an app
    # signs itself out with its own secret.
    verifier2, challenge2 = pkce()
    code2 = await app_link(running, "cam@example.com", challenge2, 2)
    second = (await ok(await complete_as_app(running, code2, verifier2)))["device_secret"]
    assert (await running.session(browser, "sign-out-all")).status_code == 204
    gone = await http.post("/api/session/refresh", json={}, headers=device(second))
    assert gone.status_code == 401
    verifier3, challenge3 = pkce()
    code3 = await app_link(running, "cam@example.com", challenge3, 3)
    third = (await ok(await complete_as_app(running, code3, verifier3)))["device_secret"]
    out = await http.post("/api/session/sign-out", headers=device(third))
    assert out.status_code == 204
    assert (
        await http.post("/api/session/refresh", json={}, headers=device(third))
    ).status_code == 401


@pytest.mark.asyncio
async def test_a_code_without_its_verifier_signs_nobody_in(running: Running) -> None:
    http = running.http
    await put_member(http, "w1", "cam", role="couple", name="Cam", email="cam@example.com")
    verifier, challenge = pkce()
    stolen = await app_link(running, "cam@example.com", challenge, 1)
    # Read from the mailbox and posted as a browser would (Origin forged), or as an app
    # without the verifier, or with another: refused, naming the verifier.
    thief = await http.post("/api/sign-in/complete", json={"code": stolen}, headers=running.origin)
    assert thief.status_code == 401 and field_of(thief) == "code_verifier", thief.text
    assert "set-cookie" not in thief.headers
    # The code is used up by that try: the app asks for a new link.
    late = await complete_as_app(running, stolen, verifier)
    assert late.status_code == 401 and field_of(late) == "code"

    # As an app without the verifier, or with another one: refused the same way.
    await put_member(http, "w1", "dee", role="family", name="Dee", email="dee@example.com")
    verifier, challenge = pkce()
    for count, attempt in ((1, None), (2, pkce()[0])):
        code = await app_link(running, "dee@example.com", challenge, count)
        refused = await complete_as_app(running, code, attempt)
        assert refused.status_code == 401 and field_of(refused) == "code_verifier"
    # A browser's link (no challenge) signs no app in, with or without a verifier.
    browser_code = await running.link("dee@example.com", 1)
    as_app = await complete_as_app(running, browser_code, verifier)
    assert as_app.status_code == 401 and field_of(as_app) == "code_verifier"
    # With its verifier, the newest link signs the app in.
    code = await app_link(running, "cam@example.com", challenge, 2)
    assert (await ok(await complete_as_app(running, code, verifier)))["device_secret"]


@pytest.mark.asyncio
async def test_an_invitation_accepted_by_an_app_gives_a_device_secret(running: Running) -> None:
    http = running.http
    made = await ok(
        await http.post(f"{W}/invitations", json={"role": "friend", "name": "Zoe"}, headers=COUPLE),
        201,
    )
    # An invitation takes no verifier (nobody asked for its code with a challenge).
    odd = await http.post(
        "/api/invitations/accept",
        json={"code": made["code"], "name": "Zoe", "client": "app", "code_verifier": "x" * 43},
    )
    assert odd.status_code in (400, 422), odd.text
    joined = await http.post(
        "/api/invitations/accept",
        json={"code": made["code"], "name": "Zoe", "client": "app", "device_name": "Zoe's phone"},
        headers={"Origin": "https://evil.example"},
    )
    answer = await ok(joined, 201)
    assert "set-cookie" not in joined.headers
    secret, sub = answer["device_secret"], answer["sub"]
    fresh = await ok(await http.post("/api/session/refresh", json={}, headers=device(secret)))
    assert (fresh["wedding"], fresh["role"], fresh["sub"]) == ("w1", "friend", sub)
    devices = (await ok(await http.get("/api/session/devices", headers=device(secret))))["devices"]
    assert [(d["label"], d["current"]) for d in devices] == [("Zoe's phone", True)]
    # Erased from her only wedding: her app's device ends with her person.
    erased = await http.delete(f"/api/admin/members/{sub}", headers=ADMIN_AUTH)
    assert erased.status_code == 200, erased.text
    assert (
        await http.post("/api/session/refresh", json={}, headers=device(secret))
    ).status_code == 401
    # The browser's way still gives a cookie and no secret.
    other = await ok(
        await http.post(f"{W}/invitations", json={"role": "friend", "name": "Al"}, headers=COUPLE),
        201,
    )
    browser = await http.post(
        "/api/invitations/accept",
        json={"code": other["code"], "name": "Al"},
        headers=running.origin,
    )
    assert "device_secret" not in (await ok(browser, 201)) and cookie_of(browser)


@pytest.mark.asyncio
async def test_the_app_link_files_come_from_the_settings(tmp_path: Path) -> None:
    fingerprint = ":".join(["AB"] * 32)
    env = {
        **ENV,
        "CRDT_SERVER_APPLE_APP_IDS": "ABCDE12345.com.example.wedding",
        "CRDT_SERVER_ANDROID_APP_PACKAGE": "com.example.wedding",
        "CRDT_SERVER_ANDROID_APP_FINGERPRINTS": fingerprint.lower(),
    }
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        ServerProcess(tmp_path / "bare", env=ENV, anonymous=False) as bare,
        httpx.AsyncClient(timeout=10) as http,
    ):
        apple = await http.get(f"{server.url}/.well-known/apple-app-site-association")
        assert apple.status_code == 200 and apple.headers["content-type"] == "application/json"
        details = apple.json()["applinks"]["details"]
        assert details == [
            {
                "appIDs": ["ABCDE12345.com.example.wedding"],
                "components": [{"/": "/app/sign-in-app", "comment": "a native app's sign-in"}],
            }
        ]
        android = await ok(await http.get(f"{server.url}/.well-known/assetlinks.json"))
        assert android == [
            {
                "relation": ["delegate_permission/common.handle_all_urls"],
                "target": {
                    "namespace": "android_app",
                    "package_name": "com.example.wedding",
                    "sha256_cert_fingerprints": [fingerprint],
                },
            }
        ]
        for path in ("apple-app-site-association", "assetlinks.json"):
            missing = await http.get(f"{bare.url}/.well-known/{path}")
            assert missing.status_code == 404


@pytest.mark.parametrize(
    "fields",
    [
        {"apple_app_ids": "com.example.wedding"},
        {"android_app_package": "wedding"},
        {"android_app_package": "com.example.wedding"},
        {"android_app_package": "com.example.wedding", "android_app_fingerprints": "AB:CD"},
        {"android_app_fingerprints": ":".join(["AB"] * 32)},
    ],
)
@pytest.mark.timeout(10)
def test_app_link_settings_are_checked(fields: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        SignInSettings(**fields)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_an_app_secret_rotates_at_refresh_only_and_the_old_one_lasts_a_minute(
    tmp_path: Path,
) -> None:
    """With the fake clock: a day after the last rotation, the refresh answers the new
    secret in its body; the old one works one more minute; the other session routes never
    rotate an app's secret (their answers could not hand it over)."""
    fake = clock.FakeClock(datetime(2027, 3, 1, tzinfo=UTC))
    settings = Settings(data_dir=tmp_path, auth_secret=SECRET)
    with clock.use(fake):
        async with serving(create_app(settings)) as http:
            made = await ok(
                await http.post(
                    f"{W}/invitations",
                    json={"role": "family", "name": "Mo"},
                    headers=MINT.headers(role="couple", sub="cam"),
                ),
                201,
            )
            accepted = await http.post(
                "/api/invitations/accept",
                json={"code": made["code"], "name": "Mo", "client": "app"},
            )
            first = (await ok(accepted, 201))["device_secret"]
            kept = await ok(await http.post("/api/session/refresh", json={}, headers=device(first)))
            assert "device_secret" not in kept
            await fake.advance(86400 + 1)
            # A day on: listing the devices does not rotate it...
            listed = await http.get("/api/session/devices", headers=device(first))
            assert "device_secret" not in (await ok(listed))
            # ... the refresh does, and says so.
            rotated = await ok(
                await http.post("/api/session/refresh", json={}, headers=device(first))
            )
            second = rotated["device_secret"]
            assert second != first and len(second) >= 43 and rotated["token"]
            await fake.advance(30)
            assert (
                await http.post("/api/session/refresh", json={}, headers=device(first))
            ).status_code == 200
            await fake.advance(31)
            old = await http.post("/api/session/refresh", json={}, headers=device(first))
            assert old.status_code == 401
            again = await ok(
                await http.post("/api/session/refresh", json={}, headers=device(second))
            )
            assert "device_secret" not in again and again["sub"] == rotated["sub"]


class _EarlyClock(clock.FakeClock):
    """The fake clock, whose short sleeps (under a second: the longer ones are the
    background loops', which wait for the test) pass by themselves and wake a little before
    their moment, as the event loop's timers may (by its clock's resolution)."""

    async def sleep(self, seconds: float) -> None:
        if not 0 < seconds < 1:
            await super().sleep(seconds)
            return
        await self.advance(seconds - 0.002)


@pytest.mark.asyncio
async def test_the_refresh_after_a_role_change_of_this_second_gives_a_token_that_works(
    tmp_path: Path,
) -> None:
    """A role change revokes the member's older tokens; a device session's next refresh,
    in the same second (a token's ``iat`` is whole seconds), must give one that is not
    refused as issued before the revocation, even when the server's waits wake early."""
    fake = _EarlyClock(1_781_000_000.5)
    settings = Settings(data_dir=tmp_path, auth_secret=SECRET)
    with clock.use(fake):
        async with serving(create_app(settings)) as http:
            made = await ok(
                await http.post(
                    f"{W}/invitations",
                    json={"role": "family", "name": "Mo"},
                    headers=MINT.headers(role="couple", sub="cam"),
                ),
                201,
            )
            accepted = await ok(
                await http.post(
                    "/api/invitations/accept",
                    json={"code": made["code"], "name": "Mo", "client": "app"},
                ),
                201,
            )
            secret, sub = accepted["device_secret"], accepted["sub"]
            changed = await http.put(
                f"{W}/members/{sub}",
                json={"role": "planner", "name": "Mo"},
                headers=MINT.headers(role="couple", sub="cam"),
            )
            await ok(changed)
            fresh = await ok(
                await http.post("/api/session/refresh", json={}, headers=device(secret))
            )
            bearer = {"Authorization": f"Bearer {fresh['token']}"}
            access = await ok(await http.get(f"{W}/access", headers=bearer))
            assert access["role"] == "planner"
