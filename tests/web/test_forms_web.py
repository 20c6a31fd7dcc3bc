"""Forms people can trust (issue 53, points 1 and 2), in Debian's Chromium against a real
``--demo`` server: every refused input shows its reason beside its control (in the viewport,
named by the control's ``aria-describedby``), keeps what was typed and puts focus on the first
wrong field; an edit form writes only what its person changed, never reverts another person's
change, and asks before writing a field both changed; and the seating picker of the next guest
never shows the table the previous one was put at."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from tests.web.conftest import (
    PAGE_ERRORS,
    Demo,
    expect,
    guests_and_seating,
    open_app,
    screenshot,
    status,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(90)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def refused(page: Any, control: Any, reason: str) -> None:
    """``control`` is focused, marked invalid, described by ``reason``, which is on screen."""
    await expect(control).to_be_focused()
    await expect(control).to_have_attribute("aria-invalid", "true")
    await expect(control).to_have_accessible_description(re.compile(re.escape(reason)))
    described = await control.get_attribute("aria-describedby")
    assert described, "the refused control names no description"
    note = page.locator(f"[id='{described.split()[0]}']")
    await expect(note).to_contain_text(reason)
    await expect(note).to_be_in_viewport()


async def post_op(demo: Demo, doc: str, op: dict[str, Any], role: str = "planner") -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{demo.url}/api/weddings/demo/docs/{doc}/ops",
            json=op,
            headers={"Authorization": f"Bearer {demo.tokens[role]}"},
        )
        assert response.status_code < 300, response.text


async def test_each_form_shows_why_it_was_refused_and_keeps_what_was_typed(
    demo: Demo, browser: Any
) -> None:
    _, page = await open_app(browser, demo.link("couple"))

    # Guests: a guest without a name (the household typed stays).
    add = page.get_by_role("form", name="Add a guest")
    await add.get_by_label("Household").fill("The Lovelaces")
    await add.get_by_role("button", name="Add guest").click()
    await refused(page, add.get_by_label("Name", exact=True), "A guest needs a name.")
    await expect(add.get_by_label("Household")).to_have_value("The Lovelaces")
    # Typing in the field takes the reason away.
    await add.get_by_label("Name", exact=True).fill("Ada")
    await expect(add.get_by_label("Name", exact=True)).not_to_have_attribute("aria-invalid", "true")

    # A guest's edit form: the name emptied.
    guests, _ = await guests_and_seating(demo)
    name = sorted(g["name"] for g in guests.values())[0]
    await page.get_by_role("button", name=f"Edit {name}", exact=True).click()
    edit = page.get_by_role("form", name=f"Edit {name}")
    await edit.get_by_label("Name").fill("")
    await edit.get_by_label("Meal").fill("risotto")
    await edit.get_by_role("button", name="Save").click()
    await refused(page, edit.get_by_label("Name"), "A guest needs a name.")
    await expect(edit.get_by_label("Meal")).to_have_value("risotto")
    await edit.get_by_role("button", name="Cancel").click()

    # Timeline: an item that ends before it starts.
    await page.get_by_role("link", name="Timeline").click()
    item = page.get_by_role("form", name="Add a timeline item")
    await item.get_by_label("Title").fill("First dance")
    await item.get_by_label("Starts").fill("21:00")
    await item.get_by_label("Ends").fill("20:30")
    await item.get_by_label("Location").fill("Ballroom")
    await item.get_by_role("button", name="Add item").click()
    await refused(
        page, item.get_by_label("Ends"), "The item ends (20:30) before it starts (21:00)."
    )
    await expect(item.get_by_label("Title")).to_have_value("First dance")
    await expect(item.get_by_label("Starts")).to_have_value("21:00")
    await expect(item.get_by_label("Location")).to_have_value("Ballroom")
    await screenshot(page, "refused-timeline-item")

    # Seating: a table with no seats; a table's seats set to 0 in place.
    await page.get_by_role("link", name="Seating").click()
    table = page.get_by_role("form", name="Add a table")
    await table.get_by_label("Table name").fill("Garden")
    await table.get_by_label("Seats").fill("0")
    await table.get_by_role("button", name="Add table").click()
    await refused(page, table.get_by_label("Seats"), "A table has 1 to 1000 seats")
    await expect(table.get_by_label("Table name")).to_have_value("Garden")
    seats = page.get_by_label("Seats at Head table")
    await seats.fill("0")
    await seats.press("Enter")
    await refused(page, seats, "A table has 1 to 1000 seats")
    await expect(seats).to_have_value("0")

    # Budget: a category's amount, a planned amount in place, the total, a payment.
    await page.get_by_role("link", name="Budget").click()
    category = page.get_by_role("form", name="Add a category")
    await category.get_by_label("Category name").fill("Cake")
    await category.get_by_label("Planned").fill("lots")
    await category.get_by_role("button", name="Add category").click()
    await refused(page, category.get_by_label("Planned"), "Type an amount such as 1250.00.")
    await expect(category.get_by_label("Category name")).to_have_value("Cake")
    total = page.get_by_role("form", name="Budget total")
    await total.get_by_label("Total budget").fill("a lot")
    await total.get_by_role("button", name="Set total").click()
    await refused(page, total.get_by_label("Total budget"), "Type an amount such as 30000.00")
    await expect(total.get_by_label("Total budget")).to_have_value("a lot")
    planned = page.locator("table.budget input.money").first
    await planned.fill("12x")
    await planned.press("Tab")
    await refused(page, planned, "Type an amount such as 1250.00.")
    await expect(planned).to_have_value("12x")
    payment = page.get_by_role("form", name="Record a payment")
    await payment.get_by_label("Amount").fill("250.00")
    await payment.get_by_label("Paid by").fill("Ada")
    await payment.get_by_role("button", name="Record payment").click()
    await refused(
        page,
        payment.get_by_label("Date"),
        "A payment needs the date it was paid (or choose Scheduled for one still to pay).",
    )
    await expect(payment.get_by_label("Amount")).to_have_value("250.00")
    await expect(payment.get_by_label("Paid by")).to_have_value("Ada")

    # Threads: a thread without a subject; a message over 8 KiB.
    await page.locator("table.budget button.discuss").first.click()
    panel = page.locator("#thread-panel")
    start = panel.get_by_role("form", name="Start a thread")
    await start.get_by_role("button", name="Start thread").click()
    await refused(page, start.get_by_label("Subject"), "A thread needs a subject.")
    await start.get_by_label("Subject").fill("Deposit")
    await start.get_by_role("button", name="Start thread").click()
    message = panel.get_by_role("form", name="Write a message")
    body = "é" * 4200  # 8,400 bytes
    await message.get_by_label("Message").fill(body)
    await message.get_by_role("button", name="Send").click()
    await refused(page, message.get_by_label("Message"), "A message has at most 8 KiB of text")
    await expect(message.get_by_label("Message")).to_have_value(body)
    await screenshot(page, "refused-message")


async def test_a_seat_the_server_refuses_is_explained_beside_that_guests_picker(
    demo: Demo, browser: Any
) -> None:
    guests, seating = await guests_and_seating(demo)
    counts: dict[str, int] = {}
    for a in seating["assignments"].values():
        counts[a["table_id"]] = counts.get(a["table_id"], 0) + 1
    table_id, table = next(
        (tid, t) for tid, t in sorted(seating["tables"].items()) if counts.get(tid, 0) >= 1
    )
    # The table is full now (capacity = who sits there), as the server will see it.
    await post_op(
        demo, "seating", {"op": "update_table", "table_id": table_id, "capacity": counts[table_id]}
    )
    name = sorted(
        g["name"]
        for gid, g in guests.items()
        if g["rsvp"] != "declined" and gid not in seating["assignments"]
    )[0]
    # Family seats guests through operations, which the server checks.
    _, page = await open_app(browser, demo.link("family"))
    await page.get_by_role("link", name="Seating").click()
    picker = page.get_by_label(f"Table for {name}")
    await picker.select_option(table_id)
    await refused(page, picker, f"table '{table['name']}' is full")
    await status(page).filter(has_text="Synced").wait_for(timeout=10_000)
    await expect(picker).to_have_value("")


async def test_the_next_guests_table_picker_shows_no_table_after_the_first_is_seated(
    demo: Demo, browser: Any
) -> None:
    guests, seating = await guests_and_seating(demo)
    counts: dict[str, int] = {}
    for a in seating["assignments"].values():
        counts[a["table_id"]] = counts.get(a["table_id"], 0) + 1
    table_id = next(
        tid
        for tid, t in sorted(seating["tables"].items())
        if counts.get(tid, 0) + 2 <= t["capacity"]
    )
    first, second = sorted(
        g["name"]
        for gid, g in guests.items()
        if g["rsvp"] != "declined" and gid not in seating["assignments"]
    )[:2]
    _, page = await open_app(browser, demo.link("couple"))
    await page.get_by_role("link", name="Seating").click()
    unseated = page.get_by_role("region", name=re.compile("^Not seated yet"))
    await unseated.get_by_label(f"Table for {first}").select_option(table_id)
    await expect(unseated.get_by_text(first, exact=True)).to_have_count(0)
    # The picker now next in the list is the second guest's, and she sits nowhere yet.
    await expect(unseated.get_by_label(f"Table for {second}")).to_have_value("")
    await expect(unseated.locator("select.table-picker").first).to_have_value("")


async def test_a_stale_form_leaves_the_other_persons_change(demo: Demo, browser: Any) -> None:
    guests, _ = await guests_and_seating(demo)
    gid, guest = sorted(guests.items(), key=lambda kv: kv[1]["name"])[2]
    name = guest["name"]
    _, couple = await open_app(browser, demo.link("couple"))
    _, planner = await open_app(browser, demo.link("planner"))

    await planner.get_by_role("button", name=f"Edit {name}", exact=True).click()
    form = planner.get_by_role("form", name=f"Edit {name}")
    await form.get_by_label("Household").fill("The Planners' pick")

    # Meanwhile the couple changes the meal.
    await couple.get_by_role("button", name=f"Edit {name}", exact=True).click()
    theirs = couple.get_by_role("form", name=f"Edit {name}")
    await theirs.get_by_label("Meal").fill("lobster")
    await theirs.get_by_role("button", name="Save").click()
    await status(couple).filter(has_text="Synced").wait_for(timeout=10_000)

    # The planner's open form shows the new meal, marked, and the household typed stays.
    meal = form.get_by_label("Meal")
    await expect(meal).to_have_value("lobster", timeout=5000)
    await expect(meal).to_have_accessible_description(
        re.compile("Changed by someone else while you were editing")
    )
    await expect(form.get_by_label("Household")).to_have_value("The Planners' pick")
    await screenshot(planner, "stale-form-theirs")
    await form.get_by_role("button", name="Save").click()
    await status(planner).filter(has_text="Synced").wait_for(timeout=10_000)
    deadline = time.monotonic() + 10
    while True:
        stored = (await guests_and_seating(demo))[0][gid]
        if stored.get("household") == "The Planners' pick":
            break
        assert time.monotonic() < deadline, stored
        await planner.wait_for_timeout(50)
    # Only the household was written: the couple's meal and every other field stand.
    assert stored["meal"] == "lobster"
    assert stored["name"] == name
    assert stored["rsvp"] == guest["rsvp"]


async def test_a_field_both_changed_is_written_only_after_a_pick(demo: Demo, browser: Any) -> None:
    guests, _ = await guests_and_seating(demo)
    gid, guest = sorted(guests.items(), key=lambda kv: kv[1]["name"])[3]
    name = guest["name"]
    _, couple = await open_app(browser, demo.link("couple"))
    _, planner = await open_app(browser, demo.link("planner"))

    await planner.get_by_role("button", name=f"Edit {name}", exact=True).click()
    form = planner.get_by_role("form", name=f"Edit {name}")
    meal = form.get_by_label("Meal")
    await meal.fill("beef")

    await couple.get_by_role("button", name=f"Edit {name}", exact=True).click()
    theirs = couple.get_by_role("form", name=f"Edit {name}")
    await theirs.get_by_label("Meal").fill("vegan")
    await theirs.get_by_role("button", name="Save").click()
    await status(couple).filter(has_text="Synced").wait_for(timeout=10_000)

    # Both values are shown; the planner's typing is untouched.
    pick = form.get_by_role("group", name="Changed by someone else too")
    await expect(pick).to_contain_text("Someone else changed this to “vegan”", timeout=5000)
    await expect(meal).to_have_value("beef")
    await screenshot(planner, "stale-form-both-changed")
    # Save refuses until one is picked, and writes nothing.
    await form.get_by_role("button", name="Save").click()
    await refused(planner, meal, "Someone else changed this too")
    assert (await guests_and_seating(demo))[0][gid]["meal"] == "vegan"
    await pick.get_by_role("button", name="Keep mine: “beef”").click()
    await expect(meal).to_have_value("beef")
    await form.get_by_role("button", name="Save").click()
    await status(planner).filter(has_text="Synced").wait_for(timeout=10_000)
    deadline = time.monotonic() + 10
    while (await guests_and_seating(demo))[0][gid]["meal"] != "beef":
        assert time.monotonic() < deadline, "the picked value never reached the server"
        await planner.wait_for_timeout(50)
    # The couple sees the planner's pick.
    await expect(couple.get_by_role("listitem").filter(has_text=name).first).to_contain_text("beef")


async def test_a_conflict_is_settled_from_the_banner_by_its_suggestion(
    demo: Demo, browser: Any
) -> None:
    guests, seating = await guests_and_seating(demo)
    full_id, full = next(
        (tid, t)
        for tid, t in sorted(seating["tables"].items())
        if sum(a["table_id"] == tid for a in seating["assignments"].values()) == t["capacity"]
    )
    to_seat = sorted(  # someone without an unnamed plus-one: one person too many
        g["name"]
        for gid, g in guests.items()
        if g["rsvp"] != "declined" and gid not in seating["assignments"] and not g["plus_one"]
    )[0]
    _, couple = await open_app(browser, demo.link("couple"))
    _, family = await open_app(browser, demo.link("family"))
    await couple.get_by_role("link", name="Seating").click()
    await couple.get_by_label(f"Table for {to_seat}").select_option(full_id)
    banner = couple.get_by_role("region", name="Conflicts")
    item = banner.get_by_role("listitem").filter(has_text=f"Table '{full['name']}'")
    await expect(item).to_contain_text("Suggested:", timeout=10_000)
    # Family may not settle findings: it sees the finding, not the controls.
    family_banner = family.get_by_role("region", name="Conflicts")
    await expect(family_banner.get_by_role("listitem").first).to_be_visible(timeout=10_000)
    assert await family_banner.get_by_role("button", name="Acknowledge").count() == 0
    await screenshot(couple, "conflict-suggestion")
    await item.get_by_role("button", name="Apply the suggestion").click()
    await expect(banner).to_have_count(0, timeout=10_000)
    _, seating = await guests_and_seating(demo)
    seated = sum(a["table_id"] == full_id for a in seating["assignments"].values())
    assert seated == full["capacity"]
