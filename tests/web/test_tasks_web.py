"""The tasks view in the planner app (Debian's Chromium driven by Playwright) against a real
``--demo`` server: the couple ticks a task done in one browser and the planner, in another
browser context, sees it ticked at once; family reads the checklist without controls; the
due dates follow the wedding date; on a server whose ``CRDT_SERVER_PERMISSIONS`` was
written before tasks existed (it does not name ``tasks``), the couple still writes them; a
removed task comes back with the Undo toast, in both browsers."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Locator, Page

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

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(90)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def show_tasks(*pages: Page) -> None:
    """Open the Tasks view in each of ``pages`` and wait for it."""
    for page in pages:
        await page.goto(page.url.split("#")[0] + "#tasks")
        await page.get_by_role("heading", name="Tasks").wait_for()


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
        await show_tasks(couple, planner)
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


async def until_checked(page: Page, box: Locator, checked: bool, what: str) -> None:
    deadline = time.monotonic() + 10
    while await box.is_checked() != checked:
        assert time.monotonic() < deadline, what
        await page.wait_for_timeout(50)


async def test_a_matrix_without_tasks_still_lets_the_couple_tick_tasks(
    tmp_path: Path, browser: Any
) -> None:
    # An operator's matrix written before tasks existed: no row names ``tasks``.
    matrix = {
        "couple": {"timeline": "write", "budget": "write", "guests": "write", "seating": "write"},
        "planner": {"timeline": "write", "guests": "write", "seating": "write"},
        "family": {"timeline": "read", "guests": "read"},
        "vendor": {"timeline": "read"},
        "friend": {"timeline": "read"},
    }
    env = {"CRDT_SERVER_ADMIN_API_KEY": ADMIN_KEY, "CRDT_SERVER_PERMISSIONS": json.dumps(matrix)}
    async with ServerProcess(
        tmp_path / "data", env=env, args=["--demo"], anonymous=False
    ) as server:
        demo = await demo_links(server)
        access = await demo.json("/api/weddings/demo/access", role="couple")
        assert isinstance(access, dict) and access["docs"]["tasks"] == "write"
        first_context, first = await open_app(browser, demo.link("couple"))
        second_context, second = await open_app(browser, demo.link("couple"))
        try:
            await show_tasks(first, second)
            first_box = first.get_by_role("checkbox", name="Send the invitations")
            second_box = second.get_by_role("checkbox", name="Send the invitations")
            assert await first_box.is_enabled() and not await first_box.is_checked()
            await first_box.check()
            # The couple's other browser sees it ticked, without a reload.
            await until_checked(second, second_box, True, "the second context never saw it")
            deadline = time.monotonic() + 10
            while True:
                tasks = await demo.json("/api/weddings/demo/docs/tasks", role="couple")
                assert isinstance(tasks, dict)
                if tasks["tasks"]["t-invitations"]["done"] is True:
                    break
                assert time.monotonic() < deadline, "the tick never reached the server"
                await first.wait_for_timeout(50)
            # And back, from the second context.
            await second_box.uncheck()
            await until_checked(first, first_box, False, "the first context never saw it undone")
        finally:
            await first_context.close()
            await second_context.close()
    # The operator was told once that the matrix does not name tasks.
    assert bytes(server.log).count(b"does not name 'tasks'") == 1, server.log.decode()


async def test_a_removed_task_comes_back_with_the_toasts_undo_in_both_browsers(
    demo: Demo, browser: Any
) -> None:
    async def stored_tasks() -> dict[str, Any]:
        tasks = await demo.json("/api/weddings/demo/docs/tasks", role="couple")
        assert isinstance(tasks, dict)
        return tasks["tasks"]  # type: ignore[no-any-return]

    async def until_stored(check: Any, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + 10
        while not check(tasks := await stored_tasks()):
            assert time.monotonic() < deadline, f"never stored: {what}"
            await asyncio.sleep(0.05)
        return tasks

    before = (await stored_tasks())["t-invitations"]
    couple_context, couple = await open_app(browser, demo.link("couple"))
    planner_context, planner = await open_app(browser, demo.link("planner"))
    try:
        await show_tasks(couple, planner)
        couple_row = couple.locator('li[data-entity="t-invitations"]')
        planner_row = planner.locator('li[data-entity="t-invitations"]')
        await planner_row.wait_for()

        # Removed at once, no confirm(): a toast offers Undo, as for every other removal.
        couple.on("dialog", lambda dialog: PAGE_ERRORS.append(f"a dialog: {dialog.message}"))
        await couple_row.locator("summary").click()
        await couple_row.get_by_role("button", name="Remove Send the invitations").click()
        toast = couple.locator(".toast")
        await expect(toast).to_contain_text("Send the invitations removed")
        await expect(couple_row).to_have_count(0)
        await expect(planner_row).to_have_count(0)
        await until_stored(lambda t: "t-invitations" not in t, "the removal")

        # One Undo puts it back, as it was, on the server and in the other browser.
        await toast.get_by_role("button", name="Undo").click()
        tasks = await until_stored(lambda t: "t-invitations" in t, "the undo")
        assert tasks["t-invitations"] == before
        await expect(planner.get_by_role("checkbox", name="Send the invitations")).to_be_visible()
        await expect(couple.get_by_role("checkbox", name="Send the invitations")).to_be_visible()
        await expect(toast).to_have_count(0)
    finally:
        await couple_context.close()
        await planner_context.close()
