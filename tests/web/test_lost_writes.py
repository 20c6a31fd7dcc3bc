"""A write lost in a race, as its author sees it in the app: both values, "Use mine" writes
it back (which closes the finding on the server), in a real browser (Debian's Chromium)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import PAGE_ERRORS, Demo, open_app, screenshot, status
from tests.web.proxy import CuttableProxy
from tests.web.test_planner import guests_and_seating, proxy  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(90)]

LOST = "Changes of yours that were lost"


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def rename(page: Any, name: str, new: str) -> None:
    await page.get_by_role("button", name=f"Edit {name}").click()
    await page.get_by_role("form", name=f"Edit {name}").get_by_label("Name").fill(new)
    await page.get_by_role("button", name="Save").click()


async def concurrent(demo: Demo) -> list[Any]:
    found = await demo.json("/api/weddings/demo/conflicts", "couple")
    assert isinstance(found, dict)
    return [c for c in found["conflicts"] if c["code"] == "concurrent_edit"]


async def test_the_author_of_a_lost_rename_sees_both_names_and_can_use_theirs(
    demo: Demo,
    browser: Any,
    proxy: CuttableProxy,  # noqa: F811 (the fixture)
) -> None:
    guests, _ = await guests_and_seating(demo)
    gid, guest = sorted(guests.items())[2]
    name = guest["name"]
    _, couple = await open_app(browser, demo.link("couple", proxy.url), width=390, height=844)
    _, planner = await open_app(browser, demo.link("planner"), width=1400, height=900)
    await proxy.cut()
    await status(couple).filter(has_text="Offline").wait_for(timeout=10_000)
    await rename(couple, name, f"{name} (couple)")
    await rename(planner, name, f"{name} (planner)")
    await planner.get_by_text(f"{name} (planner)", exact=True).wait_for(timeout=5000)
    await proxy.restore()
    await status(couple).filter(has_text="Synced").wait_for(timeout=15_000)

    # Yjs keeps one name on every replica (the higher client id's); the other person is told.
    kept = None
    for _ in range(100):
        kept = (await guests_and_seating(demo))[0][gid]["name"]
        if await concurrent(demo):
            break
        await planner.wait_for_timeout(100)
    (finding,) = await concurrent(demo)
    lost_by, loser, winner = (
        ("couple", couple, planner) if kept == f"{name} (planner)" else ("planner", planner, couple)
    )
    mine = f"{name} ({lost_by})"
    notice = loser.get_by_role("region", name=LOST)
    await notice.get_by_text(f"to “{mine}”", exact=False).wait_for(timeout=10_000)
    await notice.get_by_text(f"“{kept}”", exact=False).wait_for(timeout=5000)
    assert await winner.get_by_role("region", name=LOST).count() == 0
    for width, height in ((390, 844), (1400, 900)):  # looked at on a phone and a desktop
        await loser.set_viewport_size({"width": width, "height": height})
        await notice.scroll_into_view_if_needed()
        await screenshot(loser, f"lost-write-{width}")
    assert finding["concurrent"]["lost"]["value"] == mine

    await notice.get_by_role("button", name="Use mine").click()
    await winner.get_by_text(mine, exact=True).wait_for(timeout=5000)
    await notice.wait_for(state="detached", timeout=10_000)
    for _ in range(100):
        if not await concurrent(demo):
            break
        await planner.wait_for_timeout(100)
    assert await concurrent(demo) == []
    assert (await guests_and_seating(demo))[0][gid]["name"] == mine
