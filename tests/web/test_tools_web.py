"""Share and export in the planner app (issue 53, point 5), in Debian's Chromium against a real
``--demo`` server: a calendar link that serves the timeline, the guest list downloaded as CSV,
a CSV import previewed (dry run) then imported, a file with errors refused with its rows named,
the wedding's export downloaded by the couple; and what a role may not use is not offered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web.conftest import PAGE_ERRORS, Demo, expect, guests_and_seating, open_app, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(90)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def test_the_couple_shares_the_calendar_moves_guests_by_csv_and_exports(
    demo: Demo, browser: Any, tmp_path: Path
) -> None:
    _, page = await open_app(browser, demo.link("couple"))
    await page.get_by_role("button", name="Share").click()
    panel = page.get_by_role("region", name="Share and export")

    # A calendar link that serves the timeline to a calendar app (no other credential).
    await panel.get_by_role("button", name="Get a calendar link").click()
    link = await panel.get_by_label("Calendar link").input_value()
    async with httpx.AsyncClient() as client:
        feed = await client.get(link)
    assert feed.status_code == 200 and feed.text.startswith("BEGIN:VCALENDAR"), feed.text[:200]

    # The guest list as CSV.
    async with page.expect_download() as download_info:
        await panel.get_by_role("button", name="Download the guest list").click()
    download = await download_info.value
    saved = tmp_path / "guests.csv"
    await download.save_as(saved)
    text = saved.read_text(encoding="utf-8-sig")
    header = text.splitlines()[0]
    assert header.startswith("id,"), header

    # A file with an error: previewed, its row named, nothing imported, Import disabled.
    columns = header.split(",")
    row = {c: "" for c in columns}
    bad = tmp_path / "bad.csv"
    bad.write_text(
        header
        + "\n"
        + ",".join({**row, "name": "Grace Hopper", "rsvp": "maybe"}[c] for c in columns)
        + "\n"
    )
    await panel.get_by_label("Import guests from a CSV file").set_input_files(str(bad))
    await panel.get_by_role("button", name="Preview the import").click()
    preview = panel.get_by_role("region", name="Import preview")
    await expect(preview).to_contain_text("Line 2, rsvp")
    await expect(panel.get_by_role("button", name="Import", exact=True)).to_be_disabled()

    # A good file: the preview says what changes, then Import adds the guest.
    good = tmp_path / "good.csv"
    good.write_text(
        header
        + "\n"
        + ",".join({**row, "name": "Grace Hopper", "rsvp": "accepted"}[c] for c in columns)
        + "\n"
    )
    await panel.get_by_label("Import guests from a CSV file").set_input_files(str(good))
    await panel.get_by_role("button", name="Preview the import").click()
    await expect(preview).to_contain_text("1 guest to add, 0 guests to change")
    assert not [
        g for g in (await guests_and_seating(demo))[0].values() if g["name"] == "Grace Hopper"
    ]
    await screenshot(page, "share-import-preview")
    await panel.get_by_role("button", name="Import", exact=True).click()
    await page.get_by_text("Grace Hopper", exact=True).wait_for(timeout=10_000)

    # The whole wedding, as the couple may export it.
    async with page.expect_download() as download_info:
        await panel.get_by_role("button", name="Export the wedding").click()
    exported = tmp_path / "wedding.json"
    await (await download_info.value).save_as(exported)
    assert json.loads(exported.read_text())["format"] == "crdt-server-wedding"


async def test_a_vendor_is_offered_only_what_its_role_may_use(demo: Demo, browser: Any) -> None:
    _, page = await open_app(browser, demo.link("vendor"))
    await page.get_by_role("button", name="Share").click()
    panel = page.get_by_role("region", name="Share and export")
    await expect(panel.get_by_role("button", name="Download the guest list")).to_be_visible()
    for absent in ("Get a calendar link", "Preview the import", "Export the wedding"):
        assert await panel.get_by_role("button", name=absent).count() == 0, absent
