"""Restore points people can use (issue 78, point 4), in Chromium against a real ``--demo``
server, the planner and the couple at once in two browser contexts: each one's burst of
work is a point of its own, labelled in words with who did what ("... added guest Anita
Rao"); the couple restores the point before her own work, the planner sees it go live, and
both feeds say who restored what, as it was when."""

from __future__ import annotations

import asyncio
import re
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

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


@pytest_asyncio.fixture
async def demo(tmp_path: Path) -> AsyncIterator[Demo]:
    """The demo, with the newest work's restore point two seconds after its first edit."""
    env = {
        "CRDT_SERVER_ADMIN_API_KEY": ADMIN_KEY,
        "CRDT_SERVER_VERSION_INTERVAL_SECONDS": "2",
        "CRDT_SERVER_VERSION_CHECK_SECONDS": "0.2",
    }
    async with ServerProcess(
        tmp_path / "data", env=env, args=["--demo"], anonymous=False
    ) as server:
        yield await demo_links(server)


async def guest_count(demo: Demo, n: int) -> None:
    deadline = time.monotonic() + 10
    while len((await guests_and_seating(demo))[0]) != n:
        assert time.monotonic() < deadline, f"the guest list never had {n} guests"
        await asyncio.sleep(0.05)


async def points(demo: Demo, at_least: int) -> list[Any]:
    deadline = time.monotonic() + 15
    while True:
        found = await demo.json("/api/weddings/demo/docs/guests/versions")
        assert isinstance(found, dict)
        if len(found["versions"]) >= at_least:
            return list(found["versions"])
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.1)


async def add_guest(page: Any, name: str) -> None:
    await page.get_by_label("Name", exact=True).fill(name)
    await page.get_by_role("button", name="Add guest").click()


async def test_two_peoples_work_is_two_labelled_points_and_a_restore_says_so(
    demo: Demo, browser: Any
) -> None:
    seeded = len(await points(demo, 1))
    guests, _ = await guests_and_seating(demo)
    before = len(guests)
    _, couple = await open_app(browser, demo.link("couple"), width=1400, height=900)
    _, planner = await open_app(browser, demo.link("planner"), width=390, height=844)

    await add_guest(planner, "Anita Rao")
    await guest_count(demo, before + 1)
    await add_guest(couple, "Rose Lee")
    await guest_count(demo, before + 2)
    await points(demo, seeded + 2)

    await couple.get_by_role("button", name="History").click()
    panel = couple.get_by_role("region", name="History of the guest list")
    rows = panel.get_by_role("list", name="Restore points").get_by_role("listitem")
    # Newest first: her own work, then the planner's, each in words.
    await expect(rows.nth(0)).to_contain_text("You added guest Rose Lee", timeout=10_000)
    await expect(rows.nth(1)).to_contain_text("added guest Anita Rao")
    await expect(rows.nth(1)).not_to_contain_text("Rose Lee")
    labels = [await rows.nth(i).locator(".point-label").inner_text() for i in range(seeded + 2)]
    assert len(set(labels)) == len(labels), labels
    await screenshot(couple, "history-labelled-points")

    # Restoring the planner's point (before Rose Lee) takes Rose Lee away, live for her.
    await rows.nth(1).get_by_role("button", name="Restore").click()
    await expect(planner.get_by_text("Rose Lee", exact=True)).to_have_count(0, timeout=10_000)
    await expect(planner.get_by_text("Anita Rao", exact=True).first).to_be_visible()
    await guest_count(demo, before + 1)
    # Both feeds say who restored what, as it was when.
    mine = couple.get_by_role("list", name="Recent activity")
    await expect(mine).to_contain_text(
        re.compile(r"You\s*restored the guest list as it was at"), timeout=10_000
    )
    theirs = planner.get_by_role("list", name="Recent activity")
    await expect(theirs).to_contain_text("restored the guest list as it was at", timeout=10_000)
