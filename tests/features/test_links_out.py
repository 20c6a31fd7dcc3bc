"""Links that leave the requester (in an email: a sign-in link, an invitation, an RSVP link
and its unsubscribe link, a notification digest's unsubscribe link) are built like sign-in
links: from ``CRDT_SERVER_PUBLIC_URL``, else from the socket the server listens on, never
from the request's ``Host`` (nor ``X-Forwarded-Host``): a forged header must not make the
server mail a link to the attacker's site from its own address. Links shown only to the
caller keep the request's host; a server on a network address with no public URL warns
once at start and marks those answers ``public_url_missing: true``.

Every way out is exercised on a real server and a real SMTP receiver (aiosmtpd), once
without a public URL and once with one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from crdt_server.app import http_routes
from crdt_server.edge.openapi import openapi_document
from crdt_server.testing.waits import until
from tests.features.conversations import (
    ADMIN_AUTH,
    COUPLE,
    ENV,
    PLANNER,
    VENDOR,
    Inbox,
    W,
    join,
    ok,
)
from tests.server import ServerProcess

pytestmark = [pytest.mark.timeout(120)]

FORGED = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
PUBLIC = "https://plan.example.com"
_URL = re.compile(r"https?://[^\s>]+")


def mails_to(inbox: Inbox, address: str, subject: str) -> list[Any]:
    return [m for m in inbox.messages if m["To"] == address and subject in str(m["Subject"])]


async def one_mail(inbox: Inbox, address: str, subject: str) -> Any:
    async def arrived() -> bool:
        return bool(mails_to(inbox, address, subject))

    await until(arrived, 20)
    return mails_to(inbox, address, subject)[0]


def links_in(mail: Any) -> list[str]:
    """Every URL of an email: its body's and its ``List-Unsubscribe`` header's."""
    text = mail.get_content() + " " + str(mail.get("List-Unsubscribe", ""))
    return _URL.findall(text)


async def op(http: httpx.AsyncClient, doc: str, body: dict[str, object]) -> None:
    await ok(await http.post(f"{W}/docs/{doc}/ops", json=body, headers=COUPLE))


async def sign_in_link(http: httpx.AsyncClient, inbox: Inbox) -> list[str]:
    await ok(
        await http.put(
            f"{W}/members/ana", json={"role": "friend", "email": "ana@example.com"},
            headers=ADMIN_AUTH,
        ),
        201,
    )  # fmt: skip
    asked = await http.post("/api/sign-in", json={"email": "ana@example.com"}, headers=FORGED)
    assert asked.status_code == 202, asked.text
    return links_in(await one_mail(inbox, "ana@example.com", "sign-in link"))


async def invitation(http: httpx.AsyncClient, inbox: Inbox) -> list[str]:
    made = await ok(
        await http.post(
            f"{W}/invitations",
            json={"role": "friend", "name": "Ivy", "email": "ivy@example.com"},
            headers={**COUPLE, **FORGED},
        ),
        201,
    )
    assert made["emailed"] == "queued", made
    # Shown only to the caller: the request's own host, as before.
    assert made["url"].startswith(("http://evil.example/", f"{PUBLIC}/")), made["url"]
    return links_in(await one_mail(inbox, "ivy@example.com", "invited you"))


async def rsvp_email(http: httpx.AsyncClient, inbox: Inbox) -> list[str]:
    await op(http, "timeline", {"op": "set_profile", "names": ["Ada", "Grace"]})
    await op(http, "guests", {"op": "add_household", "household_id": "h1", "name": "Lees"})
    await op(
        http, "guests",
        {"op": "add_guest", "guest_id": "g1", "name": "Al", "household_id": "h1",
         "contact": "al@example.com"},
    )  # fmt: skip
    sent = await http.post(f"{W}/households/h1/rsvp-link/email", headers={**COUPLE, **FORGED})
    assert sent.status_code == 202 and sent.json()["queued"] == ["g1"], sent.text
    return links_in(await one_mail(inbox, "al@example.com", "will you come"))


async def digest(http: httpx.AsyncClient, inbox: Inbox) -> list[str]:
    await join(http, PLANNER, COUPLE, VENDOR)
    made = await http.post(
        f"{W}/threads",
        json={"subject": "Flowers", "participants": ["flo"]},
        headers={**PLANNER, **FORGED},
    )
    tid = (await ok(made, 201))["id"]
    said = await http.put(
        f"{W}/threads/{tid}/messages/m1", json={"body": "@cam hi"}, headers={**VENDOR, **FORGED}
    )
    await ok(said, 201)
    return links_in(await one_mail(inbox, "cam@example.com", "Flowers"))


WAYS_OUT = {
    "sign-in link": sign_in_link,
    "invitation email": invitation,
    "RSVP email (link, unsubscribe)": rsvp_email,
    "notification digest (unsubscribe)": digest,
}


@pytest.mark.asyncio
@pytest.mark.parametrize("public", ["", PUBLIC], ids=["listening-socket", "public-url"])
async def test_links_that_leave_the_requester_never_come_from_host(
    tmp_path: Path, smtp: tuple[Controller, Inbox], public: str
) -> None:
    controller, inbox = smtp
    env = {
        **ENV,
        "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
        "CRDT_SERVER_EMAIL_FROM": "plans@example.org",
        "CRDT_SERVER_EMAIL_DIGEST_SECONDS": "0",
    }
    if public:
        env["CRDT_SERVER_PUBLIC_URL"] = public
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        base = public or server.url
        wrong: dict[str, list[str]] = {}
        for way, send in WAYS_OUT.items():
            links = await send(http, inbox)
            assert links, way
            bad = [link for link in links if not link.startswith(f"{base}/")]
            if bad:
                wrong[way] = bad
        assert wrong == {}, f"links not on {base}: {wrong}"
        assert not [m for m in inbox.messages if "evil.example" in m.as_string()]


CALLER_LINK_ROUTES = (
    "createInvitation",
    "mintRsvpLink",
    "createRunSheetLink",
    "createCalendarToken",
    "createSession",
)
"""The answers that show a link to their caller (built from the request, as before)."""


def test_the_answers_with_a_link_for_the_caller_document_public_url_missing() -> None:
    spec = openapi_document(http_routes(), version="t")
    schemas = spec["components"]["schemas"]
    found = {}
    for item in spec["paths"].values():
        for operation in item.values():
            if operation["operationId"] in CALLER_LINK_ROUTES:
                ok_answer = next(
                    answer for status, answer in operation["responses"].items()
                    if status.startswith("2")
                )  # fmt: skip
                ref = ok_answer["content"]["application/json"]["schema"]["$ref"]
                schema = schemas[ref.rsplit("/", 1)[1]]
                found[operation["operationId"]] = schema["properties"].get("public_url_missing")
    assert set(found) == set(CALLER_LINK_ROUTES)
    for operation, field in found.items():
        assert field is not None, operation
        assert field["type"] == "boolean" and "CRDT_SERVER_PUBLIC_URL" in field["description"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("host", "public", "missing"),
    [("0.0.0.0", "", True), ("127.0.0.1", "", False), ("0.0.0.0", PUBLIC, False)],
    ids=["network-no-public-url", "loopback", "network-public-url"],
)
async def test_a_network_server_without_a_public_url_warns_once_and_says_so(
    tmp_path: Path, host: str, public: str, missing: bool
) -> None:
    env = {**ENV, **({"CRDT_SERVER_PUBLIC_URL": public} if public else {})}
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False, args=["--host", host]) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        made = await ok(
            await http.post(f"{W}/invitations", json={"role": "friend"}, headers=COUPLE), 201
        )
        session = await ok(
            await http.post(f"{W}/sessions", json={"sub": "may", "role": "family"},
                            headers=ADMIN_AUTH),
            201,
        )  # fmt: skip
        # The caller's links keep today's rule: the public URL, else the request's host.
        assert made["url"].startswith(f"{public or server.url}/app/invite#code=")
        assert session["url"] == f"{(public or server.url).replace('http', 'ws', 1)}/sync"
        for answer in (made, session):
            assert answer.get("public_url_missing") is (True if missing else None), answer
        warnings = server.log_text().count("CRDT_SERVER_PUBLIC_URL is unset")
        assert warnings == (1 if missing else 0), server.log_text()
        # The warning names no person, wedding or link.
        assert made["code"] not in server.log_text()
