"""Households and meal totals in the app (issue 51), in Debian's Chromium against a real
``--demo`` server: the guest list shows people (unnamed plus-ones counted) and meal totals by
the menu, and the seating view seats a whole household at one table in one action, one
undo step, which the server's JSON view agrees with. At phone and desk sizes."""

from __future__ import annotations

import asyncio
import time
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
    await page.get_by_role("link", name="Guests", exact=True).click()
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


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1400, 900)])
async def test_the_guest_list_is_grouped_by_household(
    demo: Demo, browser: Any, width: int, height: int
) -> None:
    """Each household a heading (its name, its people counted with unnamed plus-ones) over its
    guests; a free-text household with no entry is one by its name; the guests of no
    household come last, under their own heading."""
    # A household entry whose guest brings an unnamed plus-one: 2 guests, 3 people.
    ops = [
        {"op": "add_household", "household_id": "hzz", "name": "Aalto household"},
        {"op": "add_guest", "guest_id": "gz1", "name": "Ilona Aalto", "household_id": "hzz"}
        | {"plus_one": True, "rsvp": "accepted"},
        {"op": "add_guest", "guest_id": "gz2", "name": "Eero Aalto", "household_id": "hzz"},
    ]
    async with httpx.AsyncClient(base_url=demo.url) as client:
        for op in ops:
            done = await client.post(
                "/api/weddings/demo/docs/guests/ops",
                json=op,
                headers={"Authorization": f"Bearer {demo.tokens['planner']}"},
            )
            assert done.status_code == 200, done.text
    view = await demo.json("/api/weddings/demo/docs/guests")
    assert isinstance(view, dict)
    guests = view["guests"]
    hosted = {  # a named plus-one of no household sits in their host's
        g: guests[v["plus_one_of"]].get("household_id")
        for g, v in guests.items()
        if v.get("plus_one_of") in guests and not v.get("household_id") and not v.get("household")
    }

    _, page = await open_app(browser, demo.link("couple"), width=width, height=height)
    await page.get_by_role("link", name="Guests", exact=True).click()
    # Two more guests from the app: one in a free-text household, one in none.
    add = page.get_by_role("form", name="Add a guest")
    await add.get_by_label("Name").fill("Quinn Solo")
    await add.get_by_role("button", name="Add guest").click()
    await add.get_by_label("Name").fill("Rae Free")
    await add.get_by_label("Household").fill("Free text family")
    await add.get_by_role("button", name="Add guest").click()

    listing = page.get_by_role("list", name="Guest list")
    under = """(head) => {
        const ids = []
        let li = head.nextElementSibling
        for (; li && !li.classList.contains('household-head'); li = li.nextElementSibling) {
            if (li.dataset.entity) ids.push(li.dataset.entity)
        }
        return ids.sort()
    }"""
    # Households by name: "Aalto household" sorts first; its counts are of people.
    first = listing.locator("li.household-head").first
    await expect(first.get_by_role("heading", level=3)).to_have_text("Aalto household")
    await expect(first).to_contain_text("3 people (1 unnamed plus-one)")
    await expect(first).to_contain_text("2 accepted")
    assert await first.evaluate(under) == ["gz1", "gz2"]
    # A household of the demo: its guests follow its heading, until the next one.
    household = sorted(h for h in view["households"] if h != "hzz")[0]
    members = sorted(
        g for g, v in guests.items() if (v.get("household_id") or hosted.get(g)) == household
    )
    head = listing.locator(f'li.household-head[data-household="{household}"]')
    await expect(head.get_by_role("heading", level=3)).to_have_text(
        view["households"][household]["name"]
    )
    await expect(head).to_contain_text(f"{len(members)} people")
    assert await head.evaluate(under) == members

    # The free-text household: a heading of its own, by the name as written.
    free = listing.get_by_role("heading", name="Free text family", level=3)
    await expect(free).to_be_visible()
    free_head = listing.locator("li.household-head").filter(
        has=page.get_by_role("heading", name="Free text family", level=3)
    )
    await expect(free_head).to_contain_text("1 person")
    # The ungrouped last: the list's last heading, over the guests of no household.
    last = listing.locator("li.household-head").last
    await expect(last.get_by_role("heading", level=3)).to_have_text("No household")
    alone = sorted(
        g
        for g, v in guests.items()
        if not v.get("household_id") and not v.get("household") and not hosted.get(g)
    )
    shown = await last.evaluate(under)
    assert len(shown) == len(alone) + 1 and set(alone) <= set(shown)
    await last.scroll_into_view_if_needed()
    await expect(listing.get_by_text("Quinn Solo", exact=True)).to_be_visible()
    await page.evaluate("scrollTo(0, 0)")
    await first.scroll_into_view_if_needed()
    await screenshot(page, f"guest-list-households-{width}")
    # No horizontal scroll on a phone.
    assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")
