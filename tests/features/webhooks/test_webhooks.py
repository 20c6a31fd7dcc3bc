"""Outgoing webhooks through a real server and a real receiver that verifies every request
with the ``standardwebhooks`` package: signing, retries, dead letters and replay, 410,
rotation, role refusals, bad bodies, SSRF refusals (at creation and at connect time), and
at-least-once delivery across kill -9."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from standardwebhooks import Webhook

from crdt_server.features.webhooks.domain_safety import UnsafeTarget, resolve_target
from crdt_server.testing.receiver import Received, WebhookReceiver
from crdt_server.testing.tokens import TokenMinter
from crdt_server.testing.waits import until
from tests.server import ServerProcess, served

SECRET = "webhooks-test-secret-at-least-32-bytes!"
MINT = TokenMinter(SECRET)
ENV = {
    "CRDT_SERVER_AUTH_SECRET": SECRET,
    "CRDT_SERVER_WEBHOOK_ALLOW_PRIVATE": "true",
    "CRDT_SERVER_WEBHOOK_RETRY_SCHEDULE": "0,1,1,1",
}
BASE = "/api/weddings/w1/webhooks"


auth = MINT.headers


@pytest_asyncio.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[ServerProcess, httpx.AsyncClient]]:
    async with served(tmp_path / "data", ENV) as running:
        yield running


async def create(http: httpx.AsyncClient, url: str, events: list[str] | None = None) -> Any:
    body: dict[str, Any] = {"url": url, "description": "CRM"}
    if events is not None:
        body["events"] = events
    answer = await http.post(BASE, json=body, headers=auth())
    assert answer.status_code == 201, answer.text
    return answer.json()


async def post_event(http: httpx.AsyncClient, kind: str = "day.vendor_arrived") -> int:
    answer = await http.post(
        "/api/weddings/w1/events", json={"type": kind, "data": {"who": "caterer"}}, headers=auth()
    )
    assert answer.status_code == 201, answer.text
    seq: int = answer.json()["seq"]
    return seq


def verify(secret: str, got: Received) -> Any:
    return Webhook(secret).verify(got.body, got.headers)


async def detail(http: httpx.AsyncClient, hook: str) -> Any:
    answer = await http.get(f"{BASE}/{hook}", headers=auth())
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.asyncio
async def test_events_reach_a_receiver_signed_as_standard_webhooks(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = api
    async with WebhookReceiver() as receiver:
        created = await create(http, receiver.url, ["day.*", "guest.added"])
        assert created["secret"].startswith("whsec_")
        hook = created["id"]
        # Listed and shown without the secret.
        listed = (await http.get(BASE, headers=auth())).json()
        assert [w["id"] for w in listed["webhooks"]] == [hook] and listed["next"] is None
        assert created["secret"] not in json.dumps(listed)
        assert listed["webhooks"][0]["events"] == ["day.*", "guest.added"]

        await post_event(http, "custom.ignored")  # not subscribed
        seq = await post_event(http)
        added = await http.post(
            "/api/weddings/w1/docs/guests/ops",
            json={"op": "add_guest", "name": "Grace Hopper"},
            headers=auth(),
        )
        assert added.status_code == 200, added.text
        got = await receiver.wait_for(2)
        bodies = [verify(created["secret"], g) for g in got]
        by_type = {b["type"]: b for b in bodies}
        assert set(by_type) == {"day.vendor_arrived", "guest.added"}
        arrived = by_type["day.vendor_arrived"]
        assert arrived["data"]["seq"] == seq and arrived["data"]["id"] == f"w1:{seq}"
        assert arrived["data"]["data"] == {"who": "caterer"}
        assert arrived["timestamp"].endswith("Z")
        assert by_type["guest.added"]["data"]["actor"] == {"sub": "ada", "role": "planner"}
        assert got[0].headers["webhook-signature"].startswith("v1,")
        assert got[0].id != got[1].id

        # A test event is sent whatever the endpoint subscribed to.
        answer = await http.post(f"{BASE}/{hook}/test", headers=auth())
        assert answer.status_code == 202, answer.text
        test = await receiver.wait_for(3)
        assert verify(created["secret"], test[2])["type"] == "webhook.test"
        assert test[2].id == answer.json()["id"]

        async def healthy() -> Any:
            shown = await detail(http, hook)
            return shown if shown["health"]["attempts_24h"] == 3 else None

        shown = await until(healthy, 20.0)
        assert shown["health"]["success_rate_24h"] == 1.0
        assert shown["health"]["last_error"] is None and shown["health"]["next_attempt"] is None
        assert "secret" not in shown
        delivered = (await http.get(f"{BASE}/{hook}/deliveries", headers=auth())).json()
        assert [d["status"] for d in delivered["deliveries"]] == ["delivered"] * 3
        assert delivered["deliveries"][0]["type"] == "webhook.test"  # newest first

        metrics = (await http.get("/metrics")).text
        assert 'crdt_webhook_attempts_total{outcome="delivered"} 3.0' in metrics
        assert "crdt_webhook_delivery_seconds_count 3.0" in metrics

        assert (await http.delete(f"{BASE}/{hook}", headers=auth())).status_code == 204
        assert (await http.get(f"{BASE}/{hook}", headers=auth())).status_code == 404
        assert (await http.delete(f"{BASE}/{hook}", headers=auth())).status_code == 404
    assert "caterer" not in server.log.decode(errors="replace")


@pytest.mark.slow
@pytest.mark.asyncio
async def test_retries_keep_the_id_then_dead_letter_then_replay(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    async with WebhookReceiver(default=500, answer_body=b"x" * 5000) as receiver:
        created = await create(http, receiver.url)
        hook = created["id"]
        await post_event(http)
        got = await receiver.wait_for(4)  # schedule 0,1,1,1: four attempts
        assert len({g.id for g in got}) == 1
        for g in got:
            verify(created["secret"], g)

        async def dead() -> Any:
            page = await http.get(f"{BASE}/{hook}/deliveries?status=failed", headers=auth())
            found = page.json()["deliveries"]
            return found if found else None

        [failed] = await until(dead, 20.0)
        assert failed["id"] == got[0].id and failed["attempts"] == 4
        assert failed["last_status"] == 500 and len(failed["last_response"]) == 1024
        shown = await detail(http, hook)
        assert shown["health"]["success_rate_24h"] == 0.0
        assert shown["health"]["last_error"] == "HTTP 500" and shown["health"]["failed"] == 1
        await asyncio.sleep(0.5)
        assert len(receiver.received) == 4  # nothing after the last attempt

        # A dead letter does not hold back later deliveries, and replays with the same id.
        receiver.default = 200
        replay = await http.post(f"{BASE}/{hook}/deliveries/{failed['id']}/replay", headers=auth())
        assert replay.status_code == 202, replay.text
        again = await receiver.wait_for(5)
        assert again[4].id == failed["id"]
        verify(created["secret"], again[4])
        pending = await http.get(f"{BASE}/{hook}/deliveries?status=pending", headers=auth())
        assert pending.status_code == 200
        missing = await http.post(
            f"{BASE}/{hook}/deliveries/msg_000000000000000000000000/replay", headers=auth()
        )
        assert missing.status_code == 404
        bad = await http.get(f"{BASE}/{hook}/deliveries?status=lost", headers=auth())
        assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "status"


@pytest.mark.asyncio
async def test_410_disables_the_endpoint_and_others_keep_receiving(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    async with WebhookReceiver(default=410) as gone, WebhookReceiver() as alive:
        dead_hook = (await create(http, gone.url))["id"]
        live = await create(http, alive.url)
        await post_event(http)
        await gone.wait_for(1)
        await alive.wait_for(1)

        async def disabled() -> Any:
            shown = await detail(http, dead_hook)
            return shown if not shown["enabled"] else None

        shown = await until(disabled, 20.0)
        assert "410" in shown["disabled_reason"]
        await post_event(http)
        second = await alive.wait_for(2)
        verify(live["secret"], second[1])
        assert len(gone.received) == 1
        assert (await http.post(f"{BASE}/{dead_hook}/test", headers=auth())).status_code == 409


@pytest.mark.asyncio
async def test_a_disabled_endpoint_is_re_enabled_and_resumes_where_it_stopped(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    async with WebhookReceiver(answers=[410]) as receiver:
        created = await create(http, receiver.url)
        hook = created["id"]
        first = await post_event(http)
        [gone] = await receiver.wait_for(1)

        async def disabled() -> Any:
            shown = await detail(http, hook)
            return shown if not shown["enabled"] else None

        await until(disabled, 20.0)
        missed = await post_event(http)  # while disabled: queued behind the cursor
        vendor = await http.patch(
            f"{BASE}/{hook}", json={"enabled": True}, headers=auth("vendor", "eve")
        )
        assert vendor.status_code == 403
        bad = await http.patch(f"{BASE}/{hook}", json={"enabled": "yes"}, headers=auth())
        assert bad.status_code in (400, 422) and bad.json()["errors"][0]["field"] == "enabled"
        missing = await http.patch(
            f"{BASE}/wh_000000000000000000000000", json={"enabled": True}, headers=auth()
        )
        assert missing.status_code == 404
        assert len(receiver.received) == 1

        answer = await http.patch(f"{BASE}/{hook}", json={"enabled": True}, headers=auth())
        assert answer.status_code == 200, answer.text
        assert answer.json()["enabled"] is True and answer.json()["disabled_reason"] is None
        assert created["secret"] not in answer.text
        # The delivery answered 410 is attempted again (same webhook-id), then what
        # happened while the endpoint was disabled.
        got = await receiver.wait_for(3)
        seqs = sorted(verify(created["secret"], g)["data"]["seq"] for g in got[1:])
        assert seqs == [first, missed]
        assert gone.id in {g.id for g in got[1:]}

        bad_events = await http.patch(
            f"{BASE}/{hook}", json={"events": ["no spaces"]}, headers=auth()
        )
        assert bad_events.status_code == 400
        assert bad_events.json()["errors"][0]["field"] == "events[0]"

        # An operator may pause an endpoint too; nothing is sent until it is enabled again.
        paused = await http.patch(
            f"{BASE}/{hook}", json={"enabled": False, "description": "paused"}, headers=auth()
        )
        assert paused.status_code == 200, paused.text
        assert paused.json()["enabled"] is False and paused.json()["description"] == "paused"
        assert "paused" in paused.json()["disabled_reason"]
        later = await post_event(http)
        assert (await http.post(f"{BASE}/{hook}/test", headers=auth())).status_code == 409
        resumed = await http.patch(f"{BASE}/{hook}", json={"enabled": True}, headers=auth())
        assert resumed.status_code == 200, resumed.text
        [last] = (await receiver.wait_for(4))[3:]
        assert verify(created["secret"], last)["data"]["seq"] == later
        # New patterns apply to the events not yet queued for it.
        narrowed = await http.patch(f"{BASE}/{hook}", json={"events": ["custom.*"]}, headers=auth())
        assert narrowed.json()["events"] == ["custom.*"]
        await post_event(http)  # day.vendor_arrived: no longer subscribed
        kept = await post_event(http, "custom.kept")
        [fifth] = (await receiver.wait_for(5))[4:]
        assert verify(created["secret"], fifth)["data"]["seq"] == kept
        # Both events were queued in one pass: the unsubscribed one made no delivery (four
        # deliveries for five requests: the one answered 410 was attempted twice).
        listed = await http.get(f"{BASE}/{hook}/deliveries", headers=auth())
        assert [d["seq"] for d in listed.json()["deliveries"]] == [kept, later, missed, first]
        spec = (await http.get("/openapi.json")).json()
        patch = spec["paths"][BASE.replace("w1", "{wedding_id}") + "/{hook}"]["patch"]
        assert patch["operationId"] == "updateWebhook"


@pytest.mark.slow
@pytest.mark.asyncio
async def test_an_endpoint_that_hangs_holds_a_few_attempts_and_never_blocks_another(
    tmp_path: Path,
) -> None:
    env = {**ENV, "CRDT_SERVER_RATE_EVENTS_PER_MINUTE": "10000"}
    async with (
        WebhookReceiver(hold=True) as hanging,
        WebhookReceiver() as healthy,
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        await create(http, hanging.url)
        await create(http, healthy.url)
        count = 40  # more than the 32 attempts a process makes at once
        for _ in range(count):
            await post_event(http)
        # Every delivery to the healthy endpoint arrives while the other one still hangs
        # (its attempts time out only after 10 s), and that one holds 4 attempts only.
        got = await healthy.wait_for(count, timeout=8)
        assert len({g.id for g in got}) == count
        assert len(hanging.received) == 4
        hanging.release()


@pytest.mark.asyncio
async def test_rotation_signs_with_both_secrets_for_a_day(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    async with WebhookReceiver() as receiver:
        created = await create(http, receiver.url)
        hook = created["id"]
        rotated = await http.post(f"{BASE}/{hook}/rotate", headers=auth())
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["secret"]
        assert new.startswith("whsec_") and new != created["secret"]
        assert (await detail(http, hook))["old_secret_expires_at"] is not None
        assert (await http.post(f"{BASE}/{hook}/test", headers=auth())).status_code == 202
        [got] = await receiver.wait_for(1)
        assert len(got.headers["webhook-signature"].split(" ")) == 2
        verify(new, got)
        verify(created["secret"], got)  # receivers still on the old secret keep working
        stranger = "whsec_" + "A" * 43 + "="
        with pytest.raises(Exception, match="signature"):
            verify(stranger, got)
        missing = await http.post(f"{BASE}/wh_000000000000000000000000/rotate", headers=auth())
        assert missing.status_code == 404


@pytest.mark.asyncio
async def test_only_roles_with_the_capability_manage_webhooks(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    url = "http://127.0.0.1:9/hook"
    for role in ("vendor", "family", "friend"):
        answer = await http.post(BASE, json={"url": url}, headers=auth(role, "eve"))
        assert answer.status_code == 403, (role, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert (await http.get(BASE, headers=auth(role, "eve"))).status_code == 403
    assert (await http.get(BASE)).status_code == 401
    other = await http.post(BASE, json={"url": url}, headers=auth(wedding="w2"))
    assert other.status_code == 403
    couple = await http.post(BASE, json={"url": url}, headers=auth("couple", "bo"))
    assert couple.status_code == 201, couple.text
    hook = couple.json()["id"]
    assert (await http.delete(f"{BASE}/{hook}", headers=auth("vendor", "eve"))).status_code == 403
    assert (await http.get(f"{BASE}/{hook}", headers=auth())).status_code == 200
    # Idempotency-Key: a retried create answers the first endpoint; another body is 409.
    keyed = {**auth(), "Idempotency-Key": "crm-setup-1"}
    first = await http.post(BASE, json={"url": url, "description": "a"}, headers=keyed)
    again = await http.post(BASE, json={"url": url, "description": "a"}, headers=keyed)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    other_body = await http.post(BASE, json={"url": url, "description": "b"}, headers=keyed)
    assert other_body.status_code == 409
    ids = [w["id"] for w in (await http.get(BASE, headers=auth())).json()["webhooks"]]
    assert ids.count(first.json()["id"]) == 1 and len(ids) == 2
    # Every route is in the OpenAPI document, with its typed bodies.
    spec = (await http.get("/openapi.json")).json()
    operations = {op["operationId"] for item in spec["paths"].values() for op in item.values()}
    assert {
        "createWebhook",
        "listWebhooks",
        "getWebhook",
        "updateWebhook",
        "deleteWebhook",
        "rotateWebhookSecret",
        "testWebhook",
        "listWebhookDeliveries",
        "replayWebhookDelivery",
    } <= operations
    create_op = spec["paths"][BASE.replace("w1", "{wedding_id}")]["post"]
    assert create_op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/WebhookRequest"
    )


@pytest.mark.asyncio
async def test_bad_bodies_name_the_field_and_create_nothing(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    cases: list[tuple[Any, int, str]] = [
        (b"not json", 400, "body"),
        ([1, 2], 400, "body"),
        ({}, 422, "url"),
        ({"url": 5}, 422, "url"),
        ({"url": "http://127.0.0.1:9/", "colour": "red"}, 422, "colour"),
        ({"url": "ftp://example.com/hook"}, 400, "url"),
        ({"url": "javascript:alert(1)"}, 400, "url"),
        ({"url": "http:///nohost"}, 400, "url"),
        ({"url": "http://user:pw@127.0.0.1:9/"}, 400, "url"),
        ({"url": "http://127.0.0.1:9/", "events": ["guest added"]}, 400, "events[0]"),
        ({"url": "http://127.0.0.1:9/", "events": ["ok.type", "*.*x"]}, 400, "events[1]"),
        ({"url": "http://127.0.0.1:9/", "events": []}, 422, "events"),
        ({"url": "http://127.0.0.1:9/", "description": "x" * 501}, 422, "description"),
    ]
    for body, status, field in cases:
        if isinstance(body, bytes):
            answer = await http.post(
                BASE, content=body, headers={**auth(), "content-type": "application/json"}
            )
        else:
            answer = await http.post(BASE, json=body, headers=auth())
        assert answer.status_code == status, (body, answer.text)
        problem = answer.json()
        assert answer.headers["content-type"] == "application/problem+json"
        assert problem["errors"][0]["field"] == field, (body, problem)
    assert (await http.get(BASE, headers=auth())).json()["webhooks"] == []
    bad_limit = await http.get(BASE, params={"limit": "0"}, headers=auth())
    assert bad_limit.status_code == 400 and bad_limit.json()["errors"][0]["field"] == "limit"


@pytest.mark.slow
@pytest.mark.asyncio
async def test_private_addresses_are_refused_at_creation_and_at_connect_time(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in ENV.items() if k != "CRDT_SERVER_WEBHOOK_ALLOW_PRIVATE"}
    async with WebhookReceiver() as receiver:
        # Created while private addresses are allowed...
        async with (
            ServerProcess(tmp_path / "data", env=dict(ENV), anonymous=False) as server,
            httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        ):
            hook = (await create(http, receiver.url))["id"]
        # ...then the operator turns that off: nothing is sent to it any more.
        async with (
            ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
            httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        ):
            for url in (
                "http://127.0.0.1/hook",
                "http://localhost:8080/",
                "http://10.1.2.3/",
                "http://192.168.1.10/",
                "http://172.16.0.1/",
                "http://169.254.169.254/latest/meta-data/",
                "http://[::1]/",
                "http://[::ffff:127.0.0.1]/",
                "http://[fd00:ec2::254]/",
                "http://0.0.0.0/",
                "http://100.64.0.1/",
                "https://224.0.0.1/",
                # IPv6 transition addresses that embed a private or loopback IPv4 address.
                *(f"http://[{address}]/" for address in TRANSITION_TO_PRIVATE),
            ):
                answer = await http.post(BASE, json={"url": url}, headers=auth())
                assert answer.status_code == 422, (url, answer.text)
                assert answer.json()["errors"][0]["field"] == "url"
                # Nor may an existing endpoint be pointed there.
                moved = await http.patch(f"{BASE}/{hook}", json={"url": url}, headers=auth())
                assert moved.status_code == 422, (url, moved.text)
                assert moved.json()["errors"][0]["field"] == "url"
            assert (await detail(http, hook))["url"] == receiver.url
            await post_event(http)

            async def refused() -> Any:
                shown = await detail(http, hook)
                error = shown["health"]["last_error"]
                return shown if error else None

            shown = await until(refused, 20.0)
            assert shown["health"]["last_error"].startswith("refused:")
            assert receiver.received == []


TRANSITION_TO_PRIVATE = (
    "64:ff9b::7f00:1",  # NAT64 (RFC 6052) of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254 (cloud metadata)
    "64:ff9b:1::a00:1",  # local-use NAT64 (RFC 8215): a translator on this network
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:c0a8:10a::",  # 6to4 of 192.168.1.10
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "::10.1.2.3",
    "::ffff:0:127.0.0.1",  # SIIT, IPv4-translated (RFC 2765)
    "::ffff:0:172.16.0.1",
)


@pytest.mark.asyncio
@pytest.mark.parametrize("address", TRANSITION_TO_PRIVATE)
async def test_transition_addresses_to_private_ipv4_are_refused_when_resolved(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At connect time the check runs on what the name resolves to then (a rebinding
    name may answer any of these)."""
    loop = asyncio.get_running_loop()

    async def resolve(host: str, port: int, **_: Any) -> list[Any]:
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))]

    monkeypatch.setattr(loop, "getaddrinfo", resolve)
    with pytest.raises(UnsafeTarget, match="resolves to"):
        await resolve_target("https://hooks.example.com/in", allow_private=False)
    with pytest.raises(UnsafeTarget):
        await resolve_target(f"https://[{address}]/in", allow_private=False)
    assert (await resolve_target("https://hooks.example.com/", allow_private=True)).address


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "address", ["64:ff9b::808:808", "2002:808:808::1", "::ffff:0:8.8.8.8", "2606:4700::1"]
)
async def test_transition_addresses_to_public_ipv4_are_allowed(address: str) -> None:
    target = await resolve_target(f"https://[{address}]/in", allow_private=False)
    assert ipaddress.ip_address(target.address) == ipaddress.ip_address(address)


@pytest.mark.slow
@pytest.mark.asyncio
async def test_a_delivery_survives_kill_9_between_commit_and_delivery(tmp_path: Path) -> None:
    env = {**ENV, "CRDT_SERVER_WEBHOOK_TIMEOUT_SECONDS": "1"}
    async with (
        WebhookReceiver(hold=True) as receiver,
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        created = await create(http, receiver.url)
        seq = await post_event(http)
        # The receiver holds the first attempt: the event is committed, not delivered.
        [first] = await receiver.wait_for(1)
        await server.kill()
        receiver.release()
        receiver.default = 200
        await server.restart()
        got = await receiver.wait_for(2, timeout=30)
        assert got[1].id == first.id
        assert verify(created["secret"], got[1])["data"]["seq"] == seq


ROOT = Path(__file__).resolve().parents[3]
GUIDE = ROOT / "docs" / "guides" / "integrations.md"


def readme_receiver() -> str:
    """The receiver the integrations guide shows, as written there."""
    text = GUIDE.read_text()
    marker = "<!-- webhook-receiver -->\n```python\n"
    start = text.index(marker) + len(marker)
    return text[start : text.index("```", start)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.asyncio
async def test_the_readme_receiver_verifies_and_prints_events(
    api: tuple[ServerProcess, httpx.AsyncClient], tmp_path: Path
) -> None:
    _, http = api
    code = readme_receiver()
    assert len([line for line in code.splitlines() if line.strip()]) <= 16
    script = tmp_path / "receiver.py"
    script.write_text(code)
    port = free_port()
    hook = await create(http, f"http://127.0.0.1:{port}/hook")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        env={**os.environ, "WEBHOOK_SECRET": hook["secret"], "PORT": str(port)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        # Forged: refused with 400 (nothing printed).
        async with httpx.AsyncClient() as raw:

            async def forged() -> Any:
                try:
                    return await raw.post(
                        f"http://127.0.0.1:{port}/hook",
                        content=b"{}",
                        headers={
                            "webhook-id": "msg_x",
                            "webhook-timestamp": str(int(time.time())),
                            "webhook-signature": "v1,AAAA",
                        },
                    )
                except httpx.ConnectError:
                    return None

            answer = await until(forged, 20.0)
            assert answer.status_code == 400
        seq = await post_event(http)
        async with asyncio.timeout(20):
            line = (await process.stdout.readline()).decode().split()
        assert line[1:] == ["day.vendor_arrived", str(seq)] and line[0].startswith("msg_")
    finally:
        process.kill()
        await process.wait()


@pytest.mark.slow
@pytest.mark.asyncio
async def test_the_benchmark_runs() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.webhooks",
        "--endpoints",
        "2",
        "--rate",
        "10",
        "--seconds",
        "0.3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    async with asyncio.timeout(90):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert "| webhook latency p99 from commit to receiver |" in out.decode()
    assert "| deliveries (endpoints × events) | 6 (6 distinct) |" in out.decode()


@pytest.mark.asyncio
async def test_an_endpoint_receives_only_what_its_creator_may_see(tmp_path: Path) -> None:
    # The operator lets vendors manage webhooks; a vendor's endpoint must still never carry
    # budget events (vendors may not read the budget) nor a thread it is not in.
    permissions = {
        "couple": {"timeline": "write", "budget": "write", "guests": "write", "seating": "write"},
        "planner": {"timeline": "write", "budget": "write", "guests": "write", "seating": "write"},
        "vendor": {"timeline": "read", "guests": "read", "seating": "read"},
        "capabilities": {"webhooks.manage": ["couple", "planner", "vendor"]},
    }
    env = {**ENV, "CRDT_SERVER_PERMISSIONS": json.dumps(permissions)}
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        WebhookReceiver() as planner_receiver,
        WebhookReceiver() as vendor_receiver,
    ):
        await create(http, planner_receiver.url)
        vendor = auth("vendor", "eve")
        answer = await http.post(BASE, json={"url": vendor_receiver.url}, headers=vendor)
        assert answer.status_code == 201, answer.text
        vendor_hook = answer.json()["id"]

        async def post(body: dict[str, Any]) -> None:
            answer = await http.post("/api/weddings/w1/events", json=body, headers=auth())
            assert answer.status_code == 201, answer.text

        await post({"type": "day.deposit_paid", "data": {"amount": 900}, "doc": "budget"})
        # Bo (the couple) becomes a member by calling the API once.
        seen = await http.get("/api/weddings/w1/members", headers=auth("couple", "bo"))
        assert seen.status_code == 200, seen.text
        thread = await http.post(
            "/api/weddings/w1/threads",
            json={"subject": "Florist deposit", "kind": "budget", "participants": ["bo"]},
            headers=auth(),
        )
        assert thread.status_code == 201, thread.text
        await post({"type": "day.florist_arrived", "data": {}, "doc": "timeline"})
        await post({"type": "day.done", "data": {}})
        planner_got = await planner_receiver.wait_for(4)
        assert {json.loads(g.body)["type"] for g in planner_got} == {
            "day.deposit_paid",
            "thread.created",
            "day.florist_arrived",
            "day.done",
        }
        await vendor_receiver.wait_for(2)
        listed = await http.get(f"{BASE}/{vendor_hook}/deliveries", headers=vendor)
        assert listed.status_code == 200, listed.text
        # Deliveries are made in seq order, so the last one's presence means every earlier
        # event was considered for this endpoint.
        types = sorted(d["type"] for d in listed.json()["deliveries"])
        assert types == ["day.done", "day.florist_arrived"]


@pytest.mark.asyncio
async def test_a_revoked_creator_s_endpoint_stops_until_a_manager_takes_it_over(
    tmp_path: Path,
) -> None:
    # A fired planner's endpoint must not keep receiving the wedding's events; the couple
    # re-enables it (and answers for it from then on); erasing a member disables theirs.
    admin = {"Authorization": "Bearer hooks-admin-key"}
    env = {**ENV, "CRDT_SERVER_ADMIN_API_KEY": "hooks-admin-key"}
    async with (
        served(tmp_path / "data", env) as (_, http),
        WebhookReceiver() as fired,
        WebhookReceiver() as kept,
    ):
        made = await http.post(BASE, json={"url": fired.url}, headers=auth("planner", "pia"))
        assert made.status_code == 201, made.text
        hook = made.json()["id"]
        couple = auth("couple", "cam")
        answer = await http.post(BASE, json={"url": kept.url}, headers=couple)
        assert answer.status_code == 201, answer.text
        kept_hook = answer.json()["id"]
        revoked = await http.post(
            "/api/admin/revoke", json={"sub": "pia", "wedding": "w1"}, headers=admin
        )
        assert revoked.status_code == 200, revoked.text
        await post_event(http)
        await kept.wait_for(1)
        # One fan-out serves every endpoint: had it been enabled, it would have a delivery.
        shown = await detail(http, hook)
        assert shown["enabled"] is False and "revoked" in shown["disabled_reason"], shown
        listed = await http.get(f"{BASE}/{hook}/deliveries", headers=couple)
        assert listed.json()["deliveries"] == [] and fired.received == []
        # Re-assignment: a manager re-enables it; it resumes where it stopped.
        enabled = await http.patch(f"{BASE}/{hook}", json={"enabled": True}, headers=couple)
        assert enabled.status_code == 200 and enabled.json()["enabled"] is True, enabled.text
        got = await fired.wait_for(1)
        assert json.loads(got[0].body)["type"] == "day.vendor_arrived"
        # Erasing the couple member disables what they now answer for: both endpoints.
        assert (await http.get("/api/weddings/w1/members", headers=couple)).status_code == 200
        erased = await http.delete("/api/weddings/w1/members/cam", headers=admin)
        assert erased.status_code == 204, erased.text
        for endpoint in (hook, kept_hook):
            shown = await detail(http, endpoint)
            assert shown["enabled"] is False and "erased" in shown["disabled_reason"], shown


@pytest.mark.asyncio
async def test_an_operator_token_s_endpoint_is_cut_to_its_role_and_makes_no_member(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    # `crdt-server token` mints operator tokens (member: false): creating an endpoint with
    # one must not put the operator in Members, and its deliveries are cut to the token's
    # role (a planner's: the guest's contact kept), not to an unknown creator's (cut).
    _, http = api
    operator = MINT.codec.mint(sub="ops", role="planner", wedding="w1", ttl=600, member=False)
    headers = {"Authorization": f"Bearer {operator}"}
    async with WebhookReceiver() as receiver:
        body = {"url": receiver.url, "events": ["guest.added"]}
        answer = await http.post(BASE, json=body, headers=headers)
        assert answer.status_code == 201, answer.text
        added = await http.post(
            "/api/weddings/w1/docs/guests/ops",
            json={"op": "add_guest", "name": "Grace Hopper", "contact": "grace@example.org"},
            headers=auth(),
        )
        assert added.status_code == 200, added.text
        got = await receiver.wait_for(1)
        fields = json.loads(got[0].body)["data"]["data"]["fields"]
        assert fields["contact"] == "grace@example.org", fields
        members = await http.get("/api/weddings/w1/members", headers=auth())
        assert members.status_code == 200, members.text
        assert "ops" not in {m["sub"] for m in members.json()["members"]}
