"""The tasks view in the planner app (Debian's Chromium driven by Playwright) against a real
``--demo`` server: the couple ticks a task done in one browser and the planner, in another
browser context, sees it ticked at once; family reads the checklist without controls; the
due dates follow the wedding date."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.web.conftest import PAGE_ERRORS, Demo, open_app, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(90)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def test_a_task_ticked_in_one_browser_is_ticked_in_the_other(
    demo: Demo, browser: Any
) -> None:
    tasks = await demo.json("/api/weddings/demo/docs/tasks", role="couple")
    assert isinstance(tasks, dict)
    # The demo's default checklist: "Send the invitations" is three months before the day.
    invitations = tasks["tasks"]["t-invitations"]
    assert invitations["done"] is False and invitations["due_offset"] == "-3M"
    assert tasks["due_dates"]["t-invitations"] == "2027-03-12"

    couple_context, couple = await open_app(browser, demo.link("couple"))
    planner_context, planner = await open_app(browser, demo.link("planner"))
    try:
        for page in (couple, planner):
            await page.goto(page.url.split("#")[0] + "#tasks")
            await page.get_by_role("heading", name="Tasks").wait_for()
        couple_box = couple.get_by_role("checkbox", name="Send the invitations")
        planner_box = planner.get_by_role("checkbox", name="Send the invitations")
        assert not await couple_box.is_checked() and not await planner_box.is_checked()
        row = planner.locator('li[data-entity="t-invitations"]')
        await row.get_by_text("3 months before").wait_for()

        await couple_box.check()
        # The other browser sees it ticked, without a reload.
        deadline = time.monotonic() + 10
        while not await planner_box.is_checked():
            assert time.monotonic() < deadline, "the planner never saw the task ticked"
            await planner.wait_for_timeout(50)
        await screenshot(planner, "tasks-ticked")
        await planner.set_viewport_size({"width": 390, "height": 844})
        await screenshot(planner, "tasks-phone")
        await planner.set_viewport_size({"width": 1400, "height": 900})
        # The server has it, and its events say who completed it.
        deadline = time.monotonic() + 10
        while True:
            now = await demo.json("/api/weddings/demo/docs/tasks", role="couple")
            assert isinstance(now, dict)
            if now["tasks"]["t-invitations"]["done"] is True:
                break
            assert time.monotonic() < deadline, "the tick never reached the server"
            await couple.wait_for_timeout(50)
        events = await demo.json("/api/weddings/demo/events?types=task.completed", role="couple")
        assert isinstance(events, dict)
        completed = [e for e in events["events"] if e["data"].get("id") == "t-invitations"]
        assert completed and completed[-1]["actor"]["sub"] == "demo-couple"

        # And back: the planner reopens it, the couple sees that.
        await planner_box.uncheck()
        deadline = time.monotonic() + 10
        while await couple_box.is_checked():
            assert time.monotonic() < deadline, "the couple never saw the task reopened"
            await couple.wait_for_timeout(50)
    finally:
        await couple_context.close()
        await planner_context.close()


async def test_family_reads_the_checklist_without_controls(demo: Demo, browser: Any) -> None:
    context, page = await open_app(browser, demo.link("family"))
    try:
        await page.goto(page.url.split("#")[0] + "#tasks")
        await page.get_by_role("note").filter(has_text="may view the tasks").wait_for()
        box = page.get_by_role("checkbox", name="Book the venue")
        assert await box.is_checked() and await box.is_disabled()
        assert await page.get_by_role("button", name="Add task").count() == 0
    finally:
        await context.close()
    # Vendors and friends do not get the section at all.
    context, page = await open_app(browser, demo.link("vendor"))
    try:
        await page.get_by_role("navigation", name="Sections").wait_for()
        assert await page.get_by_role("link", name="Tasks").count() == 0
    finally:
        await context.close()
