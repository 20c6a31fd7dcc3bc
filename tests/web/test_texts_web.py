"""Texts to a phone from the app (issue 79, point 2), in Debian's Chromium against a
``--demo`` server that sends texts through a real Kannel (``tests/kannel.py``): the planner
opens her notification settings on her phone, adds her number, is told what is wrong with
a number of another country, types the code the phone got, chooses mentions by text with
quiet hours, and removes the number. A server that sends no texts shows no such section
(the demo of the other browser tests)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from crdt_server.testing.waits import until
from tests.kannel import Kannel, free_port
from tests.server import ServerProcess
from tests.web.conftest import ADMIN_KEY, PAGE_ERRORS, Demo, demo_links, expect, open_app

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.asyncio]
pytestmark.append(pytest.mark.timeout(150))

_CODE = re.compile(r"code is (\d{6})")
INBOUND = "inbound-secret-for-the-app-test-01"


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def test_a_planner_adds_verifies_chooses_and_removes_her_number(
    tmp_path: Path, browser: Any
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    kannel = Kannel(tmp_path / "kannel")
    try:
        await kannel.start(f"{base}/api/sms/inbound/{INBOUND}")
        env = {
            "CRDT_SERVER_ADMIN_API_KEY": ADMIN_KEY,
            "CRDT_SERVER_SMS_URL": kannel.sms_url,
            "CRDT_SERVER_SMS_FROM": "Wedding",
            "CRDT_SERVER_SMS_COUNTRIES": "44",
            "CRDT_SERVER_SMS_INBOUND_SECRET": INBOUND,
        }
        server = ServerProcess(
            tmp_path / "data", env=env, args=["--demo"], anonymous=False, port=port
        )
        async with server:
            demo: Demo = await demo_links(server)
            context, page = await open_app(browser, demo.link("planner"), width=390, height=844)
            await page.get_by_role("button", name=re.compile("^Inbox")).click()
            await page.get_by_text("Notification settings").click()
            texts = page.get_by_role("group", name="Texts to your phone")
            add = texts.get_by_role("form", name="Add a phone number")
            # A number of a country the server does not text: the field says so.
            await add.get_by_label("Your mobile number").fill("+33 6 12 34 56 78")
            await add.get_by_role("button", name="Text me a code").click()
            await expect(add.get_by_label("Your mobile number")).to_have_accessible_description(
                re.compile(r"\+44")
            )
            phone = "+447700900041"
            await add.get_by_label("Your mobile number").fill("+44 7700 900041")
            await add.get_by_role("button", name="Text me a code").click()

            async def code() -> str | None:
                found = [m.group(1) for t in kannel.to(phone) if (m := _CODE.search(t.body))]
                return found[-1] if found else None

            typed = await until(code, deadline=30)
            verify = texts.get_by_role("form", name="Verify your phone number")
            await verify.get_by_label(re.compile("^Code texted to")).fill(typed)
            await verify.get_by_role("button", name="Verify").click()
            await expect(texts).to_contain_text(f"Texts go to {phone}")
            await expect(verify).to_have_count(0)

            settings = texts.get_by_role("form", name="Text settings")
            await expect(settings.get_by_label(re.compile("wedding day's alerts"))).to_be_checked()
            await settings.get_by_label("Mentions").check()
            await settings.get_by_label("Quiet from").fill("22:00")
            await settings.get_by_label("until").fill("07:00")
            await settings.get_by_role("button", name="Save text settings").click()
            await page.get_by_text("Text settings saved.").first.wait_for(timeout=5000)
            saved = await page.evaluate(
                "(token) => fetch('/api/session/phone',"
                " {headers: {Authorization: `Bearer ${token}`}}).then((r) => r.json())",
                demo.tokens["planner"],
            )
            assert saved["phone"] == phone and saved["choices"]["mentions"] is True
            assert saved["choices"]["quiet_hours"]["start"] == "22:00"

            await texts.get_by_role("button", name="Remove this number").click()
            await expect(texts).not_to_contain_text("Texts go to")
            await context.close()
    finally:
        await kannel.stop()


async def test_a_server_that_sends_no_texts_offers_none(demo: Demo, browser: Any) -> None:
    context, page = await open_app(browser, demo.link("couple"))
    await page.get_by_role("button", name=re.compile("^Inbox")).click()
    await page.get_by_text("Notification settings").click()
    await expect(page.get_by_role("form", name="Push settings")).to_be_visible()
    await expect(page.get_by_role("group", name="Texts to your phone")).to_have_count(0)
    await context.close()
