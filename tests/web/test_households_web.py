"""Households and meal totals in the app (issue 51), in Debian's Chromium against a real
``--demo`` server: the guest list shows people (unnamed plus-ones counted) and meal totals by
the menu, and the seating view seats a whole household at one table in one action, one
undo step, which the server's JSON view agrees with. At phone and desk sizes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.web.conftest import PAGE_ERRORS, Demo, expect, guests_and_seating, open_app, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def stored(demo: Demo, check: Any, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        _, seating = await guests_and_seating(demo)
        if check(seating["assignments"]):
            return seating
        assert time.monotonic() < deadline, f"never stored: {what}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1400, 900)])
async def test_totals_and_seating_a_household_together(
    demo: Demo, browser: Any, width: int, height: int
) -> None:
    view = await demo.json("/api/weddings/demo/docs/guests")
    assert isinstance(view, dict)
    totals = view["totals"]
    # A household of the demo that may come and is not seated (the last few who accepted).
    _, seating = await guests_and_seating(demo)
    households = view["households"]
    unseated = [
        h
        for h in sorted(households)
        if (members := [g for g, v in view["guests"].items() if v["household_id"] == h])
        and len(members) >= 2
        and all(view["guests"][g]["rsvp"] == "accepted" for g in members)
        and not any(g in seating["assignments"] for g in members)
    ]
    assert unseated, "the demo leaves a household unseated"
    household = unseated[0]
    members = sorted(g for g, v in view["guests"].items() if v["household_id"] == household)
    # A table with room for them.
    room = next(
        t
        for t, found in sorted(totals["tables"].items())
        if found["capacity"] - found["people"] >= len(members)
    )

    _, page = await open_app(browser, demo.link("couple"), width=width, height=height)
    await page.get_by_role("link", name="Guests").click()
    panel = page.get_by_label("Meal totals")
    await expect(panel).to_contain_text(f"{totals['people']} people")
    await expect(panel).to_contain_text("Beef")
    await screenshot(page, f"guest-totals-{width}")

    await page.get_by_role("link", name="Seating").click()
    form = page.get_by_role("form", name="Seat a household together")
    await form.get_by_label("Household").select_option(household)
    await form.get_by_label("Table").select_option(room)
    await form.get_by_role("button", name="Seat together").click()
    seating = await stored(
        demo, lambda a: all(a.get(g, {}).get("table_id") == room for g in members), "the seats"
    )
    await screenshot(page, f"seat-household-{width}")
    # One action, one undo step: every one of them is unseated again.
    name = households[household]["name"]
    await page.get_by_role("button", name=f"Undo: {name} seated at").click()
    await stored(demo, lambda a: not any(g in a for g in members), "the undo")
    assert seating["kind"] == "seating"
