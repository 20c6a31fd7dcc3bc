"""A socket's token expiry runs on the server's clock (issue 54, point 1): with the fake
clock, moving it past a token's ``exp`` closes a ``/sync`` socket with 4401 and, on
``/collab``, asks for a new token ahead of ``exp``, keeps a renewed document and denies one
that was not renewed, as the real time would, and ends an event stream with
``token_expired``; without sleeping for real. The app runs under real uvicorn in the test's
process (the fake clock is that process's clock)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pycrdt import Doc, Map
from websockets.asyncio.client import ClientConnection, connect

from crdt_server import clock
from crdt_server.app import create_app
from crdt_server.codec.protocol import (
    encode_sync_step1,
    encode_update,
    read_var_string,
    write_var_string,
)
from crdt_server.core.multiplex import RENEW_AHEAD_SECONDS
from crdt_server.errors import CloseCode
from crdt_server.settings import Settings
from tests.features.events.test_events import sse_frames
from tests.features.test_feature_list import MINT, SECRET, serving
from tests.yclient import YClient

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

TTL = 3600
# What the provider reads: an Auth message's sub-types, a SyncStatus.
TOKEN_REQUEST, PERMISSION_DENIED, AUTHENTICATED = b"\x02\x00", b"\x02\x01", b"\x02\x02"
APPLIED = b"\x08\x01"


def ws_base(http_base: str) -> str:
    return http_base.replace("http://", "ws://", 1).rstrip("/")


async def test_a_sync_socket_closes_4401_when_the_clock_passes_exp(
    tmp_path: Path, crdt_clock: clock.FakeClock
) -> None:
    settings = Settings(data_dir=tmp_path, auth_secret=SECRET)
    async with serving(create_app(settings)) as http:
        url = f"{ws_base(str(http.base_url))}/sync"
        token = MINT(sub="cal", role="couple", wedding="w1", ttl=TTL)
        async with YClient(url, "w1/guests", token=token) as client:
            await client.wait(client.synced.is_set)
            await crdt_clock.advance(TTL - 1)
            # A second before ``exp``: still served (an edit is committed and echoed).
            client.doc.get("guests", type=Map)["g1"] = Map({"name": "Ada"})
            await client.flush()
            await client.wait(client.is_confirmed)
            assert not client.closed.is_set()
            await crdt_clock.advance(1)
            await client.wait(client.closed.is_set, timeout=10)
        assert client.close_code == CloseCode.TOKEN_EXPIRED


def auth(name: str, token: str) -> bytes:
    return write_var_string(name) + b"\x02\x00" + write_var_string(token) + write_var_string("4.8")


def framed(name: str, body: bytes) -> bytes:
    return write_var_string(name) + body


async def next_of(ws: ClientConnection, name: str, timeout: float = 10.0) -> bytes:
    """The body of the next message for document ``name`` (pings and others skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await ws.recv()
            assert isinstance(frame, bytes)
            if frame == b"\x09":
                continue
            key, pos = read_var_string(frame, 0)
            if key == name:
                return frame[pos:]


async def auth_answer(ws: ClientConnection, name: str) -> bytes:
    """The next Auth message for ``name`` (its sub-type and after)."""
    while True:
        body = await next_of(ws, name)
        if body[:1] == b"\x02":
            return body


async def still_served(ws: ClientConnection, name: str, value: int) -> None:
    """An update for ``name`` is committed and answered SyncStatus 1, with no Auth message
    (a token request, a denial) before it."""
    doc: Doc[Map] = Doc()
    doc["m"] = root = Map()
    root["k"] = value
    await ws.send(framed(name, encode_update(doc.get_update())))
    while True:
        body = await next_of(ws, name)
        assert body[:1] != b"\x02", body
        if body[:1] == b"\x08":
            assert body == APPLIED
            return


async def test_collab_asks_renews_and_denies_by_the_clock(
    tmp_path: Path, crdt_clock: clock.FakeClock
) -> None:
    settings = Settings(data_dir=tmp_path, auth_secret=SECRET)
    name = "w1/timeline"
    async with serving(create_app(settings)) as http:
        url = f"{ws_base(str(http.base_url))}/collab/w1"
        first = MINT(sub="cal", role="couple", wedding="w1", ttl=TTL)
        async with connect(url) as ws:
            await ws.send(auth(name, first))
            assert (await auth_answer(ws, name))[:2] == AUTHENTICATED
            await ws.send(framed(name, encode_sync_step1(b"\x00")))
            await still_served(ws, name, 0)
            # Just before the renewal is due: nothing asked yet.
            await crdt_clock.advance(TTL - RENEW_AHEAD_SECONDS - 1)
            await still_served(ws, name, 1)
            await crdt_clock.advance(1)
            assert await auth_answer(ws, name) == TOKEN_REQUEST
            # Renewed: the document outlives the first token's ``exp``.
            second = MINT(sub="cal", role="couple", wedding="w1", ttl=TTL)
            await ws.send(auth(name, second))
            assert (await auth_answer(ws, name))[:2] == AUTHENTICATED
            await crdt_clock.advance(RENEW_AHEAD_SECONDS)
            await still_served(ws, name, 2)
            # Not renewed (the same token again): denied at the second token's ``exp``.
            await crdt_clock.advance(TTL - 2 * RENEW_AHEAD_SECONDS)
            assert await auth_answer(ws, name) == TOKEN_REQUEST
            await ws.send(auth(name, second))
            assert (await auth_answer(ws, name))[:2] == AUTHENTICATED
            await crdt_clock.advance(RENEW_AHEAD_SECONDS - 1)
            await still_served(ws, name, 3)
            await crdt_clock.advance(1)
            denied = await auth_answer(ws, name)
            assert denied[:2] == PERMISSION_DENIED and b"token expired" in denied


async def test_an_event_stream_ends_token_expired_when_the_clock_passes_exp(
    tmp_path: Path, crdt_clock: clock.FakeClock
) -> None:
    settings = Settings(data_dir=tmp_path, auth_secret=SECRET)
    async with serving(create_app(settings)) as http:
        headers = MINT.headers("couple", "cal", "w1", ttl=TTL)
        task = {"op": "add_task", "task_id": "cake", "title": "Cake"}
        answer = await http.post("/api/weddings/w1/docs/tasks/ops", json=task, headers=headers)
        assert answer.status_code == 200, answer.text
        url = "/api/weddings/w1/events/stream"
        async with http.stream("GET", url, headers=headers, timeout=30) as stream:
            assert stream.status_code == 200
            frames = sse_frames(stream)
            async with asyncio.timeout(10):
                kind, _ = await anext(frames)  # the task's event: the stream now waits
            assert kind == "task.added"
            await crdt_clock.advance(TTL)
            async with asyncio.timeout(5):  # far less than a heartbeat (15 s)
                assert await anext(frames) == ("end", {"reason": "token_expired"})
