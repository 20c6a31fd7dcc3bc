"""Share and export in the planner app (issue 53, point 5), in Debian's Chromium against a real
``--demo`` server: a calendar link that serves the timeline, the guest list downloaded as CSV,
a CSV import previewed (dry run) then imported, a file with errors refused with its rows named,
the wedding's export downloaded by the couple; and what a role may not use is not offered."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from crdt_server.auth.permissions import DEFAULT_MATRIX
from tests.server import ServerProcess
from tests.web.conftest import (
    ADMIN_KEY,
    PAGE_ERRORS,
    Demo,
    demo_links,
    expect,
    guests_and_seating,
    open_app,
    refused,
    screenshot,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(90)]


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def test_the_couple_shares_the_calendar_moves_guests_by_csv_and_exports(
    demo: Demo, browser: Any, tmp_path: Path
) -> None:
    _, page = await open_app(browser, demo.link("couple"))
    await page.get_by_role("button", name="Share").click()
    panel = page.get_by_role("region", name="Share and export")

    # A calendar link that serves the timeline to a calendar app (no other credential).
    await panel.get_by_role("button", name="Get a calendar link").click()
    link = await panel.get_by_label("Calendar link").input_value()
    async with httpx.AsyncClient() as client:
        feed = await client.get(link)
    assert feed.status_code == 200 and feed.text.startswith("BEGIN:VCALENDAR"), feed.text[:200]

    # The guest list as CSV.
    async with page.expect_download() as download_info:
        await panel.get_by_role("button", name="Download the guest list").click()
    download = await download_info.value
    saved = tmp_path / "guests.csv"
    await download.save_as(saved)
    text = saved.read_text(encoding="utf-8-sig")
    header = text.splitlines()[0]
    assert header.startswith("id,"), header

    # A file with an error: previewed, its row named, nothing imported, Import disabled.
    columns = header.split(",")
    row = {c: "" for c in columns}
    bad = tmp_path / "bad.csv"
    bad.write_text(
        header
        + "\n"
        + ",".join({**row, "name": "Grace Hopper", "rsvp": "maybe"}[c] for c in columns)
        + "\n"
    )
    await panel.get_by_label("Import guests from a CSV file").set_input_files(str(bad))
    chooser = panel.get_by_label("Import guests from a CSV file")
    await panel.get_by_role("button", name="Preview the import").click()
    preview = panel.get_by_role("region", name="Import preview")
    await expect(preview).to_contain_text("Line 2, rsvp")
    await refused(
        page,
        chooser,
        "1 row has errors, listed below: fix the file and preview again.",
        kept=[(chooser, re.compile(r"bad\.csv$"))],
    )
    await expect(chooser).to_have_accessible_description(re.compile("Line 2, rsvp"))
    await expect(panel.get_by_role("button", name="Import", exact=True)).to_be_disabled()

    # A good file: the preview says what changes, then Import adds the guest.
    good = tmp_path / "good.csv"
    good.write_text(
        header
        + "\n"
        + ",".join({**row, "name": "Grace Hopper", "rsvp": "accepted"}[c] for c in columns)
        + "\n"
    )
    await panel.get_by_label("Import guests from a CSV file").set_input_files(str(good))
    await panel.get_by_role("button", name="Preview the import").click()
    await expect(preview).to_contain_text("1 guest to add, 0 guests to change")
    assert not [
        g for g in (await guests_and_seating(demo))[0].values() if g["name"] == "Grace Hopper"
    ]
    await screenshot(page, "share-import-preview")
    await panel.get_by_role("button", name="Import", exact=True).click()
    await page.get_by_text("Grace Hopper", exact=True).wait_for(timeout=10_000)

    # The whole wedding, as the couple may export it.
    async with page.expect_download() as download_info:
        await panel.get_by_role("button", name="Export the wedding").click()
    exported = tmp_path / "wedding.json"
    await (await download_info.value).save_as(exported)
    assert json.loads(exported.read_text())["format"] == "crdt-server-wedding"


async def test_a_vendor_is_offered_only_what_its_role_may_use(demo: Demo, browser: Any) -> None:
    _, page = await open_app(browser, demo.link("vendor"))
    await page.get_by_role("button", name="Share").click()
    panel = page.get_by_role("region", name="Share and export")
    await expect(panel.get_by_role("button", name="Download the guest list")).to_be_visible()
    for absent in ("Get a calendar link", "Preview the import", "Export the wedding"):
        assert await panel.get_by_role("button", name=absent).count() == 0, absent
    assert await panel.get_by_role("list", name="Members of the wedding").count() == 0


class _Receiver:
    """A real HTTP receiver on loopback: each request's headers and body, answered 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")[1:]
                headers = {
                    k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((headers, body))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest_asyncio.fixture
async def hooks_demo(tmp_path: Path) -> AsyncIterator[Demo]:
    env = {"CRDT_SERVER_ADMIN_API_KEY": ADMIN_KEY, "CRDT_SERVER_WEBHOOK_ALLOW_PRIVATE": "true"}
    async with ServerProcess(
        tmp_path / "data", env=env, args=["--demo"], anonymous=False
    ) as server:
        yield await demo_links(server)


async def test_the_planner_adds_a_webhook_sends_a_test_and_removes_it(
    hooks_demo: Demo, browser: Any
) -> None:
    receiver = _Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hooks"
    try:
        _, page = await open_app(browser, hooks_demo.link("planner"))
        await page.get_by_role("button", name="Share").click()
        panel = page.get_by_role("region", name="Share and export")
        form = panel.get_by_role("form", name="Add a webhook endpoint")
        await form.get_by_label("Receiver URL").fill("hooks.example.com")
        await form.get_by_label("Events").fill("webhook.*")
        await form.get_by_role("button", name="Add endpoint").click()
        await refused(
            page,
            form.get_by_label("Receiver URL"),
            "Type the receiver’s address, such as https://example.com/hooks.",
            kept=[
                (form.get_by_label("Receiver URL"), "hooks.example.com"),
                (form.get_by_label("Events"), "webhook.*"),
            ],
        )
        await form.get_by_label("Receiver URL").fill(url)
        await form.get_by_label("Events").fill("webhook.*, guest.*")
        await form.get_by_role("button", name="Add endpoint").click()
        await expect(panel.get_by_role("note")).to_contain_text("Signing secret")
        endpoint = panel.get_by_role("list", name="Webhook endpoints").get_by_role("listitem")
        await expect(endpoint).to_contain_text(url)
        await endpoint.get_by_role("button", name="Send a test").click()
        deadline = time.monotonic() + 10
        while not any(b"webhook.test" in body for _, body in receiver.requests):
            assert time.monotonic() < deadline, receiver.requests
            await asyncio.sleep(0.05)
        headers = receiver.requests[-1][0]
        assert headers["webhook-id"] and headers["webhook-signature"].startswith("v1,")
        await endpoint.get_by_role("button", name="Deliveries").click()
        await expect(endpoint.get_by_role("list", name=f"Deliveries to {url}")).to_contain_text(
            "webhook.test: delivered"
        )
        await screenshot(page, "share-webhooks")
        await endpoint.get_by_role("button", name="Remove").click()
        await endpoint.get_by_role("button", name="Really remove?").click()
        await expect(panel.get_by_text("No endpoints yet.")).to_be_visible()
    finally:
        server.close()


async def _member_role(demo: Demo, sub: str) -> str | None:
    found = await demo.json("/api/weddings/demo/members", "couple")
    assert isinstance(found, dict)
    return next((m["role"] for m in found["members"] if m["sub"] == sub), None)


async def test_members_and_calendar_links_follow_the_operators_matrix(
    tmp_path: Path, browser: Any
) -> None:
    """Under a matrix that keeps calendar links to the couple: the planner manages the members
    (a role changed, one the ceiling refuses said beside its picker, one removed) and is
    offered no calendar link; the couple makes a calendar link, sees it listed, revokes it."""
    matrix: dict[str, Any] = {
        role: {d: a.value for d, a in docs.items()} for role, docs in DEFAULT_MATRIX.items()
    }
    matrix["capabilities"] = {"calendar.tokens": ["couple"]}
    env = {"CRDT_SERVER_ADMIN_API_KEY": ADMIN_KEY, "CRDT_SERVER_PERMISSIONS": json.dumps(matrix)}
    async with ServerProcess(
        tmp_path / "data", env=env, args=["--demo"], anonymous=False
    ) as server:
        demo = await demo_links(server)
        async with httpx.AsyncClient(base_url=demo.url, timeout=10) as http:
            added = (("sam", "friend", "Sam Friend"), ("val", "vendor", "Val Vendor"))
            for sub, role, name in added:
                put = await http.put(
                    f"/api/weddings/demo/members/{sub}",
                    json={"role": role, "name": name},
                    headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                )
                assert put.status_code == 201, put.text

        _, page = await open_app(browser, demo.link("planner"), width=390, height=844)
        await page.get_by_role("button", name="Share").click()
        panel = page.get_by_role("region", name="Share and export")
        members = panel.get_by_role("list", name="Members of the wedding")
        await members.get_by_text("Val Vendor").wait_for(timeout=10_000)
        assert await panel.get_by_role("button", name="Get a calendar link").count() == 0

        # A change the planner may make, and at once the next one.
        await members.get_by_label("Role of Val Vendor").select_option("family")
        deadline = time.monotonic() + 10
        while await _member_role(demo, "val") != "family":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)

        # One the ceiling refuses: the reason beside the picker, the role as it was.
        picker = members.get_by_label("Role of Sam Friend")
        await picker.select_option("couple")
        # The picker goes back to the role the server has: "couple" was never granted.
        await refused(
            page, picker, "only the couple may grant the couple role", kept=[(picker, "friend")]
        )
        assert await _member_role(demo, "sam") == "friend"
        await screenshot(page, "share-members-390")

        # Remove asks once more, then the member is gone.
        await members.get_by_role("button", name="Remove Sam Friend").click()
        await members.get_by_role("button", name="Really remove Sam Friend?").click()
        await expect(members.get_by_text("Sam Friend")).to_have_count(0)
        assert await _member_role(demo, "sam") is None

        # The couple (calendar.tokens under this matrix): a labelled link, listed, revoked.
        _, couple = await open_app(browser, demo.link("couple"), width=1400, height=900)
        await couple.get_by_role("button", name="Share").click()
        shared = couple.get_by_role("region", name="Share and export")
        await shared.get_by_label("Label").fill("Ann’s phone")
        await shared.get_by_role("button", name="Get a calendar link").click()
        link = await shared.get_by_label("Calendar link").input_value()
        feeds = shared.get_by_role("list", name="Open calendar feeds")
        await expect(feeds).to_contain_text("Ann’s phone")
        await screenshot(couple, "share-members-1400")
        async with httpx.AsyncClient() as http:
            assert (await http.get(link)).status_code == 200
            await feeds.get_by_role("button", name="Revoke Ann’s phone").click()
            await expect(feeds).to_have_count(0)
            assert (await http.get(link)).status_code == 401


async def test_the_export_follows_the_operators_matrix(tmp_path: Path, browser: Any) -> None:
    """Under a matrix that gives ``weddings.export`` to the planner alone, the planner is
    offered the export and downloads the wedding; the couple is not offered it."""
    matrix: dict[str, Any] = {
        role: {d: a.value for d, a in docs.items()} for role, docs in DEFAULT_MATRIX.items()
    }
    matrix["capabilities"] = {"weddings.export": ["planner"]}
    env = {"CRDT_SERVER_ADMIN_API_KEY": ADMIN_KEY, "CRDT_SERVER_PERMISSIONS": json.dumps(matrix)}
    async with ServerProcess(
        tmp_path / "data", env=env, args=["--demo"], anonymous=False
    ) as server:
        demo = await demo_links(server)
        _, planner = await open_app(browser, demo.link("planner"))
        await planner.get_by_role("button", name="Share").click()
        panel = planner.get_by_role("region", name="Share and export")
        async with planner.expect_download() as download_info:
            await panel.get_by_role("button", name="Export the wedding").click()
        exported = tmp_path / "wedding.json"
        await (await download_info.value).save_as(exported)
        assert json.loads(exported.read_text())["format"] == "crdt-server-wedding"

        _, couple = await open_app(browser, demo.link("couple"))
        await couple.get_by_role("button", name="Share").click()
        shared = couple.get_by_role("region", name="Share and export")
        await expect(shared.get_by_role("button", name="Download the guest list")).to_be_visible()
        assert await shared.get_by_role("button", name="Export the wedding").count() == 0
