"""Addresses as invitees see them (issue 78, point 2), in Chromium against a plain local
server with a real SMTP receiver: Priya joins with the address her invitation was emailed
to (typed differently) and is asked nothing; Sam types another address and the app asks
him to "Confirm your email", his address filled in, and sends the link; the couple's
Members list (two contexts at once) says whose address is unconfirmed."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.server import ServerProcess
from tests.web.conftest import PAGE_ERRORS, expect, status
from tests.web.test_people_web import _Inbox, local  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(150)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def _join(browser: Any, url: str, name: str, email: str) -> tuple[Any, Any]:
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    page = await context.new_page()
    page.on("pageerror", lambda error: PAGE_ERRORS.append(f"{name}: {error}"))
    await page.goto(url)
    joining = page.get_by_role("form", name="Join the wedding")
    await joining.get_by_label("Your name").fill(name)
    await joining.get_by_label("Email (optional)").fill(email)
    await joining.get_by_role("button", name="Join the wedding").click()
    await status(page).filter(has_text="Synced").wait_for(timeout=15_000)
    return context, page


async def test_an_invitee_is_asked_to_confirm_only_an_address_nobody_verified(
    local: tuple[ServerProcess, _Inbox],  # noqa: F811 (the fixture imported above)
    browser: Any,
) -> None:
    server, inbox = local
    origin = {"Origin": server.url}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        made = await client.post(
            "/api/weddings",
            json={
                "names": ["Ann Lee", "Bo Chen"],
                "your_name": "Ann Lee",
                "date": "2027-05-01",
                "time_zone": "Europe/Paris",
                "currency": "EUR",
                "email": "ann@example.com",
            },
        )
        assert made.status_code == 201, made.text
        wedding = made.json()["id"]
        code = (await inbox.link_to("ann@example.com")).split("#code=")[1]
        signed = await client.post("/api/sign-in/complete", json={"code": code}, headers=origin)
        couple = {"Authorization": f"Bearer {signed.json()['token']}"}
        urls = {}
        for who, role, email in (
            ("Priya", "planner", "priya@example.com"),
            ("Sam", "family", "sam@example.com"),
        ):
            invited = await client.post(
                f"/api/weddings/{wedding}/invitations",
                json={"role": role, "name": who, "email": email},
                headers=couple,
            )
            assert invited.status_code == 201, invited.text
            urls[who] = invited.json()["url"]
        # The couple signs in in her own browser (a second link: the newest works).
        asked = await client.post("/api/sign-in", json={"email": "ann@example.com"})
        assert asked.status_code == 202
    ann_link = await inbox.link_to("ann@example.com", nth=2)

    # Priya types the address her invitation went to, in other letters: nothing to confirm.
    priya_context, priya = await _join(browser, urls["Priya"], "Priya", " Priya@Example.COM")
    # Sam types another address: the app asks him to confirm it, filled in.
    sam_context, sam = await _join(browser, urls["Sam"], "Sam", "sam.home@example.com")
    prompt = sam.get_by_role("region", name="Confirm your email")
    await expect(prompt).to_be_visible(timeout=10_000)
    await expect(prompt.get_by_label("Your email", exact=True)).to_have_value(
        "sam.home@example.com"
    )
    await prompt.get_by_role("button", name="Email me a link to confirm it").click()
    await expect(prompt.get_by_role("status")).to_contain_text("sam.home@example.com")
    assert "#code=" in await inbox.link_to("sam.home@example.com")
    await expect(priya.get_by_role("region", name="Confirm your email")).to_have_count(0)

    # The couple's Members list says whose address is unconfirmed.
    ann_context = await browser.new_context(viewport={"width": 1400, "height": 900})
    ann = await ann_context.new_page()
    ann.on("pageerror", lambda error: PAGE_ERRORS.append(f"ann: {error}"))
    await ann.goto(ann_link)
    await ann.get_by_role("button", name="Sign in on this device").click()
    await status(ann).filter(has_text="Synced").wait_for(timeout=15_000)
    await ann.get_by_role("button", name="Share").click()
    members = ann.get_by_role("list", name="Members of the wedding")
    sam_row = members.get_by_role("listitem").filter(has_text="Sam")
    priya_row = members.get_by_role("listitem").filter(has_text="Priya")
    await expect(sam_row).to_contain_text("has not confirmed an email yet", timeout=10_000)
    await expect(priya_row).to_contain_text("priya@example.com")
    await expect(priya_row).not_to_contain_text(re.compile("confirm"))
    for context in (priya_context, sam_context, ann_context):
        await context.close()
