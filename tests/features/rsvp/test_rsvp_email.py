"""RSVP links by email through a real server and a real SMTP server (aiosmtpd): each guest
of the household with an email address gets the link, ``From`` names the couple before
``CRDT_SERVER_EMAIL_FROM``, and the unsubscribe link works for a guest (no more emails);
a guest's queued email goes with their erasure."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller

from crdt_server.testing.tokens import TokenMinter
from crdt_server.testing.waits import until
from tests.features.conversations import Inbox, count_emails
from tests.server import ServerProcess

SECRET = "rsvp-email-secret-at-least-32-bytes!!!"
MINT = TokenMinter(SECRET)
W = "/api/weddings/w1"


def auth(role: str = "couple") -> dict[str, str]:
    return MINT.headers(role, "ada", "w1", ttl=4 * 3600)


async def op(http: httpx.AsyncClient, doc: str, body: dict[str, object]) -> None:
    answer = await http.post(f"{W}/docs/{doc}/ops", json=body, headers=auth())
    assert answer.status_code == 200, answer.text


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_the_link_goes_to_each_guest_from_the_couple_and_unsubscribes(
    tmp_path: Path, smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    env = {
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
        "CRDT_SERVER_EMAIL_FROM": "plans@example.com",
    }
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        await op(http, "timeline", {"op": "set_profile", "names": ["Ada", "Grace\nBcc: x@y.z"]})
        await op(http, "guests", {"op": "add_household", "household_id": "h1", "name": "Lees"})
        for gid, contact in (("g1", "ann@example.com"), ("g2", "+44 20 7946 0000"), ("g3", None)):
            guest: dict[str, object] = {
                "op": "add_guest", "guest_id": gid, "name": gid, "household_id": "h1",
            }  # fmt: skip
            if contact:
                guest["contact"] = contact
            await op(http, "guests", guest)
        sent = await http.post(f"{W}/households/h1/rsvp-link/email", headers=auth())
        assert sent.status_code == 202, sent.text
        assert sent.json() == {
            "queued": ["g1"],
            "skipped": [
                {"guest_id": "g2", "reason": "no email address"},
                {"guest_id": "g3", "reason": "no email address"},
            ],
        }
        await until(lambda: count_emails(inbox, 1))
        mail = inbox.messages[0]
        assert mail["To"] == "ann@example.com"
        sender = mail["From"].addresses
        assert len(sender) == 1 and sender[0].addr_spec == "plans@example.com"
        assert sender[0].display_name == "Ada & Grace Bcc xy.z"
        assert mail["Bcc"] is None
        text = mail.get_content()
        link = (await http.post(f"{W}/households/h1/rsvp-link", headers=auth())).json()["url"]
        assert link in text
        unsubscribe = re.search(r"Stop these emails: (\S+)", text)
        assert unsubscribe and mail["List-Unsubscribe"] == f"<{unsubscribe.group(1)}>"
        path = unsubscribe.group(1).split("://", 1)[1].split("/", 1)[1]
        assert (await http.get(f"/{path}x")).status_code == 404
        assert (await http.post(f"/{path}")).status_code == 200  # one click, no account
        again = await http.post(f"{W}/households/h1/rsvp-link/email", headers=auth())
        assert again.json()["queued"] == []
        assert {"guest_id": "g1", "reason": "unsubscribed"} in again.json()["skipped"]
        vendor = await http.post(f"{W}/households/h1/rsvp-link/email", headers=auth("vendor"))
        assert vendor.status_code == 403
        assert len(inbox.messages) == 1
