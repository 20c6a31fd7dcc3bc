"""Collaborative notes in the app, in a real browser: two people type in one note at once,
both keep their words, and neither person's cursor jumps when the other types."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.jsclient import JsClient, text_insert
from tests.server import ServerProcess
from tests.web.conftest import (
    ADMIN_KEY,
    PAGE_ERRORS,
    Demo,
    demo_links,
    open_app,
    screenshot,
    status,
)
from tests.web.typists import (
    assert_runs_whole,
    guest_named,
    open_guest_notes,
    text_of,
    value_of,
    wait_same,
    wait_value,
)

pytestmark = [pytest.mark.browser, pytest.mark.js, pytest.mark.asyncio, pytest.mark.timeout(90)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def test_two_people_type_in_one_note_and_converge_with_cursors_kept(
    demo: Demo, browser: Any
) -> None:
    timeline = await demo.json("/api/weddings/demo/docs/timeline")
    assert isinstance(timeline, dict)
    item_id, item = next((i, v) for i, v in timeline["items"].items() if v["title"] == "Ceremony")
    original = item["notes"]
    assert original  # the demo's ceremony has notes
    _, couple = await open_app(browser, demo.link("couple"))
    _, planner = await open_app(browser, demo.link("planner"), width=390, height=844)
    area = f'textarea[data-notes="items/{item_id}"]'
    for page in (couple, planner):
        await page.get_by_role("link", name="Timeline").click()
        await page.get_by_role("button", name="Edit Ceremony").click()
        await wait_value(page, area, original)
    # The couple writes at the end, the planner at the start, at the same time.
    await couple.locator(area).click()
    await couple.locator(area).press("Control+End")
    await planner.locator(area).click()
    await planner.locator(area).press("Control+Home")
    await asyncio.gather(
        couple.keyboard.type(" Bring tissues 🤧.", delay=25),
        planner.keyboard.type("Planner: ", delay=25),
    )
    both = "Planner: " + original + " Bring tissues 🤧."
    await wait_value(couple, area, both)
    await wait_value(planner, area, both)
    # Each cursor stayed where its person was typing, though the other person's text moved
    # or followed it: typing on continues there.
    assert (await value_of(couple, area))[1] == len(both.encode("utf-16-le")) // 2
    assert (await value_of(planner, area))[1] == len("Planner: ")
    await asyncio.gather(couple.keyboard.type("!"), planner.keyboard.type("Ada, ", delay=25))
    final = "Planner: Ada, " + original + " Bring tissues 🤧.!"
    await wait_value(couple, area, final)
    await wait_value(planner, area, final)
    await status(couple).filter(has_text="Synced").wait_for(timeout=5000)
    await status(planner).filter(has_text="Synced").wait_for(timeout=5000)
    stored = await demo.json("/api/weddings/demo/docs/timeline")
    assert isinstance(stored, dict)
    assert stored["items"][item_id]["notes"] == final
    await screenshot(planner, "notes-two-people-390")
    await screenshot(couple, "notes-two-people-1100")


async def test_two_browsers_and_a_stock_client_typing_at_the_end_of_one_note_keep_words(
    demo: Demo, browser: Any
) -> None:
    """Issue 48: both people type at the end of the same guest note, letter by letter, and a
    stock y-websocket client in Node writes there too; every run arrives whole."""
    guest_id, name = await guest_named(demo, 5)
    _, couple = await open_app(browser, demo.link("couple"))
    _, planner = await open_app(browser, demo.link("planner"), width=390, height=844)
    areas = [await open_guest_notes(page, name, guest_id) for page in (couple, planner)]
    area = areas[0]
    await couple.locator(area).click()
    await couple.keyboard.type("Base note.", delay=10)
    await wait_value(planner, area, "Base note.")
    for page in (couple, planner):
        await page.locator(area).click()
        await page.keyboard.press("Control+End")
    async with await JsClient.start(version=3, name="stock") as node:
        await node.connect(
            demo.url.replace("http", "ws", 1) + "/sync",
            "demo/guests",
            # A writer of the guest list (family only operates it since issue 47).
            params={"token": demo.tokens["planner"]},
        )
        await node.wait_synced()

        async def stock_client_writes() -> None:
            # At the start, while both type at the end: a stock client inserting at an index
            # it read has no caret to keep, so at the end it could land inside a word being
            # typed (the clients guide says how an editor keeps one).
            await couple.wait_for_timeout(400)
            await node.edit(text_insert("guests", 0, "[node] ", path=[guest_id, "notes"]))

        couple_run, planner_run = " couple text é", " planner text 🎉"
        await asyncio.gather(
            couple.keyboard.type(couple_run, delay=60),
            planner.keyboard.type(planner_run, delay=60),
            stock_client_writes(),
        )
        shown = await wait_same([couple, planner], lambda page: text_of(page, area))
        assert_runs_whole(shown, [couple_run, planner_run], "three writers")
        assert shown.startswith("[node] Base note.") and len(shown) == len(
            "[node] Base note." + couple_run + planner_run
        )
        deadline = time.monotonic() + 10
        while (await node.json({"guests": "map"}))["guests"][guest_id]["notes"] != shown:
            assert time.monotonic() < deadline, "the stock client never converged"
            await couple.wait_for_timeout(50)
    await status(planner).filter(has_text="Synced").wait_for(timeout=5000)
    stored = await demo.json("/api/weddings/demo/docs/guests")
    assert isinstance(stored, dict)
    assert stored["guests"][guest_id]["notes"] == shown
    # Each caret is still after its own person's last letter.
    for page, run in ((couple, couple_run), (planner, planner_run)):
        value, caret = await value_of(page, area)
        before = value.encode("utf-16-le")[: 2 * caret].decode("utf-16-le")  # JS counts UTF-16
        assert before.endswith(run), (value, caret)
    await screenshot(couple, "notes-two-typists-1100")
    await screenshot(planner, "notes-two-typists-390")


async def test_an_ime_composition_is_one_edit_and_one_undo_step(demo: Demo, browser: Any) -> None:
    guest_id, name = await guest_named(demo, 6)
    context, couple = await open_app(browser, demo.link("couple"))
    _, planner = await open_app(browser, demo.link("planner"))
    area = await open_guest_notes(couple, name, guest_id)
    await open_guest_notes(planner, name, guest_id)
    await couple.locator(area).click()
    await couple.keyboard.press("Control+End")
    await couple.keyboard.type("Menu: ", delay=10)
    await wait_value(planner, area, "Menu: ")
    cdp = await context.new_cdp_session(couple)
    for step in ("n", "ni", "にほ", "にほん"):
        await cdp.send(
            "Input.imeSetComposition",
            {"text": step, "selectionStart": len(step), "selectionEnd": len(step)},
        )
    await wait_value(couple, area, "Menu: にほん")
    # Nothing of the unfinished composition was written: the other person sees none of it.
    await status(couple).filter(has_text="Synced").wait_for(timeout=5000)
    assert (await value_of(planner, area))[0] == "Menu: "
    await cdp.send("Input.insertText", {"text": "日本"})
    await wait_value(planner, area, "Menu: 日本")
    stored = await demo.json("/api/weddings/demo/docs/guests")
    assert isinstance(stored, dict)
    assert stored["guests"][guest_id]["notes"] == "Menu: 日本"
    # One undo step takes the whole composed word back, and only it.
    await couple.keyboard.press("Control+z")
    await wait_value(couple, area, "Menu: ")
    await wait_value(planner, area, "Menu: ")
    await couple.keyboard.press("Control+Shift+z")
    await wait_value(planner, area, "Menu: 日本")


async def test_cancel_undoes_only_this_persons_typing_in_the_note(demo: Demo, browser: Any) -> None:
    guest_id, name = await guest_named(demo, 7)
    _, couple = await open_app(browser, demo.link("couple"))
    _, planner = await open_app(browser, demo.link("planner"))
    area = await open_guest_notes(planner, name, guest_id)
    await open_guest_notes(couple, name, guest_id)
    form = planner.get_by_role("form", name=f"Edit {name}")
    await form.get_by_text("Notes save as you type; Cancel undoes your typing.").wait_for()
    await planner.locator(area).click()
    await planner.keyboard.type("Nut allergy.", delay=10)
    await wait_value(couple, area, "Nut allergy.")
    await planner.get_by_role("button", name="Save").click()  # kept: the form closes
    await open_guest_notes(planner, name, guest_id)
    await planner.locator(area).click()
    await planner.keyboard.press("Control+End")
    await couple.locator(area).click()
    await couple.keyboard.press("Control+Home")
    await asyncio.gather(
        planner.keyboard.type(" Seat near the exit.", delay=30),
        couple.keyboard.type("Ada's cousin. ", delay=30),
    )
    both = "Ada's cousin. Nut allergy. Seat near the exit."
    await wait_value(planner, area, both)
    await wait_value(couple, area, both)
    await form.get_by_role("button", name="Cancel").click()
    # The planner's typing since the form opened is gone; the couple's stays, live.
    await wait_value(couple, area, "Ada's cousin. Nut allergy.")
    await status(planner).filter(has_text="Synced").wait_for(timeout=5000)
    stored = await demo.json("/api/weddings/demo/docs/guests")
    assert isinstance(stored, dict)
    assert stored["guests"][guest_id]["notes"] == "Ada's cousin. Nut allergy."


@pytest_asyncio.fixture
async def quick_sessions(tmp_path: Path) -> AsyncIterator[Demo]:
    """The demo with edit sessions that close a moment after the last keystroke."""
    env = {"CRDT_SERVER_ADMIN_API_KEY": ADMIN_KEY, "CRDT_SERVER_NOTES_SESSION_IDLE_SECONDS": "1"}
    async with ServerProcess(
        tmp_path / "data", env=env, args=["--demo"], anonymous=False
    ) as server:
        yield await demo_links(server)


async def test_two_people_in_ada_dubois_notes_as_the_guides_show_it(
    quick_sessions: Demo, browser: Any
) -> None:
    """The guides' screenshot: Alex & Sam and Priya type at the end of Ada Dubois's notes at
    once; both keep their words, and the feed says "Priya edited Ada Dubois's notes". Then
    Priya's edits of two more notes read as one line that expands."""
    demo = quick_sessions
    guests = await demo.json("/api/weddings/demo/docs/guests")
    assert isinstance(guests, dict)
    ada = next(g for g, v in sorted(guests["guests"].items()) if v["name"] == "Ada Dubois")
    _, couple = await open_app(browser, demo.link("couple"), width=1100, height=800)
    _, planner = await open_app(browser, demo.link("planner"), width=390, height=844)
    area = await open_guest_notes(couple, "Ada Dubois", ada)
    await open_guest_notes(planner, "Ada Dubois", ada)
    await couple.locator(area).click()
    await couple.keyboard.type("Arrives with her sister.", delay=5)
    await wait_value(planner, area, "Arrives with her sister.")
    for page in (couple, planner):
        await page.locator(area).click()
        await page.keyboard.press("Control+End")
    mine, hers = " Alex: seat her near the garden door.", " Priya: vegetarian menu, no nuts."
    await asyncio.gather(
        couple.keyboard.type(mine, delay=70), planner.keyboard.type(hers, delay=70)
    )
    text = await wait_same([couple, planner], lambda page: text_of(page, area))
    assert_runs_whole(text, [mine, hers], "Ada Dubois's notes")
    feed = couple.get_by_role("list", name="Recent activity")
    await feed.get_by_text("edited Ada Dubois's notes").first.wait_for(timeout=15_000)
    await (
        feed.locator("li", has_text="Priya")
        .filter(has_text="edited Ada Dubois's notes")
        .wait_for(timeout=15_000)
    )
    await couple.locator(area).focus()
    await screenshot(couple, "notes-two-typists")  # docs/notes-two-typists.png is a copy
    # Priya edits two more notes within ten minutes: one line, which expands.
    for index in (2, 3):
        guest_id, name = await guest_named(demo, index)
        other = await open_guest_notes(planner, name, guest_id)
        await planner.locator(other).click()
        await planner.keyboard.type(" Checked.", delay=10)
        await planner.get_by_role("button", name="Save").click()
    # (Alex & Sam's own session may close between Priya's first and the others: then the line
    # holds two notes, else three.)
    line = feed.locator("li", has_text="Priya edited the notes of").first
    await line.filter(has_text="other guest").wait_for(timeout=15_000)
    await line.locator("summary").click()
    for index in (2, 3):
        await line.get_by_text(f"{(await guest_named(demo, index))[1]}'s notes").wait_for()
