"""The run of show in a real browser: Tiptap in a chunk of its own, loaded only when someone
opens it; two people type at once and converge, each seeing the other's caret; links only
for http, https and mailto; no inline style (the app's CSP is unchanged)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.web.conftest import PAGE_ERRORS, Demo, open_app, screenshot, status

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(90)]

EDITOR = ".ros-editor .ProseMirror"
PASTE = """e => {
  const data = new DataTransfer()
  data.setData('text/html', '<p>Links: <a href="javascript:alert(1)">bad</a>'
    + ' <a href="https://example.com/venue">venue</a>'
    + ' <a href="mailto:dj@example.com">dj</a> <a href="data:text/html,x">data</a></p>')
  data.setData('text/plain', 'Links')
  const paste = { clipboardData: data, bubbles: true, cancelable: true }
  e.dispatchEvent(new ClipboardEvent('paste', paste))
}"""


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


TEXT = """e => Array.from(e.children).map(block => {
  const copy = block.cloneNode(true)
  copy.querySelectorAll('.ros-caret').forEach(c => c.remove())
  return copy.textContent
}).join('\\n')"""


async def text_of(page: Any) -> str:
    """The run of show's text, one line per block, without the others' caret labels."""
    return str(await page.eval_on_selector(EDITOR, TEXT))


async def until_text(page: Any, *parts: str, timeout: float = 10.0) -> str:
    shown = ""
    for _ in range(int(timeout / 0.05)):
        shown = await text_of(page)
        if all(part in shown for part in parts):
            return shown
        await page.wait_for_timeout(50)
    raise AssertionError(f"the run of show never showed {parts}: {shown!r}")


async def test_two_people_write_the_run_of_show_with_carets_and_safe_links(
    demo: Demo, browser: Any
) -> None:
    _, couple = await open_app(browser, demo.link("couple"))
    _, planner = await open_app(browser, demo.link("planner"), width=390, height=844)
    loaded: dict[str, list[str]] = {"couple": [], "planner": []}
    couple.on("request", lambda r: loaded["couple"].append(r.url))
    planner.on("request", lambda r: loaded["planner"].append(r.url))
    violations: list[str] = []
    for page in (couple, planner):
        page.on(
            "console",
            lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
        )
        await page.get_by_role("link", name="Timeline").click()
        await page.get_by_text("14:00–14:45").first.wait_for()
    # The timeline is there, the editor's chunk is not: nobody opened the run of show yet.
    assert not [u for u in loaded["couple"] if u.endswith(".js")], loaded["couple"]
    for page in (couple, planner):
        await page.locator(".runofshow summary").click()
        await page.locator(EDITOR).wait_for(timeout=10_000)
        await until_text(page, "Run of show", "14:00 Ceremony")
    chunks = [u for u in loaded["couple"] if u.endswith(".js")]
    assert len(chunks) == 1 and "/app/chunk-" in chunks[0], chunks  # loaded on its view
    # Both type at once: the couple at the end of the ceremony line, the planner at the start
    # of the dinner line.
    await couple.locator(EDITOR).get_by_text("14:00 Ceremony").click()
    await couple.keyboard.press("End")
    # At the start of the line (the planner's narrow screen wraps it): its top left corner.
    await planner.locator(EDITOR).get_by_text("17:00 Dinner").click(position={"x": 1, "y": 4})
    await planner.keyboard.press("Home")
    await asyncio.gather(
        couple.keyboard.type(" Tissues in row one.", delay=25),
        planner.keyboard.type("Late: ", delay=25),
    )
    for page in (couple, planner):
        await until_text(page, "rings with the best man. Tissues in row one.", "Late: 17:00 Dinner")
    assert await text_of(couple) == await text_of(planner)
    # Each sees the other's caret, named, coloured by class (no inline style).
    await planner.locator(".ros-caret", has_text="Alex & Sam").wait_for(timeout=10_000)
    await couple.locator(".ros-caret").first.wait_for(timeout=10_000)
    assert await planner.locator(".ros-editor [style]").count() == 0
    # Pasted links: http(s) and mailto kept, javascript: and data: dropped.
    await couple.locator(EDITOR).get_by_text("20:00 First dance").click()
    await couple.keyboard.press("End")
    await couple.keyboard.press("Enter")
    await couple.eval_on_selector(EDITOR, PASTE)
    await until_text(planner, "Links: bad venue dj data")
    hrefs = await planner.eval_on_selector_all(f"{EDITOR} a", "as => as.map(a => a.href)")
    assert sorted(hrefs) == ["https://example.com/venue", "mailto:dj@example.com"], hrefs
    await status(couple).filter(has_text="Synced").wait_for(timeout=5000)
    stored = await demo.json("/api/weddings/demo/docs/timeline", role="friend")
    assert isinstance(stored, dict)
    shown = stored["runofshow"]["text"]
    assert "rings with the best man. Tissues in row one." in shown and "Late: 17:00" in shown
    assert "javascript:" not in str(stored["runofshow"]["prosemirror"])
    assert violations == []
    await screenshot(planner, "runofshow-390")
    await screenshot(couple, "runofshow-1100")


SETTLED = """e => {
  const view = e.editor && e.editor.view
  const sel = getSelection()
  if (!view || !sel.focusNode || !e.contains(sel.focusNode)) return false
  return view.posAtDOM(sel.focusNode, sel.focusOffset) === view.state.selection.head
}"""


async def settle(page: Any, timeout: float = 5.0) -> None:
    """Wait until the editor has read where the browser put the caret. ProseMirror learns of
    a caret moved by the browser (a click, End, arrows) from ``selectionchange``, a moment
    later; a person is never faster than that, Playwright can be."""
    deadline = time.monotonic() + timeout
    while not await page.eval_on_selector(EDITOR, SETTLED):
        assert time.monotonic() < deadline, "the editor never read the caret"
        await page.wait_for_timeout(20)


async def open_run_of_show(page: Any) -> None:
    await page.get_by_role("link", name="Timeline").click()
    await page.locator(".runofshow summary").click()
    await page.locator(EDITOR).wait_for(timeout=10_000)
    await until_text(page, "Run of show", "14:00 Ceremony")


async def test_enter_at_the_end_of_a_paragraph_then_typing_writes_a_new_paragraph_there(
    demo: Demo, browser: Any
) -> None:
    """Issue 48: the text typed after Enter landed at the start of the next paragraph."""
    _, planner = await open_app(browser, demo.link("planner"))
    await open_run_of_show(planner)
    for attempt in range(3):
        await planner.locator(EDITOR).get_by_text("14:00 Ceremony").click()
        await settle(planner)
        await planner.keyboard.press("End")
        await settle(planner)
        await planner.keyboard.press("Enter")
        await planner.keyboard.type(f"Ushers {attempt}", delay=40)
        lines = (await text_of(planner)).split("\n")
        ceremony = next(i for i, line in enumerate(lines) if line.startswith("14:00 Ceremony"))
        assert lines[ceremony + 1] == f"Ushers {attempt}", lines
        assert lines[ceremony + 2 + attempt].startswith("17:00 Dinner"), lines
