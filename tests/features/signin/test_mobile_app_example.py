"""The clients guide's mobile app (examples/mobile_app.mjs), run the way the guide runs it
(``./scripts/example mobile_app``) against a real server and a real SMTP receiver (issue
80): it signs in from the emailed link with PKCE, keeps its device secret, edits offline
through y-indexeddb over fake-indexeddb, restarts with its edit still there, reconnects
and converges with what another client wrote meanwhile; nothing is lost either way."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Map

from crdt_server.testing.waits import until
from tests.features.conversations import auth
from tests.features.signin.test_sessions import Running, put_member
from tests.yclient import YClient

pytestmark = [pytest.mark.js, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[3]
_LINK = re.compile(r"https?://\S+/app/sign-in-app#code=[A-Za-z0-9_-]+")


async def _step(app: asyncio.subprocess.Process, name: str) -> dict[str, Any]:
    """The app's next line, which must be the step ``name``."""
    assert app.stdout is not None
    async with asyncio.timeout(120):
        line = await app.stdout.readline()
    if not line:
        assert app.stderr is not None
        raise AssertionError(f"the app ended before {name}: {(await app.stderr.read()).decode()}")
    said: dict[str, Any] = json.loads(line)
    assert said["step"] == name, said
    return said


async def _tell(app: asyncio.subprocess.Process, line: str) -> None:
    assert app.stdin is not None
    app.stdin.write(line.encode() + b"\n")
    await app.stdin.drain()


def _guests(client: YClient) -> dict[str, Any]:
    return dict(client.doc.get("guests", type=Map).to_py() or {})


@pytest.mark.asyncio
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_the_mobile_app_signs_in_edits_offline_restarts_and_converges(
    running: Running,
) -> None:
    await put_member(running.http, "w1", "cam", role="couple", name="Cam", email="cam@example.com")
    app = await asyncio.create_subprocess_exec(
        str(ROOT / "scripts" / "example"),
        "mobile_app",
        running.server.url,
        "cam@example.com",
        "w1",
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await _step(app, "asked")

        def emailed() -> str | None:
            for message in running.inbox.messages:
                found = _LINK.search(message.get_content())
                if found and message["To"] == "cam@example.com":
                    return found.group(0)
            return None

        async def arrived() -> bool:
            return emailed() is not None

        await until(arrived)
        link = emailed()
        assert link is not None and link.startswith(running.server.url)
        await _tell(app, link)  # the phone hands the tapped link to the app
        signed_in = await _step(app, "signed-in")
        assert (signed_in["wedding"], signed_in["role"]) == ("w1", "couple")
        await _step(app, "offline")

        # While the phone is offline, the planner adds a guest from a desk.
        planner = auth("pat", "planner")["Authorization"].removeprefix("Bearer ")
        async with YClient(running.server.ws_url, "w1/guests", token=planner) as desk:
            await desk.wait(desk.synced.is_set)
            assert "g-online" in _guests(desk)
            with desk.doc.transaction():
                desk.doc.get("guests", type=Map)["g-desk"] = Map({"name": "Dee Desk"})
            await desk.flush()
            await desk.wait(desk.is_confirmed)
            await _tell(app, "go on")

            # Restarted: its offline edit came back from IndexedDB, before any network.
            restored = await _step(app, "restored")
            assert restored["guests"] == ["g-online", "g-phone"]
            converged = (await _step(app, "converged"))["guests"]
            assert set(converged) == {"g-online", "g-phone", "g-desk"}
            assert converged["g-phone"] == {"name": "Pip Phone", "rsvp": "accepted"}
            # The desk got the phone's offline edit, once, as written.
            await desk.wait(lambda: "g-phone" in _guests(desk))
            assert _guests(desk)["g-phone"] == {"name": "Pip Phone", "rsvp": "accepted"}
        async with asyncio.timeout(30):
            assert await app.wait() == 0
    finally:
        if app.returncode is None:
            app.kill()
            await app.wait()
