"""Every view of the web-app guide (docs/guides/web-app.md) on a phone (390 x 844) and a
desktop (1400 x 900), in Debian's Chromium against a real ``--demo`` server: the five views
and the Overview, Guests' answers, the conflicts panel, Share and export (with the members),
the history, the inbox, the Emergency panel, a thread, the wedding day and the first page.
Each is checked (no sideways scroll, its heading shown) and written to
``build/screenshots/guide/``; ``scripts/guide-screenshots`` runs this module and copies
them into ``docs/images/web-app/``, which the guide shows."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.server import ServerProcess
from tests.web.compact_png import compact_png
from tests.web.conftest import (
    ADMIN_KEY,
    PAGE_ERRORS,
    SCREENSHOTS,
    Demo,
    demo_links,
    expect,
    guests_and_seating,
    open_app,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio, pytest.mark.timeout(120)]

GUIDE = SCREENSHOTS / "guide"
SIZES = ((390, 844), (1400, 900))
LIMIT = 150_000  # bytes, each image the docs carry
# A panel's top just below the header (which stays on screen while the page scrolls).
SCROLL_TO = """(e) => scrollTo(0, e.getBoundingClientRect().top + scrollY
  - document.querySelector('header.top').getBoundingClientRect().height - 8)"""


@pytest_asyncio.fixture
async def demo(tmp_path: Path) -> AsyncIterator[Demo]:
    """The demo, with a restore point of a changed document every half second."""
    env = {
        "CRDT_SERVER_ADMIN_API_KEY": ADMIN_KEY,
        "CRDT_SERVER_VERSION_INTERVAL_SECONDS": "0.5",
        "CRDT_SERVER_VERSION_CHECK_SECONDS": "0.2",
    }
    async with ServerProcess(
        tmp_path / "data", env=env, args=["--demo"], anonymous=False
    ) as server:
        yield await demo_links(server)


async def a_thread(demo: Demo, guest_id: str, name: str) -> None:
    """The planner asks the couple about a guest, by a mention (it rings their bell)."""
    async with httpx.AsyncClient(base_url=demo.url, timeout=10) as http:
        auth = {"Authorization": f"Bearer {demo.tokens['planner']}"}
        made = await http.post(
            "/api/weddings/demo/threads",
            json={"subject": f"Where {name} sits", "anchors": [{"doc": "guests", "id": guest_id}]},
            headers=auth,
        )
        assert made.status_code == 201, made.text
        sent = await http.put(
            f"/api/weddings/demo/threads/{made.json()['id']}/messages/{uuid.uuid4()}",
            json={"body": f"@[Alex & Sam](demo-couple) can {name} sit near the garden door?"},
            headers=auth,
        )
        assert sent.status_code in (200, 201), sent.text
        assert not sent.json().get("unnotified_mentions"), sent.text


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def shot(page: Any, name: str, focus: Any = None) -> list[Path]:
    """The page at both sizes, as ``{name}-{width}.png`` (indexed colour, under ``LIMIT``),
    scrolled to ``focus`` (a panel, below the view on a phone) or to the top; no size scrolls
    sideways."""
    GUIDE.mkdir(parents=True, exist_ok=True)
    blank = await page.context.new_page()
    paths = []
    try:
        for width, height in SIZES:
            await page.set_viewport_size({"width": width, "height": height})
            scroll = await page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= width, f"{name} is {scroll} px wide on a {width} px screen"
            if focus is None or width >= 1000:  # a desktop shows the panels beside the view
                await page.evaluate("scrollTo(0, 0)")
            else:
                await focus.evaluate(SCROLL_TO)
            small = await compact_png(blank, await page.screenshot())
            assert len(small) < LIMIT, f"{name}-{width}.png is {len(small)} bytes"
            path = GUIDE / f"{name}-{width}.png"
            path.write_bytes(small)
            paths.append(path)
    finally:
        await blank.close()
    return paths


async def test_every_view_of_the_guide_at_a_phone_and_a_desktop(demo: Demo, browser: Any) -> None:
    guests, seating = await guests_and_seating(demo)
    full = next(
        tid
        for tid, t in sorted(seating["tables"].items())
        if sum(a["table_id"] == tid for a in seating["assignments"].values()) == t["capacity"]
    )
    to_seat = sorted(
        g["name"]
        for gid, g in guests.items()
        if g["rsvp"] != "declined" and gid not in seating["assignments"]
    )[0]
    first_guest = min(guests.items(), key=lambda item: item[1]["name"])
    context, page = await open_app(
        browser, demo.link("couple"), width=1400, height=900, locale="en-GB"
    )
    await a_thread(demo, first_guest[0], first_guest[1]["name"])  # the couple is a member now
    # A wedding weekend: the timeline's day switcher has the day before and the day after.
    async with httpx.AsyncClient(base_url=demo.url, timeout=10) as http:
        for title, start, end, where in (
            ("Rehearsal dinner", "2027-06-11T19:00", "2027-06-11T22:00", "Harbour House"),
            ("Farewell brunch", "2027-06-13T11:00", "2027-06-13T13:00", "Terrace"),
        ):
            added = await http.post(
                "/api/weddings/demo/docs/timeline/ops",
                json={
                    "op": "add_timeline_item",
                    "title": title,
                    "start": start,
                    "end": end,
                    "location": where,
                },
                headers={"Authorization": f"Bearer {demo.tokens['planner']}"},
            )
            assert added.status_code == 200, added.text
    # A conflict to show: one guest more at a full table.
    await page.get_by_role("link", name="Seating", exact=True).click()
    await page.get_by_label(f"Table for {to_seat}").select_option(full)
    await page.get_by_role("region", name="Conflicts").wait_for(timeout=10_000)
    deadline = time.monotonic() + 10
    while not (await demo.json("/api/weddings/demo/docs/seating/versions"))["versions"]:  # type: ignore[index]
        assert time.monotonic() < deadline, "no restore point of the seating"
        await asyncio.sleep(0.1)

    for view in ("Guests", "Seating", "Timeline", "Budget", "Tasks", "Overview"):
        await page.get_by_role("link", name=view, exact=True).click()
        await page.get_by_role("heading", name=view, exact=True).wait_for()
        if view == "Overview":  # its figures are one read away
            await page.locator('[data-chart="rsvp-progress"] svg').wait_for(timeout=10_000)
        await shot(page, view.lower())

    # Guests' answers: the RSVP links, the RSVP page's settings and who answered.
    await page.get_by_role("link", name="Guests’ answers", exact=True).click()
    await page.get_by_role("heading", name="Guests’ answers", exact=True).wait_for()
    await shot(page, "rsvp-links")

    # The seating chart, and the print views (issue 54): escort cards, a vendor's run sheet.
    await page.get_by_role("link", name="Seating", exact=True).click()
    chart = page.locator(".chart-card")
    await chart.locator(".chart-svg").wait_for(timeout=10_000)
    await shot(page, "seating-chart", chart)
    await page.evaluate("location.hash = '#/print/escort-cards'")
    await page.locator(".escort-card").first.wait_for(timeout=10_000)
    await shot(page, "escort-cards")
    await page.evaluate("location.hash = '#/print/run-sheet?vendor=Harbour%20Catering'")
    await page.locator("table.run-sheet").wait_for(timeout=10_000)
    await shot(page, "run-sheet")
    await page.evaluate("location.hash = '#seating'")

    # The conflicts panel, opened (one line on a phone until tapped).
    panel = page.get_by_role("region", name="Conflicts")
    await page.get_by_role("link", name="Seating", exact=True).click()
    await page.set_viewport_size({"width": 390, "height": 844})
    if not await panel.locator("details").evaluate("(d) => d.open"):
        await panel.locator("summary").click()
    await expect(panel.get_by_role("listitem").first).to_be_visible()
    await shot(page, "conflicts", panel)
    await panel.locator("summary").click()  # closed again for the others, at both sizes

    # Share and export, with the members.
    await page.get_by_role("link", name="Guests", exact=True).click()
    await page.get_by_role("button", name="Share").click()
    share = page.get_by_role("region", name="Share and export")
    await share.get_by_role("list", name="Members of the wedding").wait_for(timeout=10_000)
    await shot(page, "share", share)
    await share.get_by_role("button", name="Close share and export").click()

    # A document's history.
    await page.get_by_role("link", name="Seating", exact=True).click()
    await page.locator("main").get_by_role("button", name="History").first.click()
    history = page.locator("#history-panel")
    await history.get_by_role("list", name="Restore points").wait_for(timeout=10_000)
    await shot(page, "history", history)
    await history.get_by_role("button", name="Close the history").click()

    # A thread on a guest.
    await page.get_by_role("link", name="Guests", exact=True).click()
    await page.locator(f'main [data-entity="{first_guest[0]}"] button.discuss').click()
    thread = page.get_by_role("dialog")
    await thread.wait_for(timeout=10_000)
    await shot(page, "thread", thread)
    await thread.get_by_role("button", name="Close the discussion").click()

    # The inbox.
    await page.get_by_role("button", name="Inbox, 1 unread").click()
    inbox = page.locator("#inbox-panel")
    await inbox.get_by_role("list", name="Notifications").wait_for(timeout=10_000)
    await shot(page, "inbox", inbox)

    # The Emergency panel (issue 77): raise one, and who has seen those sent.
    await page.get_by_role("button", name="Emergency", exact=True).click()
    emergency = page.locator("#emergency-panel")
    await emergency.get_by_label("What is happening").fill("The marquee lost power")
    await shot(page, "emergency", emergency)
    await context.close()

    # The first page, without a sign-in.
    context = await browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-GB")
    first = await context.new_page()
    first.on("pageerror", lambda error: PAGE_ERRORS.append(str(error)))
    await first.goto(f"{demo.url}/app/")
    await first.get_by_role("heading").first.wait_for(timeout=10_000)
    await shot(first, "first-page")
    await context.close()


async def test_the_wedding_day_of_the_guide(demo: Demo, browser: Any) -> None:
    # The wedding of today: a vendor's phone with its own check-in first, and a delay.
    _, planner_token = await demo.today("planner")
    async with httpx.AsyncClient(base_url=demo.url, timeout=10) as http:
        on = await http.put(
            "/api/weddings/demo-today/day/mode",
            json={"mode": "on"},
            headers={"Authorization": f"Bearer {planner_token}"},
        )
        assert on.status_code == 200, on.text
    link, _ = await demo.today("vendor")
    context, page = await open_app(browser, link, width=390, height=844, locale="en-GB")
    await page.get_by_role("link", name="Timeline", exact=True).click()
    day = page.locator("section.wedding-day")
    await day.get_by_role("button", name="Lens & Light: Arrived").wait_for(timeout=10_000)
    await shot(page, "wedding-day", day)
    await context.close()
    link, _ = await demo.today("couple")
    context, page = await open_app(browser, link, width=1400, height=900, locale="en-GB")
    await page.get_by_role("link", name="Timeline", exact=True).click()
    await page.get_by_role("button", name="Flowers delivered is running late").click()
    late = page.get_by_role("group", name="Flowers delivered is running late")
    await late.get_by_label("How many minutes late?").fill("30")
    await late.get_by_role("button", name="Show what moves").click()
    await late.get_by_role("list", name="What moves").wait_for()
    await shot(page, "running-late", late)
    await context.close()
