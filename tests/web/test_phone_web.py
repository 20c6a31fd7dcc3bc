"""The planner app on a phone (issue 53, point 6, its layout half), in Debian's Chromium at
390 x 844 against a real ``--demo`` server: no view scrolls sideways, the activity feed is one
tap away, and the conflicts banner is one line until opened."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import PAGE_ERRORS, Demo, expect, guests_and_seating, open_app, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(90)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def test_every_view_fits_a_phone_and_the_activity_is_one_tap_away(
    demo: Demo, browser: Any
) -> None:
    guests, seating = await guests_and_seating(demo)
    full_id = next(
        tid
        for tid, t in sorted(seating["tables"].items())
        if sum(a["table_id"] == tid for a in seating["assignments"].values()) == t["capacity"]
    )
    to_seat = sorted(
        g["name"]
        for gid, g in guests.items()
        if g["rsvp"] != "declined" and gid not in seating["assignments"]
    )[0]
    _, page = await open_app(browser, demo.link("couple"), width=390, height=844)
    # A conflict to show: one guest more at a full table.
    await page.get_by_role("link", name="Seating", exact=True).click()
    await page.get_by_label(f"Table for {to_seat}").select_option(full_id)
    for view in ("Guests", "Seating", "Timeline", "Budget"):
        await page.get_by_role("link", name=view, exact=True).click()
        await page.get_by_role("heading", name=view, exact=True).wait_for()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{view} is {width} px wide on a 390 px screen"
        await screenshot(page, f"phone-{view.lower()}-390px")

    # The conflicts banner is one line, opened by a tap.
    banner = page.get_by_role("region", name="Conflicts")
    await expect(banner).to_contain_text("to resolve")
    box = await banner.bounding_box()
    assert box is not None and box["height"] < 60, box
    await banner.get_by_text("to resolve").click()
    await expect(banner.get_by_role("listitem").first).to_be_visible()

    # The activity feed sits below the view on a phone; one tap brings it.
    feed = page.get_by_role("complementary", name="Activity")
    await expect(feed).not_to_be_in_viewport()
    await (
        page.get_by_role("navigation", name="Sections")
        .get_by_role("button", name="Activity")
        .click()
    )
    await expect(feed).to_be_in_viewport()
