"""Tiptap's own provider, the real ``@hocuspocus/provider`` 4.8.0 under Node, against the
server's Hocuspocus path (``/collab``, ``/collab/{wedding_id}``)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from crdt_server.testing.tokens import TokenMinter, new_secret
from tests.hocusclient import HocusClient
from tests.jsclient import JsClient, map_set
from tests.server import ServerProcess

pytestmark = [pytest.mark.js, pytest.mark.asyncio(loop_scope="module")]

MINT = TokenMinter(new_secret())


def settings() -> dict[str, str]:
    return {**MINT.env, "CRDT_SERVER_MAX_DOCUMENTS_PER_SOCKET": "3"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("hocus") / "data", env=settings())
    proc.anonymous = False
    async with proc:
        yield proc


@pytest_asyncio.fixture(loop_scope="module")
async def own_server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data", env=settings())
    proc.anonymous = False
    async with proc:
        yield proc


def collab(server: ServerProcess, wedding: str | None = None) -> str:
    base = f"ws://127.0.0.1:{server.port}/collab"
    return base if wedding is None else f"{base}/{wedding}"


def new_wedding() -> str:
    return f"w{uuid.uuid4().hex[:10]}"


async def test_two_documents_on_one_socket_sync_and_are_acknowledged(
    server: ServerProcess,
) -> None:
    w = new_wedding()
    token = MINT(sub="ann", role="couple", wedding=w, name="Ann")
    async with await HocusClient.start(collab(server, w)) as a:
        async with await HocusClient.start(collab(server, w)) as b:
            for client in (a, b):
                await client.attach("t", f"{w}/timeline", token)
                await client.attach("g", f"{w}/guests", token)
            for client in (a, b):
                for doc in ("t", "g"):
                    info = await client.wait(doc, "synced")
                    assert info["authenticated"] and info["scope"] == "read-write"
            await a.call("set", doc="t", key="ceremony", value="14:00")
            await a.call("set", doc="g", key="g1", value={"name": "Ada"})
            await b.wait("t", "value", key="ceremony", value="14:00")
            await b.wait("g", "value", key="g1", value={"name": "Ada"})
            # SyncStatus 1 once committed: the provider has nothing unsynced.
            info = await a.wait("t", "saved")
            assert info["unsynced"] == 0
            await a.wait("g", "saved")
            socket = await a.call("socketInfo")
            assert socket["opens"] == 1 and socket["closes"] == []


async def test_refused_token_and_a_denied_document_leave_the_others_syncing(
    server: ServerProcess,
) -> None:
    w = new_wedding()
    couple = MINT(sub="ann", role="couple", wedding=w)
    vendor = MINT(sub="vic", role="vendor", wedding=w)
    async with await HocusClient.start(collab(server, w)) as a:
        await a.attach("t", f"{w}/timeline", couple)
        await a.attach("bad", f"{w}/guests", "not-a-token")
        await a.attach("budget", f"{w}/budget", vendor)  # a vendor may not open the budget
        await a.wait("t", "synced")
        bad = await a.wait("bad", "failed")
        assert [e["type"] for e in bad["events"]] == ["authenticationFailed"]
        assert "token" in bad["events"][0]["reason"]
        budget = await a.wait("budget", "failed")
        assert budget["events"][0]["reason"]
        # The refused documents' messages are dropped; the socket and the third document
        # go on.
        await a.call("set", doc="bad", key="x", value=1)
        await a.call("set", doc="t", key="after", value=True)
        await a.wait("t", "saved")
        async with await HocusClient.start(collab(server, w)) as b:
            await b.attach("g", f"{w}/guests", couple)
            await b.attach("t", f"{w}/timeline", couple)
            await b.wait("t", "value", key="after", value=True)
            assert "x" not in (await b.wait("g", "synced"))["map"]
        assert (await a.call("socketInfo"))["closes"] == []


async def test_a_document_of_another_wedding_and_past_the_cap_are_refused(
    server: ServerProcess,
) -> None:
    w, other = new_wedding(), new_wedding()
    token = MINT(sub="ann", role="couple", wedding=[w, other])
    async with await HocusClient.start(collab(server, w)) as a:
        await a.attach("other", f"{other}/timeline", token)
        info = await a.wait("other", "failed")
        assert other not in info["events"][0]["reason"] and w in info["events"][0]["reason"]
        for doc in ("timeline", "guests", "seating"):
            await a.attach(doc, f"{w}/{doc}", token)
            await a.wait(doc, "synced")
        await a.attach("budget", f"{w}/budget", token)  # the fourth: the cap is 3
        info = await a.wait("budget", "failed")
        assert "too many documents" in info["events"][0]["reason"]
    # Bare /collab: documents of any wedding on one socket.
    async with await HocusClient.start(collab(server)) as bare:
        await bare.attach("w", f"{w}/timeline", token)
        await bare.attach("o", f"{other}/timeline", token)
        await bare.call("set", doc="o", key="k", value="v")
        await bare.wait("w", "synced")
        await bare.wait("o", "saved")


async def test_a_detached_document_stops_and_frees_its_slot_while_the_others_sync(
    server: ServerProcess,
) -> None:
    """``provider.destroy()`` on a shared socket sends CLOSE for its document: the server
    ends that document's session (nothing more is sent under its name), gives its slot
    back (another document attaches up to the cap, the one after it is refused), and the
    other documents on the socket go on syncing."""
    w = new_wedding()
    token = MINT(sub="ann", role="couple", wedding=w)
    guests = f"{w}/guests"
    async with (
        await HocusClient.start(collab(server, w)) as a,
        await HocusClient.start(collab(server, w)) as b,
    ):
        for doc in ("timeline", "guests", "seating"):  # the cap is 3
            await a.attach(doc, f"{w}/{doc}", token)
            await a.wait(doc, "synced")
        await b.attach("t", f"{w}/timeline", token)
        await b.attach("g", guests, token)
        await b.call("set", doc="g", key="before", value=1)
        await a.wait("guests", "value", key="before", value=1)
        await a.call("detach", doc="guests")
        # Read after CLOSE on the same socket: its slot is free again, and only that one.
        await a.attach("budget", f"{w}/budget", token)
        info = await a.wait("budget", "synced")
        assert [e["type"] for e in info["events"]] == ["authenticated"]
        await a.attach("extra", f"{w}/vendors", token)
        info = await a.wait("extra", "failed")
        assert "too many documents" in info["events"][0]["reason"]
        heard = (await a.call("socketInfo"))["byName"].get(guests, 0)
        # Both documents change; the detached one's change is committed (b's SyncStatus 1)
        # before a's own round trip, so anything sent to a for it would come first.
        await b.call("set", doc="g", key="after", value=2)
        await b.wait("g", "saved")
        await b.call("set", doc="t", key="after", value=2)
        await a.wait("timeline", "value", key="after", value=2)
        await a.call("set", doc="timeline", key="from_a", value=3)
        await a.wait("timeline", "saved")
        await b.wait("t", "value", key="from_a", value=3)
        info = await a.info("guests")
        assert info["detached"] and info["map"] == {"before": 1}
        socket = await a.call("socketInfo")
        assert socket["byName"].get(guests, 0) == heard
        assert socket["opens"] == 1 and socket["closes"] == []


async def test_a_read_only_principal_syncs_and_its_writes_are_dropped_quietly(
    server: ServerProcess,
) -> None:
    w = new_wedding()
    couple = MINT(sub="ann", role="couple", wedding=w)
    vendor = MINT(sub="vic", role="vendor", wedding=w)
    async with await HocusClient.start(collab(server, w)) as a:
        async with await HocusClient.start(collab(server, w)) as v:
            await a.attach("t", f"{w}/timeline", couple)
            await v.attach("t", f"{w}/timeline", vendor)
            info = await v.wait("t", "synced")
            assert info["scope"] == "readonly"
            await a.call("set", doc="t", key="by_couple", value=1)
            await v.wait("t", "value", key="by_couple", value=1)
            await v.call("set", doc="t", key="by_vendor", value=2)
            await a.call("set", doc="t", key="later", value=3)
            await v.wait("t", "value", key="later", value=3)
            assert "by_vendor" not in (await a.info("t"))["map"]
            info = await v.info("t")
            # Never a permissionDenied (the provider would report a failed sign-in); the
            # dropped write stays unsynced (SyncStatus 0).
            assert [e["type"] for e in info["events"]] == ["authenticated"]
            assert info["unsynced"] >= 1


async def test_awareness_is_stamped_and_stateless_messages_are_relayed_by_writers_only(
    server: ServerProcess,
) -> None:
    w = new_wedding()
    ann = MINT(sub="ann", role="couple", wedding=w, name="Ann")
    bob = MINT(sub="bob", role="planner", wedding=w, name="Bob")
    vic = MINT(sub="vic", role="vendor", wedding=w, name="Vic")
    async with (
        await HocusClient.start(collab(server, w)) as a,
        await HocusClient.start(collab(server, w)) as b,
        await HocusClient.start(collab(server, w)) as v,
    ):
        await a.attach("t", f"{w}/timeline", ann, user={"name": "Mallory", "color": "red"})
        await b.attach("t", f"{w}/timeline", bob)
        await v.attach("t", f"{w}/timeline", vic)
        for c in (a, b, v):
            await c.wait("t", "synced")
        # Presence names who really sent it, whatever the client claimed.
        info = await b.wait(
            "t",
            "awareness",
            key="user",
            value={"name": "Ann", "color": "red", "id": "ann", "role": "couple"},
        )
        assert info["awareness"]
        await a.call("stateless", doc="t", payload=json.dumps({"kind": "ping", "n": 1}))
        info = await b.wait("t", "stateless")
        [event] = [e for e in info["events"] if e["type"] == "stateless"]
        assert json.loads(event["payload"]) == {
            "from": {"sub": "ann", "name": "Ann"},
            "payload": {"kind": "ping", "n": 1},
        }
        # A reader's payloads and what is not JSON are not relayed.
        await v.call("stateless", doc="t", payload=json.dumps({"kind": "vendor"}))
        await a.call("stateless", doc="t", payload="{not json")
        await a.call("stateless", doc="t", payload=json.dumps({"n": 2}))
        info = await b.wait("t", "stateless", count=2)
        payloads = [
            json.loads(e["payload"])["payload"] for e in info["events"] if e["type"] == "stateless"
        ]
        assert payloads == [{"kind": "ping", "n": 1}, {"n": 2}]
        # Never echoed to its sender.
        assert not [e for e in (await a.info("t"))["events"] if e["type"] == "stateless"]


async def test_session_awareness_routing_keys(server: ServerProcess) -> None:
    w = new_wedding()
    token = MINT(sub="ann", role="couple", wedding=w)
    async with await HocusClient.start(collab(server, w)) as a:
        await a.attach("one", f"{w}/timeline", token, session_awareness=True)
        await a.attach("two", f"{w}/timeline", token, session_awareness=True)
        await a.wait("one", "synced")
        await a.wait("two", "synced")
        await a.call("set", doc="one", key="k", value="from one")
        await a.wait("two", "value", key="k", value="from one")
        await a.wait("one", "saved")


async def test_a_token_is_renewed_in_band_before_it_expires(server: ServerProcess) -> None:
    w = new_wedding()
    short = MINT(sub="ann", role="couple", wedding=w, ttl=4)
    expires = time.time() + 4
    async with await HocusClient.start(collab(server, w)) as a:
        await a.attach("t", f"{w}/timeline", short)
        await a.attach("u", f"{w}/guests", MINT(sub="ann", role="couple", wedding=w, ttl=4))
        await a.wait("t", "synced")
        await a.wait("u", "synced")
        # The provider calls its token function again when the server asks: one document
        # gets a fresh token, the other a bad one.
        await a.call("token", doc="t", token=MINT(sub="ann", role="couple", wedding=w))
        await a.call("token", doc="u", token="expired-and-bad")
        info = await a.wait("u", "failed", timeout=20)
        assert [e["type"] for e in info["events"]] == ["authenticated", "authenticationFailed"]
        info = await a.wait("t", "events", type="authenticated", count=2, timeout=20)
        assert [e["type"] for e in info["events"]] == ["authenticated", "authenticated"]
        # Past the first token's expiry the renewed document still syncs.
        await asyncio.sleep(max(0.0, expires - time.time()) + 0.5)  # a wall-clock deadline
        await a.call("set", doc="t", key="after_expiry", value=True)
        await a.wait("t", "saved")
        info = await a.info("t")
        assert "authenticationFailed" not in [e["type"] for e in info["events"]]


async def test_nothing_acknowledged_is_lost_when_the_server_is_killed(
    own_server: ServerProcess,
) -> None:
    server = own_server
    w = new_wedding()
    token = MINT(sub="ann", role="couple", wedding=w)
    async with await HocusClient.start(collab(server, w)) as a:
        await a.attach("t", f"{w}/timeline", token)
        await a.attach("g", f"{w}/guests", token)
        await a.wait("t", "synced")
        for i in range(10):
            await a.call("set", doc="t" if i % 2 else "g", key=f"k{i}", value=i)
        await a.wait("t", "saved")
        await a.wait("g", "saved")
        await server.kill()
        await server.start()
        async with await HocusClient.start(collab(server, w)) as fresh:
            await fresh.attach("t", f"{w}/timeline", token)
            await fresh.attach("g", f"{w}/guests", token)
            for i in range(10):
                await fresh.wait("t" if i % 2 else "g", "value", key=f"k{i}", value=i)
            # The old socket reconnects by itself and resyncs both documents.
            await a.call("set", doc="g", key="after", value=1)
            await fresh.wait("g", "value", key="after", value=1)
        assert (await a.call("socketInfo"))["opens"] >= 2


async def test_beside_a_y_websocket_client(server: ServerProcess) -> None:
    w = new_wedding()
    token = MINT(sub="ann", role="couple", wedding=w)
    y = await JsClient.start(version=2)
    try:
        await y.connect(server.ws_url, f"{w}/timeline", params={"token": token})
        await y.wait_synced()
        async with await HocusClient.start(collab(server, w)) as a:
            await a.attach("t", f"{w}/timeline", token)
            await a.wait("t", "synced")
            await y.edit(map_set("m", "from_y", 1))
            await a.wait("t", "value", key="from_y", value=1)
            await a.call("set", doc="t", key="from_hocus", value=2)
            await y.wait_for({"m": {"from_y": 1, "from_hocus": 2}}, roots={"m": "map"})
            await a.call("stateless", doc="t", payload="{}")  # not sent to y-websocket
            await a.wait("t", "saved")
    finally:
        await y.close()


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_lone_idle_clients_stay_connected_for_70_seconds(server: ServerProcess) -> None:
    """Both providers reconnect a socket that received nothing for 30 s
    (``messageReconnectTimeout``), and the server never echoes a client's own awareness: a
    lone, idle editor must still hear from the server. A Hocuspocus provider on ``/collab``
    gets Pings; a stock y-websocket 3 client on ``/sync`` an empty awareness update after 15 s
    without a message. Both idle at once, in their own weddings, on one server (the 70 s are
    waited once for both)."""
    w, other = new_wedding(), new_wedding()
    y = await JsClient.start(version=3)
    try:
        await y.connect(
            server.ws_url,
            f"{other}/guests",
            params={"token": MINT(sub="bo", role="couple", wedding=other)},
        )
        await y.wait_synced()
        y_closes_before = [e for e in y.events if e.get("event") == "close"]
        async with await HocusClient.start(collab(server, w)) as a:
            await a.attach("t", f"{w}/timeline", MINT(sub="ann", role="couple", wedding=w))
            await a.wait("t", "synced")
            await asyncio.sleep(70)  # the idle time is what this test is about
            socket = await a.call("socketInfo")
            assert socket["opens"] == 1 and socket["closes"] == [], socket
            assert socket["pings"] >= 3
        y_closes = [e for e in y.events if e.get("event") == "close"]
        assert y_closes == y_closes_before == [], y_closes
    finally:
        await y.close()
