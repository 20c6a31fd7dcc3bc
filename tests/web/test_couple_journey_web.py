"""A couple's whole journey, in Debian's Chromium against a server started as a plain
``./scripts/serve`` starts it (loopback, no demo, no admin key) with a real SMTP receiver
(aiosmtpd), every step done in the app as a person does it, with no operator token:

1. the couple creates the wedding from the first page (the local operator is signed in at
   once, as ``docs/guides/web-app.md`` says);
2. invites a planner by email; the invitation is read from the SMTP receiver and the planner
   joins in a second browser context;
3. they plan together, each seeing the other's changes live: two guests (one in a household,
   one in none), a timeline item, a budget category and a payment, a task;
4. in "Guests' answers" the couple makes the household's link and the lone guest's link;
   both are answered on a phone; the couple sees who answered;
5. the Overview shows the answers (RSVP progress) and the budget;
6. the day: the planner switches day-of mode on, the couple taps a vendor's check-in and the
   planner sees it, with the item's state;
7. the couple raises an Emergency; the planner's inbox has it marked as one, she says Seen,
   and the couple's panel lists who saw it;
8. the couple removes the planner: her open tab clears the wedding and
   ``indexedDB.databases()`` holds nothing of it.

The wedding is today, in a time zone where it is now between 01:00 and 03:00, so the day's
window (from 05:00) is not open yet: the day's panel shows only because the planner
switched it on."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Page

from tests.server import ServerProcess
from tests.web.conftest import PAGE_ERRORS, expect, screenshot, status, until
from tests.web.test_people_web import _Inbox, local  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(120)]

DATABASES = "(async () => (await indexedDB.databases()).map((d) => d.name))()"
STORAGE = "(() => Object.keys(localStorage))()"
# One zone per UTC offset from -11 to +14 (whatever summer time does, some zone is at any
# hour of the day).
ZONES = [
    "Pacific/Pago_Pago",
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Halifax",
    "America/Sao_Paulo",
    "Atlantic/South_Georgia",
    "Atlantic/Cape_Verde",
    "Africa/Abidjan",
    "Europe/London",
    "Europe/Berlin",
    "Africa/Cairo",
    "Europe/Moscow",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Brisbane",
    "Pacific/Noumea",
    "Pacific/Auckland",
    "Pacific/Tongatapu",
    "Pacific/Kiritimati",
]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


def _small_hours() -> tuple[str, str]:
    """A zone where it is now between 01:00 and 03:00, and today's date there."""
    now = datetime.now(UTC)
    for zone in ZONES:
        here = now.astimezone(ZoneInfo(zone))
        if 1 <= here.hour < 3:
            return zone, here.date().isoformat()
    raise AssertionError(f"no zone of {ZONES} is between 01:00 and 03:00 at {now}")


async def _invitation_to(inbox: _Inbox, address: str) -> str:
    """The invitation link of the first message to ``address`` (waiting for it)."""
    return await inbox.link_to(address, pattern=r"http://\S+/app/invite#code=[A-Za-z0-9_.-]+")


async def _tab(page: Page, name: str) -> None:
    await (
        page.get_by_role("navigation", name="Sections")
        .get_by_role("link", name=name, exact=True)
        .click()
    )


async def _chart_name(page: Page, chart: str) -> str:
    found = page.locator(f'[data-chart="{chart}"] svg[role="img"]')
    await found.wait_for(timeout=10_000)
    return await found.get_attribute("aria-label") or ""


async def test_a_couple_plans_a_wedding_with_a_planner_from_creation_to_removal(
    local: tuple[ServerProcess, _Inbox],  # noqa: F811
    browser: Any,
) -> None:
    server, inbox = local
    zone, today = _small_hours()
    where = {"timezone_id": zone, "locale": "en-GB"}

    # 1. The couple creates the wedding from the first page: today, in their zone.
    couple_context = await browser.new_context(viewport={"width": 1400, "height": 900}, **where)
    couple = await couple_context.new_page()
    couple.on("pageerror", lambda error: PAGE_ERRORS.append(f"couple: {error}"))
    await couple.goto(f"{server.url}/")
    await couple.get_by_role("link", name="Create a wedding").click()
    setup = couple.get_by_role("form", name="Create a wedding")
    await setup.get_by_label("Your name").fill("Ann Lee")
    await setup.get_by_label("Your partner’s name").fill("Bo Chen")
    await setup.get_by_label("Date").fill(today)
    await expect(setup.get_by_label("Time zone")).to_have_value(zone)
    await setup.get_by_label("Currency").select_option("EUR")
    await setup.get_by_label("Your email").fill("ann@example.com")
    await setup.get_by_role("button", name="Create the wedding").click()
    await status(couple).filter(has_text="Synced").wait_for(timeout=15_000)
    await expect(couple.get_by_role("banner")).to_contain_text("Ann Lee & Bo Chen · Ann Lee")
    names = await couple.evaluate(DATABASES)
    wedding = names[0].split(":", 2)[2].split("/")[0]

    # 2. She invites a planner by email; the planner joins from the link in her mail.
    await couple.get_by_role("button", name="Share", exact=True).click()
    invite = couple.get_by_role("form", name="Invite someone")
    await invite.get_by_label("Role").select_option("planner")
    await invite.get_by_label("Their name").fill("Priya")
    await invite.get_by_label(re.compile("^Their email")).fill("priya@example.com")
    await invite.get_by_role("button", name="Make an invitation link").click()
    await expect(couple.get_by_role("status").filter(has_text="priya@example.com")).to_contain_text(
        "We are emailing the link to priya@example.com"
    )
    link = await _invitation_to(inbox, "priya@example.com")
    await couple.get_by_role("button", name="Share", exact=True).click()  # closed again

    planner_context = await browser.new_context(viewport={"width": 1100, "height": 800}, **where)
    planner = await planner_context.new_page()
    planner.on("pageerror", lambda error: PAGE_ERRORS.append(f"planner: {error}"))
    await planner.goto(link)
    joining = planner.get_by_role("form", name="Join the wedding")
    await joining.get_by_label("Your name").fill("Priya")
    await joining.get_by_role("button", name="Join the wedding").click()
    await status(planner).filter(has_text="Synced").wait_for(timeout=15_000)
    await expect(planner.get_by_role("banner")).to_contain_text("Priya (planner)")
    await expect(
        couple.get_by_role("banner").get_by_role("img", name=re.compile("^Priya"))
    ).to_be_visible(timeout=10_000)

    # 3. Planning together, each change seen live by the other.
    await _tab(couple, "Guests")
    await _tab(planner, "Guests")
    add = couple.get_by_role("form", name="Add a guest")
    await add.get_by_label("Name", exact=True).fill("Ada Lovelace")
    await add.get_by_label("Household").fill("Lovelace family")
    await add.get_by_role("button", name="Add guest").click()
    await add.get_by_label("Name", exact=True).fill("Grace Hopper")
    await add.get_by_role("button", name="Add guest").click()
    await expect(planner.get_by_label("RSVP for Ada Lovelace")).to_have_value("pending")
    await expect(planner.get_by_label("RSVP for Grace Hopper")).to_have_value("pending")
    households = planner.locator("main h3")
    await expect(households.filter(has_text="Lovelace family")).to_have_count(1)
    await expect(households.filter(has_text="No household")).to_have_count(1)

    await _tab(planner, "Timeline")
    await _tab(couple, "Timeline")
    item = planner.get_by_role("form", name="Add a timeline item")
    await item.get_by_label("Title").fill("Ceremony")
    await item.get_by_label("Starts").fill("14:00")
    await item.get_by_label("Ends").fill("15:00")
    await item.get_by_label("Location").fill("The Old Mill")
    await item.get_by_label("Vendor").fill("Harbour Strings")
    await item.get_by_role("button", name="Add item").click()
    ceremony = couple.locator("main li.item").filter(has_text="Ceremony")
    await expect(ceremony.locator("time")).to_have_text("14:00–15:00", timeout=10_000)

    await _tab(couple, "Budget")
    await _tab(planner, "Budget")
    category = couple.get_by_role("form", name="Add a category")
    await category.get_by_label("Category name").fill("Music")
    await category.get_by_label("Planned").fill("2000.00")
    await category.get_by_role("button", name="Add category").click()
    payment = couple.get_by_role("form", name="Record a payment")
    await payment.get_by_label("Amount").fill("500.00")
    await payment.get_by_label("Category").select_option(label="Music")
    await payment.get_by_label("Date paid").fill(today)
    await payment.get_by_label("Vendor").fill("Harbour Strings")
    await payment.get_by_role("button", name="Record payment").click()
    paid = planner.get_by_role("list", name="Payments").get_by_role("listitem")
    await expect(paid.filter(has_text="Harbour Strings")).to_contain_text("€500.00", timeout=10_000)

    await _tab(planner, "Tasks")
    await _tab(couple, "Tasks")
    task = planner.locator('form[data-form="add-task"]')
    await task.get_by_label("Title").fill("Confirm the string quartet")
    await task.get_by_role("button", name="Add task").click()
    await expect(couple.get_by_role("checkbox", name="Confirm the string quartet")).to_be_visible(
        timeout=10_000
    )
    await screenshot(couple, "journey-planned")

    # 4. Guests' answers: the household's link and the lone guest's, answered on a phone.
    await _tab(couple, "Guests’ answers")
    screen = couple.get_by_role("main")
    rows = screen.get_by_role("list", name="RSVP links")
    family = rows.get_by_role("listitem").filter(has_text="Lovelace family")
    await expect(family).to_contain_text("household · Ada Lovelace")
    await family.get_by_role("button", name="Show the link").click()
    family_link = await family.get_by_label("Link for Lovelace family").input_value()
    grace = rows.get_by_role("listitem").filter(has_text="Grace Hopper")
    await expect(grace).to_contain_text("no household")
    await grace.get_by_role("button", name="Show the link").click()
    grace_link = await grace.get_by_label("Link for Grace Hopper").input_value()
    assert re.search(r"/rsvp/#code=", family_link) and re.search(r"/rsvp/#code=", grace_link)

    phone_context = await browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, **where
    )
    phone = await phone_context.new_page()
    phone.on("pageerror", lambda error: PAGE_ERRORS.append(f"rsvp: {error}"))
    await phone.goto(family_link)
    await phone.get_by_role("heading", name="Lovelace family").wait_for(timeout=10_000)
    ada = phone.get_by_role("region", name="Ada Lovelace", exact=True)
    await ada.get_by_label("Attending", exact=True).check()
    await phone.get_by_role("button", name="Send my answer").click()
    await expect(phone.get_by_role("status")).to_contain_text("Thank you", timeout=10_000)
    await screenshot(phone, "journey-rsvp-390px")
    await phone.goto("about:blank")
    await phone.goto(grace_link)
    await phone.get_by_role("heading", name="Grace Hopper", level=1).wait_for(timeout=10_000)
    hopper = phone.get_by_role("region", name="Grace Hopper", exact=True)
    await hopper.get_by_label("Not attending").check()
    await phone.get_by_role("button", name="Send my answer").click()
    await expect(phone.get_by_role("status")).to_contain_text("Thank you", timeout=10_000)
    await phone_context.close()

    answered = screen.get_by_role("list", name="Answers by link")
    await expect(answered.get_by_role("listitem").filter(has_text="Ada Lovelace")).to_contain_text(
        "Ada Lovelace accepted", timeout=10_000
    )
    await expect(answered.get_by_role("listitem").filter(has_text="Grace Hopper")).to_contain_text(
        "Grace Hopper declined", timeout=10_000
    )
    await expect(family).to_contain_text("answered")
    await expect(screen.locator(".rsvp-progress")).to_contain_text("2 guests of 2 answered")

    # 5. The Overview: the answers and the budget.
    await _tab(couple, "Overview")
    overview = couple.locator("main section.overview")
    await expect(overview).to_contain_text("2 people invited: 1 accepted", timeout=10_000)
    await expect(overview).to_contain_text("1 declined")
    progress = await _chart_name(couple, "rsvp-progress")
    assert progress.startswith("RSVP progress:"), progress
    await expect(overview).to_contain_text("Planned €2,000.00, paid €500.00")
    budget = couple.get_by_role("img", name=re.compile("^Budget by category:"))
    await expect(budget).to_have_accessible_name(
        re.compile("Music planned €2,000.00, paid €500.00"), timeout=10_000
    )
    await screenshot(couple, "journey-overview")

    # 6. The day: not yet in its window, so the day's panel is off until the planner
    # switches day-of mode on; the couple taps the vendor's arrival, the planner sees it.
    await _tab(planner, "Timeline")
    switch = planner.get_by_label("Day-of mode")
    await expect(switch).to_have_value("auto", timeout=10_000)
    await expect(planner.locator("section.wedding-day")).to_have_count(0)
    await switch.select_option("on")
    day = planner.locator("section.wedding-day")
    await expect(day.locator("li[data-state]").filter(has_text="Ceremony")).to_contain_text(
        "Upcoming", timeout=10_000
    )
    await expect(switch).to_have_accessible_description(re.compile("The day’s panel is on"))
    await _tab(couple, "Timeline")
    await expect(couple.get_by_label("Day-of mode")).to_have_count(0)  # the planner's switch
    arrived = couple.get_by_role("button", name="Harbour Strings: Arrived", exact=True)
    await arrived.click()
    strings = day.locator("li[data-vendor]").filter(has_text="Harbour Strings")
    await expect(strings.locator("strong")).to_have_text("Harbour Strings")  # as typed
    await expect(strings.get_by_role("status")).to_contain_text(
        "Arrived, reported at", timeout=10_000
    )
    await screenshot(planner, "journey-day")

    # 7. An emergency from the couple: the planner's inbox has it, marked; she says Seen,
    # and the couple's panel lists who saw it.
    await couple.get_by_role("button", name="Emergency").click()
    raise_it = couple.get_by_role("form", name="Raise an emergency")
    await raise_it.get_by_label("What is happening").fill("The string quartet's van broke down")
    await (
        raise_it.get_by_role("group", name="Timeline items it concerns")
        .get_by_label("Ceremony")
        .check()
    )
    await (
        raise_it.get_by_role("group", name="Vendors it concerns")
        .get_by_label("Harbour Strings", exact=True)
        .check()
    )
    await raise_it.get_by_role("button", name="Send the emergency to everyone").click()
    sent = couple.get_by_role("list", name="Emergencies you sent")
    await expect(sent).to_contain_text("Nobody has seen it yet")
    bell = planner.get_by_role("button", name=re.compile("^Inbox, [1-9][0-9]* unread"))
    await expect(bell).to_be_visible(timeout=10_000)
    await bell.click()
    emergency = planner.locator("li.emergency")
    await expect(emergency).to_contain_text("Emergency from Ann Lee")
    await expect(emergency).to_contain_text(
        "The string quartet's van broke down (concerns Ceremony, Harbour Strings)"
    )
    await emergency.get_by_role("button", name=re.compile("^Seen")).click()
    await expect(sent).to_contain_text("Seen by Priya", timeout=10_000)
    await screenshot(couple, "journey-emergency-seen")

    # 8. The couple removes the planner: her open tab forgets the wedding.
    assert [n for n in await planner.evaluate(DATABASES) if wedding in n]
    await couple.get_by_role("button", name="Share", exact=True).click()
    await couple.get_by_role("button", name="Remove Priya").click()
    await couple.get_by_role("button", name="Really remove Priya?").click()
    await expect(planner.get_by_role("alert")).to_contain_text("no longer a member", timeout=15_000)
    await until(planner, "document.body.dataset.forgotten === 'true'")
    await expect(planner.get_by_text("Ada Lovelace")).to_have_count(0)
    assert [n for n in await planner.evaluate(DATABASES) if wedding in n] == []
    assert [k for k in await planner.evaluate(STORAGE) if wedding in k] == []
    await planner_context.close()
    await couple_context.close()
