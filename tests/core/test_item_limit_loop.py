"""What the largest accepted update and the smallest refused one cost every other wedding
(issue 73, point 1): a real server with the default ``CRDT_SERVER_MAX_UPDATE_ITEMS``, one
wedding sent each over HTTP and over ``/sync``, while a thread polls ``/healthz`` (what
every other wedding's requests wait behind) every 10 ms. A refusal must not hold the loop
(p99 under 100 ms); what the accepted one costs is printed (``-s``) and recorded in
``docs/performance/``.
"""

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

from crdt_server.codec.items import read_items
from crdt_server.codec.protocol import SyncUpdate, decode_message, encode_sync_step1, encode_update
from crdt_server.codec.updates import decode_state_vector, inspect_update
from crdt_server.settings import Settings
from crdt_server.testing.tokens import TokenMinter, new_secret
from tests.core.test_sliced_updates import covers
from tests.healthz import measured, polling
from tests.server import ServerProcess

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

MINT = TokenMinter(new_secret())
LIMIT = Settings().max_update_items
REFUSED_P99 = 0.1
"""The bound a refusal must keep another wedding's /healthz p99 under (seconds)."""
ACCEPTED_P99 = 2.0
"""The bound the largest accepted message keeps it under here (seconds; the goal, 0.1 s on a
quiet machine, is measured and recorded: a message applied whole took 6 to 10 s)."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("loop") / "data", env={**MINT.env})
    proc.anonymous = False
    async with proc:
        yield proc


def tiny_guests(items: int, *, client: int) -> bytes:
    """One transaction of ``items`` structs: tiny guest entries (a Y.Map of one field
    each, two structs a guest) as issue 73's planner sent them."""
    doc: Doc[Any] = Doc(client_id=client)
    root = doc.get("guests", type=Map)
    with doc.transaction():
        for i in range(items // 2):
            root[f"g{i:06x}"] = Map({"name": "x"})
        if items % 2:
            root["odd"] = "x"
    update = doc.get_update()
    assert inspect_update(update).items == items
    return update


def bearer(wedding: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {MINT(sub='ann', role='couple', wedding=wedding)}"}


async def state_of(http: httpx.AsyncClient, wedding: str) -> bytes:
    response = await http.get(f"/api/weddings/{wedding}/docs/guests", headers=bearer(wedding))
    assert response.status_code == 200
    return base64.b64decode(response.headers["Yjs-State-Vector"])


async def _joined(server: ServerProcess, wedding: str) -> ClientConnection:
    token = MINT(sub="ann", role="couple", wedding=wedding)
    ws = await connect(
        f"ws://127.0.0.1:{server.port}/sync/{wedding}/guests?token={token}", max_size=None
    )
    await ws.send(encode_sync_step1(b"\x00"))
    return ws


async def test_a_refusal_holds_no_loop_and_the_largest_accepted_update_is_measured(
    server: ServerProcess,
) -> None:
    accepted = tiny_guests(LIMIT, client=731)
    refused = tiny_guests(LIMIT + 1, client=732)
    accepted_ws = tiny_guests(LIMIT, client=733)
    results: list[dict[str, Any]] = []
    with polling(server.url) as poller:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
            w = f"w{uuid.uuid4().hex[:10]}"
            before = await state_of(http, w)
            binary = {**bearer(w), "Content-Type": "application/octet-stream"}
            path = f"/api/weddings/{w}/docs/guests/update"

            async def http_refused() -> None:
                response = await http.post(path, content=refused, headers=binary)
                assert response.status_code == 413, response.text
                assert [e["field"] for e in response.json()["errors"]] == ["body"]

            async def ws_refused() -> None:
                ws = await _joined(server, w)
                await ws.send(encode_update(refused))
                with pytest.raises(ConnectionClosed) as closed:
                    async with asyncio.timeout(60):
                        while True:
                            await ws.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009

            results.append(await measured(poller, "http refused", http_refused))
            results.append(await measured(poller, "sync refused", ws_refused))
            assert await state_of(http, w) == before  # nothing changed

            async def http_accepted() -> None:
                response = await http.post(path, content=accepted, headers=binary)
                assert response.status_code == 200, response.text

            async def ws_accepted() -> None:
                ws = await _joined(server, w)
                await ws.send(encode_update(accepted_ws))
                # Echoed in slices (CRDT_SERVER_UPDATE_SLICE_STRUCTS): done once they hold it all.
                end = inspect_update(accepted_ws).structs[733][1]
                echoed: Doc[Any] = Doc()
                async with asyncio.timeout(120):
                    while decode_state_vector(echoed.get_state()).get(733, 0) < end:
                        frame = await ws.recv()
                        assert isinstance(frame, bytes)
                        if frame[:2] != b"\x00\x02":
                            continue
                        message = decode_message(frame)
                        if isinstance(message, SyncUpdate):
                            echoed.apply_update(message.update)
                await ws.close()

            # Measured and recorded (docs/performance/); bounded here far above the goal
            # (another wedding's /healthz p99 under 100 ms on a quiet machine) so that a
            # loaded test machine passes while a message holding the loop whole does not.
            for what, run in (("http accepted", http_accepted), ("sync accepted", ws_accepted)):
                results.append(await measured(poller, what, run, record=True))
    print(json.dumps({"server_alive_after": server.alive}))
    assert server.alive  # the watchdog never fired
    for figures in results:
        bound = REFUSED_P99 if "refused" in figures["what"] else ACCEPTED_P99
        assert figures["healthz_p99_ms"] < 1000 * bound, figures


GUESTS = 20_000
DELETION_P99 = 1.0
"""The bound a client's deletion of every guest keeps another wedding's /healthz p99 under
here (seconds; the goal, 0.1 s on a quiet machine, is measured and recorded: applied whole,
such a deletion held the loop about 0.76 s on a quiet machine)."""


@pytest.mark.parametrize("transport", ["http", "sync"])
async def test_a_clients_deletion_of_20000_guests_is_applied_in_parts(
    server: ServerProcess, transport: str
) -> None:
    """A client's one message removing 20,000 guests (a delete set of one range: few
    items for the item limit, 40,000 entries and fields for the room) over HTTP or over
    ``/sync``: taken in by parts, each committed and echoed before the next, the echoes
    together its whole range, while another wedding's /healthz is measured."""
    client = 741 if transport == "http" else 742
    w = f"w{uuid.uuid4().hex[:10]}"
    added = tiny_guests(2 * GUESTS, client=client)
    doc: Doc[Any] = Doc(client_id=client + 100)
    doc.apply_update(added)
    state = doc.get_state()
    guests = doc.get("guests", type=Map)
    with doc.transaction():
        for key in list(guests.keys()):
            del guests[key]
    change = doc.get_update(state)
    [(start, length)] = read_items(change).deletes[client]
    binary = {**bearer(w), "Content-Type": "application/octet-stream"}
    path = f"/api/weddings/{w}/docs/guests/update"
    echoed: list[list[tuple[int, int]]] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
        response = await http.post(path, content=added, headers=binary)
        assert response.status_code == 200, response.text
        token = MINT(sub="ann", role="couple", wedding=w)
        url = f"ws://127.0.0.1:{server.port}/sync/{w}/guests?token={token}"
        async with connect(url, max_size=None) as ws:
            await ws.send(encode_sync_step1(state))

            async def delete() -> None:
                if transport == "http":
                    answer = await http.post(path, content=change, headers=binary)
                    assert answer.status_code == 200, answer.text
                else:
                    await ws.send(encode_update(change))
                async with asyncio.timeout(120):
                    while not covers([r for e in echoed for r in e], start, start + length):
                        frame = await ws.recv()
                        assert isinstance(frame, bytes)
                        if frame[:2] == b"\x00\x02":
                            message = decode_message(frame)
                            assert isinstance(message, SyncUpdate)
                            echoed.append(read_items(message.update).deletes.get(client, []))

            with polling(server.url) as poller:
                what = f"{transport}: a client's deletion of {GUESTS} guests"
                figures = await measured(poller, what, delete)
        view = await http.get(f"/api/weddings/{w}/docs/guests", headers=bearer(w))
        assert view.json()["guests"] == {}
    print(json.dumps({"server_alive_after": server.alive, "echoes": len(echoed)}))
    assert server.alive  # the watchdog never fired
    assert len(echoed) > 1  # in parts
    assert figures["healthz_p99_ms"] < 1000 * DELETION_P99, figures
