"""A write lost in a race, as its author sees it in the app: both values, "Use mine" writes
it back (which closes the finding on the server), in a real browser (Debian's Chromium); a
field hidden from its author's role is shown without its values and no "Use mine". The
notices are in the one conflicts panel (the region named "Conflicts"), which is one line on a
phone until opened."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pycrdt import Doc, Map

from crdt_server.auth.permissions import DEFAULT_MATRIX
from tests.server import ServerProcess
from tests.web.conftest import (
    ADMIN_KEY,
    PAGE_ERRORS,
    Demo,
    demo_links,
    guests_and_seating,
    open_app,
    screenshot,
    status,
)
from tests.web.proxy import CuttableProxy

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(90)]

LOST = "Changes of yours that were lost"


def lost_notices(page: Any) -> Any:
    """The lost-write notices: a list inside the region a screen reader names "Conflicts"."""
    return page.get_by_role("region", name="Conflicts").get_by_role("list", name=LOST)


async def open_conflicts(page: Any) -> None:
    """Open the conflicts panel where it is one line (a phone): a tap on its summary (after
    the frame that follows a change of width, when the panel takes its width's state)."""
    panel = page.get_by_role("region", name="Conflicts")
    await panel.wait_for(timeout=10_000)
    await page.evaluate("() => new Promise((done) => requestAnimationFrame(() => done()))")
    if not await panel.locator("details").evaluate("(d) => d.open"):
        await panel.locator("summary").click()


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
    notice = lost_notices(loser)
    await (
        loser.get_by_role("region", name="Conflicts")
        .get_by_text("of yours lost", exact=False)
        .wait_for(timeout=10_000)
    )
    await open_conflicts(loser)
    await notice.get_by_text(f"to “{mine}”", exact=False).wait_for(timeout=10_000)
    await notice.get_by_text(f"“{kept}”", exact=False).wait_for(timeout=5000)
    assert await lost_notices(winner).count() == 0
    for width, height in ((390, 844), (1400, 900)):  # looked at on a phone and a desktop
        await loser.set_viewport_size({"width": width, "height": height})
        await open_conflicts(loser)
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


async def test_a_lost_write_of_a_field_hidden_from_its_author_shows_no_value(
    tmp_path: Path, browser: Any
) -> None:
    """A vendor the operator lets write the guest list loses a race on a guest's contact (a
    field vendors may not read) to the planner: their notice says the values are hidden
    and offers no "Use mine" (which would write a value they never saw), only "OK"."""
    vendors = {d: a.value for d, a in DEFAULT_MATRIX["vendor"].items()} | {"guests": "write"}
    matrix = {role: {d: a.value for d, a in docs.items()} for role, docs in DEFAULT_MATRIX.items()}
    env = {
        "CRDT_SERVER_ADMIN_API_KEY": ADMIN_KEY,
        "CRDT_SERVER_PERMISSIONS": json.dumps(matrix | {"vendor": vendors}),
    }
    async with ServerProcess(
        tmp_path / "data", env=env, args=["--demo"], anonymous=False
    ) as server:
        demo = await demo_links(server)
        guests, _ = await guests_and_seating(demo)
        gid, guest = sorted(guests.items())[0]
        canaries = ("+44-7700-900-Kp1", "+44-7700-900-Ls2")
        async with httpx.AsyncClient(base_url=demo.url, timeout=10) as http:
            base = await http.get(
                "/api/weddings/demo/docs/guests",
                headers={
                    "Authorization": f"Bearer {demo.tokens['couple']}",
                    "Accept": "application/octet-stream",
                },
            )
            # In Yjs the higher client id wins a map key: the planner's contact is kept.
            for role, client, contact in (
                ("planner", 900_001, canaries[0]),
                ("vendor", 5_001, canaries[1]),
            ):
                doc: Doc[Any] = Doc(client_id=client)
                doc.apply_update(base.content)
                since = doc.get_state()
                doc.get("guests", type=Map)[gid]["contact"] = contact
                sent = await http.post(
                    "/api/weddings/demo/docs/guests/update",
                    content=doc.get_update(since),
                    headers={"Authorization": f"Bearer {demo.tokens[role]}"},
                )
                assert sent.status_code == 200, sent.text
        for _ in range(100):
            if await concurrent(demo):
                break
            await asyncio.sleep(0.1)
        assert await concurrent(demo)

        _, vendor = await open_app(browser, demo.link("vendor"), width=390, height=844)
        notice = lost_notices(vendor)
        await open_conflicts(vendor)
        await notice.get_by_text("The values are hidden from you.", exact=False).wait_for(
            timeout=10_000
        )
        text = await notice.inner_text()
        assert f"{guest['name']}’s contact" in text and "nothing" not in text
        assert not [c for c in canaries if c in await vendor.content()]
        assert await notice.get_by_role("button", name="Use mine").count() == 0
        for width, height in ((390, 844), (1400, 900)):
            await vendor.set_viewport_size({"width": width, "height": height})
            await notice.scroll_into_view_if_needed()
            await screenshot(vendor, f"lost-write-hidden-{width}")
        # A vendor may not acknowledge findings (`conflicts.resolve`): "OK" puts the notice
        # away on this device; the finding stays open for the couple and the planner.
        await notice.get_by_role("button", name="OK").click()
        await notice.wait_for(state="detached", timeout=10_000)
        (open_finding,) = await concurrent(demo)
        kept = await vendor.evaluate(
            "Object.keys(localStorage).filter((k) => k.startsWith('crdt-server.lost-dismissed:'))"
            ".map((k) => localStorage.getItem(k)).join()"
        )
        assert open_finding["id"] in kept  # remembered on the device, across a reload
        await vendor.reload()
        await status(vendor).filter(has_text="Synced").wait_for(timeout=10_000)
        assert await lost_notices(vendor).count() == 0
