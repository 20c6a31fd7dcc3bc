"""The app's first page is never a dead end: on a local demo server it lists the demo's
people to sign in as; elsewhere it says how to get in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server import ServerProcess
from tests.web.conftest import PAGE_ERRORS, screenshot, status

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(60)]


async def test_a_local_demo_lets_a_person_in_from_the_first_page(
    tmp_path: Path, browser: Any
) -> None:
    async with ServerProcess(tmp_path / "data", args=["--demo"]) as server:
        for width, height in ((390, 844), (1400, 900)):
            context = await browser.new_context(viewport={"width": width, "height": height})
            page = await context.new_page()
            page.on("pageerror", lambda error: PAGE_ERRORS.append(str(error)))
            await page.goto(f"{server.url}/app/")
            await page.get_by_role("heading", name="Local demo").wait_for()
            await page.get_by_text("anyone on this machine may read and write").wait_for()
            await screenshot(page, f"local-demo-{width}px")
            await context.close()
        context = await browser.new_context(viewport={"width": 390, "height": 844})
        page = await context.new_page()
        await page.goto(f"{server.url}/app/")
        await page.get_by_role("link", name="Priya").click()
        await status(page).filter(has_text="Synced").wait_for(timeout=10_000)
        await page.get_by_role("navigation", name="Sections").wait_for()
        await context.close()
    assert not PAGE_ERRORS, PAGE_ERRORS


async def test_without_a_local_demo_the_page_says_how_to_get_in(
    tmp_path: Path, browser: Any
) -> None:
    async with ServerProcess(tmp_path / "data", anonymous=False) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/api/local-demo")).status_code == 404
        context = await browser.new_context(viewport={"width": 390, "height": 844})
        page = await context.new_page()
        await page.goto(f"{server.url}/app/")
        await page.get_by_role("heading", name="Sign in").wait_for()
        await page.get_by_text("./scripts/serve --demo").wait_for()
        await context.close()
