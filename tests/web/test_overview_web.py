"""The Overview in the planner app (Debian's Chromium against a real ``--demo`` server): the
couple opens it and finds every chart named for a screen reader (``role="img"`` with a
name, a table of the same figures), the same figures as the server's overview; the planner,
in another browser context, ticks a task done and a household answers from its RSVP link
on a phone, and the couple's charts follow without a reload. A vendor has no Overview tab."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.async_api import Page

from tests.web.conftest import PAGE_ERRORS, Demo, expect, open_app, screenshot
from tests.web.test_rsvp_web import _household, _link

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def chart_name(page: Page, chart: str) -> str:
    name = await page.locator(f'[data-chart="{chart}"] svg[role="img"]').get_attribute("aria-label")
    assert name, f"the {chart} chart has no name"
    return name


async def changed(page: Page, chart: str, before: str, timeout: float = 15.0) -> str:
    """The chart's name once it differs from ``before``."""
    deadline = time.monotonic() + timeout
    while (now := await chart_name(page, chart)) == before:
        assert time.monotonic() < deadline, f"the {chart} chart never changed from {before!r}"
        await page.wait_for_timeout(100)
    return now


async def test_the_couples_overview_is_named_and_follows_the_planner_and_a_guest(
    demo: Demo, browser: Any
) -> None:
    figures = await demo.json("/api/weddings/demo/overview", role="couple")
    assert isinstance(figures, dict)
    _, couple = await open_app(browser, demo.link("couple"), width=1400, height=900)
    planner_context, planner = await open_app(browser, demo.link("planner"))
    try:
        await couple.get_by_role("link", name="Overview", exact=True).click()
        await couple.get_by_role("heading", name="Overview", exact=True).wait_for()
        overview = couple.locator("main section.overview")
        # Every chart is an image with a name, and its figures are a table too.
        charts = {
            "rsvp-progress": "RSVP progress",
            "rsvp-sides": "Answers by side",
            "rsvp-households": "Answers by household",
            "meals": "Meals",
            "budget": "Budget by category",
            "budget-months": "Budget by month",
            "tasks-months": "Tasks by month",
        }
        for chart, starts in charts.items():
            image = couple.get_by_role("img", name=re.compile(f"^{re.escape(starts)}"))
            await expect(image).to_have_count(1, timeout=10_000)
            figure = overview.locator(f'[data-chart="{chart}"]')
            assert await figure.locator("svg title").count() >= 1
            assert await figure.locator("table.chart-table").count() == 1
        # The figures are the server's.
        guests, tasks = figures["guests"], figures["tasks"]
        people = f"{guests['people']} people invited: {guests['rsvp']['accepted']} accepted"
        await expect(overview).to_contain_text(people)
        await expect(overview).to_contain_text(f"{tasks['done']} of {tasks['total']} tasks done")
        table = overview.locator('[data-chart="budget"] table.chart-table')
        assert await table.locator("tbody tr").count() == len(figures["budget"]["by_category"])
        await expect(overview.locator("table.overview-vendors")).to_be_visible()
        await screenshot(couple, "overview-1400")

        # The planner ticks a task done: the couple's tasks figures follow.
        tasks_before = await chart_name(couple, "tasks-months")
        await planner.goto(planner.url.split("#")[0] + "#tasks")
        box = planner.get_by_role("checkbox", name="Send the invitations")
        await box.check()
        await expect(overview).to_contain_text(
            f"{tasks['done'] + 1} of {tasks['total']} tasks done", timeout=15_000
        )
        assert await changed(couple, "tasks-months", tasks_before) != tasks_before

        # A household answers from its RSVP link on a phone: the RSVP progress follows.
        household, hid, members = await _household(demo)
        progress_before = await chart_name(couple, "rsvp-progress")
        sides_before = await chart_name(couple, "rsvp-sides")
        phone_context = await browser.new_context(viewport={"width": 390, "height": 844})
        phone = await phone_context.new_page()
        phone.on("pageerror", lambda error: PAGE_ERRORS.append(f"rsvp: {error}"))
        url = await _link(demo, hid)
        await phone.goto(url.replace("http://127.0.0.1", demo.url.rsplit(":", 1)[0], 1))
        await phone.get_by_role("heading", name=household).wait_for(timeout=10_000)
        for person in members:
            card = phone.get_by_role("region", name=person["name"])
            await card.get_by_label("Not attending").check()
        await phone.get_by_role("button", name="Send my answer").click()
        await expect(phone.get_by_role("status")).to_contain_text("Thank you")
        progress = await changed(couple, "rsvp-progress", progress_before)
        assert progress.startswith("RSVP progress:"), progress
        assert await changed(couple, "rsvp-sides", sides_before) != sides_before
        declined = guests["rsvp"]["declined"] + len(members)
        await expect(overview).to_contain_text(f"{declined} declined", timeout=15_000)
        await phone_context.close()

        # Printable: the charts stay, the app around them does not.
        await couple.emulate_media(media="print")
        assert await couple.locator("nav.tabs").is_hidden()
        assert await overview.locator('[data-chart="rsvp-progress"] svg').is_visible()
        await couple.emulate_media(media="screen")
        await couple.set_viewport_size({"width": 390, "height": 844})
        width = await couple.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the Overview is {width} px wide on a 390 px screen"
        await screenshot(couple, "overview-390")
    finally:
        await planner_context.close()


async def test_a_vendor_has_no_overview_tab(demo: Demo, browser: Any) -> None:
    context, vendor = await open_app(browser, demo.link("vendor"))
    try:
        tabs = vendor.get_by_role("navigation", name="Sections")
        await expect(tabs.get_by_role("link", name="Timeline", exact=True)).to_be_visible()
        assert await tabs.get_by_role("link", name="Overview", exact=True).count() == 0
        cut = await demo.json("/api/weddings/demo/overview", role="vendor")
        assert isinstance(cut, dict)
        assert "budget" not in cut and "tasks" not in cut and "guests" in cut
    finally:
        await context.close()
