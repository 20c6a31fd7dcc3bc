"""A document's history in the planner app (issue 53, point 3), in Debian's Chromium against a
real ``--demo`` server, two people: the couple previews the guest list as it was and restores
it in one click; the planner sees it come back live, and the restore is the couple's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.server import ServerProcess
from tests.web.conftest import (
    ADMIN_KEY,
    PAGE_ERRORS,
    Demo,
    demo_links,
    expect,
    guests_and_seating,
    open_app,
    screenshot,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(90)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


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


async def restore_points(demo: Demo, at_least: int) -> list[Any]:
    deadline = time.monotonic() + 10
    while True:
        found = await demo.json("/api/weddings/demo/docs/guests/versions")
        assert isinstance(found, dict)
        if len(found["versions"]) >= at_least:
            return list(found["versions"])
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.1)


async def test_the_couple_previews_and_restores_the_guest_list_and_the_planner_sees_it(
    demo: Demo, browser: Any
) -> None:
    await restore_points(demo, 1)  # the seeded list
    guests, _ = await guests_and_seating(demo)
    before = len(guests)
    _, couple = await open_app(browser, demo.link("couple"))
    _, planner = await open_app(browser, demo.link("planner"))

    # The planner adds a guest: a new restore point after the seeded one.
    await planner.get_by_label("Name", exact=True).fill("Mistaken Guest")
    await planner.get_by_role("button", name="Add guest").click()
    deadline = time.monotonic() + 10
    while len((await guests_and_seating(demo))[0]) != before + 1:
        assert time.monotonic() < deadline, "the planner's guest never arrived"
        await asyncio.sleep(0.05)
    await restore_points(demo, 2)

    await couple.get_by_role("button", name="History").click()
    panel = couple.get_by_role("region", name="History of the guest list")
    points = panel.get_by_role("list", name="Restore points").get_by_role("listitem")
    await expect(points.first).to_be_visible(timeout=10_000)
    # The oldest point kept is the seeded list: preview it, then restore it.
    oldest = points.last
    await oldest.get_by_role("button", name="Preview").click()
    await expect(oldest).to_contain_text(f"Then: {before} guests")
    await expect(oldest).to_contain_text(f"Now: {before + 1} guests")
    await screenshot(couple, "history-preview")
    await oldest.get_by_role("button", name="Restore").click()
    await expect(planner.get_by_text("Mistaken Guest", exact=True)).to_have_count(0, timeout=10_000)
    assert len((await guests_and_seating(demo))[0]) == before
    # The restore is one new change, credited to the couple who made it (newest first).
    history = await demo.json("/api/weddings/demo/docs/guests/history")
    assert isinstance(history, dict)
    assert history["history"][0]["role"] == "couple", history["history"][:2]
