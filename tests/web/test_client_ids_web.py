"""Yjs client ids in the planner app (issue 73, point 2), in Debian's Chromium against a real
``--demo`` server: each person's local copies are their own (two people signed in on one
browser profile never load each other's unsent items; the copy of the release before is
taken over once, by the first writer who opens it), and a tab whose client id the server
refuses (4409: someone else wrote under it first) starts a new Y.Doc, re-applies its
unsent edits to it and loses none."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from pycrdt import Doc, Map

from crdt_server.codec.protocol import read_var_string, read_var_uint
from tests.web.conftest import PAGE_ERRORS, Demo, guests_and_seating, status, until
from tests.web.proxy import CuttableProxy
from tests.web.test_runofshow_web import EDITOR, caret_at_end_of, open_run_of_show, until_text

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(120)]

NAMES = "indexedDB.databases().then((d) => d.map((x) => x.name).sort())"
PENDING = "document.querySelector('[role=status]').dataset.pending"


@pytest.fixture(autouse=True)
def no_page_errors() -> Any:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def open_tab(context: Any, url: str, awareness: list[tuple[str, int]] | None = None) -> Any:
    """A tab of ``context`` (its profile: one origin's IndexedDB and localStorage) opened at
    the sign-in link ``url``, synced. ``awareness`` collects ``(document, client id)`` of
    every awareness update the tab sends: its Y.Doc's client id, per document."""
    page = await context.new_page()
    page.on("pageerror", lambda error: PAGE_ERRORS.append(f"{url}: {error}"))
    if awareness is not None:
        seen = awareness
        page.on("websocket", lambda ws: ws.on("framesent", lambda f: _awareness(ws.url, f, seen)))
    await page.goto(url)
    await status(page).filter(has_text="Synced").wait_for(timeout=15_000)
    return page


def _awareness(url: str, payload: bytes | str, into: list[tuple[str, int]]) -> None:
    """The client ids of an awareness message: on ``/collab`` ``[name][1][update]``, on
    ``/sync/{wedding}/{doc}`` ``[1][update]``; an update is ``[n]`` then per client
    ``[id][clock][state]``."""
    if isinstance(payload, str):
        return
    path = url.split("?")[0].split("/", 3)[3]
    pos = 0
    if path.startswith("collab"):
        name, pos = read_var_string(payload, pos)
    else:
        name = path.removeprefix("sync/")
    kind, pos = read_var_uint(payload, pos)
    if kind != 1:
        return
    _, pos = read_var_uint(payload, pos)  # the update's length
    count, pos = read_var_uint(payload, pos)
    for _ in range(count):
        client, pos = read_var_uint(payload, pos)
        _, pos = read_var_uint(payload, pos)
        _, pos = read_var_string(payload, pos)
        into.append((name, client))


async def add_guest(page: Any, name: str) -> None:
    add = page.get_by_role("form", name="Add a guest")
    await add.get_by_label("Name").fill(name)
    await add.get_by_role("button", name="Add guest").click()
    await page.get_by_text(name, exact=True).first.wait_for()


async def stored(page: Any) -> None:
    """Until the tab's edits are all in its local copy (the status's ``data-stored``)."""
    await until(page, "document.querySelector('[role=status]').dataset.stored === 'true'")


async def server_has(demo: Demo, name: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        guests, _ = await guests_and_seating(demo)
        found: list[dict[str, Any]] = [g for g in guests.values() if g.get("name") == name]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"{name} never reached the server"
        await asyncio.sleep(0.1)


async def until_gone(demo: Demo, name: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while [g for g in (await guests_and_seating(demo))[0].values() if g.get("name") == name]:
        assert time.monotonic() < deadline, f"{name} is still on the server"
        await asyncio.sleep(0.1)


async def claim(demo: Demo, doc: str, client_id: int, write: Any) -> None:
    """The planner writes first under ``client_id`` in ``doc`` (over HTTP): ``write(doc)``
    on a pycrdt Doc of that client id holding the server's state."""
    async with httpx.AsyncClient() as client:
        headers = {"Authorization": f"Bearer {demo.tokens['planner']}"}
        base = f"{demo.url}/api/weddings/demo/docs/{doc}"
        state = await client.get(base, headers=headers | {"Accept": "application/octet-stream"})
        assert state.status_code == 200
        squatter: Doc[Any] = Doc(client_id=client_id)
        squatter.apply_update(state.content)
        before = squatter.get_state()
        write(squatter)
        answer = await client.post(
            f"{base}/update",
            headers=headers | {"Content-Type": "application/octet-stream"},
            content=squatter.get_update(before),
        )
        assert answer.status_code == 200, answer.text


async def refusals(demo: Demo) -> float:
    """How many updates the server refused for a client id owned by someone else."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{demo.url}/metrics")).text
    counted = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('crdt_updates_rejected_total{reason="client_id_taken"}')
    ]
    return sum(counted)


async def test_two_people_on_one_browser_never_load_each_others_unsent_items(
    demo: Demo,
    browser: Any,
    proxy: CuttableProxy,  # noqa: F811 (the fixture)
) -> None:
    context = await browser.new_context(viewport={"width": 1100, "height": 800})
    try:
        couple = await open_tab(context, demo.link("couple", proxy.url))
        await proxy.cut()
        await status(couple).filter(has_text="Offline").wait_for(timeout=10_000)
        await add_guest(couple, "Una Unsent")
        await stored(couple)
        await couple.close()  # the couple's edit is on this device only
        await proxy.restore()

        # The planner signs in on the same browser (another tab, the same origin).
        planner = await open_tab(context, demo.link("planner", proxy.url))
        await planner.get_by_role("link", name="Guests", exact=True).click()
        await planner.get_by_role("list", name="Guest list").wait_for()
        assert await planner.get_by_text("Una Unsent").count() == 0
        names = await planner.evaluate(NAMES)
        assert "crdt-server:demo-couple:demo/guests" in names, names
        assert "crdt-server:demo-planner:demo/guests" in names, names
        assert "crdt-server:demo/guests" not in names, names
        pending = "Object.keys(localStorage).filter((k) => k.startsWith('crdt-server.pending:'))"
        assert await planner.evaluate(pending) == ["crdt-server.pending:demo-couple:demo/guests"]
        await asyncio.sleep(0.5)
        guests, _ = await guests_and_seating(demo)
        assert not [g for g in guests.values() if g.get("name") == "Una Unsent"]

        # The couple's copy survived: their next visit sends it.
        again = await open_tab(context, demo.link("couple", proxy.url))
        await again.get_by_text("Una Unsent", exact=True).first.wait_for(timeout=10_000)
        await server_has(demo, "Una Unsent")
        assert await refusals(demo) == 0
        await planner.get_by_text("Una Unsent", exact=True).first.wait_for(timeout=10_000)
    finally:
        await context.close()


async def test_the_copy_of_the_release_before_is_taken_over_once(
    demo: Demo,
    browser: Any,
    proxy: CuttableProxy,  # noqa: F811 (the fixture)
) -> None:
    """A device's one copy per document (``crdt-server:{wedding}/{kind}``, the release
    before's name) with an unsent edit: the first person to open the document takes it over,
    its pending edits too, and it is gone afterwards."""
    context = await browser.new_context(viewport={"width": 1100, "height": 800})
    try:
        couple = await open_tab(context, demo.link("couple", proxy.url))
        await proxy.cut()
        await status(couple).filter(has_text="Offline").wait_for(timeout=10_000)
        await add_guest(couple, "Mo Migrated")
        await stored(couple)
        # Make this device look as the release before left it: the copy and its pending
        # edits under the old names, nothing under the new ones.
        await couple.evaluate(
            """async () => {
              const read = (name) => new Promise((done) => {
                const open = indexedDB.open(name)
                open.onsuccess = () => {
                  const all = open.result.transaction('updates').objectStore('updates').getAll()
                  all.onsuccess = () => { open.result.close(); done(all.result) }
                }
              })
              const updates = await read('crdt-server:demo-couple:demo/guests')
              await new Promise((done) => {
                const open = indexedDB.open('crdt-server:demo/guests')
                open.onupgradeneeded = () => {
                  open.result.createObjectStore('updates', { autoIncrement: true })
                  open.result.createObjectStore('custom')
                }
                open.onsuccess = () => {
                  const txn = open.result.transaction('updates', 'readwrite')
                  for (const update of updates) txn.objectStore('updates').add(update)
                  txn.oncomplete = () => { open.result.close(); done() }
                }
              })
              const key = 'crdt-server.pending:demo-couple:demo/guests'
              localStorage.setItem('crdt-server.pending:demo/guests', localStorage.getItem(key))
              localStorage.removeItem(key)
            }"""
        )
        await couple.close()
        await proxy.restore()
        blank = await context.new_page()
        await blank.goto(f"{proxy.url}/app/manifest.webmanifest")
        await blank.evaluate(
            """() => new Promise((done) => {
              const request = indexedDB.deleteDatabase('crdt-server:demo-couple:demo/guests')
              request.onsuccess = request.onerror = () => done()
            })"""
        )
        assert "crdt-server:demo/guests" in await blank.evaluate(NAMES)
        await blank.close()

        again = await open_tab(context, demo.link("couple", proxy.url))
        await again.get_by_text("Mo Migrated", exact=True).first.wait_for(timeout=10_000)
        await server_has(demo, "Mo Migrated")
        await status(again).filter(has_text="Synced").wait_for(timeout=10_000)
        assert await again.evaluate(PENDING) == "0"
        await until(again, f"{NAMES}.then((n) => !n.includes('crdt-server:demo/guests'))")
        assert "crdt-server:demo-couple:demo/guests" in await again.evaluate(NAMES)
        old_pending = "localStorage.getItem('crdt-server.pending:demo/guests')"
        assert await again.evaluate(old_pending) is None
    finally:
        await context.close()


@pytest.mark.parametrize("app_transport", ["collab", "sync"])
async def test_a_tab_whose_client_id_is_taken_loses_no_edit(
    demo: Demo,
    browser: Any,
    proxy: CuttableProxy,  # noqa: F811 (the fixture)
) -> None:
    """The planner claims the couple's tab's client id (its first write under it, over HTTP)
    while the tab is offline; the tab's offline edits are refused (4409), and it re-applies
    them under a new id: both reach the server, and the planner's write stays."""
    guests, _ = await guests_and_seating(demo)
    (gid, guest), (other_id, other) = sorted(guests.items())[:2]
    context = await browser.new_context(viewport={"width": 1100, "height": 800})
    seen: list[tuple[str, int]] = []
    try:
        couple = await open_tab(context, demo.link("couple", proxy.url), awareness=seen)
        ids = {client for name, client in seen if name == "demo/guests"}
        assert len(ids) == 1, seen
        (taken,) = ids
        await proxy.cut()
        await status(couple).filter(has_text="Offline").wait_for(timeout=10_000)

        # The planner writes first under that id: one field of a guest.
        def meal(doc: Doc[Any]) -> None:
            entry = doc.get("guests", type=Map)[gid]
            assert isinstance(entry, Map)
            entry["meal"] = "Claimed fish"

        await claim(demo, "guests", taken, meal)

        # The couple, offline, adds a guest and renames another: more items under the id
        # than the planner wrote, so the server sees new ones and refuses them.
        await add_guest(couple, "Cleo Collided")
        await couple.get_by_role("button", name=f"Edit {other['name']}").click()
        await (
            couple.get_by_role("form", name=f"Edit {other['name']}")
            .get_by_label("Name")
            .fill("Renamed Offline")
        )
        await couple.get_by_role("button", name="Save").click()
        await stored(couple)
        await proxy.restore()

        added = await server_has(demo, "Cleo Collided", timeout=20)
        assert added.get("rsvp") == "pending"
        await server_has(demo, "Renamed Offline")
        assert await refusals(demo) >= 1  # refused (4409) first, then re-applied
        guests, _ = await guests_and_seating(demo)
        assert guests[gid]["meal"] == "Claimed fish"  # the planner's write stays
        assert guests[gid]["name"] == guest["name"]
        await status(couple).filter(has_text="Synced").wait_for(timeout=10_000)
        assert await couple.evaluate(PENDING) == "0"
        await couple.get_by_text("Cleo Collided", exact=True).first.wait_for()
        await couple.get_by_text("Renamed Offline", exact=True).first.wait_for()
        # The tab writes on under its new id (its undo history too), and a reload loads
        # nothing under the old one.
        await add_guest(couple, "After Recovery")
        await server_has(demo, "After Recovery")
        await add_guest(couple, "Undone Later")
        await server_has(demo, "Undone Later")
        await couple.get_by_role("button", name="Undo", exact=False).first.click()
        await couple.get_by_text("Undone Later", exact=True).wait_for(state="detached")
        await until_gone(demo, "Undone Later")
        await couple.reload()
        await status(couple).filter(has_text="Synced").wait_for(timeout=15_000)
        await couple.get_by_text("After Recovery", exact=True).first.wait_for()
        await asyncio.sleep(0.5)
        guests, _ = await guests_and_seating(demo)
        names = [g.get("name") for g in guests.values()]
        assert names.count("Cleo Collided") == 1 and names.count("After Recovery") == 1, names
        assert guests[gid]["meal"] == "Claimed fish"
    finally:
        await context.close()


async def test_the_run_of_show_typed_under_a_taken_id_is_kept(
    demo: Demo,
    browser: Any,
    proxy: CuttableProxy,  # noqa: F811 (the fixture)
) -> None:
    """The run of show (a Y.XmlFragment, Tiptap) typed offline under a client id the server
    then refuses: the text reaches the server, the open editor moves to the new Y.Doc and
    goes on working."""
    timeline = await demo.json("/api/weddings/demo/docs/timeline")
    assert isinstance(timeline, dict)
    item_id = sorted(timeline["items"])[0]
    context = await browser.new_context(viewport={"width": 1100, "height": 800})
    seen: list[tuple[str, int]] = []
    try:
        couple = await open_tab(context, demo.link("couple", proxy.url), awareness=seen)
        await open_run_of_show(couple)
        await until_text(couple, "14:00 Ceremony")
        (taken,) = {client for name, client in seen if name == "demo/timeline"}
        await proxy.cut()
        await status(couple).filter(has_text="Offline").wait_for(timeout=10_000)

        def owner(doc: Doc[Any]) -> None:
            entry = doc.get("items", type=Map)[item_id]
            assert isinstance(entry, Map)
            entry["owner"] = "Claimed owner"

        await claim(demo, "timeline", taken, owner)
        await caret_at_end_of(couple, "14:00 Ceremony")
        await couple.keyboard.type(" Typed offline.", delay=10)
        await stored(couple)
        await proxy.restore()

        deadline = time.monotonic() + 20
        while True:
            stored_timeline = await demo.json("/api/weddings/demo/docs/timeline")
            assert isinstance(stored_timeline, dict)
            if "Typed offline." in stored_timeline["runofshow"]["text"]:
                break
            assert time.monotonic() < deadline, stored_timeline["runofshow"]["text"]
            await asyncio.sleep(0.1)
        assert stored_timeline["items"][item_id]["owner"] == "Claimed owner"
        assert await refusals(demo) >= 1
        await status(couple).filter(has_text="Synced").wait_for(timeout=10_000)
        assert (await until_text(couple, "Typed offline.")).count("Typed offline.") == 1
        assert await couple.locator(EDITOR).count() == 1  # one editor, on the new Y.Doc
        await caret_at_end_of(couple, "14:00 Ceremony")
        await couple.keyboard.type(" And after.", delay=10)
        deadline = time.monotonic() + 10
        while "Typed offline. And after." not in stored_timeline["runofshow"]["text"]:
            assert time.monotonic() < deadline, stored_timeline["runofshow"]["text"]
            await asyncio.sleep(0.1)
            stored_timeline = await demo.json("/api/weddings/demo/docs/timeline")
            assert isinstance(stored_timeline, dict)
    finally:
        await context.close()
