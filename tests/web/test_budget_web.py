"""The budget view's payments due (issue 54, point 3) in Chromium against a ``--demo``
server: the Upcoming list (scheduled payments by due date), scheduling a payment in one
browser and marking it paid in another, and the chart of planned, paid and scheduled per
category, loaded as its own chunk when the budget is first shown and readable as a table."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import (
    PAGE_ERRORS,
    Demo,
    expect,
    open_app,
    refused,
    screenshot,
    status,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(60)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def test_upcoming_payments_are_scheduled_in_one_browser_and_paid_in_another(
    demo: Demo, browser: Any
) -> None:
    scripts: list[str] = []
    context, couple = await open_app(browser, demo.link("couple"))
    couple.on("request", lambda r: scripts.append(r.url) if r.url.endswith(".js") else None)
    _, planner = await open_app(browser, demo.link("planner"), width=390, height=844)
    first = len(scripts)
    await couple.get_by_role("link", name="Budget").click()
    await planner.get_by_role("link", name="Budget").click()

    # The demo's three scheduled payments, soonest first, under "Upcoming".
    await couple.get_by_role("heading", name="Upcoming").wait_for(timeout=5000)
    upcoming = couple.get_by_role("list", name="Upcoming")
    await expect(upcoming.get_by_role("listitem")).to_have_count(3)
    texts = await upcoming.get_by_role("listitem").all_inner_texts()
    assert ["Atelier Nord" in texts[0], "Tailor Row" in texts[1], "Swift Cabs" in texts[2]] == [
        True,
        True,
        True,
    ], texts
    assert all("due " in t for t in texts), texts
    # Scheduled payments are not in the paid total, nor in the list of payments made.
    made = couple.get_by_role("list", name="Payments")
    await expect(made.get_by_text("Swift Cabs")).to_have_count(0)

    # The chart: its own chunk, fetched when the budget was first shown; an SVG hidden from
    # screen readers (the categories' table reads the same figures), and its own figures as
    # a table behind a disclosure.
    chart = couple.locator('figure[data-chart="budget"]')
    await chart.wait_for(timeout=5000)
    assert len(scripts) > first, "the chart's chunk was not fetched when the budget opened"
    assert await chart.locator("svg").get_attribute("aria-hidden") == "true"
    categories = couple.get_by_role("table", name="Categories: planned against paid and scheduled")
    await expect(
        categories.get_by_role("row", name="Attire").get_by_role("cell").nth(2)
    ).to_have_text("€1,740.00")
    await chart.get_by_text("Show the chart as a table").click()
    figures = chart.get_by_role("table", name="Planned, paid and scheduled by category")
    attire = figures.get_by_role("row", name="Attire")
    await expect(attire.get_by_role("cell")).to_have_text(["€2,500.00", "€0.00", "€1,740.00"])
    assert await chart.locator("rect.scheduled").count() >= 1

    # The couple schedules a payment; the planner (on a phone) sees it under Upcoming.
    form = couple.get_by_role("form", name="Record a payment")
    await form.get_by_label("Amount").fill("400.00")
    await form.get_by_label("Category").select_option(label="Music")
    await form.get_by_label("Status").select_option("scheduled")
    await form.get_by_role("button", name="Record payment").click()
    await refused(
        couple,
        form.get_by_label("Due"),
        "A scheduled payment needs the date it is due.",
        kept=[(form.get_by_label("Amount"), "400.00"), (form.get_by_label("Status"), "scheduled")],
    )
    await form.get_by_label("Due").fill("2027-02-20")
    await form.get_by_label("Vendor").fill("Brass Band")
    await form.get_by_role("button", name="Record payment").click()
    on_phone = planner.get_by_role("list", name="Upcoming").get_by_role("listitem")
    await expect(on_phone).to_have_count(4, timeout=5000)
    await expect(on_phone.first).to_contain_text("Brass Band")  # due before the others
    band = on_phone.filter(has_text="Brass Band")
    await screenshot(planner, "budget-upcoming-390px")

    # The planner marks it paid: it leaves Upcoming in both browsers, and is a payment made.
    await band.get_by_role("button", name="Mark the payment of €400.00 paid today").click()
    await expect(couple.get_by_role("list", name="Upcoming").get_by_role("listitem")).to_have_count(
        3, timeout=5000
    )
    await made.get_by_text("Brass Band").wait_for(timeout=5000)
    await expect(figures.get_by_role("row", name="Music").get_by_role("cell").nth(1)).to_have_text(
        "€1,060.00"
    )
    await status(planner).filter(has_text="Synced").wait_for(timeout=5000)
    budget = await demo.json("/api/weddings/demo/docs/budget")
    assert isinstance(budget, dict)
    band_payment = next(p for p in budget["payments"].values() if p["vendor"] == "Brass Band")
    assert band_payment["status"] == "paid" and band_payment["due"] == "2027-02-20"
    assert isinstance(band_payment["date"], str) and band_payment["amount"] == 40_000
    await couple.set_viewport_size({"width": 1400, "height": 900})
    await chart.scroll_into_view_if_needed()
    await screenshot(couple, "budget-chart-1400px")
    await context.close()
