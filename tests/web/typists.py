"""Helpers for the browser tests where people type: open a guest's notes, read a field's text
and caret, wait with deadlines until pages agree, and check that each person's runs of text
arrived whole."""

from __future__ import annotations

import time
from typing import Any

from tests.web.conftest import Demo


async def guest_named(demo: Demo, index: int) -> tuple[str, str]:
    """The id and name of the demo's ``index``-th guest (in id order)."""
    guests = await demo.json("/api/weddings/demo/docs/guests")
    assert isinstance(guests, dict)
    ids = sorted(guests["guests"])
    guest_id = ids[index % len(ids)]
    return guest_id, str(guests["guests"][guest_id]["name"])


async def open_guest_notes(page: Any, name: str, guest_id: str) -> str:
    """Open the guest list and the edit form of guest ``name``; the notes field's selector."""
    if not await page.get_by_role("list", name="Guest list").is_visible():
        await page.get_by_role("link", name="Guests", exact=True).click()
    row = page.locator(f'li[data-entity="{guest_id}"]')  # two guests may share a name
    await row.get_by_role("button", name=f"Edit {name}", exact=True).click()
    area = f'textarea[data-notes="guests/{guest_id}"]'
    await page.locator(area).wait_for(timeout=10_000)
    return area


async def value_of(page: Any, selector: str) -> tuple[str, int]:
    """The textarea's text and where its caret is (UTF-16 units, as the browser counts)."""
    found = await page.eval_on_selector(selector, "e => [e.value, e.selectionEnd]")
    return str(found[0]), int(found[1])


async def text_of(page: Any, selector: str) -> str:
    return (await value_of(page, selector))[0]


async def wait_value(page: Any, selector: str, expected: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (await value_of(page, selector))[0] != expected:
        if time.monotonic() > deadline:
            shown = await value_of(page, selector)
            raise AssertionError(f"{selector} never showed {expected!r}: {shown}")
        await page.wait_for_timeout(50)


async def wait_same(pages: list[Any], read: Any, timeout: float = 15.0) -> str:
    """Wait until ``read(page)`` is the same on every page twice in a row; return it."""
    deadline = time.monotonic() + timeout
    last: list[str] = []
    while True:
        shown = [await read(page) for page in pages]
        if len(set(shown)) == 1 and shown == last:
            return shown[0]
        last = shown
        if time.monotonic() > deadline:
            raise AssertionError(f"the pages never agreed: {shown!r}")
        await pages[0].wait_for_timeout(100)


def assert_runs_whole(text: str, runs: list[str], context: str) -> None:
    """Each run (split at line breaks, which may move others' text between its lines) is in
    ``text`` whole."""
    for run in runs:
        for part in run.split("\n"):
            assert part in text, f"{context}: run {run!r} is not whole in {text!r}"
