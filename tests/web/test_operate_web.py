"""A family member in the planner app (Debian's Chromium driven by Playwright) against a real
``--demo`` server: family *operates* the guest list and the seating (issue 47), so the app
changes an RSVP and a seat through the domain operations over HTTP, never through its
read-only replica; offline, the operations wait on the device (a reload keeps them) and
go through when the server is back."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.web.conftest import (
    PAGE_ERRORS,
    Demo,
    guests_and_seating,
    open_app,
    screenshot,
    status,
    until,
)
from tests.web.proxy import CuttableProxy

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(90)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


def room_at(seating: dict[str, Any], exclude: str | None = None) -> tuple[str, str]:
    """A table with a free seat: (id, name)."""
    counts: dict[str, int] = {}
    for a in seating["assignments"].values():
        counts[a["table_id"]] = counts.get(a["table_id"], 0) + 1
    return next(
        (tid, t["name"])
        for tid, t in sorted(seating["tables"].items())
        if counts.get(tid, 0) + 1 < t["capacity"] and tid != exclude
    )


async def test_family_changes_an_rsvp_and_a_seat_online_and_offline(
    demo: Demo, browser: Any, proxy: CuttableProxy
) -> None:
    guests, seating = await guests_and_seating(demo)
    pending = sorted((g["name"], gid) for gid, g in guests.items() if g["rsvp"] == "pending")
    unseated = sorted(
        (g["name"], gid)
        for gid, g in guests.items()
        if g["rsvp"] != "declined" and gid not in seating["assignments"]
    )
    (first_name, first_id), (later_name, later_id) = pending[0], pending[1]
    to_seat = [(n, i) for n, i in unseated if i not in (first_id, later_id)]
    (seat_name, seat_id), (offline_seat_name, offline_seat_id) = to_seat[0], to_seat[1]
    table_id, table_name = room_at(seating)

    context, page = await open_app(browser, demo.link("family", proxy.url))
    await until(page, "navigator.serviceWorker.controller !== null")
    await page.goto(page.url.split("#")[0] + "#guests")
    await page.get_by_role("note").filter(has_text="may change RSVPs").wait_for()
    # What family may not do is not offered: no adding, no removing, no renaming.
    assert await page.get_by_role("button", name="Add guest").count() == 0
    assert await page.get_by_role("button", name=f"Remove {first_name}").count() == 0

    # Online: an RSVP, through set_rsvp over HTTP.
    await page.get_by_label(f"RSVP for {first_name}").select_option("accepted")
    await status(page).filter(has_text="Synced").wait_for(timeout=10_000)
    deadline = time.monotonic() + 10
    while (await guests_and_seating(demo))[0][first_id]["rsvp"] != "accepted":
        assert time.monotonic() < deadline, "the RSVP never reached the server"
        await page.wait_for_timeout(50)
    # The edit form offers only the answers.
    await page.get_by_role("button", name=f"Edit {later_name}").click()
    form = page.get_by_role("form", name=f"Edit {later_name}")
    await form.get_by_label("Meal").wait_for()
    assert await form.get_by_label("Name").count() == 0
    assert await form.get_by_label("Contact").count() == 0
    await form.get_by_role("button", name="Cancel").click()

    # Online: a seat, through assign_seat.
    await page.get_by_role("link", name="Seating").click()
    await page.get_by_label(f"Table for {seat_name}").select_option(table_id)
    deadline = time.monotonic() + 10
    while (await guests_and_seating(demo))[1]["assignments"].get(seat_id, {}).get(
        "table_id"
    ) != table_id:
        assert time.monotonic() < deadline, "the seat never reached the server"
        await page.wait_for_timeout(50)
    await status(page).filter(has_text="Synced").wait_for(timeout=10_000)

    # Offline: both changes wait on the device, shown as done, and survive a reload.
    await proxy.cut()
    await status(page).filter(has_text="Offline").wait_for(timeout=10_000)
    await page.get_by_label(f"Table for {offline_seat_name}").select_option(table_id)
    await page.get_by_role("link", name="Guests", exact=True).click()
    await page.get_by_label(f"RSVP for {later_name}").select_option("declined")
    await status(page).filter(has_text="2 changes not yet confirmed").wait_for(timeout=5000)
    await page.reload()
    await status(page).filter(has_text="Offline").wait_for(timeout=10_000)
    await status(page).filter(has_text="2 changes not yet confirmed").wait_for(timeout=5000)
    await page.goto(page.url.split("#")[0] + "#seating")
    seated_here = page.get_by_role("region", name=f"Table {table_name},")
    await seated_here.get_by_text(offline_seat_name, exact=True).wait_for(timeout=5000)
    guests, seating = await guests_and_seating(demo)
    assert guests[later_id]["rsvp"] == "pending"
    assert offline_seat_id not in seating["assignments"]
    await screenshot(page, "family-seating-offline")

    await proxy.restore()
    await status(page).filter(has_text="Synced").wait_for(timeout=20_000)
    guests, seating = await guests_and_seating(demo)
    assert guests[later_id]["rsvp"] == "declined"
    assert seating["assignments"][offline_seat_id]["table_id"] == table_id
    queued = await page.evaluate(
        "Object.keys(localStorage).filter(k => k.startsWith('crdt-server.ops:'))"
    )
    assert queued == []
    # Nothing the family's replica holds was ever written over its socket.
    history = await demo.json("/api/weddings/demo/docs/guests/history")
    assert isinstance(history, dict)
    family = [h for h in history["history"] if h["role"] == "family"]
    assert family and all(h["origin"].startswith("http:") for h in family), family
    await context.close()


async def test_the_family_view_fits_a_phone(demo: Demo, browser: Any) -> None:
    guests, _ = await guests_and_seating(demo)
    name = sorted(g["name"] for g in guests.values())[0]
    context, page = await open_app(browser, demo.link("family"), width=390, height=844)
    try:
        await page.goto(page.url.split("#")[0] + "#guests")
        await page.get_by_role("button", name=f"Edit {name}").click()
        await page.get_by_role("form", name=f"Edit {name}").get_by_label("Meal").wait_for()
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        await screenshot(page, "family-guests-390px")
        await page.goto(page.url.split("#")[0] + "#seating")
        await page.get_by_role("note").filter(has_text="who sits at which table").wait_for()
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        await context.close()
