"""The layout of the day's screens at a phone (390 x 844) and a desktop (1400 x 900), in
Chromium against a real ``--demo`` server: the "Running late" panel has the width of the
item it is under and names items by title, a vendor's phone shows its own check-in first
and buttons only there, the run sheet says its zone and places in words, table cards keep
"Remove" whole, and a phone's header leaves the screen to the wedding while the tab row
says where more tabs are."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.async_api import ViewportSize

from tests.web.conftest import Demo, open_app, until

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(120)]

PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1400, "height": 900}
ID = re.compile(r"\bd-[a-z-]+\b")  # the demo's item ids (d-ceremony)


async def box(locator: Any) -> dict[str, float]:
    found = await locator.bounding_box()
    assert found is not None, "not on screen"
    return dict(found)


async def fits(page: Any) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size["width"]
    assert width <= viewport, f"the page is {width} px wide on a {viewport} px screen"


async def test_running_late_has_the_item_s_width_and_names_items_by_title(
    demo: Demo, browser: Any
) -> None:
    link, _ = await demo.today("couple")
    _, page = await open_app(browser, link, width=1400, height=900)
    await page.get_by_role("link", name="Timeline").click()
    await page.get_by_role("button", name="Flowers delivered is running late").click()
    late = page.get_by_role("group", name="Flowers delivered is running late")
    await late.get_by_label("How many minutes late?").fill("30")
    await late.get_by_role("button", name="Show what moves").click()
    moves = late.get_by_role("list", name="What moves")
    await moves.wait_for()
    for size, least in ((DESKTOP, 500), (PHONE, 300)):
        await page.set_viewport_size(size)
        assert (await box(late))["width"] >= least, size
        await fits(page)
    text = await late.inner_text()
    assert "Getting-ready photos" in text and "Keeps its time: Ceremony." in text, text
    assert not ID.search(text), text


async def test_a_vendor_s_phone_shows_its_own_check_in_first_and_only_there(
    demo: Demo, browser: Any
) -> None:
    _, planner = await demo.today("planner")
    async with httpx.AsyncClient(base_url=demo.url, timeout=10) as http:
        answer = await http.put(
            "/api/weddings/demo-today/day/mode",
            json={"mode": "on"},
            headers={"Authorization": f"Bearer {planner}"},
        )
        assert answer.status_code == 200, answer.text
    link, _ = await demo.today("vendor")
    _, phone = await open_app(browser, link, width=390, height=844)
    await phone.get_by_role("link", name="Timeline").click()
    vendors = phone.locator(".day-vendors > li")
    await vendors.first.wait_for(timeout=10_000)
    assert await vendors.first.get_attribute("data-vendor") == "lens"
    await phone.get_by_role("button", name="Lens & Light: Arrived").wait_for()
    rows = await vendors.count()
    assert rows >= 3
    for i in range(1, rows):
        assert await vendors.nth(i).get_by_role("button").count() == 0, i
    await fits(phone)
    # The planner's phone taps for every vendor.
    link, _ = await demo.today("planner")
    _, lead = await open_app(browser, link, width=390, height=844)
    await lead.get_by_role("link", name="Timeline").click()
    await lead.get_by_role("button", name="The Night Owls: Arrived").wait_for(timeout=10_000)
    await lead.get_by_role("button", name="Petal Co.: Running late").wait_for()


async def test_the_run_sheet_says_its_zone_and_places_in_words(demo: Demo, browser: Any) -> None:
    link, _ = await demo.today("couple")
    _, page = await open_app(browser, link, width=390, height=844)
    await page.evaluate("location.hash = '#/print/run-sheet?vendor=Petal%20Co.'")
    sheet = page.locator("table.run-sheet")
    await sheet.wait_for(timeout=10_000)
    said = await page.locator("p", has_text="Times in").inner_text()
    assert "/" not in said and "The Old Mill" in said, said
    places = await sheet.locator("tbody tr[data-entity] td:nth-child(4)").all_inner_texts()
    assert places and all(p.strip() for p in places), places
    await fits(page)


async def test_table_cards_keep_remove_whole_and_a_phone_s_header_is_short(
    demo: Demo, browser: Any
) -> None:
    _, page = await open_app(browser, demo.link("couple"), width=390, height=844)
    header = await box(page.locator("header.top"))
    assert header["height"] <= 150, header
    tabs = page.get_by_role("navigation", name="Sections")
    await until(page, "document.querySelector('nav.tabs').dataset.more === 'right'")
    await tabs.get_by_role("link", name="Tasks").click()
    await page.get_by_role("heading", name="Tasks", exact=True).wait_for()
    shown = await box(tabs.get_by_role("link", name="Tasks"))
    assert shown["x"] >= 0 and shown["x"] + shown["width"] <= PHONE["width"], shown
    # Scrolled to its end, the row says the others are on the left.
    await page.evaluate("document.querySelector('nav.tabs ul').scrollLeft = 10000")
    await until(page, "document.querySelector('nav.tabs').dataset.more === 'left'")
    await tabs.get_by_role("button", name="Activity").wait_for()
    # The tab row stays on screen as the page scrolls (the header scrolls away).
    await page.evaluate("window.scrollTo(0, 600)")
    await until(page, "document.querySelector('nav.tabs').getBoundingClientRect().top === 0")
    for size in (PHONE, DESKTOP):
        await page.set_viewport_size(size)
        await tabs.get_by_role("link", name="Seating").click()
        remove = page.get_by_role("button", name=re.compile("^Remove table "))
        await remove.first.wait_for(timeout=10_000)
        for i in range(await remove.count()):
            whole = await remove.nth(i).evaluate(
                "b => b.scrollWidth <= b.clientWidth && b.getBoundingClientRect().width > 40"
            )
            assert whole, (size, i)
        await fits(page)
