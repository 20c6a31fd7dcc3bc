"""Presence changes on the event stream, through a real server: a member's stream sees
another member become busy, move and type as ``presence.changed`` records with no ``id:``
line (never stored, so they move no ``Last-Event-ID``), limited to the documents the reader
may read and to the ``types=`` asked for; and the presence route shows the same status."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from crdt_server.auth.tokens import TokenCodec
from tests.server import FreshWedding, ServerProcess, served
from tests.yclient import YClient

pytestmark = pytest.mark.timeout(30)

SECRET = "presence-test-secret-at-least-32-bytes!"
CODEC = TokenCodec(algorithms=["HS256"], secret=SECRET.encode())
ENV = {"CRDT_SERVER_AUTH_SECRET": SECRET, "CRDT_SERVER_SSE_HEARTBEAT_SECONDS": "0.5"}
WEDDING = FreshWedding("pr")


@pytest.fixture(autouse=True)
def fresh_wedding() -> None:
    WEDDING.renew()


def token(role: str, sub: str) -> str:
    return CODEC.mint(sub=sub, role=role, wedding=WEDDING.id, ttl=600)


def auth(role: str, sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, sub)}"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[ServerProcess, httpx.AsyncClient]]:
    async with served(tmp_path_factory.mktemp("presence") / "data", ENV) as running:
        yield running


async def records(stream: httpx.Response) -> AsyncIterator[list[str]]:
    """The lines of each record of ``stream`` (a heartbeat: its comment line)."""
    lines: list[str] = []
    async for line in stream.aiter_lines():
        if line:
            lines.append(line)
        elif lines:
            yield lines
            lines = []


async def presence_record(
    frames: AsyncIterator[list[str]], wanted: dict[str, Any]
) -> tuple[list[str], dict[str, Any]]:
    """The next ``presence.changed`` record whose data has ``wanted``."""
    async with asyncio.timeout(10):
        async for lines in frames:
            if "event: presence.changed" not in lines:
                continue
            data = json.loads(next(x for x in lines if x.startswith("data:"))[5:])
            if wanted.items() <= data["data"].items():
                return lines, data
    raise AssertionError("the stream ended")


@pytest.mark.asyncio(loop_scope="module")
async def test_a_status_change_reaches_another_members_stream_without_an_id(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = api
    stream_url = WEDDING.at("/events/stream")
    async with (
        http.stream("GET", stream_url, headers=auth("couple", "bo")) as couple,
        http.stream("GET", stream_url, headers=auth("vendor", "vi")) as vendor,
        http.stream(
            "GET", f"{stream_url}?types=guest.*", headers=auth("planner", "pat")
        ) as guests_only,
        YClient(server.ws_url, f"{WEDDING.id}/budget", token=token("couple", "ann")) as ann,
    ):
        await ann.wait(ann.synced.is_set)
        frames = records(couple)
        lines, record = await presence_record(frames, {"sub": "ann", "status": "online"})
        await ann.set_awareness({"status": "busy", "here": {"section": "budget"}, "typing": True})
        lines, record = await presence_record(frames, {"sub": "ann", "status": "busy"})
        assert not any(line.startswith("id:") for line in lines), lines
        assert record["type"] == "presence.changed" and record["at"].endswith("Z")
        assert record["data"] | {"last_seen": None} == {
            "sub": "ann",
            "name": record["data"]["name"],
            "role": "couple",
            "status": "busy",
            "section": "budget",
            "typing": True,
            "documents": ["budget"],
            "last_seen": None,
        }
        shown = (await http.get(WEDDING.at("/presence"), headers=auth("couple", "bo"))).json()
        [entry] = shown["presence"]
        assert (entry["status"], entry["section"], entry["typing"]) == ("busy", "budget", True)
        # The vendor may not read the budget: nothing of ann there reaches their stream
        # (they see their own stream's records only: a guest edit comes first).
        await http.post(
            WEDDING.at("/events"),
            headers=auth("planner", "pat"),
            json={"type": "custom.marker", "data": {}},
        )
        async with asyncio.timeout(10):
            async for lines in records(vendor):
                assert "event: presence.changed" not in lines, lines
                if "event: custom.marker" in lines:
                    break
        heartbeats = 0
        async with asyncio.timeout(10):
            async for lines in records(guests_only):
                assert lines == [": heartbeat"], lines  # nothing but heartbeats
                heartbeats += 1
                if heartbeats == 2:
                    break
    # ann left: offline, with when she was last seen
    shown = (await http.get(WEDDING.at("/presence"), headers=auth("couple", "bo"))).json()
    [entry] = shown["presence"]
    assert entry["status"] == "offline" and entry["last_seen"].endswith("Z")
