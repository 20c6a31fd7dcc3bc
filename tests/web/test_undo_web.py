"""Undo in the planner app (issue 53, point 3), in Debian's Chromium against a real ``--demo``
server, two people at once: a removal is done at once with an Undo toast (no ``confirm()``),
one Undo puts back a seated guest and their seat (two documents, one step), and an undo never
touches the other person's edit, not even of the same guest."""

from __future__ import annotations

import asyncio
import time
from typing import Any

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


async def stored(demo: Demo, check: Any, what: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The demo's guests and seating once ``check(guests, seating)`` holds (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        guests, seating = await guests_and_seating(demo)
        if check(guests, seating):
            return guests, seating
        assert time.monotonic() < deadline, f"never stored: {what}"
        await asyncio.sleep(0.05)


async def test_undo_puts_back_a_removed_seated_guest_and_leaves_the_others_edit(
    demo: Demo, browser: Any
) -> None:
    guests, seating = await guests_and_seating(demo)
    by_name = sorted(guests.items(), key=lambda kv: kv[1]["name"])
    gid, guest = next((i, g) for i, g in by_name if i in seating["assignments"])
    other_id, other = next((i, g) for i, g in by_name if i != gid)
    table_id = seating["assignments"][gid]["table_id"]
    _, couple = await open_app(browser, demo.link("couple"))
    _, planner = await open_app(browser, demo.link("planner"))

    # The couple removes a seated guest: no question asked, a toast offers Undo.
    await couple.get_by_role("button", name=f"Remove {guest['name']}", exact=True).click()
    toast = couple.locator(".toast")
    await expect(toast).to_contain_text(f"{guest['name']} removed from the guest list")
    await screenshot(couple, "undo-toast")
    await stored(demo, lambda g, s: gid not in g and gid not in s["assignments"], "the removal")
    # Meanwhile the planner changes another guest's meal.
    await planner.get_by_role("button", name=f"Edit {other['name']}", exact=True).click()
    form = planner.get_by_role("form", name=f"Edit {other['name']}")
    await form.get_by_label("Meal").fill("gnocchi")
    await form.get_by_role("button", name="Save").click()
    await stored(demo, lambda g, s: g[other_id].get("meal") == "gnocchi", "the planner's meal")

    # One Undo: the guest and their seat are back (two documents), the planner's meal stays.
    await toast.get_by_role("button", name="Undo").click()
    guests, seating = await stored(
        demo,
        lambda g, s: gid in g and s["assignments"].get(gid, {}).get("table_id") == table_id,
        "the undo",
    )
    assert guests[gid]["name"] == guest["name"]
    assert guests[other_id]["meal"] == "gnocchi"
    await planner.get_by_text(guest["name"], exact=True).wait_for(timeout=5000)
    await status(couple).filter(has_text="Synced").wait_for(timeout=10_000)


async def test_ctrl_z_undoes_only_ones_own_change_of_a_guest_both_edited(
    demo: Demo, browser: Any
) -> None:
    guests, _ = await guests_and_seating(demo)
    gid, guest = sorted(guests.items(), key=lambda kv: kv[1]["name"])[5]
    name = guest["name"]
    _, couple = await open_app(browser, demo.link("couple"))
    _, planner = await open_app(browser, demo.link("planner"))

    await couple.get_by_role("button", name=f"Edit {name}", exact=True).click()
    form = couple.get_by_role("form", name=f"Edit {name}")
    await form.get_by_label("Meal").fill("paella")
    await form.get_by_role("button", name="Save").click()
    await stored(demo, lambda g, s: g[gid].get("meal") == "paella", "the couple's meal")

    await planner.get_by_role("button", name=f"Edit {name}", exact=True).click()
    theirs = planner.get_by_role("form", name=f"Edit {name}")
    await theirs.get_by_label("Household").fill("Planner's household")
    await theirs.get_by_role("button", name="Save").click()
    await stored(
        demo, lambda g, s: g[gid].get("household") == "Planner's household", "the household"
    )

    # The couple's Ctrl+Z (outside any text field) undoes the couple's meal only.
    undo = couple.get_by_role("button", name="Undo: your last change")
    await expect(undo).to_be_enabled()
    await couple.locator("body").focus()
    await couple.keyboard.press("Control+z")
    guests, _ = await stored(
        demo, lambda g, s: g[gid].get("meal") == guest.get("meal"), "the undone meal"
    )
    assert guests[gid]["household"] == "Planner's household"
    # Redo brings it back; the planner has nothing of theirs undone meanwhile.
    await couple.keyboard.press("Control+Shift+z")
    await stored(demo, lambda g, s: g[gid].get("meal") == "paella", "the redone meal")
    await expect(planner.get_by_role("button", name="Undo: your last change")).to_be_enabled()
