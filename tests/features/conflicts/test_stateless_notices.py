"""The server's own stateless messages on ``/collab``, byte by byte on a real server: a new
finding and a lost write reach the document's Hocuspocus providers once committed, stamped
as the server, cut to each role's field rules (a vendor's notice about a guest's contact
carries no value); y-websocket clients on ``/sync`` get nothing new."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pycrdt import Doc, Map
from websockets.asyncio.client import ClientConnection, connect

from crdt_server.codec.protocol import encode_sync_step1, read_var_string, write_var_string
from crdt_server.documents import apply_operation
from crdt_server.testing.tokens import TokenMinter, new_secret
from tests.server import FAMILY_WRITES, ServerProcess
from tests.yclient import YClient

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

MINT = TokenMinter(new_secret())
HI, LO = 900_001, 5_001
FROM_SERVER = {"sub": "server", "name": "crdt-server"}


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    env = {**MINT.env, **FAMILY_WRITES}
    async with ServerProcess(tmp_path / "data", env=env, anonymous=False) as process:
        yield process


def _framed(name: str, body: bytes) -> bytes:
    return write_var_string(name) + body


async def attach(server: ServerProcess, wedding: str, doc: str, role: str) -> ClientConnection:
    """A socket on ``/collab/{wedding}`` with ``doc`` attached as ``role``, synced."""
    ws = await connect(f"ws://127.0.0.1:{server.port}/collab/{wedding}")
    name = f"{wedding}/{doc}"
    token = MINT(sub=f"{role}-1", role=role, wedding=wedding, ttl=3600)
    await ws.send(_framed(name, b"\x02\x00" + write_var_string(token) + write_var_string("4")))
    await ws.send(_framed(name, encode_sync_step1(b"\x00")))
    while True:
        _, body = await receive(ws)
        if body.startswith(b"\x00\x01"):  # the answer to our step 1: synced
            return ws


async def receive(ws: ClientConnection, timeout: float = 10.0) -> tuple[str, bytes]:
    async with asyncio.timeout(timeout):
        while True:
            frame = await ws.recv()
            assert isinstance(frame, bytes)
            if frame != b"\x09":
                key, pos = read_var_string(frame, 0)
                return key, frame[pos:]


async def stateless(ws: ClientConnection, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    """The next stateless message (type 5) whose payload's ``type`` is ``kind``."""
    deadline = time.monotonic() + timeout
    while True:
        _, body = await receive(ws, max(0.1, deadline - time.monotonic()))
        if body[:1] == b"\x05":
            text, _ = read_var_string(body, 1)
            message: dict[str, Any] = json.loads(text)
            if message["payload"].get("type") == kind:
                return message


async def op(http: httpx.AsyncClient, wedding: str, doc: str, body: dict[str, Any]) -> None:
    answer = await http.post(
        f"/api/weddings/{wedding}/docs/{doc}/ops",
        json=body,
        headers=MINT.headers("couple", "cam", wedding=wedding),
    )
    assert answer.status_code == 200, answer.text


async def race(
    http: httpx.AsyncClient, wedding: str, doc: str, edits: list[tuple[int, str, Any]]
) -> None:
    """Each edit made on its own replica of ``doc`` as it is now (client id, who, change),
    then sent over HTTP: none saw the others."""
    base = (
        await http.get(
            f"/api/weddings/{wedding}/docs/{doc}",
            headers={**MINT.headers(wedding=wedding), "Accept": "application/octet-stream"},
        )
    ).content
    for client, who, change in edits:
        replica: Doc[Any] = Doc(client_id=client)
        replica.apply_update(base)
        before = replica.get_state()
        change(replica)
        sent = await http.post(
            f"/api/weddings/{wedding}/docs/{doc}/update",
            content=replica.get_update(before),
            headers=MINT.headers(who, f"{who}-1", wedding=wedding),
        )
        assert sent.status_code == 200, sent.text


async def test_a_lost_write_is_told_to_each_reader_without_the_fields_it_may_not_read(
    server: ServerProcess,
) -> None:
    wedding = f"w{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        await op(http, wedding, "guests", {"op": "add_guest", "guest_id": "g1", "name": "Ada"})
        planner = await attach(server, wedding, "guests", "planner")
        vendor = await attach(server, wedding, "guests", "vendor")
        stock = YClient(server.ws_url, f"{wedding}/guests", token=MINT(wedding=wedding))
        async with stock:
            await stock.wait(stock.synced.is_set)

            def contact(value: str) -> Any:
                return lambda doc: doc.get("guests", type=Map)["g1"].__setitem__("contact", value)

            await race(
                http,
                wedding,
                "guests",
                [(HI, "planner", contact("+44 7700 900001")), (LO, "couple", contact("+44 1"))],
            )
            told = await stateless(planner, "lost-write")
            assert told["from"] == FROM_SERVER
            notice = told["payload"]
            assert notice["doc"] == "guests" and notice["path"] == ["guests", "g1", "contact"]
            assert notice["field"] == "contact" and notice["id"].startswith("cw:")
            assert notice["lost"]["value"] == "+44 1"
            assert notice["kept"]["value"] == "+44 7700 900001"
            assert notice["lost"]["actor"] == {"sub": "couple-1", "role": "couple"}
            # The vendor reads the guest list without contacts: the same notice, no values.
            hidden = (await stateless(vendor, "lost-write"))["payload"]
            assert (
                hidden["id"] == notice["id"] and hidden["lost"]["actor"] == notice["lost"]["actor"]
            )
            assert "value" not in hidden["lost"] and "value" not in hidden["kept"]
            assert "7700" not in json.dumps(hidden) and "+44 1" not in json.dumps(hidden)
            # The /sync client (y-websocket has no stateless message; the test client fails
            # on a message type it does not know) got the values, and nothing else.
            await stock.wait(lambda: _contact(stock) == "+44 7700 900001")
            assert not stock.closed.is_set()
        for ws in (planner, vendor):
            await ws.close()


def _contact(client: YClient) -> object:
    guest = client.doc.get("guests", type=Map).get("g1")
    return guest.get("contact") if isinstance(guest, Map) else None


async def test_a_new_finding_is_told_to_the_documents_providers(server: ServerProcess) -> None:
    wedding = f"w{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        table = {"op": "add_table", "table_id": "t1", "name": "Rose", "capacity": 4}
        await op(http, wedding, "seating", table)
        for guest in ("g1", "g2"):
            await op(http, wedding, "guests", {"op": "add_guest", "guest_id": guest, "name": guest})
        seating = await attach(server, wedding, "seating", "vendor")

        def seat(guest: str) -> Any:
            body = {"op": "assign_seat", "guest_id": guest, "table_id": "t1", "seat": 1}
            return lambda doc: apply_operation(doc, "seating", body)

        await race(
            http, wedding, "seating", [(HI, "family", seat("g1")), (LO, "couple", seat("g2"))]
        )
        told = await stateless(seating, "finding")
        assert told["from"] == FROM_SERVER
        finding = told["payload"]
        assert finding["code"] == "seating.seat_double_booked"
        assert finding["paths"] and all(p.startswith("seating/") for p in finding["paths"])
        # The same id as the conflicts API's.
        listed = await http.get(
            f"/api/weddings/{wedding}/conflicts", headers=MINT.headers(wedding=wedding)
        )
        assert finding["id"] in {c["id"] for c in listed.json()["conflicts"]}
        await seating.close()
