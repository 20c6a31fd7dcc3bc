"""A household answers from its RSVP link on a phone (Debian's Chromium at 390 x 844,
against a real ``--demo`` server) and the couple's app, open on a laptop, shows it live: the
guest's RSVP in the guest list and who answered, and when, in the activity feed and the guest
list's answers panel, with the household's note to the couple. The page
renders the couple's and guests' strings as text, keeps only ``rsvp:`` keys in its storage,
and an answer given offline is sent once the phone is back online (its Idempotency-Key
kept with it)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from crdt_server.documents.model import household_id_of
from tests.web.conftest import PAGE_ERRORS, Demo, expect, open_app, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(90)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def _household(demo: Demo) -> tuple[str, str, list[dict[str, Any]]]:
    """A household of the demo whose people have not answered yet: its name, its id (the
    entry's, or the one a free-text household reads as) and its people."""
    guests = await demo.json("/api/weddings/demo/docs/guests", role="couple")
    assert isinstance(guests, dict)
    by_household: dict[str, list[dict[str, Any]]] = {}
    for gid, guest in sorted(guests["guests"].items()):
        if guest.get("household_id") or guest.get("household"):
            hid = guest.get("household_id") or household_id_of(guest["household"])
            by_household.setdefault(hid, []).append({"id": gid, **guest})
    hid, people = next(
        (hid, people)
        for hid, people in sorted(by_household.items())
        if len(people) >= 2 and all(p["rsvp"] == "pending" for p in people)
    )
    entry = guests.get("households", {}).get(hid)
    name = entry["name"] if entry else people[0]["household"]
    return name, hid, people


async def _link(demo: Demo, hid: str) -> str:
    async with httpx.AsyncClient(base_url=demo.url) as http:
        answer = await http.post(
            f"/api/weddings/demo/households/{hid}/rsvp-link",
            headers={"Authorization": f"Bearer {demo.tokens['couple']}"},
        )
        assert answer.status_code == 200, answer.text
        url: str = answer.json()["url"]
    return url


async def test_an_rsvp_from_a_phone_shows_live_in_the_couples_app(demo: Demo, browser: Any) -> None:
    household, hid, people = await _household(demo)
    first, second = people[0], people[1]
    _, couple = await open_app(browser, demo.link("couple"), width=1400, height=900)
    await couple.get_by_role("link", name="Guests", exact=True).click()
    await couple.get_by_role("searchbox", name="Search").fill(first["name"])
    rsvp = couple.get_by_label(f"RSVP for {first['name']}")
    await expect(rsvp).to_have_value("pending")

    phone_context = await browser.new_context(viewport={"width": 390, "height": 844})
    phone = await phone_context.new_page()
    phone.on("pageerror", lambda error: PAGE_ERRORS.append(f"rsvp: {error}"))
    url = await _link(demo, hid)
    await phone.goto(url.replace("http://127.0.0.1", demo.url.rsplit(":", 1)[0], 1))
    await phone.get_by_role("heading", name=household).wait_for(timeout=10_000)
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the RSVP page is {width} px wide on a 390 px screen"
    await screenshot(phone, "rsvp-page-390px")
    card = phone.get_by_role("region", name=first["name"])
    await card.get_by_label("Attending", exact=True).check()
    # The demo has a menu: a meal is one of its dishes; free text goes in the dietary needs.
    await card.get_by_label("Meal").select_option(index=1)
    await card.get_by_label("Dietary needs").fill("Fish <b>bold</b>")
    note = phone.get_by_label("A note for the couple (optional)")
    await note.fill("We arrive <i>Saturday</i> only")
    await phone.get_by_role("region", name=second["name"]).get_by_label("Not attending").check()
    await phone.get_by_role("button", name="Send my answer").click()
    await expect(phone.get_by_role("status")).to_contain_text("Thank you")
    await screenshot(phone, "rsvp-page-sent-390px")

    # Live in the couple's app: the RSVP, and who answered in the activity feed.
    await expect(rsvp).to_have_value("accepted", timeout=10_000)
    feed = couple.get_by_role("complementary", name="Activity")
    said = feed.get_by_role("listitem").filter(has_text=f"{first['name']} (RSVP link) answered")
    await expect(said.first).to_be_visible(timeout=10_000)
    # And in the guest list's "answered by RSVP link" panel: who, what and when, newest first.
    answers = couple.get_by_role("group", name="RSVP answers")
    await expect(answers).to_contain_text("2 people of 1 household", timeout=10_000)
    await answers.locator("summary").click()
    row = answers.get_by_role("row").filter(has_text=first["name"])
    await expect(row).to_contain_text("accepted")
    assert await row.locator("time[datetime]").count() == 1
    await expect(answers.get_by_role("row").filter(has_text=second["name"])).to_contain_text(
        "declined"
    )
    # The household's note, as text, with when it was written.
    noted = answers.get_by_role("listitem").filter(has_text=household)
    await expect(noted).to_contain_text("We arrive <i>Saturday</i> only")
    assert await noted.locator("time[datetime]").count() == 1
    assert await answers.locator("i").count() == 0
    # Newest first: above the notes the demo's households left earlier.
    await expect(answers.locator(".answers-notes li").first).to_contain_text(household)
    await noted.scroll_into_view_if_needed()
    await screenshot(couple, "rsvp-answers-note-1400px")

    # Text stays text; only rsvp: keys in the page's storage.
    assert await phone.locator("b").count() == 0
    keys = await phone.evaluate("Object.keys(localStorage)")
    assert keys and all(k.startswith("rsvp:") for k in keys), keys

    # Offline: the answer waits on the phone, then goes once the network is back.
    await phone_context.set_offline(True)
    await (
        phone.get_by_role("region", name=second["name"])
        .get_by_label("Attending", exact=True)
        .check()
    )
    await note.fill("Sam is allergic to nuts")
    await phone.get_by_role("button", name="Send my answer").click()
    await expect(phone.get_by_role("status")).to_contain_text("offline")
    pending = await phone.evaluate("localStorage.getItem('rsvp:pending')")
    assert pending and '"key":"rsvp-' in pending and '"note":"Sam is allergic' in pending
    # The page shown again offline keeps the note waiting to be sent.
    await expect(note).to_have_value("Sam is allergic to nuts")
    await phone_context.set_offline(False)
    await phone.evaluate("window.dispatchEvent(new Event('online'))")
    await expect(phone.get_by_role("status")).to_contain_text("Thank you", timeout=10_000)
    await couple.get_by_role("searchbox", name="Search").fill(second["name"])
    await expect(couple.get_by_label(f"RSVP for {second['name']}")).to_have_value(
        "accepted", timeout=10_000
    )
    assert await phone.evaluate("localStorage.getItem('rsvp:pending')") is None
    await expect(noted).to_contain_text("Sam is allergic to nuts", timeout=10_000)
    await expect(noted).not_to_contain_text("Saturday")

    # The same answer sent again changes nothing in the guest list, and is listed all the
    # same (issue 77: the panel said "nobody yet" after a household answered what the
    # couple had typed already).
    await phone.get_by_role("button", name="Send my answer").click()
    await expect(phone.get_by_role("status")).to_contain_text("Thank you", timeout=10_000)
    await expect(answers.get_by_role("row").filter(has_text=second["name"])).to_contain_text(
        "accepted (as before)", timeout=10_000
    )
    await phone_context.close()
