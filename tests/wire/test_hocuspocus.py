"""The Hocuspocus path (``/collab``) byte by byte, on a real server: the order of what the
server answers, held messages, pings, and hostile frames (documented close codes, bounded
cost, the socket and its other documents unharmed)."""

from __future__ import annotations

import asyncio
import json
import time
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
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_sync_step1,
    encode_update,
    read_var_string,
    write_var_string,
)
from crdt_server.lib0 import write_var_uint
from crdt_server.testing.tokens import TokenMinter, new_secret
from tests.server import ServerProcess

pytestmark = pytest.mark.asyncio(loop_scope="module")

MINT = TokenMinter(new_secret())
ADMIN = "collab-admin-key"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    env = {**MINT.env, "CRDT_SERVER_ADMIN_API_KEY": ADMIN}
    proc = ServerProcess(tmp_path_factory.mktemp("collab") / "data", env=env)
    proc.anonymous = False
    async with proc:
        yield proc


def new_wedding() -> str:
    return f"w{uuid.uuid4().hex[:10]}"


def url(server: ServerProcess, wedding: str | None = None) -> str:
    base = f"ws://127.0.0.1:{server.port}/collab"
    return base if wedding is None else f"{base}/{wedding}"


def auth(name: str, token: str) -> bytes:
    return write_var_string(name) + b"\x02\x00" + write_var_string(token) + write_var_string("4.8")


def message(name: str, body: bytes) -> bytes:
    return write_var_string(name) + body


async def receive(ws: ClientConnection, timeout: float = 10.0) -> tuple[str, bytes]:
    """The next message: its document key and body (a ping has the key "")."""
    async with asyncio.timeout(timeout):
        frame = await ws.recv()
    assert isinstance(frame, bytes)
    if frame == b"\x09":
        return "", frame
    key, pos = read_var_string(frame, 0)
    return key, frame[pos:]


async def receive_until(
    ws: ClientConnection, wanted: bytes, timeout: float = 10.0
) -> list[tuple[str, bytes]]:
    """Every message up to and including the first whose body starts with ``wanted``."""
    seen = []
    async with asyncio.timeout(timeout):
        while True:
            key, body = await receive(ws)
            seen.append((key, body))
            if body.startswith(wanted):
                return seen


def an_update(key: str, value: object) -> bytes:
    doc = Doc()
    doc["m"] = root = Map()
    root[key] = value
    return doc.get_update()


async def test_auth_then_the_servers_step1_and_sync_status_after_the_echo(
    server: ServerProcess,
) -> None:
    w = new_wedding()
    name = f"{w}/timeline"
    async with connect(url(server, w)) as ws:
        await ws.send(auth(name, MINT(sub="ann", role="couple", wedding=w)))
        await ws.send(message(name, encode_sync_step1(b"\x00")))
        key, body = await receive(ws)
        assert (key, body) == (name, b"\x02\x02" + write_var_string("read-write"))
        key, body = await receive(ws)
        assert isinstance(decode_message(body), SyncStep1)
        key, body = await receive(ws)
        assert isinstance(decode_message(body), SyncStep2)
        await ws.send(message(name, encode_update(an_update("k", 1))))
        seen = await receive_until(ws, b"\x08")
        # Committed first: the echo, then SyncStatus 1.
        assert isinstance(decode_message(seen[-2][1]), SyncUpdate)
        assert seen[-1] == (name, b"\x08\x01")


async def test_messages_before_auth_are_held_and_a_denied_documents_are_dropped(
    server: ServerProcess,
) -> None:
    w = new_wedding()
    name, denied = f"{w}/timeline", f"{w}/guests"
    async with connect(url(server, w)) as ws:
        # The step 1 comes before the Auth: held, then served.
        await ws.send(message(name, encode_sync_step1(b"\x00")))
        await ws.send(message(denied, encode_update(an_update("x", 1))))
        await ws.send(auth(denied, "bad"))
        key, body = await receive(ws)
        assert key == denied and body.startswith(b"\x02\x01")
        # After permissionDenied its messages are dropped and the socket stays open.
        for _ in range(5):
            await ws.send(message(denied, encode_update(an_update("y", 2))))
        await ws.send(auth(name, MINT(sub="ann", role="couple", wedding=w)))
        seen = await receive_until(ws, b"\x00\x01")  # the held step 1's answer
        assert [k for k, _ in seen] == [name, name, name]
        # A ping is answered with a pong (connection level, no name).
        await ws.send(b"\x09")
        async with asyncio.timeout(10):
            assert await ws.recv() == b"\x0a"


async def test_a_read_only_write_is_sync_status_0(server: ServerProcess) -> None:
    w = new_wedding()
    name = f"{w}/timeline"
    async with connect(url(server, w)) as ws:
        await ws.send(auth(name, MINT(sub="vic", role="vendor", wedding=w)))
        key, body = await receive(ws)
        assert body == b"\x02\x02" + write_var_string("readonly")
        await ws.send(message(name, encode_update(an_update("k", 1))))
        await ws.send(message(name, encode_update(an_update("k", 2))))
        assert (await receive_until(ws, b"\x08"))[-1] == (name, b"\x08\x00")
        assert (await receive_until(ws, b"\x08"))[-1] == (name, b"\x08\x00")


async def test_a_fresh_auth_under_a_denied_name_is_decided_again(server: ServerProcess) -> None:
    """After ``permissionDenied`` a document's messages are dropped, but a later Auth under
    the same name (a new provider replacing the failed one, without a CLOSE) is decided
    afresh: granted, it is served; refused again, it is dropped again."""
    w = new_wedding()
    name = f"{w}/timeline"
    good = MINT(sub="ann", role="couple", wedding=w)
    async with connect(url(server, w)) as ws:
        await ws.send(auth(name, "bad"))
        key, body = await receive(ws)
        assert key == name and body.startswith(b"\x02\x01")
        await ws.send(message(name, encode_update(an_update("while_denied", 1))))
        await ws.send(auth(name, good))
        await ws.send(message(name, encode_sync_step1(b"\x00")))
        seen = await receive_until(ws, b"\x00\x01")
        assert seen[0] == (name, b"\x02\x02" + write_var_string("read-write"))
        step2 = decode_message(seen[-1][1])
        assert isinstance(step2, SyncStep2)
        doc: Doc[Any] = Doc()
        doc.apply_update(step2.update)
        assert "while_denied" not in doc.get("m", type=Map).to_py()  # dropped, not held
        await ws.send(message(name, encode_update(an_update("granted", 1))))
        assert (await receive_until(ws, b"\x08"))[-1] == (name, b"\x08\x01")
        # Refused again, then granted again: each Auth is decided on its own.
        await ws.send(auth(name, "bad"))
        assert (await receive_until(ws, b"\x02"))[-1][1].startswith(b"\x02\x01")
        await ws.send(auth(name, good))
        await ws.send(message(name, encode_update(an_update("again", 1))))
        seen = await receive_until(ws, b"\x08")
        assert seen[0] == (name, b"\x02\x02" + write_var_string("read-write"))
        assert seen[-1] == (name, b"\x08\x01")


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"", 1007),
        (write_var_uint(10**9), 1007),
        (write_var_string("w/t") + b"\x04", 1007),
        (write_var_string("w/t") + b"\x02\x01" + write_var_string("x"), 1007),
        (write_var_string("w/t") + b"\x08\x01", 1007),
        ("a text frame", 1003),
    ],
    ids=["empty", "huge-name", "unknown-type", "server-auth", "sync-status", "text"],
)
async def test_hostile_frames_close_with_their_documented_code(
    server: ServerProcess, frame: bytes | str, code: int
) -> None:
    async with connect(url(server)) as ws:
        await ws.send(frame)
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == code


async def test_a_malformed_update_for_one_document_closes_the_socket_with_1007(
    server: ServerProcess,
) -> None:
    w = new_wedding()
    name = f"{w}/timeline"
    async with connect(url(server, w)) as ws:
        await ws.send(auth(name, MINT(sub="ann", role="couple", wedding=w)))
        await ws.send(message(name, b"\x00\x02\x03\xff\xff\xff"))
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                while True:
                    await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007


async def test_many_names_cost_little_and_the_socket_still_serves(server: ServerProcess) -> None:
    """Thousands of documents never authorized (held, bounded) and refused (remembered,
    bounded) leave the socket answering its real document promptly."""
    w = new_wedding()
    async with connect(url(server, w), max_size=None) as ws:
        started = time.monotonic()
        for i in range(2000):
            await ws.send(message(f"{w}/held{i}", encode_update(an_update("x", i))))
            await ws.send(auth(f"{w}/denied{i}", "bad"))
        refused = 0
        async with asyncio.timeout(60):
            while refused < 2000:
                key, body = await receive(ws)
                refused += body.startswith(b"\x02\x01")
        name = f"{w}/timeline"
        await ws.send(auth(name, MINT(sub="ann", role="couple", wedding=w)))
        key, body = await receive(ws)
        assert key == name and body.startswith(b"\x02\x02")
        assert time.monotonic() - started < 60


async def test_a_revoked_user_is_denied_and_an_erased_wedding_is_a_close_message(
    server: ServerProcess,
) -> None:
    """Per-document permanent codes keep the socket: a revocation (4401) is a
    permissionDenied, an erased wedding (4404) a CLOSE message naming the code."""
    w, other = new_wedding(), new_wedding()
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with connect(url(server)) as ws, httpx.AsyncClient(base_url=server.url) as http:
        ann = MINT(sub="ann", role="couple", wedding=[w, other])
        bob = MINT(sub="bob", role="planner", wedding=[w, other])
        for name, token in (
            (f"{w}/timeline", ann),
            (f"{w}/guests", bob),
            (f"{other}/timeline", bob),
        ):
            await ws.send(auth(name, token))
            await ws.send(message(name, encode_sync_step1(b"\x00")))
            await receive_until(ws, b"\x00\x01")
        response = await http.post("/api/admin/revoke", json={"sub": "ann"}, headers=admin)
        assert response.status_code == 200
        key, body = await receive(ws)
        assert key == f"{w}/timeline" and body.startswith(b"\x02\x01")
        response = await http.delete(f"/api/weddings/{w}", headers=admin)
        assert response.status_code == 200
        key, body = await receive(ws)
        assert key == f"{w}/guests" and body == b"\x07" + write_var_string(
            "4404 this wedding was deleted"
        )
        # The socket goes on with the document of the other wedding.
        name = f"{other}/timeline"
        await ws.send(message(name, encode_update(an_update("k", 1))))
        assert (await receive_until(ws, b"\x08"))[-1] == (name, b"\x08\x01")


async def test_the_same_token_sent_again_is_not_asked_for_again_and_ends_at_exp(
    server: ServerProcess,
) -> None:
    """An app that cannot renew its token answers the request with the same one: it is
    asked once, then the document is denied at the token's expiry (no storm of requests
    as the expiry nears)."""
    w = new_wedding()
    name = f"{w}/timeline"
    token = MINT(sub="zoe", role="couple", wedding=w, ttl=3)  # another test revokes ann
    async with connect(url(server, w)) as ws:
        await ws.send(auth(name, token))
        seen: list[bytes] = []
        async with asyncio.timeout(15):
            while True:
                key, body = await receive(ws)
                if key != name or body[:1] != b"\x02":
                    continue
                seen.append(body[:2])
                if body[:2] == b"\x02\x00":
                    await ws.send(auth(name, token))  # the same token again
                if body[:2] == b"\x02\x01":
                    break
        assert seen == [b"\x02\x02", b"\x02\x00", b"\x02\x02", b"\x02\x01"], seen


def stateless(name: str, payload: str) -> bytes:
    return write_var_string(name) + b"\x05" + write_var_string(payload)


async def two_writers(server: ServerProcess, w: str) -> tuple[ClientConnection, ClientConnection]:
    """A sender and a reader (both writers) of ``{w}/timeline``, each synced."""
    name = f"{w}/timeline"
    sockets = []
    for sub, role in (("ann", "couple"), ("bob", "planner")):
        ws = await connect(url(server, w), max_size=None)
        sockets.append(ws)
        await ws.send(auth(name, MINT(sub=sub, role=role, wedding=w, name=sub.title())))
        await ws.send(message(name, encode_sync_step1(b"\x00")))
        await receive_until(ws, b"\x00\x01")
    return sockets[0], sockets[1]


async def relayed_until_the_marker(
    sender: ClientConnection, reader: ClientConnection, name: str
) -> tuple[list[object], list[tuple[str, bytes]]]:
    """Send an update behind the stateless messages already sent: the payloads the reader
    was told before its broadcast (relayed in order, ahead of it on the reader's queue),
    and what the sender heard up to its SyncStatus."""
    await sender.send(message(name, encode_update(an_update("marker", 1))))
    told = []
    for key, body in await receive_until(reader, b"\x00\x02"):
        if key == name and body[:1] == b"\x05":
            stamped = json.loads(read_var_string(body, 1)[0])
            assert stamped["from"] == {"sub": "ann", "name": "Ann"}
            told.append(stamped["payload"])
    heard = [(k, b) for k, b in await receive_until(sender, b"\x08") if b != b"\x09"]
    return told, heard


async def test_a_stateless_payload_over_4_kib_is_not_relayed_and_one_at_4_kib_is(
    server: ServerProcess,
) -> None:
    w = new_wedding()
    name = f"{w}/timeline"
    sender, reader = await two_writers(server, w)
    async with sender, reader:
        at_limit = json.dumps("x" * 4094)  # 4096 bytes of JSON
        over = json.dumps("y" * 4095)  # 4097
        assert (len(at_limit.encode()), len(over.encode())) == (4096, 4097)
        await sender.send(stateless(name, over))
        await sender.send(stateless(name, at_limit))
        told, heard = await relayed_until_the_marker(sender, reader, name)
        assert told == ["x" * 4094]
        # The sender is told nothing of the dropped payload (the protocol has no answer
        # to a stateless message): its update's echo and SyncStatus 1, on an open socket.
        assert [body[:2] for _, body in heard] == [b"\x00\x02", b"\x08\x01"]


async def test_a_writers_stateless_payloads_past_10_a_second_are_not_relayed(
    server: ServerProcess,
) -> None:
    """A burst: the first ten are relayed at once; past them, at most one more per tenth of
    a second that passed (measured here, around the server's window: so with the burst read
    within 100 ms, the eleventh is dropped), and the sender is told nothing."""
    w = new_wedding()
    name = f"{w}/timeline"
    burst = 50  # below a document's inbox (64 messages): every drop is the rate's
    sender, reader = await two_writers(server, w)
    async with sender, reader:
        started = time.monotonic()
        for i in range(burst):
            await sender.send(stateless(name, json.dumps({"n": i})))
        told, heard = await relayed_until_the_marker(sender, reader, name)
        elapsed = time.monotonic() - started
        numbers = [p["n"] for p in told if isinstance(p, dict)]
        assert numbers[:10] == list(range(10))
        assert numbers == sorted(numbers) and len(numbers) == len(told)
        assert len(numbers) <= 10 + int(10 * elapsed), (numbers, elapsed)
        assert len(numbers) < burst
        assert [body[:2] for _, body in heard] == [b"\x00\x02", b"\x08\x01"]
