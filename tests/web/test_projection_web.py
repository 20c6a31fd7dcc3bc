"""A vendor in the planner app (Debian's Chromium driven by Playwright) against a real
``--demo`` server: the guest list shows names and meals but no guest's contact or notes, the
app keeps the projected guest list under its own IndexedDB name, and the view fits a phone
(390 x 844) and a desktop (1400 x 900). Screenshots land in ``build/screenshots/``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import PAGE_ERRORS, Demo, open_app, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(60)]


async def test_a_vendor_reads_the_guest_list_without_private_fields(
    demo: Demo, browser: Any
) -> None:
    PAGE_ERRORS.clear()
    full = await demo.json("/api/weddings/demo/docs/guests", role="couple")
    assert isinstance(full, dict)
    guests = full["guests"]
    contacts = [g["contact"] for g in guests.values() if g.get("contact")]
    notes = [g["notes"] for g in guests.values() if g.get("notes")]
    assert contacts and notes  # the demo has both: they must not reach the vendor
    name = sorted(g["name"] for g in guests.values())[0]
    for width, height in ((390, 844), (1400, 900)):
        context, page = await open_app(browser, demo.link("vendor"), width=width, height=height)
        try:
            await page.goto(page.url.split("#")[0] + "#guests")
            await page.get_by_text(name, exact=True).first.wait_for()
            text = await page.content()
            assert not [c for c in contacts if c in text]
            assert not [n for n in notes if n in text]
            names = await page.evaluate("indexedDB.databases().then(d => d.map(x => x.name))")
            assert "crdt-server:demo-vendor:demo/guests@projection" in names, names
            assert "crdt-server:demo-vendor:demo/guests" not in names, names
            assert await page.evaluate("document.documentElement.scrollWidth") <= width
            await screenshot(page, f"vendor-guests-{width}px")
        finally:
            await context.close()
    assert PAGE_ERRORS == []
