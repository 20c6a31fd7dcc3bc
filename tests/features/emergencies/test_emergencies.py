"""Emergencies (issue 55, point 3): raising one is the ``events.emergency`` capability (a
family member may raise one and post nothing else); the general rate limit never refuses
one (a budget of its own an hour); the couple and the planner get an inbox row and an
email at once; acknowledging is idempotent and readable; one nobody acknowledged within 5
minutes is sent once more (fake clock), an acknowledged one is not. Real servers and a
real SMTP server (aiosmtpd)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from crdt_server import clock
from crdt_server.app import FEATURES, create_app
from crdt_server.features import fragments_of
from crdt_server.settings import Settings
from crdt_server.testing.tokens import TokenMinter
from crdt_server.testing.waits import until
from tests.features.conversations import (
    COUPLE,
    ENV,
    PLANNER,
    VENDOR,
    Inbox,
    W,
    auth,
    count_emails,
    join,
    ok,
)
from tests.features.test_feature_list import serving
from tests.server import ServerProcess

pytestmark = [pytest.mark.timeout(120)]

FAMILY = auth("fay", "family", "fay@example.com")
ITEM = {
    "op": "add_timeline_item",
    "item_id": "ceremony",
    "title": "Ceremony",
    "start": "2031-06-13T15:30:00Z",
    "end": "2031-06-13T16:15:00Z",
}


def emergency(**extra: Any) -> dict[str, Any]:
    return {"type": "day.emergency", "data": {"what": "power cut"}, "priority": "emergency"} | extra


async def inbox_reasons(http: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    body = await ok(await http.get(f"{W}/notifications", headers=headers))
    return [n["reason"] for n in body["notifications"]]


async def has_reasons(
    http: httpx.AsyncClient, headers: dict[str, str], reason: str, count: int
) -> bool:
    return (await inbox_reasons(http, headers)).count(reason) == count


def emails_to(inbox: Inbox, address: str) -> list[str]:
    return [
        m.get_body().get_content()  # type: ignore[union-attr]
        for m in inbox.messages
        if m["To"] == address
    ]


@pytest.mark.asyncio
async def test_family_emergency_limits_notifications_and_acks(
    tmp_path: Path, smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    env = {
        **ENV,
        "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
        "CRDT_SERVER_EMAIL_FROM": "plans@example.com",
        "CRDT_SERVER_EMAIL_DIGEST_SECONDS": "3600",
        "CRDT_SERVER_RATE_EVENTS_PER_MINUTE": "2",
    }
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        await join(http, PLANNER, COUPLE, VENDOR, FAMILY)
        await ok(await http.post(f"{W}/docs/timeline/ops", json=ITEM, headers=PLANNER))
        events = f"{W}/events"

        # A family member may raise an emergency, and post nothing else.
        other = {"type": "custom.note", "data": {}}
        refused = await http.post(events, json=other, headers=FAMILY)
        assert refused.status_code == 403, refused.text
        urgent = await http.post(events, json={**other, "priority": "urgent"}, headers=FAMILY)
        assert urgent.status_code == 403, urgent.text
        bad = await http.post(events, json=emergency(items=["nope"]), headers=FAMILY)
        assert bad.status_code == 422 and "items" in bad.text, bad.text
        not_emergency = await http.post(
            events, json={**other, "items": ["ceremony"]}, headers=VENDOR
        )
        assert not_emergency.status_code == 422 and "items" in not_emergency.text
        raised = await ok(
            await http.post(events, json=emergency(items=["ceremony"]), headers=FAMILY), 201
        )
        seq = raised["seq"]
        listed = await ok(await http.get(f"{events}?after={seq - 1}&limit=1", headers=FAMILY))
        [shown] = listed["events"]
        assert shown["priority"] == "emergency" and shown["actor"]["role"] == "family"
        assert shown["data"] == {"what": "power cut", "items": ["ceremony"]}

        # The couple and the planner: an inbox row and an email at once (never the digest).
        for headers in (COUPLE, PLANNER):
            await until(lambda h=headers: has_reasons(http, h, "emergency", 1), deadline=5)
        assert await inbox_reasons(http, FAMILY) == []  # who raised it is not told
        # Every other member's inbox has it too (issue 77): the vendor's, by email never.
        await until(lambda: has_reasons(http, VENDOR, "emergency", 1), deadline=5)
        await until(lambda: count_emails(inbox, 2), deadline=5)
        assert {m["To"] for m in inbox.messages} == {"cam@example.com", "pat@example.com"}
        [said] = emails_to(inbox, "cam@example.com")
        assert "[EMERGENCY]" in said and "power cut" in said and "Fay" in said
        # A second one within the digest window is not held either.
        second = await ok(await http.post(events, json=emergency(), headers=FAMILY), 201)
        await until(lambda: count_emails(inbox, 4), deadline=5)

        # Acknowledging: idempotent, readable, open to whoever may read the event.
        acks = f"{events}/{seq}/ack"
        first = await ok(await http.post(acks, headers=PLANNER))
        assert [(a["sub"], a["role"]) for a in first["acks"]] == [("pat", "planner")]
        again = await ok(await http.post(acks, headers=PLANNER))
        assert again == first
        both = await ok(await http.post(acks, headers=VENDOR))
        assert [a["sub"] for a in both["acks"]] == ["pat", "flo"]
        read = await ok(await http.get(f"{events}/{seq}/acks", headers=FAMILY))
        assert read == both and read["seq"] == seq
        assert (await ok(await http.get(f"{events}/{second['seq']}/acks", headers=COUPLE)))[
            "acks"
        ] == []
        normal = await ok(await http.post(events, json=other, headers=PLANNER), 201)
        for path in (f"{events}/{normal['seq']}/ack", f"{events}/999999/ack", f"{events}/x/ack"):
            missing = await http.post(path, headers=PLANNER)
            assert missing.status_code == 404, (path, missing.text)
        assert (await http.get(f"{events}/999999/acks", headers=PLANNER)).status_code == 404

        # The general limit (2 a minute here) never refuses an emergency; a vendor's own
        # budget (10 an hour) does.
        statuses = [
            (await http.post(events, json=other, headers=VENDOR)).status_code for _ in range(4)
        ]
        assert statuses[-1] == 429 and set(statuses) <= {201, 429}, statuses
        for _ in range(10):
            await ok(await http.post(events, json=emergency(), headers=VENDOR), 201)
        over = await http.post(events, json=emergency(), headers=VENDOR)
        assert over.status_code == 429 and "emergenc" in over.text, over.text
        assert int(over.headers["retry-after"]) >= 1
        # The couple's are never limited.
        for _ in range(12):
            await ok(await http.post(events, json=emergency(), headers=COUPLE), 201)


SECRET = "emergency-test-secret-at-least-32-bytes!!"
MINT = TokenMinter(SECRET)
START = datetime(2031, 6, 13, 14, 0, tzinfo=UTC)


def member(role: str, sub: str) -> dict[str, str]:
    # Dated by the (fake) clock: minted when used.
    return MINT.headers(role, sub, "w1", ttl=3600, name=sub.title(), email=f"{sub}@example.com")


@asynccontextmanager
async def fake_clock_server(
    data: Path, controller: Controller, database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    env = {
        "CRDT_SERVER_DATABASE_URL": database_url,
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        "CRDT_SERVER_DATA_DIR": str(data),
        "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
        "CRDT_SERVER_EMAIL_FROM": "plans@example.com",
        "CRDT_SERVER_PUBLIC_URL": "https://plan.example.com",
    }
    settings = Settings.from_env(env, fragments=fragments_of(FEATURES))
    async with serving(create_app(settings)) as http:
        yield http


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return ""


@pytest.mark.asyncio
async def test_an_unacknowledged_emergency_is_sent_once_more_and_an_acknowledged_one_not(
    tmp_path: Path, smtp: tuple[Controller, Inbox], database_url: str
) -> None:
    controller, inbox = smtp
    url = database_url
    fake = clock.FakeClock(START)
    with clock.use(fake):
        async with fake_clock_server(tmp_path / "data", controller, url) as http:
            for role, sub in (("couple", "cam"), ("planner", "pat"), ("vendor", "flo")):
                await ok(await http.get(f"{W}/members", headers=member(role, sub)))
            events = f"{W}/events"
            ignored = await ok(
                await http.post(events, json=emergency(), headers=member("vendor", "flo")), 201
            )
            await until(lambda: count_emails(inbox, 2), deadline=10)
            seen = await ok(
                await http.post(events, json=emergency(), headers=member("vendor", "flo")), 201
            )
            await until(lambda: count_emails(inbox, 4), deadline=10)
            couple, planner = member("couple", "cam"), member("planner", "pat")
            await ok(await http.post(f"{events}/{seen['seq']}/ack", headers=couple))

            await fake.advance(299)
            assert (await inbox_reasons(http, couple)).count("emergency_unacknowledged") == 0
            await fake.advance(1)
            for headers in (couple, planner):
                await until(
                    lambda h=headers: has_reasons(http, h, "emergency_unacknowledged", 1),
                    deadline=10,
                )
            await until(lambda: count_emails(inbox, 6, exact=False), deadline=10)
            again = emails_to(inbox, "cam@example.com")[-1]
            assert "nobody has acknowledged it yet" in again and "power cut" in again
            # Once: never again, and never for the acknowledged one.
            await fake.advance(3600)
            for headers in (member("couple", "cam"), member("planner", "pat")):  # fresh tokens
                reasons = await inbox_reasons(http, headers)
                assert reasons.count("emergency_unacknowledged") == 1, reasons
                assert reasons.count("emergency") == 2, reasons
            assert len(inbox.messages) == 6
            assert ignored["seq"] != seen["seq"]
