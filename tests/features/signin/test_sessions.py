"""Sign-in links and device sessions through a real server, a real SMTP receiver
(aiosmtpd) and both stores: the link's code works once, the newest only, and a GET of the
link (a mail scanner) uses nothing; the device session's cookie mints short tokens per
wedding with the directory's role; its routes refuse other origins; devices are listed and
revoked; a stranger's address gets the same 202 and no email; hostile bodies are refused
with a 4xx; a ``sid`` token's socket outlives its ``exp`` and closes with 4401 when its
device session ends."""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from pycrdt import Doc, Map
from websockets.asyncio.client import ClientConnection, connect

from crdt_server.codec.protocol import (
    encode_sync_step1,
    encode_update,
    read_var_string,
    write_var_string,
)
from crdt_server.testing.waits import until
from tests.features.conversations import ADMIN_AUTH, CODEC, ENV, Inbox, W, auth, ok
from tests.server import ServerProcess
from tests.yclient import YClient

pytestmark = [pytest.mark.timeout(120)]

_CODE = re.compile(r"/app/sign-in#code=([A-Za-z0-9_-]+)")


@dataclass
class Running:
    server: ServerProcess
    http: httpx.AsyncClient
    inbox: Inbox

    @property
    def origin(self) -> dict[str, str]:
        return {"Origin": self.server.url}

    def links_to(self, address: str) -> list[str]:
        """The codes of the browser's sign-in links sent to ``address`` (a native app's
        links, ``/app/sign-in-app``, are not these)."""
        return [
            found.group(1)
            for m in self.inbox.messages
            if m["To"] == address and m["Subject"] == "Your sign-in link"
            if (found := _CODE.search(m.get_content()))
        ]

    async def link(self, address: str, count: int = 1) -> str:
        """Ask for a sign-in link and wait for the ``count``-th to that address."""
        asked = await self.http.post("/api/sign-in", json={"email": address})
        assert asked.status_code == 202, asked.text

        async def arrived() -> bool:
            return len(self.links_to(address.lower())) >= count

        await until(arrived)
        return self.links_to(address.lower())[count - 1]

    async def complete(self, code: str, agent: str = "Laptop browser") -> httpx.Response:
        return await self.http.post(
            "/api/sign-in/complete",
            json={"code": code},
            headers={**self.origin, "User-Agent": agent},
        )

    async def session(self, cookie: str, path: str, method: str = "POST", **kw: Any) -> Any:
        headers = {**self.origin, "Cookie": f"crdt_session={cookie}", **kw.pop("headers", {})}
        return await self.http.request(method, f"/api/session/{path}", headers=headers, **kw)


def cookie_of(response: httpx.Response) -> str:
    header = response.headers["set-cookie"]
    attributes = {a.strip().split("=")[0].lower() for a in header.split(";")}
    assert {"httponly", "secure", "samesite", "path"} <= attributes, header
    assert "samesite=strict" in header.lower() and "path=/api/session" in header.lower()
    value = header.split(";")[0].split("=", 1)[1]
    assert len(value) >= 43  # 256 bits, URL-safe base64
    return value


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> str:
    """The store's URL: empty for SQLite, a scratch PostgreSQL database."""
    return "" if request.param == "sqlite" else str(request.getfixturevalue("scratch_postgres"))


@pytest_asyncio.fixture
async def running(
    database: str, tmp_path: Path, smtp: tuple[Controller, Inbox]
) -> AsyncIterator[Running]:
    controller, inbox = smtp
    env = {
        **ENV,
        "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
        "CRDT_SERVER_SIGN_IN_PER_EMAIL_PER_HOUR": "4",
        "CRDT_SERVER_SIGN_IN_PER_ADDRESS_PER_HOUR": "40",
    }
    if database:
        env["CRDT_SERVER_DATABASE_URL"] = database
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        yield Running(server, http, inbox)


async def put_member(http: httpx.AsyncClient, wedding: str, sub: str, **body: Any) -> Any:
    answer = await http.put(f"/api/weddings/{wedding}/members/{sub}", json=body, headers=ADMIN_AUTH)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


@pytest.mark.asyncio
async def test_a_link_signs_a_device_in_and_the_directory_decides_the_role(
    running: Running,
) -> None:
    http = running.http
    await put_member(http, "w1", "cam", role="couple", name="Cam", email="cam@example.com")
    await put_member(http, "w2", "cam2", role="friend", name="Cam", email="Cam@Example.com")
    # A forged Host never reaches the emailed link: it is built from where the server
    # listens (or CRDT_SERVER_PUBLIC_URL).
    poisoned = await http.post(
        "/api/sign-in", json={"email": "CAM@example.com"}, headers={"Host": "evil.example"}
    )
    assert poisoned.status_code == 202
    await until(lambda: _has(running.inbox, "Your sign-in link"))
    assert f"{running.server.url}/app/sign-in#code=" in running.inbox.messages[0].get_content()
    assert "evil.example" not in running.inbox.messages[0].as_string()
    code = await running.link("CAM@example.com", 2)
    # A mail scanner opens the link: nothing is used.
    scanned = await http.get(f"/app/sign-in#code={code}")
    assert scanned.status_code in (200, 404)
    # Another site's page cannot use it (a forged sign-in), and the code survives that.
    for origin in ({}, {"Origin": "https://evil.example"}):
        forged = await http.post("/api/sign-in/complete", json={"code": code}, headers=origin)
        assert forged.status_code == 403, forged.text
    done = await running.complete(code)
    answer = await ok(done)
    cookie = cookie_of(done)
    assert done.headers["cache-control"] == "no-store"
    assert {(w["wedding"], w["role"], w["sub"]) for w in answer["weddings"]} == {
        ("w1", "couple", "cam"),
        ("w2", "friend", "cam2"),
    }
    claims = CODEC.decode(answer["token"])
    assert claims.sid is not None and claims.sub == answer["sub"]
    assert claims.weddings == (answer["wedding"],) and claims.exp - (claims.iat or 0) <= 900
    # Used once: a replay is refused, naming the code.
    replay = await running.complete(code)
    assert replay.status_code == 401 and replay.json()["errors"][0]["field"] == "code"

    # The cookie mints a token per wedding, from the server's own pages only.
    fresh = await ok(await running.session(cookie, "refresh", json={"wedding": "w1"}))
    assert (fresh["wedding"], fresh["role"], fresh["sub"]) == ("w1", "couple", "cam")
    assert CODEC.decode(fresh["token"]).sid == claims.sid
    for origin in ("https://evil.example", "null"):
        refused = await running.session(
            cookie, "refresh", json={"wedding": "w1"}, headers={"Origin": origin}
        )
        assert refused.status_code == 403 and refused.json()["errors"][0]["field"] == "Origin"
    stranger = await running.session(cookie, "refresh", json={"wedding": "w3"})
    assert stranger.status_code == 403
    assert (await running.session("x" * 43, "refresh", json={})).status_code == 401
    token = fresh["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await http.get(f"{W}/access", headers=bearer)).status_code == 200
    # A device session's token is refreshed by its device session, not the token route.
    assert (await http.post("/api/token/refresh", headers=bearer)).status_code == 401

    # A token's claims never change a known member; the directory's role change revokes
    # the member's older tokens, and the next token carries the new role.
    await ok(await http.get(f"{W}/members", headers=auth("cam", "friend", "x@example.com")))
    listed = await ok(await http.get(f"{W}/members", headers=ADMIN_AUTH | bearer))
    assert {m["sub"]: (m["role"], m["email"]) for m in listed["members"]}["cam"] == (
        "couple",
        "cam@example.com",
    )
    await put_member(http, "w1", "cam", role="planner", name="Cam", email="cam@example.com")
    assert (await http.get(f"{W}/access", headers=bearer)).status_code == 401

    # At once: the first refresh after the change gives a token that works.
    again = await ok(await running.session(cookie, "refresh", json={"wedding": "w1"}))
    checked = await http.get(f"{W}/access", headers={"Authorization": f"Bearer {again['token']}"})
    assert again["role"] == "planner" and checked.status_code == 200, checked.text

    # A second device: the person is emailed; each sees both, and revokes the other.
    second = await running.complete(await running.link("cam@example.com", 3), "Phone browser")
    phone = cookie_of(second)
    assert (await ok(second))["sub"] == "cam"  # the most recently used wedding
    await until(lambda: _has(running.inbox, "A new device signed in"))
    devices = (await ok(await running.session(phone, "devices", "GET")))["devices"]
    assert [(d["label"], d["current"]) for d in devices] == [
        ("Phone browser", True),
        ("Laptop browser", False),
    ]
    laptop_id = devices[1]["id"]
    gone = await running.session(phone, f"devices/{laptop_id}", "DELETE")
    assert gone.status_code == 204
    # session.revoked: read by who manages the members, not by a friend.
    lead = (await ok(await http.get(f"{W}/events", headers=auth("pat", "planner"))))["events"]
    revoked = [e["data"] for e in lead if e["type"] == "session.revoked"]
    assert revoked == [{"sub": "cam", "device": laptop_id}], revoked
    friend = (await ok(await http.get(f"{W}/events", headers=auth("fay", "friend"))))["events"]
    assert not [e for e in friend if e["type"] == "session.revoked"]
    assert (await running.session(cookie, "refresh", json={})).status_code == 401
    assert (await http.get(f"{W}/access", headers=bearer)).status_code == 401
    again = await running.session(phone, f"devices/{laptop_id}", "DELETE")
    assert again.status_code == 404
    assert (await running.session(phone, "devices/d_nope", "DELETE")).status_code == 404
    # Signing out ends this device; everywhere ends every one.
    third = cookie_of(await running.complete(await running.link("cam@example.com", 4)))
    assert (await running.session(phone, "sign-out")).status_code == 204
    assert (await running.session(phone, "refresh", json={})).status_code == 401
    assert (await ok(await running.session(third, "refresh", json={})))["token"]
    assert (await running.session(third, "sign-out-all")).status_code == 204
    assert (await running.session(third, "refresh", json={})).status_code == 401


async def _has(inbox: Inbox, subject: str) -> bool:
    return any(m["Subject"] == subject for m in inbox.messages)


@pytest.mark.asyncio
async def test_only_the_newest_link_works_and_shared_addresses_sign_in_as_nobody(
    running: Running,
) -> None:
    http = running.http
    await put_member(http, "w1", "ana", role="planner", name="Ana", email="ana@example.com")
    await put_member(http, "w2", "ana", role="vendor", name="Ana", email="shared@example.com")
    await put_member(http, "w2", "bo", role="vendor", name="Bo", email="shared@example.com")
    older = await running.link("ana@example.com")
    newer = await running.link("ana@example.com", 2)
    assert (await running.complete(older)).status_code == 401
    assert (await ok(await running.complete(newer)))["weddings"][0]["wedding"] == "w1"
    # Two members of w2 hold the address: the person becomes neither, and is told why.
    shared = await ok(await running.complete(await running.link("shared@example.com")))
    assert shared["weddings"] == [] and shared["token"] is None
    assert shared["ambiguous"] == ["w2"]
    # A member who sets their own new address is sent a link to it; it then identifies them.
    planner = auth("ana", "planner")
    body = {"role": "planner", "name": "Ana", "email": "ana.new@example.com"}
    await ok(await http.put(f"{W}/members/ana", json=body, headers=planner))
    code = await until(lambda: _first_link(running, "ana.new@example.com"))
    assert (await ok(await running.complete(code)))["sub"] == "ana"


@pytest.mark.asyncio
async def test_every_way_an_address_is_given_signs_in_as_its_member(running: Running) -> None:
    http = running.http
    await put_member(http, "w1", "pat", role="planner", name="Pat", email="pat@example.com")
    planner = auth("pat", "planner")
    typed = {"role": "friend", "name": "Fi", "email": "fi@example.com"}
    await ok(await http.put(f"{W}/members/fi", json=typed, headers=planner), 201)
    # A token's email records an unknown member as the operator's (verified).
    await ok(await http.get(f"{W}/members", headers=auth("vi", "vendor", "vi@example.com")))

    async def signs_in(sub: str, count: int) -> bool:
        done = await running.complete(await running.link(f"{sub}@example.com", count))
        return (await ok(done))["sub"] == sub

    # The admin key's, a token's and a planner's address (the planner's was sent a link
    # when set, so the one asked for here is its second): a used link proves each.
    for sub, count in (("pat", 1), ("vi", 1), ("fi", 2)):
        assert await signs_in(sub, count)


async def _first_link(running: Running, address: str) -> str | None:
    links = running.links_to(address)
    return links[0] if links else None


@pytest.mark.asyncio
async def test_a_stranger_gets_the_same_answer_no_email_and_a_limit(running: Running) -> None:
    http = running.http
    await put_member(http, "w1", "mo", role="family", name="Mo", email="mo@example.com")
    durations: dict[str, list[float]] = {"mo@example.com": [], "nobody@example.com": []}
    bodies = set()
    for _ in range(12):
        for address, taken in durations.items():
            started = time.perf_counter()
            answer = await http.post("/api/sign-in", json={"email": address})
            taken.append(time.perf_counter() - started)
            assert answer.status_code == 202
            bodies.add(answer.content)
    assert len(bodies) == 1
    member, stranger = (statistics.median(t) for t in durations.values())
    # The answer comes before the address is looked at: no difference beyond noise.
    assert abs(member - stranger) < max(0.05, 0.5 * max(member, stranger))
    # The member got at most the hourly limit of links, the stranger none at all.
    await until(lambda: _count(running.inbox, 4))
    assert {m["To"] for m in running.inbox.messages} == {"mo@example.com"}
    # The client address's own limit (40 an hour) ends in 429 with Retry-After.
    for _ in range(20):
        last = await http.post("/api/sign-in", json={"email": "nobody@example.com"})
        if last.status_code == 429:
            break
    assert last.status_code == 429 and "retry-after" in last.headers
    assert len(running.inbox.messages) == 4


async def _count(inbox: Inbox, n: int) -> bool:
    return len(inbox.messages) >= n


@pytest.mark.asyncio
async def test_hostile_bodies_are_refused_and_nothing_is_used(running: Running) -> None:
    http, origin = running.http, running.origin
    cases: list[tuple[str, bytes, dict[str, str]]] = [
        ("/api/sign-in", b'{"email": "not an address"}', {}),
        ("/api/sign-in", b'{"email": "a@b.co\\r\\nBcc: x@y.co"}', {}),
        ("/api/sign-in", b'{"email": "' + b"a" * 300 + b'@example.com"}', {}),
        ("/api/sign-in", b'{"email": "a@example.com", "admin": true}', {}),
        ("/api/sign-in", b"[]", {}),
        ("/api/sign-in", b"{", {}),
        ("/api/sign-in", b'{"email": "' + b"a" * 200_000 + b'"}', {}),
        ("/api/sign-in/complete", b'{"code": ""}', origin),
        ("/api/sign-in/complete", b'{"code": "' + b"A" * 43 + b'"}', origin),
        ("/api/sign-in/complete", b'{"code": "\\u0000"}', origin),
        ("/api/sign-in/complete", b'{"code": "' + b"A" * 129 + b'"}', origin),
        ("/api/sign-in/complete", b'{"code": 12}', origin),
        ("/api/sign-in/complete", b'{"code": "' + b"x" * 200_000 + b'"}', origin),
        ("/api/session/refresh", b'{"wedding": "../etc"}', origin),
        ("/api/session/refresh", b'{"wedding": "w1", "role": "couple"}', origin),
    ]
    for path, content, headers in cases:
        answer = await http.post(
            path, content=content, headers={"content-type": "application/json", **headers}
        )
        assert 400 <= answer.status_code < 500, (path, content[:40], answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert not running.inbox.messages
    assert (await running.session("", "devices", "GET")).status_code == 401
    # A GET from the app's own page (no Origin, Sec-Fetch-Site: same-origin) is its own.
    lookup = await http.get(
        "/api/session/devices",
        headers={"Cookie": "crdt_session=" + "y" * 43, "Sec-Fetch-Site": "same-origin"},
    )
    assert lookup.status_code == 401
    cross = await http.get(
        "/api/session/devices",
        headers={"Cookie": "crdt_session=" + "y" * 43, "Sec-Fetch-Site": "cross-site"},
    )
    assert cross.status_code == 403


@pytest.mark.asyncio
async def test_a_sid_socket_outlives_its_exp_and_closes_when_its_device_is_revoked(
    running: Running,
) -> None:
    http = running.http
    await put_member(http, "w1", "kim", role="planner", name="Kim", email="kim@example.com")
    laptop = await running.complete(await running.link("kim@example.com"))
    sid = CODEC.decode((await ok(laptop))["token"]).sid
    phone = cookie_of(await running.complete(await running.link("kim@example.com", 2)))
    # A token of that device session living 2 seconds (the test signs it with the secret),
    # beside a token without sid of the same lifetime.
    short = CODEC.mint(sub="kim", role="planner", wedding="w1", ttl=2, sid=sid)
    plain = CODEC.mint(sub="kim", role="planner", wedding="w1", ttl=2)
    exp = CODEC.decode(short).exp
    ws = running.server.ws_url
    async with (
        YClient(ws, "w1/timeline", token=short) as kept,
        YClient(ws, "w1/timeline", token=plain) as timed,
    ):
        await kept.wait(kept.synced.is_set)
        await timed.wait(timed.closed.is_set, timeout=10)
        assert timed.close_code == 4401
        await until(lambda: _after(exp + 1.5))
        assert not kept.closed.is_set()
        # Revoked from the other device: the socket closes with 4401.
        devices = (await ok(await running.session(phone, "devices", "GET")))["devices"]
        laptop_id = next(d["id"] for d in devices if not d["current"])
        assert laptop_id == sid
        assert (await running.session(phone, f"devices/{laptop_id}", "DELETE")).status_code == 204
        await kept.wait(kept.closed.is_set, timeout=10)
        assert kept.close_code == 4401


async def _after(moment: float) -> bool:
    return time.time() > moment


def _collab(name: str, body: bytes) -> bytes:
    return write_var_string(name) + body


async def _next(ws: ClientConnection, timeout: float) -> tuple[str, bytes]:
    """The next message that is not a ping: its document key and body."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await ws.recv()
            assert isinstance(frame, bytes)
            if frame != b"\x09":
                key, pos = read_var_string(frame, 0)
                return key, frame[pos:]


@pytest.mark.asyncio
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_sid_document_on_collab_lives_past_exp_and_is_denied_when_revoked(
    running: Running,
) -> None:
    """On ``/collab`` (the Hocuspocus provider), a ``sid`` token's document gets no token
    request and no ``permissionDenied`` at ``exp``; a token without ``sid`` gets both. When
    the device session is revoked, its document is denied and the socket stays open."""
    http = running.http
    await put_member(http, "w1", "kim", role="planner", name="Kim", email="kim@example.com")
    laptop = await running.complete(await running.link("kim@example.com"))
    sid = CODEC.decode((await ok(laptop))["token"]).sid
    phone = cookie_of(await running.complete(await running.link("kim@example.com", 2)))
    short = CODEC.mint(sub="kim", role="planner", wedding="w1", ttl=2, sid=sid)
    plain = CODEC.mint(sub="kim", role="planner", wedding="w1", ttl=2)
    exp = CODEC.decode(short).exp
    kept, timed = "w1/timeline", "w1/guests"
    version = write_var_string("4.8.0")
    async with connect(f"ws://127.0.0.1:{running.server.port}/collab/w1") as ws:
        for name, token in ((kept, short), (timed, plain)):
            await ws.send(_collab(name, b"\x02\x00" + write_var_string(token) + version))
            await ws.send(_collab(name, encode_sync_step1(b"\x00")))
        seen: list[tuple[str, bytes]] = []
        # Until exp and 1.5 s past it: the plain token is asked for again, then denied.
        while time.time() < exp + 1.5:
            try:
                seen.append(await _next(ws, max(0.05, exp + 1.5 - time.time())))
            except TimeoutError:
                break

        def auths(key: str) -> list[bytes]:
            return [body[:2] for k, body in seen if k == key and body[:1] == b"\x02"]

        assert auths(kept) == [b"\x02\x02"]  # authenticated, then nothing at exp
        assert auths(timed) == [b"\x02\x02", b"\x02\x00", b"\x02\x01"]
        # The sid document still serves: an update is answered SyncStatus 1.
        doc = Doc()
        doc["m"] = Map({"k": 1})
        await ws.send(_collab(kept, encode_update(doc.get_update())))
        while (status := await _next(ws, 10)) != (kept, b"\x08\x01"):
            assert status[0] == kept
        # Revoked from the other device: that document is denied, the socket stays open.
        devices = (await ok(await running.session(phone, "devices", "GET")))["devices"]
        laptop_id = next(d["id"] for d in devices if not d["current"])
        assert laptop_id == sid
        assert (await running.session(phone, f"devices/{laptop_id}", "DELETE")).status_code == 204
        while (denied := await _next(ws, 10))[1][:2] != b"\x02\x01":
            assert denied[0] == kept
        assert denied[0] == kept
        await ws.send(b"\x09")
        async with asyncio.timeout(10):
            while (frame := await ws.recv()) != b"\x0a":
                assert frame == b"\x09"


@pytest.mark.asyncio
async def test_a_device_session_unused_for_the_idle_limit_ends(
    tmp_path: Path, smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    env = {
        **ENV,
        "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
        "CRDT_SERVER_DEVICE_SESSION_IDLE_DAYS": "0.00003",  # about 2.6 seconds
    }
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        running = Running(server, http, inbox)
        await put_member(http, "w1", "lu", role="family", name="Lu", email="lu@example.com")
        done = await running.complete(await running.link("lu@example.com"))
        cookie, token = cookie_of(done), (await ok(done))["token"]
        # Used within the limit, it goes on (each use counts).
        assert (await running.session(cookie, "refresh", json={})).status_code == 200
        used = time.time()
        await until(lambda: _after(used + 3.5))
        assert (await running.session(cookie, "refresh", json={})).status_code == 401
        bearer = {"Authorization": f"Bearer {token}"}
        assert (await http.get(f"{W}/access", headers=bearer)).status_code == 401
