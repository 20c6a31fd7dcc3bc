"""The guest list at size (issue 53, point 6), in Debian's Chromium against a real ``--demo``
server: bulk actions on a selection (each one undo step, the selection exported as CSV) and a
list of hundreds of guests that draws only the rows near the screen, scrolled and searched."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web.conftest import PAGE_ERRORS, Demo, expect, guests_and_seating, open_app, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def settled(demo: Demo, check: Any, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        guests, _ = await guests_and_seating(demo)
        if check(guests):
            return guests
        assert time.monotonic() < deadline, f"never stored: {what}"
        await asyncio.sleep(0.05)


async def test_bulk_actions_on_a_selection_are_one_undo_step_each(
    demo: Demo, browser: Any, tmp_path: Path
) -> None:
    guests, _ = await guests_and_seating(demo)
    chosen = sorted(guests.items(), key=lambda kv: kv[1]["name"])[:3]
    ids = [gid for gid, _ in chosen]
    before = {gid: g["rsvp"] for gid, g in chosen}
    _, page = await open_app(browser, demo.link("couple"))
    for _, g in chosen:
        await page.get_by_role("checkbox", name=f"Select {g['name']}", exact=True).check()
    bar = page.get_by_role("region", name="Selected guests")
    await expect(bar).to_contain_text("3 selected")
    await bar.get_by_label("RSVP").select_option("declined")
    await bar.get_by_role("button", name="Set RSVP").click()
    await settled(demo, lambda gs: all(gs[i]["rsvp"] == "declined" for i in ids), "the RSVPs")

    # The selection as CSV: a header and three rows.
    async with page.expect_download() as download_info:
        await bar.get_by_role("button", name="Export as CSV").click()
    saved = tmp_path / "selected.csv"
    await (await download_info.value).save_as(saved)
    lines = saved.read_text().splitlines()
    assert lines[0].startswith("name,") and len(lines) == 4, lines

    # One Undo puts all three back.
    await page.get_by_role("button", name="Undo: RSVP of 3 guests set to declined").click()
    await settled(demo, lambda gs: all(gs[i]["rsvp"] == before[i] for i in ids), "the undo")

    # Removing the selection is one step too, undone from its toast.
    await bar.get_by_role("button", name="Remove").click()
    await settled(demo, lambda gs: not any(i in gs for i in ids), "the removal")
    await page.locator(".toast").get_by_role("button", name="Undo").click()
    await settled(demo, lambda gs: all(i in gs for i in ids), "the undone removal")


async def test_hundreds_of_guests_draw_only_the_rows_near_the_screen(
    demo: Demo, browser: Any
) -> None:
    lines = ["name,household,rsvp"] + [
        f"Zed Guest {i:03d},House {i // 4},pending" for i in range(300)
    ]
    async with httpx.AsyncClient() as client:
        done = await client.post(
            f"{demo.url}/api/weddings/demo/guests.csv",
            content="\r\n".join(lines) + "\r\n",
            headers={
                "Authorization": f"Bearer {demo.tokens['planner']}",
                "Content-Type": "text/csv",
            },
        )
    assert done.status_code == 200, done.text
    total = len((await guests_and_seating(demo))[0])
    assert total > 400
    _, page = await open_app(browser, demo.link("couple"), width=390, height=844)
    rows = page.get_by_role("list", name="Guest list").locator("li.row")
    await expect(rows.first).to_be_visible()
    drawn = await rows.count()
    assert drawn < 200, f"{drawn} rows drawn of {total}"
    # Scrolled to the end, the last guests are drawn (the list is grouped by household, the
    # guests of none last): the list ends with a guest's row on the screen, no spacer below.
    await page.evaluate("scrollTo(0, document.body.scrollHeight)")
    at_end = """() => {
        const last = document.querySelector('ul[aria-label="Guest list"]').lastElementChild
        return last.classList.contains('row') && last.getBoundingClientRect().top < innerHeight
    }"""
    deadline = time.monotonic() + 10
    while not await page.evaluate(at_end):
        assert time.monotonic() < deadline, "the end of the list is not drawn"
        await page.evaluate("scrollTo(0, document.body.scrollHeight)")
        await asyncio.sleep(0.1)
    await screenshot(page, "guest-list-long-390px")
    await page.evaluate("scrollTo(0, 0)")
    await page.get_by_role("searchbox", name="Search").fill("Zed Guest 150")
    await expect(page.get_by_text("Zed Guest 150", exact=True)).to_be_visible()
