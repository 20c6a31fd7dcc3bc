"""``CRDT_SERVER_MAX_UPDATE_ITEMS`` (issue 73): every received update is bounded by its
structs and delete ranges, whatever its size in bytes, and refused with its documented code
(413 over HTTP naming the field, 1009 on ``/sync``, a CLOSE for that document alone on
``/collab``), nothing changed and everybody else served; the default is 4x the largest
message an honest client sends (``tests/js/producers.mjs``)."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pycrdt import Doc, Map
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from crdt_server.codec.protocol import (
    SyncUpdate,
    decode_message,
    encode_sync_step1,
    encode_sync_step2,
    encode_update,
    read_var_string,
    write_var_string,
)
from crdt_server.codec.updates import inspect_update
from crdt_server.lib0 import write_var_uint
from crdt_server.settings import Settings
from crdt_server.testing.tokens import TokenMinter, new_secret
from tests.core.test_shapes import node_json
from tests.server import ServerProcess

pytestmark = pytest.mark.asyncio(loop_scope="module")

MINT = TokenMinter(new_secret())
LIMIT = 1000


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    env = {**MINT.env, "CRDT_SERVER_MAX_UPDATE_ITEMS": str(LIMIT)}
    proc = ServerProcess(tmp_path_factory.mktemp("items") / "data", env=env)
    proc.anonymous = False
    async with proc:
        yield proc


def new_wedding() -> str:
    return f"w{uuid.uuid4().hex[:10]}"


def guests(n: int, *, client: int = 73) -> bytes:
    """One transaction adding ``n`` guests to the guest list, one key each: ``n`` structs."""
    doc: Doc[Any] = Doc(client_id=client)
    root = doc.get("guests", type=Map)
    with doc.transaction():
        for i in range(n):
            root[f"g-{i:06x}"] = {"name": f"G{i}"}
    update = doc.get_update()
    assert inspect_update(update).items == n
    return update


def bearer(wedding: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {MINT(sub='ann', role='couple', wedding=wedding)}"}


async def stored(http: httpx.AsyncClient, wedding: str, doc: str = "guests") -> bytes:
    """The document's state vector as the JSON read shows it."""
    response = await http.get(f"/api/weddings/{wedding}/docs/{doc}", headers=bearer(wedding))
    assert response.status_code == 200, response.text
    return base64.b64decode(response.headers["Yjs-State-Vector"])


# -- HTTP -------------------------------------------------------------------------------------


async def test_over_http_one_over_the_limit_is_a_413_naming_the_field_and_changes_nothing(
    server: ServerProcess,
) -> None:
    w = new_wedding()
    path = f"/api/weddings/{w}/docs/guests"
    binary = {**bearer(w), "Content-Type": "application/octet-stream"}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        before = await stored(http, w)
        over = guests(LIMIT + 1)
        response = await http.post(f"{path}/update", content=over, headers=binary)
        assert response.status_code == 413, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert [e["field"] for e in problem["errors"]] == ["body"]
        assert str(LIMIT) in problem["detail"]
        # The JSON sync names its field; the binary one its body.
        sync = {"state_vector": "", "update": base64.b64encode(over).decode()}
        response = await http.post(f"{path}/sync", json=sync, headers=bearer(w))
        assert response.status_code == 413, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["update"]
        body = write_var_uint(1) + b"\x00" + write_var_uint(len(over)) + over
        response = await http.post(f"{path}/sync", content=body, headers=binary)
        assert response.status_code == 413, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["body"]
        assert await stored(http, w) == before  # nothing changed
        # One at the limit is taken.
        response = await http.post(f"{path}/update", content=guests(LIMIT), headers=binary)
        assert response.status_code == 200, response.text
        assert response.json() == {"committed": True, "changed": True}
        assert await stored(http, w) != before


# -- /sync ------------------------------------------------------------------------------------


async def _joined(url: str) -> ClientConnection:
    ws = await connect(url, max_size=None)
    await ws.send(encode_sync_step1(b"\x00"))
    return ws


async def _echo(ws: ClientConnection, update: bytes) -> None:
    """Send ``update`` and wait for its echo (it is committed)."""
    await ws.send(encode_update(update))
    async with asyncio.timeout(30):
        while True:
            frame = await ws.recv()
            assert isinstance(frame, bytes)
            if frame[:2] == b"\x00\x02":
                message = decode_message(frame)
                if isinstance(message, SyncUpdate) and message.update == update:
                    return


@pytest.mark.parametrize("step2", [False, True], ids=["update", "step2"])
async def test_on_sync_one_over_the_limit_closes_with_1009_and_others_carry_on(
    server: ServerProcess, step2: bool
) -> None:
    w = new_wedding()
    token = MINT(sub="ann", role="couple", wedding=w)
    url = f"ws://127.0.0.1:{server.port}/sync/{w}/guests?token={token}"
    over = guests(LIMIT + 1)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        before = await stored(http, w)
        other = await _joined(url)
        ws = await _joined(url)
        await ws.send(encode_sync_step2(over) if step2 else encode_update(over))
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(30):
                while True:
                    await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        assert str(LIMIT) in closed.value.rcvd.reason
        assert await stored(http, w) == before
        # The other connection of the room is served, and takes one at the limit.
        await _echo(other, guests(LIMIT, client=74))
        await other.close()


# -- /collab ----------------------------------------------------------------------------------


def _auth(name: str, token: str) -> bytes:
    return write_var_string(name) + b"\x02\x00" + write_var_string(token) + write_var_string("4.8")


async def _receive_until(ws: ClientConnection, key: str, wanted: bytes) -> bytes:
    """The body of the first message for ``key`` starting with ``wanted``."""
    async with asyncio.timeout(30):
        while True:
            frame = await ws.recv()
            assert isinstance(frame, bytes)
            if frame == b"\x09":
                continue
            found, pos = read_var_string(frame, 0)
            if found == key and frame[pos:].startswith(wanted):
                return frame[pos:]


async def test_on_collab_one_over_the_limit_closes_that_document_alone(
    server: ServerProcess,
) -> None:
    w = new_wedding()
    token = MINT(sub="ann", role="couple", wedding=w)
    guests_doc, timeline = f"{w}/guests", f"{w}/timeline"
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        connect(f"ws://127.0.0.1:{server.port}/collab/{w}", max_size=None) as ws,
    ):
        before = await stored(http, w)
        for name in (guests_doc, timeline):
            await ws.send(_auth(name, token))
            await ws.send(write_var_string(name) + encode_sync_step1(b"\x00"))
            await _receive_until(ws, name, b"\x00\x01")  # the server's step 2
        await ws.send(write_var_string(guests_doc) + encode_update(guests(LIMIT + 1)))
        body = await _receive_until(ws, guests_doc, b"\x07")
        reason, _ = read_var_string(body, 1)
        assert reason.startswith("1009 ") and str(LIMIT) in reason
        assert await stored(http, w) == before
        # The socket goes on with its other document.
        await ws.send(write_var_string(timeline) + encode_update(guests(LIMIT, client=75)))
        assert await _receive_until(ws, timeline, b"\x08") == b"\x08\x01"
        # And the closed document is attached again by a fresh Auth.
        await ws.send(_auth(guests_doc, token))
        assert (await _receive_until(ws, guests_doc, b"\x02"))[:2] == b"\x02\x02"


# -- the default: 4x the largest honest message -----------------------------------------------

PRODUCERS = ("guestform", "runofshow50", "offlineday")


def _produced() -> dict[str, list[tuple[bytes, int, str]]]:
    """Each producer's updates, with the item count Yjs gives and the document each is for."""
    found: dict[str, list[tuple[bytes, int, str]]] = {}
    for scenario in PRODUCERS:
        out = node_json("producers.mjs", scenario)
        docs = out.get("docs") or [{"guestform": "guests", "runofshow50": "timeline"}[scenario]]
        found[scenario] = [
            (base64.b64decode(u), n, doc)
            for u, n, doc in zip(out["updates"], out["items"], docs, strict=True)
        ]
    return found


@pytest.mark.js
async def test_the_default_is_4x_the_largest_honest_message_and_each_is_taken(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    produced = _produced()
    counts = {name: [n for _, n, _ in updates] for name, updates in produced.items()}
    for updates in produced.values():
        for update, n, _ in updates:
            assert inspect_update(update).items == n  # Yjs and the server count alike
    largest = max(n for ns in counts.values() for n in ns)
    assert Settings().max_update_items == 4 * largest, counts
    # Each is accepted by a server with the default limit.
    env = {**MINT.env}
    proc = ServerProcess(tmp_path_factory.mktemp("producers") / "data", env=env)
    proc.anonymous = False
    async with proc, httpx.AsyncClient(base_url=proc.url, timeout=60) as http:
        w = new_wedding()
        headers = {**bearer(w), "Content-Type": "application/octet-stream"}
        for name, updates in produced.items():
            for update, _, doc in updates:
                path = f"/api/weddings/{w}/docs/{doc}/update"
                response = await http.post(path, content=update, headers=headers)
                assert response.status_code == 200, (name, doc, response.text)
                assert response.json()["changed"] is True, (name, doc)
    print(json.dumps({"items": counts, "default": Settings().max_update_items}))
