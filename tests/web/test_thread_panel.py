"""The thread panel of the planner web app in a real browser against a real ``--demo`` server:
the couple discusses a guest (a thread anchored to the guest, a message whose first answer is
lost and which is retried, stored once), and the planner sees the unread badge on that guest
live, then the message in the guest's panel."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.web.conftest import ADMIN_KEY, PAGE_ERRORS, Demo, expect, open_app, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(60)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def start_thread(page: Any, guest_id: str, name: str, subject: str) -> tuple[Any, Any]:
    """Open the guest's Discuss panel, start a thread with ``subject``: the panel and its
    message box."""
    row = page.locator(f'main [data-entity="{guest_id}"]')
    await row.get_by_role("button", name="Discuss").click()
    panel = page.get_by_role("dialog", name=f"Discuss {name}")
    start = panel.get_by_role("form", name="Start a thread")
    await start.get_by_label("Subject").fill(subject)
    await start.get_by_role("button", name="Start thread").click()
    return panel, panel.get_by_role("textbox", name="Message")


async def planner_is_mentioned(demo: Demo, planner: Any) -> None:
    """Wait (10 s at most) until the planner's inbox holds a mention."""
    deadline = time.monotonic() + 10
    while True:
        inbox = await demo.json("/api/weddings/demo/notifications", role="planner")
        assert isinstance(inbox, dict)
        if any(n["reason"] == "mention" for n in inbox["notifications"]):
            return
        assert time.monotonic() < deadline, inbox
        await planner.wait_for_timeout(100)


async def test_the_couple_discusses_a_guest_and_the_planner_sees_the_badge_and_the_message(
    demo: Demo, browser: Any
) -> None:
    guests = await demo.json("/api/weddings/demo/docs/guests")
    assert isinstance(guests, dict)
    guest_id, guest = sorted(guests["guests"].items())[0]
    name = guest["name"]
    text = "Is the vegan menu confirmed for her?"

    _, couple = await open_app(browser, demo.link("couple"))
    planner_context, planner = await open_app(browser, demo.link("planner"))
    await (
        planner.get_by_role("complementary", name="Activity")
        .get_by_text("Live", exact=True)
        .wait_for(timeout=10_000)
    )

    def discuss(page: Any) -> Any:
        row = page.locator(f'main [data-entity="{guest_id}"]')
        return row.get_by_role("button", name="Discuss")

    # The first PUT of the message reaches the server but its answer is lost: the app
    # retries with the same client id, and the server keeps the message once.
    puts: list[str] = []

    async def lose_first_answer(route: Any) -> None:
        puts.append(route.request.url)
        if len(puts) == 1:
            await route.fetch()
            await route.abort("connectionreset")
        else:
            await route.continue_()

    await couple.route("**/api/weddings/demo/threads/*/messages/*", lose_first_answer)

    await discuss(couple).click()
    panel = couple.get_by_role("dialog", name=f"Discuss {name}")
    await panel.get_by_text("No threads yet").wait_for(timeout=5000)
    await panel.get_by_label("Subject").fill("Dietary needs")
    await panel.get_by_role("button", name="Start thread").click()
    await panel.get_by_role("textbox", name="Message").fill(text)
    await panel.get_by_role("button", name="Send").click()
    sent = panel.locator("li.message:not(.pending)").filter(has_text=text)
    await sent.wait_for(timeout=10_000)
    await expect(panel.locator("li.message.pending")).to_have_count(0)
    assert len(puts) == 2 and puts[0] == puts[1], puts

    # The planner, who had the guest list open all along: the badge on that guest, live.
    badge = discuss(planner).locator(".badge")
    await badge.filter(has_text="1").wait_for(timeout=5000)
    assert await planner.locator("main .badge").count() == 1
    await discuss(planner).click()
    planner_panel = planner.get_by_role("dialog", name=f"Discuss {name}")
    message = planner_panel.locator("li.message").filter(has_text=text)
    await message.wait_for(timeout=5000)
    await message.get_by_text("Alex & Sam").wait_for()
    # Shown is read: the badge goes, and the server agrees.
    await expect(badge).to_have_count(0)
    await screenshot(planner, "planner-thread-panel")

    found = await demo.json(f"/api/weddings/demo/threads?anchor=guests:{guest_id}")
    assert isinstance(found, dict)
    [thread] = found["threads"]
    assert thread["subject"] == "Dietary needs" and thread["kind"] == "guest"
    assert thread["anchors"] == [{"doc": "guests", "id": guest_id}]
    assert thread["unread"] == 0
    stored = await demo.json(f"/api/weddings/demo/threads/{thread['id']}/messages")
    assert isinstance(stored, dict)
    assert [(m["body"], m["author"]["sub"]) for m in stored["messages"]] == [(text, "demo-couple")]

    # A reply from the planner reaches the couple's open panel live.
    await planner_panel.get_by_role("textbox", name="Message").fill("Yes, confirmed with Chef.")
    await planner_panel.get_by_role("button", name="Send").click()
    await (
        panel.locator("li.message")
        .filter(has_text="Yes, confirmed with Chef.")
        .wait_for(timeout=5000)
    )
    # Resolved by the planner: the couple's list says so, live.
    await planner_panel.get_by_role("button", name="Resolve").click()
    await panel.get_by_role("button", name="Reopen").wait_for(timeout=5000)
    await panel.locator(".thread-pick .pill").filter(has_text="resolved").wait_for()
    await planner_context.close()

    # On a phone, family (who operates the guests but is not in the thread) gets the panel
    # as a sheet within the screen, without the couple's thread: the server decides.
    family_context, family = await open_app(browser, demo.link("family"), width=375, height=740)
    await discuss(family).click()
    sheet = family.get_by_role("dialog", name=f"Discuss {name}")
    await sheet.get_by_text("No threads yet").wait_for(timeout=5000)
    box = await sheet.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375, box
    assert await family.evaluate("document.documentElement.scrollWidth") <= 375
    assert await sheet.get_by_text("Dietary needs").count() == 0
    await screenshot(family, "family-thread-panel-375px")
    await family_context.close()


async def test_the_composer_suggests_members_for_an_at_and_the_mention_reaches_the_planner(
    demo: Demo, browser: Any
) -> None:
    guests = await demo.json("/api/weddings/demo/docs/guests")
    assert isinstance(guests, dict)
    guest_id, guest = sorted(guests["guests"].items())[1]
    _, planner = await open_app(browser, demo.link("planner"))  # the directory learns Priya
    _, couple = await open_app(browser, demo.link("couple"))
    panel, box = await start_thread(couple, guest_id, guest["name"], "Seat next to the band?")
    await box.press_sequentially("Can @pri")
    options = panel.get_by_role("listbox", name="People to mention")
    await expect(options.get_by_role("option", name="Priya demo-planner")).to_be_visible()
    await box.press("Enter")
    await expect(box).to_have_value("Can @[Priya](demo-planner) ")
    await box.press_sequentially("check?")
    await panel.get_by_role("button", name="Send").click()
    # Shown as @Priya, stored with her sub, and in her inbox as a mention.
    await expect(panel.locator(".message .mention").first).to_have_text("@Priya")
    await planner_is_mentioned(demo, planner)


async def test_someone_who_joins_later_can_be_mentioned_without_a_reload(
    demo: Demo, browser: Any
) -> None:
    guests = await demo.json("/api/weddings/demo/docs/guests")
    assert isinstance(guests, dict)
    guest_id, guest = sorted(guests["guests"].items())[4]
    _, couple = await open_app(browser, demo.link("couple"))  # before Quinn was a member
    panel, box = await start_thread(couple, guest_id, guest["name"], "Flowers for table 2")
    await box.press_sequentially("Ask @qui")
    options = panel.get_by_role("listbox", name="People to mention")
    await expect(options).to_be_hidden()
    await box.fill("")
    async with httpx.AsyncClient() as client:  # she joins the wedding meanwhile
        joined = await client.put(
            f"{demo.url}/api/weddings/demo/members/quinn",
            json={"role": "family", "name": "Quinn Hale"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert joined.status_code in (200, 201), joined.text
    # The couple's picker follows the directory live: @ and her first letters, then Enter.
    await box.press_sequentially("Ask @qui")
    quinn = options.get_by_role("option", name="Quinn Hale quinn")
    await expect(quinn).to_be_visible(timeout=10_000)
    await box.press("Enter")
    await expect(box).to_have_value("Ask @[Quinn Hale](quinn) ")


async def test_a_mention_by_display_name_rings_the_other_persons_bell(
    demo: Demo, browser: Any
) -> None:
    guests = await demo.json("/api/weddings/demo/docs/guests")
    assert isinstance(guests, dict)
    guest_id, guest = sorted(guests["guests"].items())[2]
    _, planner = await open_app(browser, demo.link("planner"))
    _, couple = await open_app(browser, demo.link("couple"))
    await expect(planner.get_by_role("button", name="Inbox", exact=True)).to_be_visible()

    panel, box = await start_thread(couple, guest_id, guest["name"], "Allergies")
    await box.fill("@Priya is the nut-free cake booked?")  # typed as plain text, no pick
    await panel.get_by_role("button", name="Send").click()

    # Live: the planner's bell rings; the notification opens the thread, and is read.
    ringing = planner.get_by_role("button", name="Inbox, 1 unread")
    await expect(ringing).to_be_visible(timeout=10_000)
    await screenshot(planner, "inbox-bell")
    await ringing.click()
    inbox = planner.get_by_role("region", name="Inbox")
    await inbox.get_by_role("button", name="Alex & Sam mentioned you in “Allergies”").click()
    thread = planner.get_by_role("dialog", name="Discuss Allergies")
    await expect(thread.get_by_text("@Priya is the nut-free cake booked?")).to_be_visible()
    await expect(planner.get_by_role("button", name="Inbox", exact=True)).to_be_visible(
        timeout=10_000
    )


async def test_a_name_that_reached_nobody_is_said_under_the_composer(
    demo: Demo, browser: Any
) -> None:
    guests = await demo.json("/api/weddings/demo/docs/guests")
    assert isinstance(guests, dict)
    guest_id, guest = sorted(guests["guests"].items())[3]
    _, planner = await open_app(browser, demo.link("planner"))  # the directory learns Priya
    _, couple = await open_app(browser, demo.link("couple"))
    panel, box = await start_thread(couple, guest_id, guest["name"], "The band")
    await box.fill("@Priya and @Ghost, is the band booked? cc @[Ghost](zed), I'm @home")
    await panel.get_by_role("button", name="Send").click()

    # Sent (Priya is mentioned); the name that reached nobody is said under the composer,
    # once, and the composer is described by it; "@home" is text.
    note = panel.get_by_role("status").filter(has_text="was notified")
    await expect(note).to_have_text("Nobody named Ghost was notified.")
    assert await note.is_visible()
    described = await box.get_attribute("aria-describedby")
    note_id = await note.get_attribute("id")
    assert described is not None and note_id is not None and note_id in described.split()
    await expect(box).to_have_value("")
    await screenshot(couple, "mention-unnotified")
    await planner_is_mentioned(demo, planner)

    # The next message that reaches everyone it names clears the note.
    await box.fill("Thanks @Priya")
    await panel.get_by_role("button", name="Send").click()
    await expect(note).to_have_count(0)
    assert (await box.get_attribute("aria-describedby") or "") == ""
