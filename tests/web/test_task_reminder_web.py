"""A task's reminder in the app, with the fake clock (issue 54, "Done when"): a task falls
due as the server's clock is moved, and the couple's inbox in Chromium shows exactly one
reminder (the bell's unread count 1, one row), live in the open app (the job's
``task.due`` event refreshes it); moving the clock further, and restarting the server on
the same store, never add a second.

The fake clock reaches only the process it is installed in, so the server here is the app
itself under real uvicorn in the test's own process and event loop (as the testing kit's
``crdt_clock`` says: "an app it serves itself"), with a SQLite file; Chromium talks to it
over real HTTP and WebSockets. A ``crdt-server serve --demo`` child keeps the real time."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Response

from crdt_server import clock
from crdt_server.app import create_app
from crdt_server.features.tasks import due_time
from crdt_server.settings import Settings
from tests.features.tasks.test_reminders import W, op, pending
from tests.features.test_feature_list import MINT, SECRET, serving
from tests.web.conftest import PAGE_ERRORS, open_app, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(120)]

DAY = 24 * 3600.0
TITLE = "Book the cake tasting"


@pytest.fixture(autouse=True)
def no_page_errors() -> Iterator[None]:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


def link(base: str) -> str:
    # Valid for a week of the fake clock (the test moves it four days); the app would
    # renew it only after half of its life by the browser's own (real) time.
    token = MINT(sub="cal", role="couple", wedding=W, name="Cal", ttl=7 * DAY)
    return f"{base}/app/#token={token}"


async def inbox_rows(page: Page, unread: int, shot: str | None = None) -> list[str]:
    """Reload the app (it fetches the inbox as it opens), wait for the bell to say
    ``unread``, open the inbox and return the text of its rows (with a screenshot named
    ``shot`` of it open)."""
    # Only a request the reloaded page made: one the page before it sent (the app asks
    # again when an event comes) may answer after the reload began, and its body is gone
    # with that page ("a response that was navigated away from", twice in the full tier,
    # the second time with requests told apart by a time taken before the reload). The
    # reloaded page's own requests start after its document's answer began to arrive.
    document: list[float] = []  # when the reloaded document's answer began (epoch ms)

    def on_document(r: Response) -> None:
        if r.request.is_navigation_request() and r.frame == page.main_frame:
            timing = r.request.timing
            document.append(timing["startTime"] + max(0.0, timing["responseStart"]))

    def reloaded_inbox(r: Response) -> bool:
        fresh = bool(document) and r.request.timing["startTime"] >= document[-1]
        return fresh and "/notifications?" in r.url and r.request.method == "GET"

    page.on("response", on_document)
    try:
        async with page.expect_response(reloaded_inbox) as loaded:
            await page.reload()
    finally:
        page.remove_listener("response", on_document)
    # What the app itself was told (so an empty inbox is not one that did not load yet).
    told = await (await loaded.value).json()
    assert told["unread"] == unread, told
    await page.get_by_role("status").filter(has_text="Synced").wait_for(timeout=10_000)
    label = f"Inbox, {unread} unread" if unread else "Inbox"
    bell = page.get_by_role("button", name=label, exact=True)
    await bell.wait_for(timeout=10_000)
    await bell.click()
    await page.get_by_role("heading", name="Inbox").wait_for()
    rows = page.get_by_role("list", name="Notifications").get_by_role("listitem")
    texts = [" ".join(t.split()) for t in await rows.all_inner_texts()]
    if shot is not None:
        await screenshot(page, shot)
    await page.get_by_role("button", name="Close the inbox").click()
    return texts


def reminders_stored(data: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(data / "crdt.sqlite3") as conn:
        rows = conn.execute(
            "SELECT sub, message, count(*) FROM notifications WHERE reason = 'task.due'"
            " GROUP BY sub, message"
        ).fetchall()
    return [(str(r), str(m), int(n)) for r, m, n in rows]


async def test_a_reminder_is_in_the_inbox_once_as_the_clock_moves_and_across_a_restart(
    tmp_path: Path, browser: Browser, crdt_clock: clock.FakeClock
) -> None:
    settings = Settings(data_dir=tmp_path, auth_secret=SECRET)
    # The day after tomorrow, by the server's clock: reminded at 09:00 UTC that day (the
    # wedding has no time zone).
    day = (clock.utcnow().date() + timedelta(days=2)).isoformat()
    due = due_time(day, None)
    contexts: list[BrowserContext] = []
    try:
        async with serving(create_app(settings)) as http:
            task = {"op": "add_task", "task_id": "cake", "title": TITLE, "due": day}
            await op(http, "tasks", task)
            await pending(tmp_path, "cake", due)
            context, page = await open_app(browser, link(str(http.base_url).rstrip("/")))
            contexts.append(context)
            assert await inbox_rows(page, 0) == []

            await crdt_clock.advance(due - clock.now() - 1)
            assert await inbox_rows(page, 0) == []
            await crdt_clock.advance(1)  # 09:00 on its day: the scheduler ran the job
            # The open app hears the job's event and its bell says so, with no reload.
            live = page.get_by_role("button", name="Inbox, 1 unread", exact=True)
            await live.wait_for(timeout=10_000)
            rows = await inbox_rows(page, 1, shot="task-reminder-inbox")
            assert len(rows) == 1 and f"Due today: {TITLE}" in rows[0], rows
            await crdt_clock.advance(DAY)
            assert len(await inbox_rows(page, 1)) == 1
            await context.close()
        # The server restarts on the same store (its tasks room is reconciled again as it
        # loads) and the clock goes on.
        async with serving(create_app(settings)) as http:
            context, page = await open_app(browser, link(str(http.base_url).rstrip("/")))
            contexts.append(context)
            await crdt_clock.advance(DAY)
            rows = await inbox_rows(page, 1)
            assert len(rows) == 1 and f"Due today: {TITLE}" in rows[0], rows
            await context.close()
    finally:
        for context in contexts:
            await context.close()
    assert reminders_stored(tmp_path) == [("cal", "cake", 1)]
