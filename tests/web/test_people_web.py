"""People come in (issue 50), in Debian's Chromium against a plain local server (loopback, no
admin key, no demo), with a real SMTP receiver (aiosmtpd): the local operator goes from ``/``
to their new wedding's planner view in four actions; the couple invites a planner by link;
the planner joins from a second browser and appears live in the couple's; the planner's device
is listed and signed out; a sign-in link asked for by email, opened first by a mail scanner
(a plain GET), still signs the person in; a stranger's address gets the same page; a person
who joined without an address adds one from the devices page."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import TimeoutError as PlaywrightTimeout

from tests.server import ServerProcess
from tests.web.conftest import PAGE_ERRORS, expect, refused, screenshot, status
from tests.web.conftest import until as page_until
from tests.web.proxy import CuttableProxy

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


class _Inbox:
    """A real SMTP server (aiosmtpd) on loopback keeping every message."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    async def link_to(
        self,
        address: str,
        nth: int = 1,
        timeout: float = 15.0,
        pattern: str = r"http://\S+/app/sign-in#code=\S+",
    ) -> str:
        """The link (a sign-in link unless ``pattern`` says another) of the ``nth`` message
        to ``address`` (waiting for it)."""
        deadline = time.monotonic() + timeout
        while True:
            mine = [m for m in self.messages if m["To"] == address]
            for message in mine[nth - 1 : nth]:
                body = message.get_payload(decode=True) or b""
                if not body and message.is_multipart():
                    body = message.get_payload(0).get_payload(decode=True)
                found = re.search(pattern, body.decode())
                if found:
                    return found.group()
            assert time.monotonic() < deadline, f"no link like {pattern} to {address}"
            await asyncio.sleep(0.05)


@pytest_asyncio.fixture
async def local(tmp_path: Path) -> AsyncIterator[tuple[ServerProcess, _Inbox]]:
    from aiosmtpd.controller import Controller

    inbox = _Inbox()
    with socket.socket() as probe:  # aiosmtpd checks readiness by connecting: a real port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        env = {"CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{port}"}
        async with ServerProcess(tmp_path / "data", env=env, anonymous=False) as server:
            yield server, inbox
    finally:
        controller.stop()


async def test_a_couple_creates_a_wedding_and_invites_a_planner_who_appears_live(
    local: tuple[ServerProcess, _Inbox], browser: Any
) -> None:
    server, inbox = local
    context = await browser.new_context(viewport={"width": 1100, "height": 800})
    couple = await context.new_page()
    couple.on("pageerror", lambda error: PAGE_ERRORS.append(f"couple: {error}"))
    await couple.goto(f"{server.url}/")
    # Four actions from / to the planner view of a new wedding.
    await couple.get_by_role("link", name="Create a wedding").click()
    setup = couple.get_by_role("form", name="Create a wedding")
    # Refused first: no name of her own and an address that is none (kept, to be fixed).
    await setup.get_by_label("Your partner’s name").fill("Bo Chen")
    await setup.get_by_label("Your email").fill("ann.example.com")
    await setup.get_by_role("button", name="Create the wedding").click()
    await refused(
        couple,
        setup.get_by_label("Your name"),
        "Say your own name",
        kept=[
            (setup.get_by_label("Your email"), "ann.example.com"),
            (setup.get_by_label("Your partner’s name"), "Bo Chen"),
        ],
    )
    await expect(setup.get_by_label("Your email")).to_have_accessible_description(
        re.compile("Type your email address")
    )
    await setup.get_by_label("Your name").fill("Ann Lee")
    await setup.get_by_label("Your email").fill("ann@example.com")
    await setup.get_by_role("button", name="Create the wedding").click()
    await couple.get_by_role("navigation", name="Sections").wait_for(timeout=15_000)
    await status(couple).filter(has_text="Synced").wait_for(timeout=15_000)
    # The header names the couple, never the wedding's id; she is herself, not the couple.
    banner = couple.get_by_role("banner")
    await expect(banner).to_contain_text("Ann Lee & Bo Chen · Ann Lee (couple)")
    assert not re.search(r"\bw[A-Za-z0-9_-]{22}\b", await banner.inner_text())
    # The wedding's first lines (its checklist) are hers, never "Someone (admin)".
    feed = couple.get_by_role("list", name="Recent activity")
    await expect(feed).to_contain_text("added", timeout=15_000)
    said = await feed.inner_text()
    assert "Someone" not in said and "admin" not in said, said
    await screenshot(couple, "people-new-wedding")

    # The couple invites a planner by link.
    await couple.get_by_role("button", name="Share").click()
    invite = couple.get_by_role("form", name="Invite someone")
    await invite.get_by_label("Role").select_option("planner")
    await invite.get_by_label("Their name").fill("Priya")
    await invite.get_by_role("button", name="Make an invitation link").click()
    link = await couple.get_by_label(re.compile("Invitation link")).input_value()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/app/invite#code=[A-Za-z0-9_.-]+", link), link

    # A scanner opening the link redeems nothing; the planner joins from her own browser.
    async with httpx.AsyncClient() as client:
        assert (await client.get(link.split("#")[0])).status_code == 200
    other = await browser.new_context(viewport={"width": 390, "height": 844})
    planner = await other.new_page()
    planner.on("pageerror", lambda error: PAGE_ERRORS.append(f"planner: {error}"))
    await planner.goto(link)
    joining = planner.get_by_role("form", name="Join the wedding")
    await joining.get_by_label("Email (optional)").fill("priya.example.com")
    await joining.get_by_role("button", name="Join the wedding").click()
    await refused(
        planner,
        joining.get_by_label("Your name"),
        "Say how the others should call you.",
        kept=[(joining.get_by_label("Email (optional)"), "priya.example.com")],
    )
    await joining.get_by_label("Email (optional)").fill("")
    await joining.get_by_label("Your name").fill("Priya")
    await joining.get_by_role("button", name="Join the wedding").click()
    await status(planner).filter(has_text="Synced").wait_for(timeout=15_000)
    # Live in the couple's browser: her avatar.
    priya = couple.get_by_role("banner").get_by_role("img", name=re.compile("^Priya"))
    await expect(priya).to_be_visible(timeout=10_000)
    await screenshot(planner, "people-planner-joined-390px")

    # Her device session: listed, and signed out from the list.
    await planner.get_by_role("button", name="Devices").click()
    devices = planner.get_by_role("list", name="Devices signed in")
    await expect(devices.get_by_role("listitem")).to_have_count(1)
    await devices.get_by_role("button", name=re.compile("^Sign out")).click()
    await expect(planner.get_by_role("alert")).to_contain_text("signed out", timeout=10_000)
    await context.close()
    await other.close()


async def test_a_sign_in_link_survives_a_mail_scanner_and_a_stranger_learns_nothing(
    local: tuple[ServerProcess, _Inbox], browser: Any
) -> None:
    server, inbox = local
    # A wedding made by the local operator with a script (no cookie for it).
    async with httpx.AsyncClient(base_url=server.url) as client:
        made = await client.post(
            "/api/weddings",
            json={
                "names": ["Cy Dee"],
                "date": "2027-05-01",
                "time_zone": "Europe/Paris",
                "currency": "EUR",
                "email": "cy@example.com",
            },
        )
        assert made.status_code == 201, made.text
        assert made.json()["signed_in"] is False
    first = await inbox.link_to("cy@example.com")  # the creation's own link

    context = await browser.new_context(viewport={"width": 390, "height": 844})
    page = await context.new_page()
    page.on("pageerror", lambda error: PAGE_ERRORS.append(str(error)))
    await page.goto(f"{server.url}/app/")
    form = page.get_by_role("form", name="Sign in")
    await form.get_by_label("Email").fill("stranger")
    await form.get_by_role("button", name="Email me a sign-in link").click()
    await refused(
        page,
        form.get_by_label("Email"),
        "Type the email address you were invited with",
        kept=[(form.get_by_label("Email"), "stranger")],
    )
    await form.get_by_label("Email").fill("stranger@example.com")
    await form.get_by_role("button", name="Email me a sign-in link").click()
    await page.get_by_role("heading", name="Check your mail").wait_for()
    stranger = await page.get_by_role("main").inner_text()
    await page.get_by_role("button", name="Use another address").click()
    await form.get_by_label("Email").fill("cy@example.com")
    await form.get_by_role("button", name="Email me a sign-in link").click()
    await page.get_by_role("heading", name="Check your mail").wait_for()
    known = await page.get_by_role("main").inner_text()
    # The same page, but for the address typed.
    assert stranger.replace("stranger@example.com", "X") == known.replace("cy@example.com", "X")
    link = await inbox.link_to("cy@example.com", nth=2)
    assert link != first
    assert not any(m["To"] == "stranger@example.com" for m in inbox.messages)

    # A mail scanner opens the link first: nothing is used up.
    async with httpx.AsyncClient() as client:
        assert (await client.get(link.split("#")[0])).status_code == 200
    await page.goto(link)
    await page.get_by_role("button", name="Sign in on this device").click()
    await status(page).filter(has_text="Synced").wait_for(timeout=15_000)
    await expect(page.get_by_role("banner")).to_contain_text("(couple)")
    # A reload keeps the person signed in (the device session, not the tab).
    await page.reload()
    await status(page).filter(has_text="Synced").wait_for(timeout=15_000)
    await context.close()


async def test_a_person_who_joined_without_an_address_adds_one_from_the_devices_page(
    local: tuple[ServerProcess, _Inbox], browser: Any
) -> None:
    server, inbox = local
    origin = {"Origin": server.url}
    async with httpx.AsyncClient(base_url=server.url) as client:
        made = await client.post(
            "/api/weddings",
            json={
                "names": ["Di Ek"],
                "date": "2027-05-01",
                "time_zone": "Europe/Paris",
                "currency": "EUR",
                "email": "di@example.com",
            },
        )
        assert made.status_code == 201, made.text
        code = (await inbox.link_to("di@example.com")).split("#code=")[1]
        signed = await client.post("/api/sign-in/complete", json={"code": code}, headers=origin)
        couple = {"Authorization": f"Bearer {signed.json()['token']}"}
        invited = await client.post(
            f"/api/weddings/{made.json()['id']}/invitations",
            json={"role": "family", "name": "Gran"},
            headers=couple,
        )
        assert invited.status_code == 201, invited.text

    context = await browser.new_context(viewport={"width": 390, "height": 844})
    page = await context.new_page()
    page.on("pageerror", lambda error: PAGE_ERRORS.append(str(error)))
    await page.goto(invited.json()["url"])
    joining = page.get_by_role("form", name="Join the wedding")
    await joining.get_by_label("Your name").fill("Gran")
    await joining.get_by_role("button", name="Join the wedding").click()
    await status(page).filter(has_text="Synced").wait_for(timeout=15_000)
    # No address yet: the devices page offers to add one.
    await page.get_by_role("button", name="Devices").click()
    adding = page.get_by_role("form", name="Add your email")
    await adding.get_by_label("Your email").fill("gran.example.com")
    await adding.get_by_role("button", name="Email me a link to confirm it").click()
    await refused(
        page,
        adding.get_by_label("Your email"),
        "Type your email address, such as sam@example.com.",
        kept=[(adding.get_by_label("Your email"), "gran.example.com")],
    )
    await adding.get_by_label("Your email").fill("gran@example.com")
    await adding.get_by_role("button", name="Email me a link to confirm it").click()
    await expect(adding.get_by_role("status")).to_contain_text("gran@example.com")
    await screenshot(page, "people-add-your-email-390px")
    link = await inbox.link_to("gran@example.com")
    # Following it verifies the address for this person (and signs this device in again).
    await page.goto(link)
    await page.get_by_role("button", name="Sign in on this device").click()
    await status(page).filter(has_text="Synced").wait_for(timeout=15_000)
    await page.get_by_role("button", name="Devices").click()
    await expect(page.get_by_text("Your email: gran@example.com")).to_be_visible()
    await expect(page.get_by_role("form", name="Add your email")).to_have_count(0)
    await context.close()


async def test_a_signed_in_device_reloads_offline_queues_edits_and_syncs_back_online(
    local: tuple[ServerProcess, _Inbox], browser: Any
) -> None:
    """Issue 50, point 1: a device signed in by its session cookie reloads with the server
    unreachable: the local copy opens, edits queue; the token comes with the network and
    the edits sync. The server is reached through a proxy that is cut (the browser still
    believes it is online: no ``online`` event tells the app the network is back)."""
    server, inbox = local
    proxy = await CuttableProxy(server.port).start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            made = await client.post(
                "/api/weddings",
                json={
                    "names": ["Fay Gil"],
                    "date": "2027-05-01",
                    "time_zone": "Europe/Paris",
                    "currency": "EUR",
                    "email": "fay@example.com",
                },
            )
            assert made.status_code == 201, made.text
        wedding = made.json()["id"]
        link = (await inbox.link_to("fay@example.com")).replace(server.url, proxy.url)
        context = await browser.new_context(viewport={"width": 1100, "height": 800})
        page = await context.new_page()
        page.on("pageerror", lambda error: PAGE_ERRORS.append(str(error)))
        # What the page asked and heard once the proxy is back, said if it does not sync.
        heard: list[str] = []
        page.on("console", lambda message: heard.append(f"console {message.text}"))
        page.on("requestfailed", lambda r: heard.append(f"failed {r.method} {r.url}"))
        page.on("response", lambda r: heard.append(f"{r.status} {r.request.method} {r.url}"))
        page.on("websocket", lambda ws: heard.append(f"websocket {ws.url}"))
        await page.goto(link)
        await page.get_by_role("button", name="Sign in on this device").click()
        await status(page).filter(has_text="Synced").wait_for(timeout=15_000)
        await page_until(page, "navigator.serviceWorker.controller !== null")

        await proxy.cut()
        await status(page).filter(has_text="Offline").wait_for(timeout=10_000)
        # Reloaded with no server: the app shell from the service worker, the documents
        # from IndexedDB, no token (it comes from the device session, with the network).
        await page.reload()
        await page.get_by_role("navigation", name="Sections").wait_for(timeout=15_000)
        await status(page).filter(has_text="Offline").wait_for(timeout=10_000)
        await page.get_by_role("link", name="Guests", exact=True).click()
        add = page.get_by_role("form", name="Add a guest")
        await add.get_by_label("Name", exact=True).fill("Offline Olga")
        await add.get_by_role("button", name="Add guest").click()
        await page.get_by_text("Offline Olga", exact=True).wait_for(timeout=5000)
        await status(page).filter(has_text="not yet confirmed").wait_for(timeout=5000)
        await screenshot(page, "people-device-offline-reload")

        heard.clear()
        await proxy.restore()
        try:
            await status(page).filter(has_text="Synced").wait_for(timeout=30_000)
        except PlaywrightTimeout:
            said = await status(page).all_inner_texts()
            raise AssertionError(f"not synced: {said}; since restored: {heard[-60:]}") from None
        # On the server: the edit made offline, credited to the couple's member.
        async with httpx.AsyncClient(base_url=server.url) as client:
            asked = await client.post("/api/sign-in", json={"email": "fay@example.com"})
            assert asked.status_code == 202
            code = (await inbox.link_to("fay@example.com", nth=2)).split("#code=")[1]
            signed = await client.post(
                "/api/sign-in/complete", json={"code": code}, headers={"Origin": server.url}
            )
            token = {"Authorization": f"Bearer {signed.json()['token']}"}
            guests = await client.get(f"/api/weddings/{wedding}/docs/guests", headers=token)
            names = [g["name"] for g in guests.json()["guests"].values()]
            assert "Offline Olga" in names
        await context.close()
    finally:
        await proxy.close()
