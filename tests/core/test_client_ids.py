"""Yjs client ids belong to their writer (crdt_server.core.client_ids): a writer who takes
another person's id (read from the state vector) at that person's next clock is refused
(422 over HTTP, 4409 on /sync, a CLOSE of that document on /collab), so the owner's own
edit under it is kept; the ids the server writes under are nobody else's; a relay of
content the document already holds claims nothing; an interrupted apply quarantines only
the sender's own ids; a store of the release before gets its owners from the update log."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pycrdt import Doc, Map
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from crdt_server.actor import Actor
from crdt_server.codec.protocol import (
    encode_sync_step1,
    encode_update,
    read_var_string,
    write_var_string,
)
from crdt_server.codec.updates import decode_state_vector, inspect_update
from crdt_server.core.client_ids import CLIENT_OWNERS_SCHEMA, SERVER, ClientIds, owner_of
from crdt_server.core.payloads import Sender
from crdt_server.errors import ClientIdTaken
from crdt_server.storage import NewUpdate, SqliteStore
from crdt_server.storage.gateway import Gateway
from crdt_server.testing.tokens import TokenMinter, new_secret
from tests.server import ServerProcess

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

MINT = TokenMinter(new_secret())
COUPLE_ID = 7001


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("clients") / "data", env=MINT.env)
    proc.anonymous = False
    async with proc:
        yield proc


def new_wedding() -> str:
    return f"w{uuid.uuid4().hex[:10]}"


def headers(wedding: str, sub: str, role: str, *, binary: bool = True) -> dict[str, str]:
    found = {"Authorization": f"Bearer {MINT(sub=sub, role=role, wedding=wedding)}"}
    if binary:
        found["Content-Type"] = "application/octet-stream"
    return found


def edit(doc: Doc[Any], key: str, value: str) -> bytes:
    """Set the guest ``key``'s name in ``doc``; the update that made it."""
    before = doc.get_state()
    doc.get("guests", type=Map)[key] = {"name": value}
    return doc.get_update(before)


async def state(http: httpx.AsyncClient, wedding: str) -> dict[int, int]:
    response = await http.get(
        f"/api/weddings/{wedding}/docs/guests", headers=headers(wedding, "ann", "couple")
    )
    assert response.status_code == 200, response.text
    return decode_state_vector(base64.b64decode(response.headers["Yjs-State-Vector"]))


async def names(http: httpx.AsyncClient, wedding: str) -> dict[str, str]:
    response = await http.get(
        f"/api/weddings/{wedding}/docs/guests", headers=headers(wedding, "ann", "couple")
    )
    guests = response.json()["guests"]
    return {key: value["name"] for key, value in guests.items()}


async def squatted(http: httpx.AsyncClient, wedding: str, couple: Doc[Any]) -> bytes:
    """The planner's update that claims the couple's id at the couple's next clock, as an
    attacker builds it from the state vector every reader sees."""
    clock = (await state(http, wedding))[COUPLE_ID]
    assert clock == decode_state_vector(couple.get_state())[COUPLE_ID]
    squatter: Doc[Any] = Doc(client_id=COUPLE_ID)
    squatter.apply_update(couple.get_update())
    return edit(squatter, "g-1", "Squatter")


async def test_over_http_a_squatted_id_is_refused_and_the_owners_edit_is_kept(
    server: ServerProcess,
) -> None:
    w = new_wedding()
    url = f"/api/weddings/{w}/docs/guests/update"
    couple: Doc[Any] = Doc(client_id=COUPLE_ID)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        response = await http.post(
            url, content=edit(couple, "g-1", "Ann"), headers=headers(w, "ann", "couple")
        )
        assert response.json() == {"committed": True, "changed": True}
        squat = await squatted(http, w, couple)
        before = await state(http, w)
        response = await http.post(url, content=squat, headers=headers(w, "pat", "planner"))
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["errors"] == [{"field": "client_id", "message": str(COUPLE_ID)}]
        assert problem["detail"].startswith("client_id_taken")
        assert await state(http, w) == before  # nothing of it was taken
        # The couple's own edit at that clock (in flight, or made offline) is new, kept.
        mine = edit(couple, "g-1", "Ann Lee")
        response = await http.post(url, content=mine, headers=headers(w, "ann", "couple"))
        assert response.json() == {"committed": True, "changed": True}
        assert (await names(http, w))["g-1"] == "Ann Lee"
        # The same person from a second device (another token, the same sub) owns it too.
        again = edit(couple, "g-2", "Bo")
        response = await http.post(url, content=again, headers=headers(w, "ann", "couple"))
        assert response.json() == {"committed": True, "changed": True}
        # A relay of content the document holds claims nothing: the planner re-sending the
        # couple's committed update changes nothing and is answered so.
        response = await http.post(url, content=mine, headers=headers(w, "pat", "planner"))
        assert response.json() == {"committed": True, "changed": False}


async def test_the_ids_the_server_writes_under_are_nobody_elses(server: ServerProcess) -> None:
    w = new_wedding()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        add = {"op": "add_guest", "guest_id": "g-9", "name": "By the server"}
        response = await http.post(
            f"/api/weddings/{w}/docs/guests/ops",
            json=add,
            headers=headers(w, "ann", "couple", binary=False),
        )
        assert response.status_code == 200, response.text
        (server_id, clock), *_ = (await state(http, w)).items()
        attacker: Doc[Any] = Doc(client_id=server_id)
        response = await http.post(
            f"/api/weddings/{w}/docs/guests/sync",
            json={"state_vector": "", "update": ""},
            headers=headers(w, "pat", "planner", binary=False),
        )
        assert response.status_code == 200, response.text
        attacker.apply_update(base64.b64decode(response.json()["update"]))
        squat = edit(attacker, "g-9", "Taken over")
        assert inspect_update(squat).structs[server_id][1] > clock
        response = await http.post(
            f"/api/weddings/{w}/docs/guests/update",
            content=squat,
            headers=headers(w, "pat", "planner"),
        )
        assert response.status_code == 422, response.text
        assert (await names(http, w))["g-9"] == "By the server"


async def _refused_on(ws: ClientConnection) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(30):
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def test_on_sync_a_squat_closes_with_4409_and_the_owner_carries_on(
    server: ServerProcess,
) -> None:
    w = new_wedding()
    couple: Doc[Any] = Doc(client_id=COUPLE_ID)
    base = f"ws://127.0.0.1:{server.port}/sync/{w}/guests?token="
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        response = await http.post(
            f"/api/weddings/{w}/docs/guests/update",
            content=edit(couple, "g-1", "Ann"),
            headers=headers(w, "ann", "couple"),
        )
        assert response.status_code == 200, response.text
        squat = await squatted(http, w, couple)
        async with (
            connect(base + MINT(sub="ann", role="couple", wedding=w)) as owner,
            connect(base + MINT(sub="pat", role="planner", wedding=w)) as planner,
        ):
            await planner.send(encode_sync_step1(b"\x00"))
            await planner.send(encode_update(squat))
            assert await _refused_on(planner) == 4409
            await owner.send(encode_sync_step1(b"\x00"))
            mine = edit(couple, "g-1", "Ann Lee")
            await owner.send(encode_update(mine))
            async with asyncio.timeout(30):  # its echo: committed
                while await owner.recv() != encode_update(mine):
                    pass
        assert (await names(http, w))["g-1"] == "Ann Lee"


async def test_on_collab_a_squat_closes_that_document_alone(server: ServerProcess) -> None:
    w = new_wedding()
    couple: Doc[Any] = Doc(client_id=COUPLE_ID)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        response = await http.post(
            f"/api/weddings/{w}/docs/guests/update",
            content=edit(couple, "g-1", "Ann"),
            headers=headers(w, "ann", "couple"),
        )
        assert response.status_code == 200, response.text
        squat = await squatted(http, w, couple)
    token = MINT(sub="pat", role="planner", wedding=w)
    guests, timeline = f"{w}/guests", f"{w}/timeline"
    async with connect(f"ws://127.0.0.1:{server.port}/collab/{w}") as ws:
        for name in (guests, timeline):
            auth = write_var_string(token) + write_var_string("4.8")
            await ws.send(write_var_string(name) + b"\x02\x00" + auth)
            await ws.send(write_var_string(name) + encode_sync_step1(b"\x00"))
        await ws.send(write_var_string(guests) + encode_update(squat))
        async with asyncio.timeout(30):
            while True:
                frame = await ws.recv()
                assert isinstance(frame, bytes)
                found, pos = read_var_string(frame, 0)
                if found == guests and frame[pos:].startswith(b"\x07"):
                    reason, _ = read_var_string(frame, pos + 1)
                    break
        assert reason.startswith("4409"), reason
        # The socket's other document is still served.
        await ws.send(write_var_string(timeline) + encode_sync_step1(b"\x00"))
        async with asyncio.timeout(30):
            while True:
                frame = await ws.recv()
                assert isinstance(frame, bytes)
                found, pos = read_var_string(frame, 0)
                if found == timeline and frame[pos:].startswith(b"\x00\x01"):
                    break


async def test_the_first_claim_is_decided_in_the_store(tmp_path: Path) -> None:
    """Two processes (two ``ClientIds`` on one store) that see one new id at once: one
    is granted it, the other is told who owns it."""
    store = SqliteStore(tmp_path / "s.sqlite3")
    await store.open()
    try:
        one, two = ClientIds(store), ClientIds(store)
        await one.start()
        await two.start()
        got = await asyncio.gather(one.claim("w1", [5], "ann"), two.claim("w1", [5], "pat"))
        assert got[0] == got[1] and got[0][5] in ("ann", "pat")
        doc: Doc[Any] = Doc(client_id=5)
        summary = inspect_update(edit(doc, "g", "x"))
        loser = "pat" if got[0][5] == "ann" else "ann"
        with pytest.raises(ClientIdTaken):
            await two.own("w1", summary, {}, loser)
        # What a document already holds claims nothing: its own ids are none.
        assert await two.own("w1", summary, {5: 1}, loser) == ()
        server = owner_of(Sender(Actor("server", "server"), "server:projection"))
        assert await two.own("w1", inspect_update(edit(Doc(client_id=6), "g", "y")), {}, server)
        assert two.known("w1", 6) == SERVER
    finally:
        await store.close()


async def test_a_store_of_the_release_before_gets_its_owners_from_the_log(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "old.sqlite3")
    await store.open()
    try:

        def logged(doc: str, client: int, origin: str, sub: str) -> NewUpdate:
            update = edit(Doc(client_id=client), uuid.uuid4().hex, "x")
            return NewUpdate(doc, update, origin, sub=sub, role="couple", client_id=client)

        updates = [
            logged("w1/guests", 11, "c1", "ann"),
            logged("w1/guests", 11, "c2", "pat"),  # a later sender: not the owner
            logged("w1/timeline", 12, "server", "ann"),  # the server's own edit
            logged("w2/guests", 11, "c3", "bo"),  # another wedding: another owner
        ]
        await store.append(updates)
        await store.install(CLIENT_OWNERS_SCHEMA)
        rows = await Gateway.of(store).fetch(
            "SELECT wedding, client_id, sub FROM {t}yjs_client_owners ORDER BY 1, 2"
        )
        assert [tuple(r) for r in rows] == [("w1", 11, "ann"), ("w1", 12, ""), ("w2", 11, "bo")]
    finally:
        await store.close()
