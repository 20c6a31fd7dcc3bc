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
from pycrdt import Doc, Map, Text
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
from crdt_server.core.client_ids import (
    CLIENT_OWNERS_SCHEMA,
    SERVER,
    ClientIds,
    differing,
    owner_of,
)
from crdt_server.core.crdt import RoomDocument
from crdt_server.core.payloads import Sender
from crdt_server.errors import ClientIdTaken
from crdt_server.storage import NewUpdate, SqliteStore
from crdt_server.storage.gateway import Gateway
from crdt_server.testing.tokens import TokenMinter, new_secret
from tests.core.test_shapes import node_json
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
        update = edit(doc, "g", "x")
        summary = inspect_update(update)
        loser = "pat" if got[0][5] == "ann" else "ann"
        with pytest.raises(ClientIdTaken):
            await two.own("w1", summary, RoomDocument(), loser, update)
        # What a document already holds claims nothing: its own ids are none.
        assert await two.own("w1", summary, holding(update), loser, update) == ()
        server = owner_of(Sender(Actor("server", "server"), "server:projection"))
        other = edit(Doc(client_id=6), "g", "y")
        assert await two.own("w1", inspect_update(other), RoomDocument(), server, other)
        assert two.known("w1", 6) == SERVER
    finally:
        await store.close()


async def test_many_new_ids_at_once_are_claimed_in_a_few_statements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers new to a process come at once (its clients after a restart, a wave of new
    devices): their claims share transactions of a few statements, each decided as one
    claim alone would be (one id asked by two people in one batch goes to the first; an
    ask that meets someone else's id claims none of its ids), instead of one gateway
    transaction each (10,000 at once were 200 shared transactions' worth of the store's
    one write queue) or three statements per id (a transaction on the writer thread waits
    for the interpreter after each: 67,469 of them took 6.5 s)."""
    store = SqliteStore(tmp_path / "s.sqlite3")
    await store.open()
    try:
        ids = ClientIds(store)
        await ids.start()
        await ids.claim("w0", [1], "ann")
        transactions = statements = 0
        run = Gateway.run

        def counted_statements(tx: Any) -> Any:
            nonlocal statements
            reply: Any = None
            while True:
                try:
                    step = tx.send(reply)
                except StopIteration as done:
                    return done.value
                statements += 1
                reply = yield step

        async def counted(self: Gateway, tx: Any) -> Any:
            nonlocal transactions
            transactions += 1
            return await run(self, counted_statements(tx))

        monkeypatch.setattr(Gateway, "run", counted)
        fresh = ClientIds(store)  # another process: it knows nobody yet
        await fresh.start()
        asks = [fresh.claim(f"w{n % 7}", [1000 + n], f"p{n}") for n in range(1000)]
        asks += [fresh.claim("w0", [1], "pat"), fresh.claim("w3", [2000], "kim")]
        asks += [fresh.claim("w3", [2000], "lee"), fresh.claim("w3", [2001, 2000], "lee")]
        asks += [fresh.claim("w4", [3000, 3001], "max"), fresh.claim("w4", [3001], "max")]
        got = await asyncio.gather(*asks)
        assert transactions <= 3
        assert statements <= 3 * 8  # a batch: 3 reads and inserts of 400 ids each at most
        assert all(got[n] == {1000 + n: f"p{n}"} for n in range(1000))
        assert got[1000] == {1: "ann"}  # owned before: told, not claimed
        assert got[1001] == got[1002] == {2000: "kim"}  # two asks in one batch: the first's
        assert got[1003] == {2000: "kim"}  # one id someone else's: none claimed
        assert got[1004] == {3000: "max", 3001: "max"} and got[1005] == {3001: "max"}
        rows = await Gateway.of(store).fetch(
            "SELECT wedding, client_id, sub FROM {t}yjs_client_owners WHERE client_id >= 2000"
        )
        assert sorted(rows) == [("w3", 2000, "kim"), ("w4", 3000, "max"), ("w4", 3001, "max")]
        rows = await Gateway.of(store).fetch("SELECT count(*) FROM {t}yjs_client_owners")
        assert rows[0][0] == 1004
    finally:
        await store.close()


def holding(*updates: bytes) -> RoomDocument:
    """A room's document that holds ``updates``."""
    replica = RoomDocument()
    for update in updates:
        replica.doc.apply_update(update)
    return replica


async def test_what_a_replica_holds_is_told_from_other_content_at_the_same_clocks() -> None:
    """:func:`differing` compares items as Yjs makes them, clock by clock: the same items
    split otherwise are the same, another writer's item at that clock is not, and content
    the update itself deleted is never lost."""
    base: Doc[Any] = Doc(client_id=1)
    base.get("notes", type=Text).insert(0, "hello world")
    first = base.get_update()
    base.get("notes", type=Text).insert(5, ",")  # splits the run on the replica's side
    replica = holding(base.get_update())
    spans = {1: (0, 11)}
    assert differing(first, spans, replica) == []
    other: Doc[Any] = Doc(client_id=1)
    other.get("notes", type=Text).insert(0, "jello world")
    assert differing(other.get_update(), spans, replica) == [1]
    # The same clocks, deleted by the update itself: nothing of it can be lost.
    before = other.get_state()
    del other.get("notes", type=Text)[0:11]
    assert differing(other.get_update(), spans, replica) == []
    assert other.get_update(before)  # (the deletion is its own update too)
    # Map values, as a guest form writes them, compared value by value.
    guests: Doc[Any] = Doc(client_id=2)
    guests.get("guests", type=Map)["g"] = {"name": "Ann"}
    squat: Doc[Any] = Doc(client_id=2)
    squat.get("guests", type=Map)["g"] = {"name": "Pat"}
    held = holding(guests.get_update())
    assert differing(guests.get_update(), {2: (0, 1)}, held) == []
    assert differing(squat.get_update(), {2: (0, 1)}, held) == [2]
    # A retry of a value overwritten since: the replica keeps only its length (collected),
    # nothing to compare, a no-op as before.
    retried = guests.get_update()
    guests.get("guests", type=Map)["g"] = {"name": "Ann Lee"}
    assert differing(retried, {2: (0, 1)}, holding(guests.get_update())) == []


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


async def test_a_write_the_store_holds_under_a_taken_id_is_refused_on_every_path(
    server: ServerProcess,
) -> None:
    """The couple's offline tab took a fresh id; the planner, who saw it (awareness), wrote
    under it first and owns it. The couple's offline edits sit at clocks the document
    already holds: not a duplicate (their content differs), so refused as a squat, never
    answered ``changed: false``. A relay of what the store holds stays a no-op."""
    w = new_wedding()
    fresh = 7002
    url = f"/api/weddings/{w}/docs/guests"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        couple: Doc[Any] = Doc(client_id=COUPLE_ID)
        response = await http.post(
            f"{url}/update", content=edit(couple, "g-1", "Ann"), headers=headers(w, "ann", "couple")
        )
        assert response.status_code == 200, response.text
        offline: Doc[Any] = Doc(client_id=fresh)
        offline.apply_update(couple.get_update())
        mine = edit(offline, "g-2", "Bo (offline)")
        squatter: Doc[Any] = Doc(client_id=fresh)
        squatter.apply_update(couple.get_update())
        squat = edit(squatter, "g-3", "Squatter")
        response = await http.post(
            f"{url}/update", content=squat, headers=headers(w, "pat", "planner")
        )
        assert response.json() == {"committed": True, "changed": True}
        held = await state(http, w)
        assert inspect_update(mine).structs[fresh][1] <= held[fresh]  # all of it "known"

        def refused(response: httpx.Response) -> None:
            assert response.status_code == 422, response.text
            problem = response.json()
            assert problem["errors"] == [{"field": "client_id", "message": str(fresh)}]
            assert problem["detail"].startswith("client_id_taken")

        refused(await http.post(f"{url}/update", content=mine, headers=headers(w, "ann", "couple")))
        body = {"state_vector": "", "update": base64.b64encode(mine).decode()}
        couple_json = headers(w, "ann", "couple", binary=False)
        refused(await http.post(f"{url}/sync", json=body, headers=couple_json))
        # The owner's own re-send, and anyone's relay of what the store holds, change nothing.
        for sub, role in (("pat", "planner"), ("ann", "couple")):
            response = await http.post(
                f"{url}/update", content=squat, headers=headers(w, sub, role)
            )
            assert response.json() == {"committed": True, "changed": False}
        base = f"ws://127.0.0.1:{server.port}/sync/{w}/guests?token="
        async with connect(base + MINT(sub="ann", role="couple", wedding=w)) as ws:
            await ws.send(encode_sync_step1(b"\x00"))
            await ws.send(encode_update(mine))
            assert await _refused_on(ws) == 4409
        token = MINT(sub="ann", role="couple", wedding=w)
        name = f"{w}/guests"
        async with connect(f"ws://127.0.0.1:{server.port}/collab/{w}") as ws:
            auth = write_var_string(token) + write_var_string("4.8")
            await ws.send(write_var_string(name) + b"\x02\x00" + auth)
            await ws.send(write_var_string(name) + encode_update(mine))
            async with asyncio.timeout(30):
                while True:
                    frame = await ws.recv()
                    assert isinstance(frame, bytes)
                    found, pos = read_var_string(frame, 0)
                    if found == name and frame[pos:].startswith(b"\x07"):
                        reason, _ = read_var_string(frame, pos + 1)
                        break
            assert reason.startswith("4409"), reason
        assert await state(http, w) == held
        assert "g-2" not in await names(http, w)


@pytest.mark.js
async def test_a_stock_yjs_client_forced_onto_a_taken_id_recovers_with_no_lost_edit(
    server: ServerProcess,
) -> None:
    """Stock Yjs and y-websocket in Node (tests/js/collision.mjs), its client id forced
    onto one bob owns: its three offline edits sit at bob's three clocks (the state
    vectors look alike: sync sends none of them), its next edit is refused with 4409; it
    goes on in a new Y.Doc and re-applies its unsent edits, and every edit, bob's too, is
    on the server."""
    w = new_wedding()
    taken = 7003
    bob: Doc[Any] = Doc(client_id=taken)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for n in (1, 2, 3):
            response = await http.post(
                f"/api/weddings/{w}/docs/guests/update",
                content=edit(bob, f"g-bob-{n}", f"Bob {n}"),
                headers=headers(w, "bob", "couple"),
            )
            assert response.json() == {"committed": True, "changed": True}
        token = MINT(sub="ann", role="couple", wedding=w)
        found = await asyncio.to_thread(
            node_json,
            "collision.mjs",
            f"ws://127.0.0.1:{server.port}/sync",
            f"{w}/guests",
            token,
            str(taken),
        )
        assert found["closed"] == 4409
        assert found["firstClientID"] == taken and found["nextClientID"] != taken
        guests = await names(http, w)
    assert guests == {
        **{f"g-bob-{n}": f"Bob {n}" for n in (1, 2, 3)},
        "g-off-1": "Offline 1",
        "g-off-2": "Offline 2",
        "g-off-3": "Offline 3",
        "g-in-flight": "In flight",
        "g-late": "Written while recovering",
    }
