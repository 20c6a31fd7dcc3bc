"""The clients guide's Tiptap example, as written: bundled with esbuild from the guide's own
code block (the app's pinned packages), run in Chromium against a real server on its one
``/collab`` socket, typed into while a stock y-websocket client in Node edits the same run
of show through ``/sync``; both converge."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from crdt_server.testing.tokens import TokenMinter, new_secret
from tests.jsclient import JsClient, xml_insert
from tests.server import ServerProcess
from tests.web.conftest import PAGE_ERRORS

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.timeout(90)]

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guides" / "clients.md"
ESBUILD = ROOT / "web" / "node_modules" / ".bin" / "esbuild"
MINT = TokenMinter(new_secret())
EDITOR = "#editor .ProseMirror"


def guide_example() -> str:
    """The guide's first ``js`` block under its Tiptap heading."""
    text = GUIDE.read_text()
    section = text[text.index("## Tiptap and `@hocuspocus/provider`") :]
    found = re.search(r"^```js\n(.*?)^```$", section, re.S | re.M)
    assert found, "the clients guide has no Tiptap example"
    return found.group(1)


async def bundle(source: str) -> str:
    """The example bundled for a browser, as an app's build would (from web/'s packages)."""
    process = await asyncio.create_subprocess_exec(
        str(ESBUILD),
        "--bundle",
        "--format=esm",
        "--loader=js",
        "--sourcefile=example.js",
        cwd=ROOT / "web",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate(source.encode())
    assert process.returncode == 0, err.decode()
    return out.decode()


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    async with ServerProcess(tmp_path / "data", env=MINT.env, anonymous=False) as proc:
        yield proc


class AppOrigin:
    """The app's own origin on loopback (a real HTTP server in a thread): its page and the
    token route the example's ``fetch('/my-token')`` asks."""

    def __init__(self, page: str, token: str) -> None:
        self.asked: list[str] = []
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/my-token":
                    origin.asked.append(self.path)
                    body, kind = token.encode(), "text/plain"
                else:
                    body, kind = page.encode(), "text/html; charset=utf-8"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    async def __aenter__(self) -> AppOrigin:
        self.thread.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.httpd.shutdown)
        self.httpd.server_close()
        self.thread.join(timeout=10)


async def test_the_guides_tiptap_example_syncs_with_a_y_websocket_client(
    server: ServerProcess, browser: Any
) -> None:
    PAGE_ERRORS.clear()
    if not ESBUILD.exists():
        pytest.skip("web/node_modules is missing: run scripts/setup-js")
    wedding = f"w{uuid.uuid4().hex[:10]}"
    token = MINT(sub="ann", role="couple", wedding=wedding, ttl=3600)
    code = guide_example().replace("wss://HOST", f"ws://127.0.0.1:{server.port}")
    code = code.replace("w42", wedding)
    script = await bundle(code)
    page_html = f'<div id="editor"></div><script type="module">{script}</script>'
    async with AppOrigin(page_html, token) as app, await JsClient.start(version=3) as node:
        await node.connect(
            f"ws://127.0.0.1:{server.port}/sync", f"{wedding}/timeline", params={"token": token}
        )
        await node.wait_synced()
        context = await browser.new_context()
        try:
            page = await context.new_page()
            page.on("pageerror", lambda error: PAGE_ERRORS.append(str(error)))
            sockets: list[str] = []
            page.on("websocket", lambda ws: sockets.append(ws.url))
            await page.goto(f"{app.url}/")
            await page.locator(EDITOR).click()
            await page.keyboard.type("Hello from Tiptap", delay=20)
            await node.wait_for(
                {"runofshow": "<paragraph>Hello from Tiptap</paragraph>"},
                roots={"runofshow": "xml"},
            )
            # The stock client types at the start while the editor types at the end.
            await asyncio.gather(
                node.edit(xml_insert("runofshow", 0, 0, "[node] ")),
                page.keyboard.type(", and more.", delay=20),
            )
            expected = "[node] Hello from Tiptap, and more."
            deadline = time.monotonic() + 10
            while await page.inner_text(EDITOR) != expected:
                assert time.monotonic() < deadline, await page.inner_text(EDITOR)
                await page.wait_for_timeout(50)
            await node.wait_for(
                {"runofshow": f"<paragraph>{expected}</paragraph>"}, roots={"runofshow": "xml"}
            )
            assert sockets == [f"ws://127.0.0.1:{server.port}/collab/{wedding}"]
            assert app.asked, "the token function was never called"
        finally:
            await context.close()
    assert PAGE_ERRORS == []
