"""A wedding weekend in the planner app (issue 54, point 4): the timeline's days in the
wedding's zone (Europe/Berlin) across the end of summer time, a day switcher, an item added
on the day before and one that ends after midnight, each seen by a second person on a device
in another zone at the wedding's local time."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import pytest

from tests.web.conftest import PAGE_ERRORS, Demo, expect, open_app, screenshot, status

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(60)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def ops(demo: Demo, *bodies: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=demo.url, timeout=10) as http:
        auth = {"Authorization": f"Bearer {demo.tokens['planner']}"}
        for body in bodies:
            answer = await http.post(
                "/api/weddings/demo/docs/timeline/ops", json=body, headers=auth
            )
            assert answer.status_code == 200, answer.text


async def stored(demo: Demo, title: str) -> dict[str, Any]:
    """The item titled ``title`` once the server has it (a deadline, not a sleep)."""
    deadline = time.monotonic() + 10
    while True:
        timeline = await demo.json("/api/weddings/demo/docs/timeline")
        assert isinstance(timeline, dict)
        found = [i for i in timeline["items"].values() if i["title"] == title]
        if found:
            return dict(found[0])
        assert time.monotonic() < deadline, f"no item {title!r} on the server"
        await asyncio.sleep(0.05)


async def test_a_weekend_across_the_october_change_day_by_day_in_two_browsers(
    demo: Demo, browser: Any
) -> None:
    # The demo wedding (Europe/Berlin) moves to Saturday 24 October 2026; summer time ends
    # at 03:00 the next morning. Wall clocks over HTTP: the server writes each day's offset.
    await ops(
        demo,
        {"op": "set_profile", "date": "2026-10-24"},
        {
            "op": "add_timeline_item",
            "item_id": "vows",
            "title": "Vows",
            "start": "2026-10-24T15:00",
            "end": "2026-10-24T15:30",
            "location": "Chapel",
        },
        {
            "op": "add_timeline_item",
            "item_id": "party",
            "title": "After-party",
            "start": "2026-10-24T22:00",
            "end": "2026-10-25T01:30",
            "location": "Barn",
        },
        {
            "op": "add_timeline_item",
            "item_id": "brunch",
            "title": "Brunch",
            "start": "2026-10-25T11:00",
            "end": "2026-10-25T12:30",
            "location": "Orangery",
        },
    )
    assert (await stored(demo, "Brunch"))["start"] == "2026-10-25T11:00:00+01:00"

    _, couple = await open_app(
        browser,
        demo.link("couple"),
        width=1400,
        height=900,
        timezone_id="Asia/Tokyo",
        locale="en-GB",
    )
    _, planner = await open_app(
        browser,
        demo.link("planner"),
        width=390,
        height=844,
        timezone_id="America/New_York",
        locale="en-GB",
    )
    for page in (couple, planner):
        await page.get_by_role("link", name="Timeline").click()
    days = couple.get_by_role("navigation", name="Days of the timeline")
    # The wedding's day is shown first: the after-party ends the next day, no finding.
    wedding_day = days.get_by_role("button", name=re.compile(r"\(wedding day\)"))
    await expect(wedding_day).to_have_attribute("aria-pressed", "true")
    schedule = couple.get_by_role("list", name=re.compile("Schedule for"))
    party = schedule.locator("li.item").filter(has_text="After-party")
    await expect(party.locator("time")).to_have_text("22:00–01:30")
    await expect(party).to_contain_text("ends the next day")
    await expect(schedule.locator("li.item").filter(has_text="Brunch")).to_have_count(0)
    await days.get_by_role("button", name=re.compile(r"\(the day after\)")).click()
    brunch = schedule.locator("li.item").filter(has_text="Brunch")
    await expect(brunch.locator("time")).to_have_text("11:00–12:30")

    # The couple adds the rehearsal dinner on the day before (not shown yet: a choice of the
    # form), and a night swim that ends after midnight.
    form = couple.get_by_role("form", name="Add a timeline item")
    await form.get_by_label("Title").fill("Rehearsal dinner")
    await form.get_by_role("combobox", name=re.compile("^Day")).select_option(
        "2026-10-23"
    )  # the day before
    await form.get_by_label("Starts").fill("19:00")
    await form.get_by_label("Ends").fill("22:00")
    await form.get_by_role("button", name="Add item").click()
    await expect(
        days.get_by_role("button", name=re.compile(r"\(the day before\)"))
    ).to_have_attribute("aria-pressed", "true")
    await expect(
        schedule.locator("li.item").filter(has_text="Rehearsal dinner").locator("time")
    ).to_have_text("19:00–22:00")
    await form.get_by_label("Title").fill("Night swim")
    await form.get_by_role("combobox", name=re.compile("^Day")).select_option("2026-10-24")
    await form.get_by_label("Starts").fill("23:00")
    await form.get_by_label("Ends").fill("00:30")
    await form.get_by_role("button", name="Add item").click()
    # Ending before it starts without "the next day" is refused in the form, in words.
    await expect(form.get_by_label("Ends")).to_have_accessible_description(
        re.compile(r"The item ends \(00:30\) before it starts \(23:00\)\. If it runs past midnight")
    )
    await form.get_by_label("Runs past midnight").check()
    await form.get_by_role("button", name="Add item").click()
    swim = schedule.locator("li.item").filter(has_text="Night swim")
    await expect(swim.locator("time")).to_have_text("23:00–00:30")
    await status(couple).filter(has_text="Synced").wait_for(timeout=5000)
    await screenshot(couple, "timeline-days-1400")

    # The planner, in New York, sees both at Berlin's time on their days.
    planner_days = planner.get_by_role("navigation", name="Days of the timeline")
    before = planner_days.get_by_role("button", name=re.compile(r"\(the day before\)"))
    await before.click()
    dinner = planner.locator("main li.item").filter(has_text="Rehearsal dinner")
    await expect(dinner.locator("time")).to_have_text("19:00–22:00")
    await planner_days.get_by_role("button", name=re.compile(r"\(wedding day\)")).click()
    await expect(planner.locator("main li.item").filter(has_text="Night swim")).to_contain_text(
        "ends the next day"
    )
    await screenshot(planner, "timeline-days-390")

    # The planner moves the brunch half an hour later, in the app, on Sunday.
    await planner_days.get_by_role("button", name=re.compile(r"\(the day after\)")).click()
    await planner.get_by_role("button", name="Edit Brunch").click()
    edit = planner.get_by_role("form", name="Edit Brunch")
    await expect(edit.get_by_label("Day", exact=True)).to_have_value("2026-10-25")
    await edit.get_by_label("Starts").fill("11:30")
    await edit.get_by_role("button", name="Save").click()
    moved = planner.locator("main li.item").filter(has_text="Brunch")
    await expect(moved.locator("time")).to_have_text("11:30–12:30")

    # Each time is written with its day's offset in Berlin.
    assert (await stored(demo, "Rehearsal dinner"))["start"] == "2026-10-23T19:00:00+02:00"
    swim_stored = await stored(demo, "Night swim")
    assert (swim_stored["start"], swim_stored["end"]) == (
        "2026-10-24T23:00:00+02:00",
        "2026-10-25T00:30:00+02:00",
    )
    deadline = time.monotonic() + 10
    while (await stored(demo, "Brunch"))["start"] != "2026-10-25T11:30:00+01:00":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    conflicts = await demo.json("/api/weddings/demo/conflicts")
    assert isinstance(conflicts, dict)
    assert not [c for c in conflicts["conflicts"] if c["code"] == "timeline.ends_before_start"]
