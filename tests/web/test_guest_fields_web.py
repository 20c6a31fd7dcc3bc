"""Vendors see what the couple chooses, in Debian's Chromium: the couple invites a caterer
(the form suggests meals and dietary needs for her) and a florist (names only) from the
Share panel; each joins from a browser of her own and reads the same guest list: the
caterer sees the guest's meal and dietary needs, the florist sees the guest without them.
The couple then lets the florist see nothing from the Members screen: her guest list goes."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.async_api import Page

from crdt_server.testing.waits import until
from tests.web.conftest import PAGE_ERRORS, Demo, expect, open_app, status

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(150)]

MEAL = "Mushroom-Mx9"
DIET = "Sesame-Dt8"


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    # A socket whose token was revoked is closed by the server (4401), as it should be.
    assert [e for e in PAGE_ERRORS if "4401" not in e] == []


async def invite_vendor(couple: Page, name: str, suggested: str, choose: str | None) -> str:
    """Invite vendor ``name`` from the Share panel: the form suggests ``suggested``, the
    couple picks ``choose`` (``None``: the suggestion); the link made."""
    form = couple.get_by_role("form", name="Invite someone")
    await form.get_by_label("Role").select_option("vendor")
    await form.get_by_label("Their name").fill(name)
    sees = form.get_by_label("What they see of the guest list")
    await expect(sees).to_have_value(suggested)
    await expect(sees.locator("option", has_text="(suggested)")).to_have_attribute(
        "value", suggested
    )
    if choose is not None:
        await sees.select_option(choose)
    await form.get_by_role("button", name="Make an invitation link").click()
    link = couple.get_by_label(re.compile(f"Invitation link for {name}"))
    await expect(link).to_have_value(re.compile("/app/invite#code="))
    return await link.input_value()


async def join(browser: Any, link: str, name: str) -> tuple[Any, Page]:
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    page = await context.new_page()
    page.on("pageerror", lambda error: PAGE_ERRORS.append(f"{name}: {error}"))
    await page.goto(link)
    joining = page.get_by_role("form", name="Join the wedding")
    await joining.get_by_label("Your name").fill(name)
    await joining.get_by_role("button", name="Join the wedding").click()
    await status(page).filter(has_text="Synced").wait_for(timeout=15_000)
    return context, page


async def guest_list_text(page: Page) -> str:
    await page.get_by_role("link", name="Guests", exact=True).click()
    rows = page.get_by_role("main")
    await expect(rows).to_contain_text("Ann Mushroom", timeout=10_000)
    return await rows.inner_text()


async def test_a_caterer_sees_meals_and_a_florist_does_not(demo: Demo, browser: Any) -> None:
    # The couple's guest: a meal and dietary needs no florist may see.
    async with httpx.AsyncClient(base_url=demo.url) as client:
        couple_auth = {"Authorization": f"Bearer {demo.tokens['couple']}"}
        body = {"op": "add_guest", "guest_id": "gmx9", "name": "Ann Mushroom", "meal": MEAL}
        ops = "/api/weddings/demo/docs/guests/ops"
        added = await client.post(ops, json=body, headers=couple_auth)
        assert added.status_code == 200, added.text
        diet = {"op": "update_guest", "guest_id": "gmx9", "dietary": [DIET]}
        assert (await client.post(ops, json=diet, headers=couple_auth)).status_code == 200

    couple_context, couple = await open_app(browser, demo.link("couple"))
    await couple.get_by_role("button", name="Share").click()
    caterer_link = await invite_vendor(couple, "Rosa Catering", "names_meals", None)
    florist_link = await invite_vendor(couple, "Bloom Florist", "counts", "names")
    invitations = couple.get_by_role("list", name="Open invitations")
    await expect(invitations).to_contain_text("sees: names only")
    await expect(invitations).to_contain_text("sees: names with meals and dietary needs")

    # Two vendors, two browsers, one guest list.
    caterer_context, caterer = await join(browser, caterer_link, "Rosa")
    florist_context, florist = await join(browser, florist_link, "Bloom")
    seen_by_caterer = await guest_list_text(caterer)
    assert MEAL in seen_by_caterer and DIET in seen_by_caterer, seen_by_caterer
    seen_by_florist = await guest_list_text(florist)
    assert MEAL not in seen_by_florist and DIET not in seen_by_florist, seen_by_florist
    for marker in ("Mx9", "Dt8"):
        assert marker not in await florist.content()

    # The couple lets the florist see nothing, from the Members screen.
    members = couple.get_by_role("list", name="Members of the wedding")
    await couple.reload()
    await status(couple).filter(has_text="Synced").wait_for(timeout=10_000)
    await couple.get_by_role("button", name="Share").click()
    picker = members.get_by_label("What Bloom sees of the guest list")
    await expect(picker).to_have_value("names")
    await expect(members.get_by_label("What Rosa sees of the guest list")).to_have_value(
        "names_meals"
    )
    await picker.select_option("nothing")
    await expect(picker).to_have_value("nothing")

    async def florist_sees() -> bool:
        async with httpx.AsyncClient(base_url=demo.url) as client:
            listed = await client.get("/api/weddings/demo/members", headers=couple_auth)
            members = listed.json()["members"]
            return {m["name"]: m.get("guest_fields") for m in members}["Bloom"] == "nothing"

    await until(florist_sees)
    # Her next session reads no guest at all.
    await florist.reload()
    await (
        status(florist).filter(has_text=re.compile("Synced|Offline")).first.wait_for(timeout=15_000)
    )
    # Her device session's next token carries the choice: the guest list is closed to it.
    answer = await florist.evaluate(
        """async () => {
          const r = await fetch('/api/session/refresh', {method: 'POST',
            headers: {'Content-Type': 'application/json'}, body: JSON.stringify({wedding: 'demo'})})
          const token = (await r.json()).token
          const read = await fetch('/api/weddings/demo/docs/guests',
            {headers: {Authorization: `Bearer ${token}`}})
          const access = await (await fetch('/api/weddings/demo/access',
            {headers: {Authorization: `Bearer ${token}`}})).json()
          return [read.status, access.guest_fields, access.docs.guests]
        }"""
    )
    assert answer == [403, "nothing", "none"], answer
    assert MEAL not in await florist.get_by_role("main").inner_text()
    for context in (couple_context, caterer_context, florist_context):
        await context.close()
