"""Invitation emails through a real server and a real SMTP receiver (aiosmtpd): an
invitation made with an ``email`` sends its link through the outbox, with the one header
rule; a wedding sends at most ``CRDT_SERVER_INVITATION_EMAILS_PER_DAY`` a day, the rest
are made and answered ``not_sent`` (``daily_limit``); a wedding made through open signup
sends none (``unverified_creator``) until a sign-in link verified its creator's email."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from crdt_server.testing.waits import until
from tests.features.conversations import ADMIN_AUTH, CODEC, ENV, Inbox
from tests.server import ServerProcess, served

pytestmark = [pytest.mark.timeout(120)]

NEW = {
    "names": ["Ann Lee", "Bo Chen"],
    "date": "2027-06-12",
    "time_zone": "Europe/Lisbon",
    "currency": "EUR",
    "email": "ann@example.com",
}
_SIGN_IN = re.compile(r"/app/sign-in#code=([A-Za-z0-9_-]+)")
_INVITE = re.compile(r"/app/invite#code=([A-Za-z0-9_.-]+)")


def couple_of(made: dict[str, Any]) -> dict[str, str]:
    minted = CODEC.mint(
        sub=made["member"]["sub"], role="couple", wedding=made["id"], ttl=86400, name="Ann Lee"
    )
    return {"Authorization": f"Bearer {minted}"}


def mails_to(inbox: Inbox, address: str) -> list[Any]:
    return [m for m in inbox.messages if m["To"] == address]


async def arrived(inbox: Inbox, address: str, count: int = 1) -> list[Any]:
    async def enough() -> bool:
        return len(mails_to(inbox, address)) >= count

    await until(enough)
    return mails_to(inbox, address)


async def invite(http: httpx.AsyncClient, wedding: str, who: dict[str, str], **body: Any) -> Any:
    answer = await http.post(f"/api/weddings/{wedding}/invitations", json=body, headers=who)
    assert answer.status_code == 201, answer.text
    return answer.json()


def smtp_env(controller: Controller, **more: str) -> dict[str, str]:
    return {
        **ENV,
        "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
        "CRDT_SERVER_EMAIL_FROM": "plans@example.org",
        **more,
    }


@pytest.mark.asyncio
async def test_invitation_emails_go_through_the_outbox_and_are_capped_per_day(
    tmp_path: Path, smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    env = smtp_env(controller, CRDT_SERVER_INVITATION_EMAILS_PER_DAY="2")
    async with served(tmp_path / "data", env) as (server, http):
        made = (await http.post("/api/weddings", json=NEW, headers=ADMIN_AUTH)).json()
        wedding, couple = made["id"], couple_of(made)
        first = await invite(
            http, wedding, couple, role="planner", name="Pat", email="pat@example.com"
        )
        assert first["emailed"] == "queued" and first["not_sent_because"] is None
        (mail,) = await arrived(inbox, "pat@example.com")
        assert mail["Subject"] == "Ann Lee invited you to plan a wedding"
        assert mail["From"] == "plans@example.org"  # the setting, never a name
        body = mail.get_content()
        code = _INVITE.search(body)
        assert code is not None and f"{server.url}/app/invite#code={code[1]}" == first["url"]
        assert "as planner" in body
        # The emailed link works (opening it redeems nothing; the page's button does).
        joined = await http.post("/api/invitations/accept", json={"code": code[1], "name": "Pat"})
        assert joined.status_code == 201, joined.text
        # Without an email: nothing is sent, and the answer says nothing of email.
        plain = await invite(http, wedding, couple, role="family", name="Gran")
        assert plain["emailed"] is None and plain["not_sent_because"] is None
        second = await invite(http, wedding, couple, role="vendor", email="vic@example.com")
        assert second["emailed"] == "queued"
        await arrived(inbox, "vic@example.com")
        # The day's count is spent: the invitation is made all the same, its link in the
        # answer for the inviter to share, and it says why no email went.
        third = await invite(http, wedding, couple, role="friend", email="fay@example.com")
        assert third["emailed"] == "not_sent" and third["not_sent_because"] == "daily_limit"
        assert third["url"].startswith(f"{server.url}/app/invite#code=")
        listed = await http.get(f"/api/weddings/{wedding}/invitations", headers=couple)
        assert {i["id"] for i in listed.json()["invitations"]} >= {third["id"]}
        # Another wedding has its own count.
        other = (await http.post("/api/weddings", json=NEW, headers=ADMIN_AUTH)).json()
        elsewhere = await invite(
            http, other["id"], couple_of(other), role="planner", email="pat2@example.com"
        )
        assert elsewhere["emailed"] == "queued"
        # The outbox sends in order: once a later email arrived, the refused one would have.
        await arrived(inbox, "pat2@example.com")
        assert mails_to(inbox, "fay@example.com") == []
        # An address that is not one is refused, naming the field, and nothing is sent.
        bad = await http.post(
            f"/api/weddings/{wedding}/invitations",
            json={"role": "friend", "email": "not an address\r\nBcc: x@example.com"},
            headers=couple,
        )
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "email"


@pytest.mark.asyncio
async def test_an_open_signup_wedding_sends_nothing_until_its_creator_is_verified(
    tmp_path: Path, smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    env = smtp_env(controller, CRDT_SERVER_OPEN_SIGNUP="true")
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        # A stranger creates a wedding (no credential): its first sign-in link goes to the
        # address they gave, which is how that address gets verified.
        created = await http.post("/api/weddings", json=NEW)
        assert created.status_code == 201, created.text
        made = created.json()
        wedding, couple = made["id"], couple_of(made)
        refused = await invite(http, wedding, couple, role="planner", email="pat@example.com")
        assert refused["emailed"] == "not_sent"
        assert refused["not_sent_because"] == "unverified_creator"
        (link,) = await arrived(inbox, "ann@example.com")
        code = _SIGN_IN.search(link.get_content())
        assert code is not None
        signed = await http.post(
            "/api/sign-in/complete", json={"code": code[1]}, headers={"Origin": server.url}
        )
        assert signed.status_code == 200, signed.text
        assert signed.json()["wedding"] == wedding
        # Verified: invitation emails go out on the wedding's behalf from now on.
        sent = await invite(http, wedding, couple, role="planner", email="pat@example.com")
        assert sent["emailed"] == "queued"
        (mail,) = await arrived(inbox, "pat@example.com")
        assert _INVITE.search(mail.get_content()) is not None
