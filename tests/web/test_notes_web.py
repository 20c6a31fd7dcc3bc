"""Collaborative notes in the app, in a real browser: two people type in one note at once,
both keep their words, and neither person's cursor jumps when the other types."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.web.conftest import PAGE_ERRORS, Demo, open_app, screenshot, status

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(90)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def value_of(page: Any, selector: str) -> tuple[str, int]:
    """The textarea's text and where its cursor is (UTF-16 units, as the browser counts)."""
    found = await page.eval_on_selector(selector, "e => [e.value, e.selectionStart]")
    return str(found[0]), int(found[1])


async def wait_value(page: Any, selector: str, expected: str, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if (await value_of(page, selector))[0] == expected:
            return
        await page.wait_for_timeout(50)
    raise AssertionError(f"{selector} never showed {expected!r}: {await value_of(page, selector)}")


async def test_two_people_type_in_one_note_and_converge_with_cursors_kept(
    demo: Demo, browser: Any
) -> None:
    timeline = await demo.json("/api/weddings/demo/docs/timeline")
    assert isinstance(timeline, dict)
    item_id, item = next((i, v) for i, v in timeline["items"].items() if v["title"] == "Ceremony")
    original = item["notes"]
    assert original  # the demo's ceremony has notes
    _, couple = await open_app(browser, demo.link("couple"))
    _, planner = await open_app(browser, demo.link("planner"), width=390, height=844)
    area = f'textarea[data-notes="items/{item_id}"]'
    for page in (couple, planner):
        await page.get_by_role("link", name="Timeline").click()
        await page.get_by_role("button", name="Edit Ceremony").click()
        await wait_value(page, area, original)
    # The couple writes at the end, the planner at the start, at the same time.
    await couple.locator(area).click()
    await couple.locator(area).press("Control+End")
    await planner.locator(area).click()
    await planner.locator(area).press("Control+Home")
    await asyncio.gather(
        couple.keyboard.type(" Bring tissues 🤧.", delay=25),
        planner.keyboard.type("Planner: ", delay=25),
    )
    both = "Planner: " + original + " Bring tissues 🤧."
    await wait_value(couple, area, both)
    await wait_value(planner, area, both)
    # Each cursor stayed where its person was typing, though the other person's text moved
    # or followed it: typing on continues there.
    assert (await value_of(couple, area))[1] == len(both.encode("utf-16-le")) // 2
    assert (await value_of(planner, area))[1] == len("Planner: ")
    await asyncio.gather(couple.keyboard.type("!"), planner.keyboard.type("Ada, ", delay=25))
    final = "Planner: Ada, " + original + " Bring tissues 🤧.!"
    await wait_value(couple, area, final)
    await wait_value(planner, area, final)
    await status(couple).filter(has_text="Synced").wait_for(timeout=5000)
    await status(planner).filter(has_text="Synced").wait_for(timeout=5000)
    stored = await demo.json("/api/weddings/demo/docs/timeline")
    assert isinstance(stored, dict)
    assert stored["items"][item_id]["notes"] == final
    await screenshot(planner, "notes-two-people-390")
    await screenshot(couple, "notes-two-people-1100")
