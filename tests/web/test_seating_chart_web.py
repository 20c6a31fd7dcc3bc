"""The seating chart and the print views (issue 54, points 5 and 6), in Debian's Chromium
against a real ``--demo`` server: a household dragged onto a table in one browser is seated
in another; keyboard seating is said in the live region; two people moving one table at once
end with one of their two positions, never a mix; a touch drag seats a guest; the print views
(chart, escort cards, a vendor's run sheet at its own address) render for paper."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
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
)
from tests.web.proxy import CuttableProxy

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.05)


async def unseated_household(demo: Demo) -> tuple[str, list[str], str]:
    """A household of the demo (two or more, all accepted, none seated) and a table in the
    chart's first row with room for them."""
    view = await demo.json("/api/weddings/demo/docs/guests")
    assert isinstance(view, dict)
    _, seating = await guests_and_seating(demo)
    for household in sorted(view["households"]):
        members = sorted(g for g, v in view["guests"].items() if v["household_id"] == household)
        if (
            len(members) >= 2
            and all(view["guests"][g]["rsvp"] == "accepted" for g in members)
            and not any(g in seating["assignments"] for g in members)
        ):
            break
    else:
        raise AssertionError("the demo leaves no household unseated")
    tables = view["totals"]["tables"]
    first_row = sorted(seating["tables"])[:4]
    room = next(t for t in first_row if tables[t]["capacity"] - tables[t]["people"] >= len(members))
    return household, members, room


async def drag(page: Any, source: Any, target: Any, *, dx: float = 0, dy: float = 0) -> None:
    """A mouse drag from the middle of ``source`` to the middle of ``target`` (plus dx, dy),
    in steps, as a person's hand moves."""
    await target.scroll_into_view_if_needed()
    await source.scroll_into_view_if_needed()
    a = await source.bounding_box()
    b = await target.bounding_box()
    assert a and b
    await page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    await page.mouse.down()
    await page.mouse.move(b["x"] + b["width"] / 2 + dx, b["y"] + b["height"] / 2 + dy, steps=12)
    await page.mouse.up()


def table(page: Any, table_id: str) -> Any:
    return page.locator(f'.chart-svg g.table-shape[data-table="{table_id}"]')


async def open_chart(browser: Any, url: str, **options: Any) -> tuple[Any, Any]:
    context, page = await open_app(browser, url, width=1400, height=1000, **options)
    await page.get_by_role("link", name="Seating").click()
    await page.locator(".chart-svg").wait_for(timeout=10_000)
    return context, page


async def test_a_household_dragged_onto_a_table_is_seated_in_the_other_browser(
    demo: Demo, browser: Any
) -> None:
    household, members, room = await unseated_household(demo)
    _, one = await open_chart(browser, demo.link("couple"))
    _, two = await open_chart(browser, demo.link("planner"))
    before = await table(two, room).locator(".seat.taken").count()

    chip = one.locator(f'.palette button[data-kind="household"][data-id="{household}"]')
    await drag(one, chip, table(one, room).locator(".top"))

    async def seated() -> bool:
        _, seating = await guests_and_seating(demo)
        return all(seating["assignments"].get(g, {}).get("table_id") == room for g in members)

    await eventually(seated, "the household seated in the store")
    # The other browser's chart shows them on the table's seats (and its list too).
    await expect(table(two, room).locator(".seat.taken")).to_have_count(
        before + len(members), timeout=10_000
    )
    await expect(two.locator(f'.palette button[data-id="{household}"]')).to_have_count(0)
    await expect(one.locator(".sr-only[aria-live]").last).to_contain_text("seated together at")
    await screenshot(two, "seating-chart-1400")


async def test_keyboard_seating_is_said_in_the_live_region(demo: Demo, browser: Any) -> None:
    guests, seating = await guests_and_seating(demo)
    guest_id = next(
        g
        for g, v in sorted(guests.items())
        if v["rsvp"] == "accepted" and g not in seating["assignments"]
    )
    name = guests[guest_id]["name"]
    tables = sorted(seating["tables"])
    _, page = await open_chart(browser, demo.link("couple"))
    said = page.locator("p.sr-only[aria-live]").last

    chip = page.locator(f'.palette button[data-kind="guest"][data-id="{guest_id}"]')
    await chip.focus()
    await page.keyboard.press("Enter")
    await expect(said).to_contain_text(f"{name} chosen")
    await expect(page.locator(".chart-canvas")).to_be_focused()
    # From the first table, two to the right: the third.
    third = seating["tables"][tables[2]]["name"]
    await page.keyboard.press("ArrowRight")
    await page.keyboard.press("ArrowRight")
    await expect(said).to_contain_text(re.compile(rf"Table {third}, \w+, \d+ of \d+ seated"))
    await expect(table(page, tables[2])).to_have_class(re.compile(r"\btarget\b"))
    await page.keyboard.press("ArrowDown")
    await expect(said).to_contain_text(f"Table {third}, seat 1:")
    await page.keyboard.press("ArrowUp")  # back to the table itself: any free seat
    await page.keyboard.press("Enter")
    await expect(said).to_contain_text(f"{name} seated at {third}.")

    async def stored() -> bool:
        _, now = await guests_and_seating(demo)
        return bool(now["assignments"].get(guest_id, {}).get("table_id") == tables[2])

    await eventually(stored, "the keyboard's seat stored")
    # Escape lets go of a choice without seating anyone.
    other = next(
        g
        for g, v in sorted(guests.items())
        if v["rsvp"] == "accepted" and g not in seating["assignments"] and g != guest_id
    )
    await page.locator(f'.palette button[data-id="{other}"]').focus()
    await page.keyboard.press("Enter")
    await page.keyboard.press("Escape")
    await expect(said).to_contain_text("cancelled")


async def test_two_people_moving_one_table_end_at_one_of_their_positions(
    demo: Demo,
    browser: Any,
    proxy: CuttableProxy,
) -> None:
    _, seating = await guests_and_seating(demo)
    moved = sorted(seating["tables"])[5]
    _, one = await open_chart(browser, demo.link("couple", proxy.url))
    _, two = await open_chart(browser, demo.link("planner"))
    # Both move the table while they cannot hear each other: concurrent writes.
    await proxy.cut()
    await drag(one, table(one, moved).locator(".top"), table(one, moved).locator(".top"), dx=90)
    await drag(two, table(two, moved).locator(".top"), table(two, moved).locator(".top"), dy=70)
    where = 'e => e.getAttribute("transform")'
    ours = await table(one, moved).evaluate(where)
    theirs = await table(two, moved).evaluate(where)
    assert ours != theirs
    await proxy.restore()

    async def agreed() -> str | None:
        a = await table(one, moved).evaluate(where)
        b = await table(two, moved).evaluate(where)
        return a if a == b else None

    final = await eventually(agreed, "both browsers show one position", timeout=15)
    assert final in (ours, theirs), (final, ours, theirs)
    _, stored = await guests_and_seating(demo)
    p = stored["tables"][moved]["position"]
    assert set(p) == {"x", "y", "rotation"}
    assert final == f"translate({p['x']} {p['y']}) rotate({p['rotation']})"


async def test_a_touch_drag_seats_a_guest(demo: Demo, browser: Any) -> None:
    guests, seating = await guests_and_seating(demo)
    guest_id = next(
        g
        for g, v in sorted(guests.items(), reverse=True)
        if v["rsvp"] == "accepted" and g not in seating["assignments"]
    )
    totals = (await demo.json("/api/weddings/demo/docs/guests"))["totals"]  # type: ignore[index]
    room = next(
        t
        for t in sorted(seating["tables"])[:4]
        if totals["tables"][t]["capacity"] > totals["tables"][t]["people"]
    )
    context, page = await open_chart(browser, demo.link("couple"), has_touch=True)
    chip = page.locator(f'.palette button[data-id="{guest_id}"]')
    target = table(page, room).locator(".top")
    await target.scroll_into_view_if_needed()
    await chip.scroll_into_view_if_needed()
    a, b = await chip.bounding_box(), await target.bounding_box()
    assert a and b
    start = (a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    end = (b["x"] + b["width"] / 2, b["y"] + b["height"] / 2)
    cdp = await context.new_cdp_session(page)
    touch = "Input.dispatchTouchEvent"
    await cdp.send(touch, {"type": "touchStart", "touchPoints": [{"x": start[0], "y": start[1]}]})
    for step in range(1, 13):
        x = start[0] + (end[0] - start[0]) * step / 12
        y = start[1] + (end[1] - start[1]) * step / 12
        await cdp.send(touch, {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    await cdp.send(touch, {"type": "touchEnd", "touchPoints": []})

    async def stored() -> bool:
        _, now = await guests_and_seating(demo)
        return bool(now["assignments"].get(guest_id, {}).get("table_id") == room)

    await eventually(stored, "the touch drag's seat stored")


async def test_the_print_views_render_for_paper(demo: Demo, browser: Any) -> None:
    guests, seating = await guests_and_seating(demo)
    # New York's browser: the run sheet still gives the wedding's (Berlin's) times.
    context, page = await open_app(
        browser, demo.link("vendor"), width=1100, height=900, timezone_id="America/New_York"
    )
    await page.emulate_media(media="print")
    base = page.url.split("#")[0]

    await page.goto(f"{base}#/print/escort-cards")
    cards = page.locator(".escort-card")
    await expect(cards.first).to_be_visible(timeout=10_000)
    seated = sorted(
        (v["name"], seating["tables"][seating["assignments"][g]["table_id"]]["name"])
        for g, v in guests.items()
        if g in seating["assignments"] and v["rsvp"] != "declined"
    )
    shown = [
        (
            await c.locator(".escort-name").inner_text(),
            await c.locator(".escort-table").inner_text(),
        )
        for c in await cards.all()
    ]
    assert [n for n, _ in shown] == sorted((n for n, _ in shown), key=str.casefold)
    names = {n.removesuffix(" and guest") for n, _ in shown}
    assert names == {n for n, _ in seated}
    first = seated[0]
    assert (first[0], f"Table {first[1]}") in {(n.removesuffix(" and guest"), t) for n, t in shown}
    await expect(page.locator(".print-bar").first).to_be_hidden()  # no buttons on paper
    await expect(page.locator("nav.tabs")).to_have_count(0)

    await page.goto(f"{base}#/print/seating")
    await expect(page.locator(".print-chart .chart-svg")).to_be_visible()
    for t in seating["tables"].values():
        await expect(page.locator(".print-tables")).to_contain_text(t["name"])

    await page.goto(f"{base}#/print/run-sheet?vendor=Harbour%20Catering")
    rows = page.locator("table.run-sheet tbody tr[data-entity]")
    await expect(rows).to_have_count(3)
    texts = [await r.inner_text() for r in await rows.all()]
    assert [t.split("\t")[0] for t in texts] == ["15:00", "17:00", "22:00"], texts
    assert ["Drinks reception" in texts[0], "Dinner" in texts[1]] == [True, True]
    await expect(page.locator(".print-run-sheet")).to_contain_text(
        "Times in Central European Time (Berlin)"
    )
    await screenshot(page, "print-run-sheet")
    await page.emulate_media(media="screen")
    await expect(page.locator(".print-bar").first).to_be_visible()
    await context.close()


async def test_the_planner_shares_a_run_sheet_by_a_read_only_link(demo: Demo, browser: Any) -> None:
    """From the run sheet, the planner makes the vendor's read-only link in one click and
    copies it; the link opens that vendor's part of the day with no sign-in. A vendor, who
    may not make links (``day.run_sheets``), is offered none."""
    context, page = await open_app(browser, demo.link("planner"), width=1100, height=900)
    base = page.url.split("#")[0]
    await page.goto(f"{base}#/print/run-sheet?vendor=Harbour%20Catering")
    await expect(page.locator("table.run-sheet tbody tr[data-entity]")).to_have_count(3)
    await page.get_by_role("button", name="Share a read-only link with Harbour Catering").click()
    link = page.locator(".share-run-sheet input[type=url]")
    await expect(link).to_have_value(re.compile(r"token=rs_"))
    url = await link.input_value()
    async with httpx.AsyncClient(timeout=10) as http:
        sheet = await http.get(url.replace(url.split("/api/")[0], demo.url, 1))
    assert sheet.status_code == 200, sheet.text
    assert "Drinks reception" in sheet.text and "Dinner" in sheet.text
    await page.emulate_media(media="print")
    await expect(page.locator(".share-run-sheet")).to_be_hidden()  # never on paper
    await context.close()

    context, page = await open_app(browser, demo.link("vendor"), width=1100, height=900)
    base = page.url.split("#")[0]
    await page.goto(f"{base}#/print/run-sheet?vendor=Harbour%20Catering")
    await expect(page.locator("table.run-sheet tbody tr[data-entity]")).to_have_count(3)
    await expect(page.locator(".share-run-sheet")).to_have_count(0)
    await context.close()
