"""The "add your email" link through a real server, a real SMTP receiver (aiosmtpd), both stores:
a person who joined by invitation without an address asks for a link to one
(``POST /api/session/email``); following it verifies the address for that person (their
membership gets it, a later sign-in link to it is them), an address held by several
members of a wedding makes them none of those, one another sign-in has makes the two one
person; the route takes only this site's own pages and a live device session."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from crdt_server.testing.waits import until
from tests.features.conversations import ADMIN_AUTH, CODEC
from tests.features.signin.test_sessions import Running, cookie_of, put_member

pytestmark = [pytest.mark.timeout(120)]

_CODE = re.compile(r"/app/sign-in#code=([A-Za-z0-9_-]+)")
COUPLE = {
    "Authorization": "Bearer "
    + CODEC.mint(sub="cam", role="couple", wedding="w1", ttl=86400, name="Cam")
}


async def joined(running: Running, name: str) -> tuple[str, str]:
    """A new person who joined w1 by invitation without an address: (cookie, sub)."""
    http = running.http
    made = await http.post("/api/weddings/w1/invitations", json={"role": "family"}, headers=COUPLE)
    assert made.status_code == 201, made.text
    accepted = await http.post(
        "/api/invitations/accept",
        json={"code": made.json()["code"], "name": name},
        headers=running.origin,
    )
    assert accepted.status_code == 201, accepted.text
    return cookie_of(accepted), accepted.json()["sub"]


async def claim_link(running: Running, cookie: str, address: str) -> str:
    """Ask for the "add your email" link and wait for it (sent to the address in lower
    case)."""
    before = len(_confirmations(running, address.lower()))
    asked = await running.session(cookie, "email", json={"email": address})
    assert asked.status_code == 202, asked.text

    async def arrived() -> bool:
        return len(_confirmations(running, address.lower())) > before

    await until(arrived)
    return _confirmations(running, address.lower())[-1]


def _confirmations(running: Running, address: str) -> list[str]:
    return [
        _CODE.search(m.get_content())[1]  # type: ignore[index]
        for m in running.inbox.messages
        if m["To"] == address and m["Subject"] == "Confirm your email address"
    ]


async def devices(running: Running, cookie: str) -> Any:
    listed = await running.session(cookie, "devices", "GET")
    assert listed.status_code == 200, listed.text
    return listed.json()


@pytest.mark.asyncio
async def test_a_person_without_an_address_adds_one_with_a_link(running: Running) -> None:
    http = running.http
    cookie, sub = await joined(running, "Gran")
    assert (await devices(running, cookie))["email"] is None
    # Only the site's own pages, only with a live device session, only an address.
    forged = await http.post(
        "/api/session/email",
        json={"email": "gran@example.com"},
        headers={"Origin": "https://evil.example", "Cookie": f"crdt_session={cookie}"},
    )
    assert forged.status_code == 403
    anonymous = await http.post(
        "/api/session/email", json={"email": "gran@example.com"}, headers=running.origin
    )
    assert anonymous.status_code == 401
    for body, field in [
        ({"email": "not an address\r\nBcc: x@example.com"}, "email"),
        ({"email": "a@b.c", "more": 1}, "more"),
        ({"email": 7}, "email"),
    ]:
        bad = await running.session(cookie, "email", json=body)
        assert bad.status_code in (400, 422), bad.text
        assert bad.json()["errors"][0]["field"] == field
    code = await claim_link(running, cookie, "gran@example.com")
    # Following it (on any device) verifies the address for this person.
    done = await running.complete(code, agent="Phone browser")
    assert done.status_code == 200, done.text
    assert done.json()["sub"] == sub and done.json()["wedding"] == "w1"
    assert (await devices(running, cookie))["email"] == "gran@example.com"
    # Their membership has the address now: the directory shows it, and a sign-in link
    # to it, asked for on the sign-in page, is them.
    members = await http.get("/api/weddings/w1/members", headers=COUPLE)
    held = {m["sub"]: m.get("email") for m in members.json()["members"]}
    assert held[sub] == "gran@example.com"
    again = await running.complete(await running.link("gran@example.com"))
    assert again.status_code == 200 and again.json()["sub"] == sub
    # The link works once.
    assert (await running.complete(code)).status_code == 401


@pytest.mark.asyncio
async def test_a_shared_address_identifies_nobody_and_a_known_one_is_one_person(
    running: Running,
) -> None:
    http = running.http
    # Two members of w2 hold one address: it makes the person neither of them.
    await put_member(http, "w2", "ann", role="planner", name="Ann", email="desk@example.com")
    await put_member(http, "w2", "bo", role="vendor", name="Bo", email="desk@example.com")
    cookie, sub = await joined(running, "Dee")
    done = await running.complete(await claim_link(running, cookie, "desk@example.com"))
    assert done.status_code == 200, done.text
    assert done.json()["ambiguous"] == ["w2"]
    assert [w["wedding"] for w in done.json()["weddings"]] == ["w1"]
    assert done.json()["sub"] == sub
    # An address another sign-in has: whoever proves it holds it is that person, with
    # both their weddings.
    await put_member(http, "w3", "eve", role="planner", name="Eve", email="eve@example.com")
    first = await running.complete(await running.link("eve@example.com"))
    assert first.status_code == 200 and first.json()["wedding"] == "w3"
    other, joined_sub = await joined(running, "Eve")
    merged = await running.complete(await claim_link(running, other, "Eve@Example.com"))
    assert merged.status_code == 200, merged.text
    found = {(w["wedding"], w["sub"]) for w in merged.json()["weddings"]}
    assert found == {("w1", joined_sub), ("w3", "eve")}
    # The device that asked is that person's now too: its refresh lists both weddings.
    refreshed = await running.session(other, "refresh", json={"wedding": "w3"})
    assert refreshed.status_code == 200, refreshed.text
    assert {w["wedding"] for w in refreshed.json()["weddings"]} == {"w1", "w3"}
    assert ADMIN_AUTH  # the admin key made the members


@pytest.mark.asyncio
async def test_add_email_links_are_limited_per_person(running: Running) -> None:
    cookie, _ = await joined(running, "Flo")
    # The server under test allows 4 links an hour per address (and per person).
    for n in range(4):
        asked = await running.session(cookie, "email", json={"email": f"f{n}@example.com"})
        assert asked.status_code == 202, asked.text
    over = await running.session(cookie, "email", json={"email": "f9@example.com"})
    assert over.status_code == 429 and "Retry-After" in over.headers
    assert isinstance(running.http, httpx.AsyncClient)
