"""The browser tests' harness: Debian's Chromium driven by Playwright, a real server started
with ``--demo``, and the sign-in links it prints."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
import pytest_asyncio

from tests.server import ServerProcess
from tests.web.proxy import CuttableProxy

CHROMIUM = os.environ.get("CRDT_SERVER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
ADMIN_KEY = "browser-tests-admin-key"
PAGE_ERRORS: list[str] = []
"""Uncaught errors of every page; each test checks there were none."""
_LINK = re.compile(rb"^(couple|planner|family|vendor|friend) (http://\S+/app/#token=(\S+))$", re.M)

try:
    from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = expect = None


def _have_browser() -> bool:
    return async_playwright is not None and shutil.which(CHROMIUM) is not None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if _have_browser():
        return
    skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM}: run scripts/setup-browser")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@dataclass
class Demo:
    """A server started with ``--demo``: its URL and a sign-in link and token per role."""

    server: ServerProcess
    links: dict[str, str]
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    def link(self, role: str, base: str | None = None) -> str:
        """The role's sign-in link, optionally through another origin (a proxy)."""
        link = self.links[role]
        return link if base is None else link.replace(self.server.url, base, 1)

    async def today(self, role: str, timeout: float = 10.0) -> tuple[str, str]:
        """The role's sign-in link to the demo's wedding of today (``demo-today``, seeded
        after the links above are printed) and its token."""
        line = re.compile(rb"^today " + role.encode() + rb" (http://\S+/app/#token=(\S+))$", re.M)
        deadline = time.monotonic() + timeout
        while (found := line.search(bytes(self.server.log))) is None:
            assert time.monotonic() < deadline, "no link to the wedding of today"
            await asyncio.sleep(0.02)
        return found.group(1).decode(), found.group(2).decode()

    async def json(self, path: str, role: str = "planner") -> object:
        async with httpx.AsyncClient() as client:
            response = await client.get(
                f"{self.url}{path}", headers={"Authorization": f"Bearer {self.tokens[role]}"}
            )
            response.raise_for_status()
            return response.json()


async def demo_links(server: ServerProcess, timeout: float = 10.0) -> Demo:
    deadline = time.monotonic() + timeout
    while True:
        found = {m.group(1).decode(): m for m in _LINK.finditer(bytes(server.log))}
        if len(found) == 5:
            return Demo(
                server,
                {role: m.group(2).decode() for role, m in found.items()},
                {role: m.group(3).decode() for role, m in found.items()},
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"no demo links:\n{server.log.decode(errors='replace')}")
        await asyncio.sleep(0.02)


@pytest.fixture
def app_transport() -> str:
    """How the app syncs (``CRDT_SERVER_APP_TRANSPORT``): the default, ``collab``; a test
    runs on both with ``@pytest.mark.parametrize("app_transport", ["collab", "sync"])``."""
    return "collab"


@pytest_asyncio.fixture
async def demo(tmp_path: Path, app_transport: str) -> AsyncIterator[Demo]:
    env = {"CRDT_SERVER_ADMIN_API_KEY": ADMIN_KEY, "CRDT_SERVER_APP_TRANSPORT": app_transport}
    async with ServerProcess(
        tmp_path / "data", env=env, args=["--demo"], anonymous=False
    ) as server:
        yield await demo_links(server)


@pytest.fixture(scope="session")
def browser_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Chromium per test process (per xdist worker), served by Playwright's own
    browser server; its WebSocket endpoint. Each test connects to it and works in fresh
    contexts (their own storage), so tests share the browser process, not state."""
    from playwright._impl._driver import compute_driver_executable

    node, cli = compute_driver_executable()
    config = tmp_path_factory.mktemp("chromium") / "launch.json"
    config.write_text(
        json.dumps({"executablePath": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True})
    )
    process = subprocess.Popen(
        [str(node), str(cli), "launch-server", "--browser", "chromium", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert process.stdout is not None
    ready: queue.Queue[bytes] = queue.Queue()
    reader = threading.Thread(target=_lines, args=(process.stdout, ready), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        seen = b""
        while True:
            try:
                line = ready.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no browser server after 60 s:\n{seen.decode()}") from None
            seen += line
            found = re.search(rb"ws://\S+", line)
            if found:
                break
            if not line:
                raise RuntimeError(f"the browser server ended:\n{seen.decode()}")
        yield found.group().decode()
    finally:
        # The server and the Chromium it started share a session: end them together.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        reader.join(timeout=10)  # the pipe ends when the last process of the group does
        process.stdout.close()


def _lines(stream: IO[bytes], into: queue.Queue[bytes]) -> None:
    """Forwards a process's output lines, then ``b""`` at its end (read in a thread, so the
    session fixture's wait has a deadline)."""
    for line in stream:
        into.put(line)
    into.put(b"")


@pytest_asyncio.fixture
async def browser(browser_server: str) -> AsyncIterator[Browser]:
    """The worker's Chromium (see ``browser_server``); what a test opens in it is closed
    when the test ends."""
    assert async_playwright is not None
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.connect(browser_server)
        try:
            yield chromium
        finally:
            await chromium.close()


async def open_app(
    browser: Browser,
    url: str,
    *,
    width: int = 1100,
    height: int = 800,
    sockets: list[str] | None = None,
    **options: Any,
) -> tuple[BrowserContext, Page]:
    """A fresh browser context (its own storage) with the app opened at ``url``, synced;
    ``sockets`` collects the path of every WebSocket the page opens; ``options`` go to the
    context (``timezone_id``, ``locale``)."""
    context = await browser.new_context(viewport={"width": width, "height": height}, **options)
    page = await context.new_page()
    page.on("pageerror", lambda error: PAGE_ERRORS.append(f"{url}: {error}"))
    if sockets is not None:
        page.on("websocket", lambda ws: sockets.append(ws.url.split("?")[0].split("/", 3)[3]))
    await page.goto(url)
    await status(page).filter(has_text="Synced").wait_for(timeout=10_000)
    return context, page


def status(page: Page):  # type: ignore[no-untyped-def]
    return page.get_by_role("status")


async def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path))
    return path


@pytest_asyncio.fixture
async def proxy(demo: Demo) -> AsyncIterator[CuttableProxy]:
    """A TCP proxy in front of the demo server that a test can cut (Playwright's
    ``set_offline`` does not close an open WebSocket)."""
    cuttable = await CuttableProxy(demo.server.port).start()
    try:
        yield cuttable
    finally:
        await cuttable.close()


async def until(page: Page, expression: str, timeout: float = 10.0) -> None:
    """Wait until ``expression`` is true in the page. (``wait_for_function`` evaluates its
    predicate with ``eval``, which the app's Content-Security-Policy rightly forbids.)"""
    deadline = time.monotonic() + timeout
    while not await page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        await page.wait_for_timeout(50)


async def guests_and_seating(demo: Demo) -> tuple[dict[str, Any], dict[str, Any]]:
    """The demo wedding's guests (by id) and its seating document, as JSON."""
    guests = await demo.json("/api/weddings/demo/docs/guests")
    seating = await demo.json("/api/weddings/demo/docs/seating")
    assert isinstance(guests, dict) and isinstance(seating, dict)
    return guests["guests"], seating


async def refused(
    page: Page,
    control: Any,
    reason: str,
    *,
    kept: Sequence[tuple[Any, str | re.Pattern[str]]] = (),
) -> None:
    """A refusal as people see it (issue 53, point 1): ``control`` has focus, is marked
    invalid (a field; a button cannot be), and is described by ``reason``, whose note is on
    screen; each of ``kept`` (a control, what was typed there, or a pattern of it) still
    holds what was typed."""
    await expect(control).to_be_focused()
    if await control.evaluate("(e) => ['INPUT', 'SELECT', 'TEXTAREA'].includes(e.tagName)"):
        await expect(control).to_have_attribute("aria-invalid", "true")
    await expect(control).to_have_accessible_description(re.compile(re.escape(reason)))
    described = await control.get_attribute("aria-describedby")
    assert described, "the refused control names no description"
    note = page.locator(f"[id='{described.split()[0]}']")
    await expect(note).to_contain_text(reason)
    await expect(note).to_be_in_viewport()
    for other, value in kept:
        await expect(other).to_have_value(value)
