"""Losing access leaves the device (issue 77, point 3), in Debian's Chromium against a plain
local server: the couple creates a wedding and invites Fay (family), who joins from her own
browser. Signing out with a change not yet sent, the app says so and offers to wait; a 4401
that a refresh cures (her role changed) changes nothing; removed, her open tab clears the
screen and deletes the wedding's local databases and storage (``indexedDB.databases()``
holds nothing of it, in the open tab and on the next load); the couple's feed names who was
removed. Invited again, she signs out waiting for her unsent change: it arrives, then the
device forgets the wedding."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.server import ServerProcess
from tests.web.conftest import PAGE_ERRORS, expect, screenshot, status, until
from tests.web.test_people_web import _Inbox, local  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(180)]

DATABASES = "(async () => (await indexedDB.databases()).map((d) => d.name))()"
STORAGE = "(() => Object.keys(localStorage))()"


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def _share(couple: Any) -> None:
    """Open Share afresh (its lists load as it opens)."""
    share = couple.get_by_role("button", name="Share", exact=True)
    if await share.get_attribute("aria-expanded") == "true":
        await share.click()
    await share.click()


async def _invite(couple: Any, name: str, before: str = "") -> str:
    """A new invitation link (``before``: the one made last, shown until this one is)."""
    await _share(couple)
    invite = couple.get_by_role("form", name="Invite someone")
    await invite.get_by_label("Role").select_option("family")
    await invite.get_by_label("Their name").fill(name)
    await invite.get_by_role("button", name="Make an invitation link").click()
    made = couple.get_by_label(re.compile("Invitation link"))
    await expect(made).not_to_have_value(before or "-")
    await expect(made).to_have_value(re.compile("/app/invite#code="))
    return await made.input_value()


async def _join(page: Any, link: str, name: str) -> None:
    await page.goto(link)
    joining = page.get_by_role("form", name="Join the wedding")
    await joining.get_by_label("Your name").fill(name)
    await joining.get_by_role("button", name="Join the wedding").click()
    await status(page).filter(has_text="Synced").wait_for(timeout=15_000)


def _of(names: list[str], wedding: str) -> list[str]:
    return [n for n in names if wedding in n]


async def test_a_removed_member_keeps_nothing_and_a_sign_out_waits_for_unsent_changes(
    local: tuple[ServerProcess, _Inbox],  # noqa: F811
    browser: Any,
) -> None:
    server, _ = local
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    couple = await context.new_page()
    couple.on("pageerror", lambda error: PAGE_ERRORS.append(f"couple: {error}"))
    await couple.goto(f"{server.url}/")
    await couple.get_by_role("link", name="Create a wedding").click()
    setup = couple.get_by_role("form", name="Create a wedding")
    await setup.get_by_label("Your name").fill("Alex")
    await setup.get_by_label("Your partner’s name").fill("Sam")
    await setup.get_by_label("Your email").fill("alex@example.com")
    await setup.get_by_role("button", name="Create the wedding").click()
    await status(couple).filter(has_text="Synced").wait_for(timeout=15_000)
    add = couple.get_by_role("form", name="Add a guest")
    await add.get_by_label("Name").fill("Ada Lovelace")
    await add.get_by_role("button", name="Add guest").click()
    await expect(couple.get_by_label("RSVP for Ada Lovelace")).to_be_visible()
    wedding = (await couple.evaluate(DATABASES))[0].split(":", 2)[2].split("/")[0]

    other = await browser.new_context(viewport={"width": 390, "height": 844})
    fay = await other.new_page()
    fay.on("pageerror", lambda error: PAGE_ERRORS.append(f"fay: {error}"))
    refreshed: list[int] = []  # her device session's refreshes, by status
    fay.on(
        "response",
        lambda r: refreshed.append(r.status) if r.url.endswith("/api/session/refresh") else None,
    )
    first = await _invite(couple, "Fay")
    await _join(fay, first, "Fay")
    await expect(fay.get_by_label("RSVP for Ada Lovelace")).to_be_visible(timeout=10_000)
    assert _of(await fay.evaluate(DATABASES), wedding), await fay.evaluate(DATABASES)

    # Signing out with a change not yet sent: the app says so; she stays.
    await fay.get_by_role("button", name="Devices").click()
    await expect(fay.get_by_role("list", name="Devices signed in")).to_be_visible()
    await other.set_offline(True)
    await fay.get_by_label("RSVP for Ada Lovelace").select_option("accepted")
    await fay.get_by_role("button", name=re.compile("^Sign out")).first.click()
    leaving = fay.get_by_role("alertdialog")
    await expect(leaving).to_contain_text("1 change made on this device has not reached")
    await screenshot(fay, "lost-access-unsent-390px")
    await leaving.get_by_role("button", name="Stay signed in").click()
    await other.set_offline(False)
    await fay.evaluate("dispatchEvent(new Event('online'))")
    await expect(couple.get_by_label("RSVP for Ada Lovelace")).to_have_value(
        "accepted", timeout=10_000
    )

    # A 4401 a refresh cures (her role changed): nothing changes on her device.
    before = len(refreshed)
    await _share(couple)
    await couple.get_by_label("Role of Fay").select_option("planner")
    deadline = time.monotonic() + 15
    while 200 not in refreshed[before:]:  # 4401, then a refresh that gives a token
        assert time.monotonic() < deadline, f"no refresh after the role change: {refreshed}"
        await fay.wait_for_timeout(50)
    await expect(fay.get_by_role("alert")).to_have_count(0)
    await status(fay).filter(has_text="Synced").wait_for(timeout=15_000)
    await expect(fay.get_by_text("Ada Lovelace").first).to_be_visible()
    assert _of(await fay.evaluate(DATABASES), wedding)

    # Removed: her open tab clears the screen and forgets the wedding.
    await couple.get_by_role("button", name="Remove Fay").click()
    await couple.get_by_role("button", name="Really remove Fay?").click()
    await expect(fay.get_by_role("alert")).to_contain_text("no longer a member", timeout=15_000)
    await expect(fay.get_by_text("Ada Lovelace")).to_have_count(0)
    await until(fay, "document.body.dataset.forgotten === 'true'")
    assert _of(await fay.evaluate(DATABASES), wedding) == []
    assert _of(await fay.evaluate(STORAGE), wedding) == []
    await screenshot(fay, "lost-access-removed-390px")
    await fay.reload()
    await fay.get_by_role("main").wait_for()
    assert _of(await fay.evaluate(DATABASES), wedding) == []
    assert _of(await fay.evaluate(STORAGE), wedding) == []
    # The couple's feed names who was removed.
    feed = couple.get_by_role("complementary").or_(couple.locator(".activity"))
    await expect(feed.first).to_contain_text("removed Fay from the wedding", timeout=10_000)

    # Invited again: signing out waits for her unsent change, which arrives.
    await _join(fay, await _invite(couple, "Fay", before=first), "Fay")
    await fay.get_by_role("button", name="Devices").click()
    await expect(fay.get_by_role("list", name="Devices signed in")).to_be_visible()
    await other.set_offline(True)
    await fay.get_by_label("RSVP for Ada Lovelace").select_option("declined")
    await fay.get_by_role("button", name=re.compile("^Sign out")).first.click()
    await fay.get_by_role("alertdialog").get_by_role("button", name="Wait, then sign out").click()
    await expect(fay.get_by_role("alertdialog")).to_contain_text("Waiting for 1 change")
    await other.set_offline(False)
    await fay.evaluate("dispatchEvent(new Event('online'))")
    await expect(fay.get_by_role("alert")).to_contain_text(
        "You signed out on this device", timeout=15_000
    )
    await expect(couple.get_by_label("RSVP for Ada Lovelace")).to_have_value(
        "declined", timeout=10_000
    )
    await until(fay, "document.body.dataset.forgotten === 'true'")
    assert _of(await fay.evaluate(DATABASES), wedding) == []
    await context.close()
    await other.close()
