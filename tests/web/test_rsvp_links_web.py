"""Guests' answers, as a couple runs them from the app (Debian's Chromium against a real
``--demo`` server with a real SMTP receiver, aiosmtpd), with no operator token: the couple
sets the RSVP page's venue, deadline and menu, makes and copies a household's link, opens
the printable QR sheet, emails the household its link, revokes it (the old link stops
working on a phone), and makes the own link of a guest in no household, who answers on a
phone (dates and the venue written for people, the deadline shown, their plus-one's meal
asked, no household written for them); the couple's screen shows the answer live."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller

from crdt_server.features.rsvp.routes_guest import plus_one_id
from tests.server import ServerProcess
from tests.web.conftest import (
    ADMIN_KEY,
    PAGE_ERRORS,
    Demo,
    demo_links,
    expect,
    open_app,
    screenshot,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(150)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


class _Inbox:
    """A real SMTP server's messages (aiosmtpd on loopback)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    async def text_to(self, address: str, timeout: float = 15.0) -> str:
        """The text of the first message to ``address`` (waiting for it)."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.messages:
                if message["To"] == address:
                    body = message.get_payload(decode=True)
                    if body is None and message.is_multipart():
                        body = message.get_payload(0).get_payload(decode=True)
                    return bytes(body or b"").decode()
            assert time.monotonic() < deadline, f"no email to {address}"
            await asyncio.sleep(0.05)


@pytest_asyncio.fixture
async def demo_mail(tmp_path: Path) -> AsyncIterator[tuple[Demo, _Inbox]]:
    inbox = _Inbox()
    with socket.socket() as probe:  # aiosmtpd checks readiness by connecting: a real port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    env = {
        "CRDT_SERVER_ADMIN_API_KEY": ADMIN_KEY,
        "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{port}",
        "CRDT_SERVER_EMAIL_FROM": "plans@example.com",
    }
    try:
        async with ServerProcess(
            tmp_path / "data", env=env, args=["--demo"], anonymous=False
        ) as server:
            yield await demo_links(server), inbox
    finally:
        controller.stop()


def _pick(guests: dict[str, Any], households: dict[str, Any]) -> tuple[Any, ...]:
    """A household with an entry whose people have not answered and whose first has an
    address (its id, name, that address), and a guest in no household who brings an
    unnamed plus-one and has not answered (their id and name)."""
    by_household: dict[str, list[dict[str, Any]]] = {}
    for gid, guest in sorted(guests.items()):
        if guest.get("household_id"):
            by_household.setdefault(guest["household_id"], []).append({"id": gid, **guest})
    hid, people = next(
        (hid, people)
        for hid, people in sorted(by_household.items())
        if hid in households
        and all(p["rsvp"] == "pending" for p in people)
        and people[0].get("contact")
    )
    hosts = {g.get("plus_one_of") for g in guests.values()}
    solo = next(
        (gid, g)
        for gid, g in sorted(guests.items())
        if not g.get("household_id")
        and not g.get("household")
        and not g.get("plus_one_of")
        and g.get("plus_one")
        and gid not in hosts
        and g["rsvp"] == "pending"
    )
    return hid, households[hid]["name"], people[0]["contact"], solo[0], solo[1]["name"]


async def test_a_couple_runs_rsvp_links_from_the_app(
    demo_mail: tuple[Demo, _Inbox], browser: Any
) -> None:
    demo, inbox = demo_mail
    doc = await demo.json("/api/weddings/demo/docs/guests", role="couple")
    assert isinstance(doc, dict)
    households_before = dict(doc.get("households", {}))
    hid, household, address, solo_id, solo_name = _pick(doc["guests"], households_before)

    context, couple = await open_app(
        browser, demo.link("couple"), width=1400, height=900, locale="en-GB"
    )
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=demo.url)
    await couple.get_by_role("link", name="Guests’ answers", exact=True).click()
    screen = couple.get_by_role("main")
    await screen.get_by_role("heading", name="Guests’ answers", exact=True).wait_for()

    # The RSVP page: venue, deadline and menu, saved with the couple's own session.
    page_form = screen.get_by_role("form", name="The RSVP page")
    await page_form.get_by_label("Venue").fill("Kew Gardens, Richmond")
    # The planner moves the wedding's date meanwhile: shown at once, the typing kept.
    async with httpx.AsyncClient(base_url=demo.url) as http:
        moved = await http.put(
            "/api/weddings/demo/settings",
            json={"date": "2027-06-19"},
            headers={"Authorization": f"Bearer {demo.tokens['planner']}"},
        )
        assert moved.status_code == 200, moved.text
    await expect(page_form).to_contain_text("19 June 2027", timeout=10_000)
    await expect(page_form.get_by_label("Venue")).to_have_value("Kew Gardens, Richmond")
    await page_form.get_by_label("Answer by").fill("2027-05-01")
    await page_form.get_by_label("Menu, one meal a line").fill("Beef\nFish\nVegetarian\nRisotto")
    await page_form.get_by_role("button", name="Save the RSVP page").click()
    await expect(page_form.get_by_text("Links close after")).to_contain_text("1 May 2027")
    settings = await demo.json("/api/weddings/demo/settings", role="couple")
    assert isinstance(settings, dict)
    assert (settings["venue"], settings["rsvp_deadline"]) == ("Kew Gardens, Richmond", "2027-05-01")
    menu = await demo.json("/api/weddings/demo/docs/guests", role="couple")
    assert isinstance(menu, dict) and menu["menu"]["choices"] == [
        "Beef",
        "Fish",
        "Vegetarian",
        "Risotto",
    ]

    # A household's link: shown, copied.
    row = screen.locator(f'[data-link="household:{hid}"]')
    await row.get_by_role("button", name="Show the link").click()
    link_box = row.get_by_label(f"Link for {household}")
    await expect(link_box).to_have_value(re.compile(r"/rsvp/#code=demo\."))
    old_link = await link_box.input_value()
    await row.get_by_role("button", name="Copy the link").click()
    assert await couple.evaluate("navigator.clipboard.readText()") == old_link

    # The printable sheet opens in a window of its own, a QR code per link.
    async with context.expect_page() as opened:
        await screen.get_by_role("button", name="Print the QR sheet").click()
    sheet = await opened.value
    await expect(sheet.locator("h1")).to_have_text("RSVP links", timeout=10_000)
    assert await sheet.locator("svg").count() > 10
    await expect(sheet.locator(".card").filter(has_text=household)).to_have_count(1)
    await expect(sheet.locator(".card").filter(has_text=solo_name)).to_have_count(1)
    await sheet.close()

    # Emailed to the household: its first person's address gets the link.
    await row.get_by_role("button", name="Email").click()
    await expect(row.get_by_role("status")).to_contain_text("Emailed to 1 guest")
    mail = await inbox.text_to(address)
    assert old_link.split("#", 1)[1] in mail, mail

    # Revoked (a second press confirms): the old link no longer opens on a phone.
    await row.get_by_role("button", name="Revoke").click()
    await row.get_by_role("button", name="Really revoke?").click()
    await expect(row.get_by_role("button", name="Show the link")).to_be_visible()
    phone_context = await browser.new_context(
        viewport={"width": 390, "height": 844}, locale="en-GB", is_mobile=True, has_touch=True
    )
    phone = await phone_context.new_page()
    phone.on("pageerror", lambda error: PAGE_ERRORS.append(f"rsvp: {error}"))
    await phone.goto(old_link)
    await expect(phone.get_by_role("heading", name="This link does not work")).to_be_visible(
        timeout=10_000
    )

    # A guest in no household: their own link, answered on the phone.
    solo_row = screen.locator(f'[data-link="guest:{solo_id}"]')
    await expect(solo_row).to_contain_text("no household")
    await solo_row.get_by_role("button", name="Show the link").click()
    solo_link = await solo_row.get_by_label(f"Link for {solo_name}").input_value()
    assert f"#code=demo.g.{solo_id}." in solo_link
    await screenshot(couple, "rsvp-links-1400px")
    await phone.goto(solo_link)
    await phone.get_by_role("heading", name=solo_name, level=1).wait_for(timeout=10_000)
    await expect(phone.locator(".when")).to_have_text(re.compile(r"^On Saturday,? 19 June 2027$"))
    await expect(phone.locator(".where")).to_have_text("At Kew Gardens, Richmond")
    await expect(phone.locator(".deadline")).to_have_text(
        re.compile(r"^Please answer by Saturday,? 1 May 2027\.$")
    )
    assert "2027-06-19" not in await phone.inner_text("body")
    assert await phone.get_by_label("A note for the couple (optional)").count() == 0
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the RSVP page is {width} px wide on a 390 px screen"
    me = phone.get_by_role("region", name=solo_name, exact=True)
    await me.get_by_label("Attending", exact=True).check()
    await me.get_by_label("Meal").select_option("Risotto")
    guest_of = phone.get_by_role("region", name=f"{solo_name}'s guest")
    await guest_of.get_by_label(f"Name of {solo_name}'s guest (optional)").fill("Pat Plus")
    await guest_of.get_by_label(f"Meal of {solo_name}'s guest").select_option("Fish")
    await screenshot(phone, "rsvp-guest-390px")
    await phone.get_by_role("button", name="Send my answer").click()
    await expect(phone.get_by_role("status")).to_contain_text("Thank you", timeout=10_000)

    # Live on the couple's screen: who answered, and when.
    answered = screen.get_by_role("list", name="Answers by link")
    said = answered.get_by_role("listitem").filter(has_text=solo_name)
    await expect(said.first).to_contain_text(f"{solo_name} accepted", timeout=10_000)
    await expect(said.first).to_contain_text("Pat Plus accepted")
    assert await said.first.locator("time[datetime]").count() == 1
    await expect(solo_row).to_contain_text("answered", timeout=10_000)
    # The same answer again is listed too, as before.
    await phone.get_by_role("button", name="Send my answer").click()
    await expect(phone.get_by_role("status")).to_contain_text("Thank you", timeout=10_000)
    await expect(said).to_have_count(2, timeout=10_000)
    await expect(said.first).to_contain_text("(as before)")

    # Written as answered, and no household entry made for the guest.
    after = await demo.json("/api/weddings/demo/docs/guests", role="couple")
    assert isinstance(after, dict)
    assert after["guests"][solo_id]["rsvp"] == "accepted"
    assert after["guests"][solo_id]["meal"] == "Risotto"
    plus = after["guests"][plus_one_id(solo_id)]
    assert (plus["name"], plus["meal"]) == ("Pat Plus", "Fish")
    assert after.get("households", {}) == households_before
    async with httpx.AsyncClient(base_url=demo.url) as http:
        assert (await http.get(f"/api/rsvp/{old_link.split('#code=', 1)[1]}")).status_code == 404
    await phone_context.close()
    await context.close()
