"""Web Push, the server half: subscriptions made here (keys in Python), delivered to a
local RFC 8030 receiver that decrypts each message (RFC 8291, ``http_ece``) and checks the
VAPID token (RFC 8292); an emergency from a vendor reaches the couple's subscription; the
subscription of a device that was signed out, and of a revoked member, gets nothing; bad
bodies name their field; an https-only rule beside the webhook SSRF guard. A real server,
a real SMTP server (the sign-in links) and a real HTTP receiver."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import http_ece  # type: ignore[import-untyped]
import httpx
import jwt
import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from crdt_server.features.push.domain import Payload, quiet_until
from crdt_server.features.push.service import check_endpoint
from crdt_server.features.webhooks import UnsafeTarget
from crdt_server.testing.receiver import Received, WebhookReceiver
from crdt_server.testing.waits import until
from tests.features.conversations import (
    ADMIN_AUTH,
    COUPLE,
    ENV,
    OTHER_VENDOR,
    PLANNER,
    VENDOR,
    Inbox,
    W,
    join,
    ok,
)
from tests.server import ServerProcess

pytestmark = [pytest.mark.timeout(120)]

_CODE = re.compile(r"/app/sign-in#code=([A-Za-z0-9_-]+)")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Browser:
    """A browser's push subscription: its key pair and auth secret, made here."""

    endpoint: str
    key: ec.EllipticCurvePrivateKey
    auth: bytes

    @classmethod
    def at(cls, endpoint: str) -> Browser:
        return cls(endpoint, ec.generate_private_key(ec.SECP256R1()), os.urandom(16))

    def json(self) -> dict[str, Any]:
        public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"endpoint": self.endpoint, "keys": {"p256dh": b64(public), "auth": b64(self.auth)}}

    def read(self, got: Received, vapid_public: str, origin: str) -> dict[str, Any]:
        """Decrypt a delivered message (RFC 8291) after checking its VAPID token."""
        assert got.headers["content-encoding"] == "aes128gcm"
        scheme, _, params = got.headers["authorization"].partition(" ")
        assert scheme == "vapid"
        fields = dict(p.strip().split("=", 1) for p in params.split(","))
        assert fields["k"] == vapid_public
        point = base64.urlsafe_b64decode(fields["k"] + "=" * (-len(fields["k"]) % 4))
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        claims = jwt.decode(fields["t"], public, algorithms=["ES256"], audience=origin)
        assert claims["sub"].startswith(("mailto:", "https:"))
        plain = http_ece.decrypt(
            got.body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"
        )
        assert len(plain) <= 3072
        decoded: dict[str, Any] = json.loads(plain)
        return decoded


@dataclass
class Running:
    server: ServerProcess
    http: httpx.AsyncClient
    inbox: Inbox
    receiver: WebhookReceiver

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.receiver.port}"

    async def device_token(self, address: str, count: int, agent: str) -> tuple[str, str]:
        """Sign a device in by emailed link: its access token for w1 (with ``sid``) and
        its cookie."""
        asked = await self.http.post("/api/sign-in", json={"email": address})
        assert asked.status_code == 202, asked.text

        def links() -> list[str]:
            return [
                _CODE.search(m.get_content()).group(1)  # type: ignore[union-attr]
                for m in self.inbox.messages
                if m["To"] == address and m["Subject"] == "Your sign-in link"
            ]

        async def arrived() -> bool:
            return len(links()) >= count

        await until(arrived)
        done = await self.http.post(
            "/api/sign-in/complete",
            json={"code": links()[count - 1]},
            headers={"Origin": self.server.url, "User-Agent": agent},
        )
        answer = await ok(done)
        cookie = done.headers["set-cookie"].split(";")[0].split("=", 1)[1]
        return answer["token"], cookie


@pytest.fixture
def backend() -> str:
    """The store: SQLite, unless a test parametrizes ``backend`` with ``postgres``."""
    return "sqlite"


@pytest.fixture
def database(backend: str, request: pytest.FixtureRequest) -> str:
    """The store's URL: empty for SQLite, a scratch PostgreSQL database."""
    return str(request.getfixturevalue("scratch_postgres")) if backend == "postgres" else ""


@pytest_asyncio.fixture
async def running(
    tmp_path: Path, smtp: tuple[Controller, Inbox], database: str
) -> AsyncIterator[Running]:
    controller, inbox = smtp
    env = {
        **ENV,
        "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
        "CRDT_SERVER_PUSH_ALLOW_PRIVATE": "true",
        "CRDT_SERVER_PUSH_RETRY_SCHEDULE": "0,0.2",
    }
    if database:
        env["CRDT_SERVER_DATABASE_URL"] = database
    async with (
        WebhookReceiver(default=201) as receiver,
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        yield Running(server, http, inbox, receiver)


def emergency() -> dict[str, Any]:
    return {"type": "day.emergency", "data": {"what": "power cut"}, "priority": "emergency"}


@pytest.mark.asyncio
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_an_emergency_reaches_the_couple_encrypted_and_signed(running: Running) -> None:
    http, receiver = running.http, running.receiver
    key = (await ok(await http.get("/api/push/vapid-public-key")))["key"]
    await join(http, PLANNER, COUPLE, VENDOR)
    # The app learns the key with its access too (a new key: it subscribes again).
    assert (await ok(await http.get(f"{W}/access", headers=COUPLE)))["push_key"] == key
    couple = Browser.at(f"{receiver.url}/couple")
    made = await http.post(f"{W}/push-subscriptions", json=couple.json(), headers=COUPLE)
    created = await ok(made, 201)
    assert re.fullmatch(r"ps_[0-9a-f]{24}", created["id"])
    # The same endpoint again: the same subscription.
    again = await http.post(f"{W}/push-subscriptions", json=couple.json(), headers=COUPLE)
    assert (await ok(again))["id"] == created["id"]
    # The planner's, then the planner is revoked: theirs is removed.
    planner = Browser.at(f"{receiver.url}/planner")
    await ok(await http.post(f"{W}/push-subscriptions", json=planner.json(), headers=PLANNER), 201)
    revoked = await http.post(
        "/api/admin/revoke", json={"sub": "pat", "wedding": "w1"}, headers=ADMIN_AUTH
    )
    assert revoked.status_code == 200, revoked.text

    raised = await http.post(f"{W}/events", json=emergency(), headers=VENDOR)
    assert raised.status_code == 201, raised.text
    [got] = await receiver.wait_for(1)
    assert got.path == "/hook/couple"
    assert got.headers["urgency"] == "high" and got.headers["ttl"] == "86400"
    assert re.fullmatch(r"[0-9a-f]{32}", got.headers["topic"])
    said = couple.read(got, key, running.origin)
    assert said["wedding"] == "w1" and said["type"] == "emergency"
    assert said["title"] == "Emergency" and said["url"].startswith("/app/?wedding=w1")
    assert "power cut" not in json.dumps(said)  # the event's data is not pushed
    # The test button, and a 410 removes the subscription.
    receiver.answers.append(410)
    test = await http.post(f"{W}/push-subscriptions/{created['id']}/test", headers=COUPLE)
    assert test.status_code == 202, test.text
    [_, tested] = await receiver.wait_for(2)
    assert couple.read(tested, key, running.origin)["type"] == "test"

    async def removed() -> bool:
        mine = await ok(await http.get(f"{W}/push-subscriptions", headers=COUPLE))
        return not mine["subscriptions"]

    await until(removed)
    assert [r.path for r in receiver.received] == ["/hook/couple", "/hook/couple"]


@pytest.mark.asyncio
async def test_a_signed_out_device_s_subscription_gets_nothing(running: Running) -> None:
    http, receiver = running.http, running.receiver
    key = (await ok(await http.get("/api/push/vapid-public-key")))["key"]
    member = {"role": "couple", "name": "Cam", "email": "cam@example.com"}
    put = await http.put(f"{W}/members/cam", json=member, headers=ADMIN_AUTH)
    assert put.status_code in (200, 201), put.text
    await join(http, VENDOR)
    laptop_token, _ = await running.device_token("cam@example.com", 1, "Laptop browser")
    phone_token, phone = await running.device_token("cam@example.com", 2, "Phone browser")
    laptop, handset = Browser.at(f"{receiver.url}/laptop"), Browser.at(f"{receiver.url}/phone")
    for browser, token in ((laptop, laptop_token), (handset, phone_token)):
        made = await http.post(
            f"{W}/push-subscriptions",
            json=browser.json(),
            headers={"Authorization": f"Bearer {token}"},
        )
        await ok(made, 201)
    listed = await ok(
        await http.get(
            f"{W}/push-subscriptions", headers={"Authorization": f"Bearer {phone_token}"}
        )
    )
    assert sorted(s["this_device"] for s in listed["subscriptions"]) == [False, True]
    # The phone signs the laptop out.
    session = {"Origin": running.server.url, "Cookie": f"crdt_session={phone}"}
    devices = (await ok(await http.get("/api/session/devices", headers=session)))["devices"]
    [laptop_id] = [d["id"] for d in devices if d["label"] == "Laptop browser"]
    gone = await http.delete(f"/api/session/devices/{laptop_id}", headers=session)
    assert gone.status_code == 204, gone.text

    raised = await http.post(f"{W}/events", json=emergency(), headers=VENDOR)
    assert raised.status_code == 201, raised.text
    [got] = await receiver.wait_for(1)
    assert got.path == "/hook/phone"
    assert handset.read(got, key, running.origin)["type"] == "emergency"
    # A second emergency: still only the phone.
    await ok(await http.post(f"{W}/events", json=emergency(), headers=VENDOR), 201)
    await receiver.wait_for(2)
    assert [r.path for r in receiver.received] == ["/hook/phone", "/hook/phone"]


@pytest.mark.asyncio
async def test_a_mention_pushes_80_characters_to_who_may_read_the_thread(running: Running) -> None:
    http, receiver = running.http, running.receiver
    key = (await ok(await http.get("/api/push/vapid-public-key")))["key"]
    await join(http, PLANNER, COUPLE, VENDOR, OTHER_VENDOR)
    couple, stranger = Browser.at(f"{receiver.url}/couple"), Browser.at(f"{receiver.url}/dj")
    await ok(await http.post(f"{W}/push-subscriptions", json=couple.json(), headers=COUPLE), 201)
    made = await http.post(f"{W}/push-subscriptions", json=stranger.json(), headers=OTHER_VENDOR)
    await ok(made, 201)
    thread = {"subject": "Florist deposit", "kind": "vendor", "participants": ["flo"]}
    tid = (await ok(await http.post(f"{W}/threads", json=thread, headers=PLANNER), 201))["id"]
    body = "@cam @dj the deposit for the peonies is due on Friday; " + "x" * 200
    put = await http.put(f"{W}/threads/{tid}/messages/m1", json={"body": body}, headers=VENDOR)
    await ok(put, 201)
    [got] = await receiver.wait_for(1)
    assert got.path == "/hook/couple" and got.headers["urgency"] == "normal"
    said = couple.read(got, key, running.origin)
    assert said["type"] == "mention" and said["wedding"] == "w1"
    assert "Florist deposit" in said["title"] and "mentioned you" in said["title"]
    assert len(said["body"]) == 80 and said["body"].startswith("@cam @dj the deposit")
    assert said["url"] == f"/app/?wedding=w1&thread={tid}" and said["tag"] == f"thread:{tid}"
    # The other vendor may not read the thread: no mention for them, even a while later
    # (an emergency, which reaches every member, comes after it and is all they get).
    await ok(await http.post(f"{W}/events", json=emergency(), headers=VENDOR), 201)
    received = await receiver.wait_for(3)
    assert sorted(r.path for r in received) == ["/hook/couple", "/hook/couple", "/hook/dj"]
    [theirs] = [r for r in received if r.path == "/hook/dj"]
    assert stranger.read(theirs, key, running.origin)["type"] == "emergency"


@pytest.mark.asyncio
async def test_an_erased_member_s_subscriptions_and_settings_go(running: Running) -> None:
    http, receiver = running.http, running.receiver
    await join(http, PLANNER, COUPLE, VENDOR)
    for who, headers in (("couple", COUPLE), ("planner", PLANNER)):
        browser = Browser.at(f"{receiver.url}/{who}")
        await ok(
            await http.post(f"{W}/push-subscriptions", json=browser.json(), headers=headers), 201
        )
    quiet = {"quiet_hours": {"start": "22:00", "end": "07:00", "zone": "Europe/Paris"}}
    await ok(await http.put(f"{W}/push-settings", json=quiet, headers=COUPLE))
    erased = await http.delete("/api/admin/members/cam", headers=ADMIN_AUTH)
    assert erased.status_code == 200, erased.text
    store = sqlite3.connect(f"file:{running.server.data_dir / 'crdt.sqlite3'}?mode=ro", uri=True)
    try:
        left = store.execute(
            "SELECT (SELECT COUNT(*) FROM push_subscriptions WHERE sub = 'cam'),"
            " (SELECT COUNT(*) FROM push_prefs WHERE sub = 'cam'),"
            " (SELECT COUNT(*) FROM push_subscriptions)"
        ).fetchone()
    finally:
        store.close()
    assert left == (0, 0, 1)
    # The planner still hears of an emergency.
    await ok(await http.post(f"{W}/events", json=emergency(), headers=VENDOR), 201)
    [got] = await receiver.wait_for(1)
    assert got.path == "/hook/planner"


@pytest.mark.asyncio
async def test_bad_subscriptions_name_the_field_and_keep_nothing(running: Running) -> None:
    http = running.http
    good = Browser.at(f"{running.receiver.url}/x").json()
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**good, "endpoint": "ftp://example.com/x"}, 422, "endpoint"),
        ({**good, "keys": {**good["keys"], "auth": "!" * 22}}, 422, "auth"),
        ({**good, "keys": {**good["keys"], "p256dh": "A" * 87}}, 422, "p256dh"),
        ({"endpoint": good["endpoint"]}, 422, "keys"),
    ]
    for body, status, field in cases:
        answer = await http.post(f"{W}/push-subscriptions", json=body, headers=COUPLE)
        assert answer.status_code == status, (body, answer.text)
        assert field in answer.text
    mine = await ok(await http.get(f"{W}/push-subscriptions", headers=COUPLE))
    assert mine["subscriptions"] == []
    # At most 10 a member.
    for n in range(10):
        one = Browser.at(f"{running.receiver.url}/{n}").json()
        await ok(await http.post(f"{W}/push-subscriptions", json=one, headers=COUPLE), 201)
    eleventh = Browser.at(f"{running.receiver.url}/11").json()
    refused = await http.post(f"{W}/push-subscriptions", json=eleventh, headers=COUPLE)
    assert refused.status_code == 422 and "endpoint" in refused.text
    # Quiet hours: a bad zone names its field; a good one is kept.
    for wrong in ("Mars/Base", "Europe", "../etc/passwd"):
        bad = {"quiet_hours": {"start": "22:00", "end": "07:00", "zone": wrong}}
        answer = await http.put(f"{W}/push-settings", json=bad, headers=COUPLE)
        assert answer.status_code == 422 and "quiet_hours.zone" in answer.text
    late = {"quiet_hours": {"start": "24:00", "end": "07:00", "zone": "UTC"}}
    answer = await http.put(f"{W}/push-settings", json=late, headers=COUPLE)
    assert answer.status_code == 422 and "quiet_hours.start" in answer.text
    quiet = {"quiet_hours": {"start": "22:00", "end": "07:00", "zone": "Europe/Paris"}}
    await ok(await http.put(f"{W}/push-settings", json=quiet, headers=COUPLE))
    shown = await ok(await http.get(f"{W}/push-settings", headers=COUPLE))
    assert shown["quiet_hours"] == quiet["quiet_hours"] and shown["emergencies"] is True


def test_quiet_hours_hold_until_they_end_over_midnight() -> None:
    # 2031-06-13 23:30 in Paris (UTC+2) is 21:30 UTC.
    late = 1939152600.0
    assert quiet_until(late, "22:00", "07:00", "Europe/Paris") == 1939179600.0  # 07:00 next day
    assert quiet_until(late, "08:00", "22:00", "Europe/Paris") is None
    assert quiet_until(late, "", "", "") is None


def test_a_payload_stays_under_3_kb_and_cuts_a_body_to_80_characters() -> None:
    said = Payload("w1", "mention", "T" * 5000, "b" * 5000, "/app/?wedding=w1", "thread:t").encode()
    decoded = json.loads(said)
    assert len(said) <= 3072 and len(decoded["body"]) == 80 and len(decoded["title"]) <= 120


@pytest.mark.asyncio
async def test_two_hosts_starting_together_sign_with_one_key(
    tmp_path: Path, scratch_postgres: str
) -> None:
    env = {**ENV, "CRDT_SERVER_DATABASE_URL": scratch_postgres}
    async with contextlib.AsyncExitStack() as stack:
        servers = await asyncio.gather(
            *(
                stack.enter_async_context(ServerProcess(tmp_path / name, env=env, anonymous=False))
                for name in ("a", "b")
            )
        )
        keys = set()
        async with httpx.AsyncClient(timeout=10) as http:
            for server in servers:
                answer = await http.get(f"{server.url}/api/push/vapid-public-key")
                keys.add((await ok(answer))["key"])
        assert len(keys) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "endpoint",
    [
        "http://push.example.com/x",  # plain http: push endpoints are https only
        "https://127.0.0.1/x",  # loopback
        "https://10.0.0.8/x",  # private
        "https://169.254.169.254/latest",  # cloud metadata
        "https://[::ffff:192.168.0.1]/x",  # an IPv4-mapped private address
        "https://user:pw@push.example.com/x",  # credentials in the URL
    ],
)
async def test_endpoints_are_https_to_public_addresses_only(endpoint: str) -> None:
    with pytest.raises(UnsafeTarget):
        await check_endpoint(endpoint, allow_private=False)


@pytest.mark.asyncio
async def test_the_test_setting_allows_loopback_and_plain_http() -> None:
    await check_endpoint("http://127.0.0.1:9/x", allow_private=True)
    await check_endpoint("https://8.8.8.8/x", allow_private=False)  # a public literal
