"""Every example in examples/ runs against a real server and does what the README says."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from pycrdt import Map

from tests.server import ServerProcess
from tests.yclient import YClient

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


async def _run(*command: str, cwd: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(30):
        stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """A server as the README starts it: tokens required, secret generated on first start."""
    async with ServerProcess(tmp_path / "data", anonymous=False) as proc:
        yield proc


async def _cli_token(server: ServerProcess) -> str:
    """A token minted the way the README shows, with the server's own secret."""
    out = await _run(
        sys.executable,
        "-m",
        "crdt_server",
        "token",
        "--wedding",
        "w42",
        "--role",
        "planner",
        "--sub",
        "example",
        "--data-dir",
        str(server.data_dir),
        cwd=ROOT,
    )
    return out.strip().splitlines()[-1]


def _has_guest(client: YClient, guest_id: str) -> bool:
    return guest_id in (client.doc.get("guests", type=Map).to_py() or {})


@pytest.mark.asyncio
async def test_python_client_example(server: ServerProcess) -> None:
    tok = await _cli_token(server)
    async with YClient(server.ws_url, "w42/guests", token=tok) as watcher:
        command = (sys.executable, str(EXAMPLES / "python_client.py"), server.ws_url, tok)
        out = await _run(*command, cwd=ROOT)
        assert json.loads(out.splitlines()[-1])["g-ada"]["name"] == "Ada Lovelace"
        await watcher.wait(lambda: _has_guest(watcher, "g-ada"))


@pytest.mark.asyncio
async def test_wedding_over_http_example(server: ServerProcess) -> None:
    tok = await _cli_token(server)
    async with YClient(server.ws_url, "w42/guests", token=tok) as editor:
        command = (sys.executable, str(EXAMPLES / "wedding_http.py"), server.url, tok, "w42")
        out = json.loads((await _run(*command, cwd=ROOT)).splitlines()[-1])
        assert out["guests"]["grace"]["meal"] == "vegetarian"
        assert out["assignments"]["ada"]["table_id"] == "rose"
        assert out["conflicts"] == []
        # The live editor saw every change made over HTTP.
        await editor.wait(lambda: _has_guest(editor, "grace"))


@pytest.mark.js
@pytest.mark.asyncio
async def test_js_client_example(server: ServerProcess) -> None:
    # Run the example beside the pinned JS packages the tests install (tests/js).
    js_dir = ROOT / "tests" / "js"
    copy = js_dir / ".example-js_client.mjs"
    shutil.copy(EXAMPLES / "js_client.mjs", copy)
    tok = await _cli_token(server)
    async with YClient(server.ws_url, "w42/guests", token=tok) as watcher:
        try:
            out = await _run("node", str(copy), server.ws_url, tok, cwd=js_dir)
        finally:
            copy.unlink()
        assert json.loads(out.splitlines()[-1])["g-grace"]["rsvp"] == "accepted"
        await watcher.wait(lambda: _has_guest(watcher, "g-grace"))
