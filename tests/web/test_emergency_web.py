"""Emergencies from the app (issue 77, point 2), in Debian's Chromium on the demo's wedding of
today: the vendor's phone raises one (its text, a timeline item and a vendor it concerns);
the planner, who never did anything before, finds it in her inbox marked as an emergency
with its text and says "Seen"; the vendor sees who has seen it, and when; the feed says what
it was. Every other member's inbox has it (the demo seeds the wedding's members), the
couple's and the family's included, though they never opened the app."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.web.conftest import PAGE_ERRORS, Demo, expect, open_app, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def _reasons(demo: Demo, token: str) -> list[tuple[str, str]]:
    async with httpx.AsyncClient() as client:
        answer = await client.get(
            f"{demo.url}/api/weddings/demo-today/notifications",
            headers={"Authorization": f"Bearer {token}"},
        )
    answer.raise_for_status()
    return [(n["reason"], n["actor"]["sub"]) for n in answer.json()["notifications"]]


async def test_a_vendor_raises_an_emergency_everyone_sees_it_and_the_sender_sees_who_did(
    demo: Demo, browser: Any
) -> None:
    vendor_link, _ = await demo.today("vendor")
    planner_link, _ = await demo.today("planner")
    _, couple_token = await demo.today("couple")
    _, family_token = await demo.today("family")
    _, friend_token = await demo.today("friend")
    phone, vendor = await open_app(browser, vendor_link, width=390, height=844)
    desk, planner = await open_app(browser, planner_link, width=1400, height=900)

    await vendor.get_by_role("button", name="Emergency").click()
    form = vendor.get_by_role("form", name="Raise an emergency")
    await form.get_by_role("button", name="Send the emergency to everyone").click()
    await expect(form.get_by_label("What is happening")).to_have_accessible_description(
        re.compile("Say what is happening")
    )
    await form.get_by_label("What is happening").fill("The generator at the barn failed")
    await (
        form.get_by_role("group", name="Timeline items it concerns")
        .get_by_label("Ceremony")
        .check()
    )
    await (
        form.get_by_role("group", name="Vendors it concerns").get_by_label("The Night Owls").check()
    )
    await form.get_by_role("button", name="Send the emergency to everyone").click()
    sent = vendor.get_by_role("list", name="Emergencies you sent")
    await expect(sent).to_contain_text("The generator at the barn failed")
    await expect(sent).to_contain_text("Nobody has seen it yet")

    # The planner's inbox: marked, with its text and what it concerns. (Not necessarily the
    # only unread notice: on the wedding of today, a vendor's call time may have passed
    # unchecked, or a task or payment fall due, depending on the hour the test runs.)
    await expect(
        planner.get_by_role("button", name=re.compile(r"^Inbox, \d+ unread"))
    ).to_be_visible(timeout=10_000)
    await planner.get_by_role("button", name=re.compile("^Inbox")).click()
    row = planner.locator("li.emergency")
    await expect(row).to_contain_text("Emergency from Lens & Light")
    await expect(row).to_contain_text(
        "The generator at the barn failed (concerns Ceremony, The Night Owls)"
    )
    await screenshot(planner, "emergency-inbox")
    await row.get_by_role("button", name=re.compile("^Seen")).click()
    await expect(row).to_contain_text("Seen")
    # The feed says what it was, and who raised it.
    await expect(planner.locator(".activity")).to_contain_text(
        "raised an emergency: The generator at the barn failed"
    )

    # The sender sees who has seen it, and when.
    await expect(sent).to_contain_text(
        re.compile(r"Seen by Priya \(just now|Seen by Priya"), timeout=10_000
    )
    await screenshot(vendor, "emergency-sent-390px")

    # Every other member's inbox has it, though they never opened the app.
    for token in (couple_token, family_token, friend_token):
        assert ("emergency", "demo-vendor") in await _reasons(demo, token)
    await phone.close()
    await desk.close()
