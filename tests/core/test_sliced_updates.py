"""A large update taken in as slices (``CRDT_SERVER_UPDATE_SLICE_STRUCTS``) against a real
server: what it builds is what the update builds, and a reconnecting writer's sync step 2
(its whole document: content the room has, its new edits and every deletion) is echoed
with its deletions, by which an app confirms an edit (the web app's pending edits wait
for the ranges they deleted)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pycrdt import Doc, Map
from websockets.asyncio.client import connect

from crdt_server.codec.items import read_items
from crdt_server.codec.protocol import (
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_sync_step1,
    encode_update,
)
from crdt_server.codec.updates import inspect_update
from crdt_server.testing.tokens import TokenMinter, new_secret
from crdt_server.testing.waits import until
from tests.server import ServerProcess

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(60)]

MINT = TokenMinter(new_secret())
SLICE = 50
WRITER = 7001
OTHER = 5000


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    env = {**MINT.env, "CRDT_SERVER_UPDATE_SLICE_STRUCTS": str(SLICE)}
    proc = ServerProcess(tmp_path_factory.mktemp("slices") / "data", env=env)
    proc.anonymous = False
    async with proc:
        yield proc


def _token(wedding: str) -> str:
    return MINT(sub="ann", role="couple", wedding=wedding)


async def _post(http: httpx.AsyncClient, wedding: str, update: bytes) -> dict[str, Any]:
    answer = await http.post(
        f"/api/weddings/{wedding}/docs/guests/update",
        content=update,
        headers={
            "Authorization": f"Bearer {_token(wedding)}",
            "Content-Type": "application/octet-stream",
        },
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_a_step_2_in_slices_builds_the_document_and_echoes_its_deletions(
    server: ServerProcess,
) -> None:
    wedding = f"w{uuid.uuid4().hex[:10]}"
    others: Doc[Any] = Doc(client_id=OTHER)
    for i in range(120):  # 120 guests, 3 structs each, by someone else: many slices
        others.get("guests", type=Map)[f"g{i:03d}"] = Map({"name": f"Guest {i}"})
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        assert (await _post(http, wedding, others.get_update()))["changed"] is True
        # The writer had it all, renamed a guest offline (a new entry, the other person's
        # deleted) and comes back with its whole document, as a step 2 against an empty
        # vector is: its own new run first (Yjs writes clients by descending id), then the
        # other person's, which the room has, in slices of known content only.
        doc: Doc[Any] = Doc(client_id=WRITER)
        doc.apply_update(others.get_update())
        guests = doc.get("guests", type=Map)
        guests["g007"] = Map({"name": "Ada Lovelace"})
        whole = doc.get_update()
        assert inspect_update(whole).struct_count > SLICE
        assert list(inspect_update(whole).deletes) == [OTHER]

        url = f"{server.ws_url}/{wedding}/guests?token={_token(wedding)}"
        async with connect(url) as reader:
            await reader.send(encode_sync_step1(b"\x00"))
            assert (await _post(http, wedding, whole))["changed"] is True
            deleted: list[tuple[int, int]] = []
            seen: Doc[Any] = Doc()
            async with asyncio.timeout(20):
                while seen.get("guests", type=Map).to_py() != guests.to_py() or not deleted:
                    frame = await reader.recv()
                    assert isinstance(frame, bytes)
                    message = decode_message(frame)
                    if isinstance(message, SyncStep2):  # what the room had when it joined
                        seen.apply_update(message.update)
                    if not isinstance(message, SyncUpdate):
                        continue  # step 1, awareness
                    seen.apply_update(message.update)
                    summary = inspect_update(message.update)
                    if WRITER in summary.structs:
                        # The echo of the new entry carries the deletion of the old one.
                        deleted.append((WRITER, summary.deletes.get(OTHER, 0)))
            assert deleted and deleted[-1][1] > 0, deleted

        read = await http.get(
            f"/api/weddings/{wedding}/docs/guests",
            headers={"Authorization": f"Bearer {_token(wedding)}"},
        )
        assert read.json()["guests"]["g007"]["name"] == "Ada Lovelace"
        assert len(read.json()["guests"]) == 120


async def test_a_restore_removing_many_entries_is_taken_in_by_parts(
    server: ServerProcess,
) -> None:
    """The server's own edit of many deletions (a restore removing most of the list) is
    cut like a large update's structs: parts of at most the slice's size in clocks, each
    committed before the next, together the restore."""
    wedding = f"w{uuid.uuid4().hex[:10]}"
    auth = {"Authorization": f"Bearer {_token(wedding)}"}
    doc: Doc[Any] = Doc(client_id=OTHER)
    guests = doc.get("guests", type=Map)
    guests["kept"] = Map({"name": "Kept"})
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        await _post(http, wedding, doc.get_update())
        history = f"/api/weddings/{wedding}/docs/guests/history"
        [kept] = (await http.get(history, headers=auth)).json()["history"]
        state = doc.get_state()
        for i in range(100):  # 100 guests (a map item and its name): 200 clocks to delete
            guests[f"g{i:03d}"] = Map({"name": f"Guest {i}"})
        await _post(http, wedding, doc.get_update(state))
        before = {h["seq"] for h in (await http.get(history, headers=auth)).json()["history"]}

        restored = await http.post(
            f"/api/weddings/{wedding}/docs/guests/restore", json={"seq": kept["seq"]}, headers=auth
        )
        assert restored.status_code == 200, restored.text
        read = await http.get(f"/api/weddings/{wedding}/docs/guests", headers=auth)
        assert list(read.json()["guests"]) == ["kept"]
        entries = (await http.get(history, params={"limit": 100}, headers=auth)).json()
        parts = [h for h in entries["history"] if h["seq"] not in before]
        assert len(parts) >= 200 // SLICE, parts
        assert {(h["sub"], h["role"]) for h in parts} == {("ann", "couple")}


def covers(ranges: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether the union of ``ranges`` ((clock, length)) covers [start, end)."""
    reached = start
    for clock, length in sorted(ranges):
        if clock > reached:
            break
        reached = max(reached, clock + length)
    return reached >= end


@pytest.mark.parametrize("transport", ["http", "sync"])
async def test_a_clients_deletion_of_many_entries_is_taken_in_by_parts(
    server: ServerProcess, transport: str
) -> None:
    """A client's one message removing 120 guests (one delete range of its own items:
    120 entries and their names, 240 map items) is taken in by parts of at most the
    slice's size in entries, each committed and sent before the next, and the echoes'
    ranges together are the message's range (how its writer confirms it)."""
    wedding = f"w{uuid.uuid4().hex[:10]}"
    auth = {"Authorization": f"Bearer {_token(wedding)}"}
    doc: Doc[Any] = Doc(client_id=WRITER)
    guests = doc.get("guests", type=Map)
    with doc.transaction():
        for i in range(120):
            guests[f"g{i:03d}"] = Map({"name": f"Guest {i}"})
    added, state = doc.get_update(), doc.get_state()
    with doc.transaction():
        for i in range(120):
            del guests[f"g{i:03d}"]
    change = doc.get_update(state)
    [(start, length)] = read_items(change).deletes[WRITER]
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        await _post(http, wedding, added)
        history = f"/api/weddings/{wedding}/docs/guests/history"
        before = {h["seq"] for h in (await http.get(history, headers=auth)).json()["history"]}
        url = f"{server.ws_url}/{wedding}/guests?token={_token(wedding)}"
        async with connect(url) as reader:
            await reader.send(encode_sync_step1(state))
            if transport == "http":
                assert (await _post(http, wedding, change))["changed"] is True
            else:
                await reader.send(encode_update(change))
            echoed: list[list[tuple[int, int]]] = []
            async with asyncio.timeout(20):
                while not covers([r for e in echoed for r in e], start, start + length):
                    frame = await reader.recv()
                    assert isinstance(frame, bytes)
                    message = decode_message(frame)
                    if isinstance(message, SyncUpdate):
                        echoed.append(read_items(message.update).deletes.get(WRITER, []))
        # Here an entry and its name are a clock each: a part of at most SLICE entries.
        assert len(echoed) >= 240 // SLICE, echoed
        assert all(sum(n for _, n in e) <= SLICE for e in echoed), echoed
        read = await http.get(f"/api/weddings/{wedding}/docs/guests", headers=auth)
        assert read.json()["guests"] == {}
        entries = (await http.get(history, params={"limit": 100}, headers=auth)).json()
        parts = [h for h in entries["history"] if h["seq"] not in before]
        assert len(parts) == len(echoed), parts


async def test_a_crash_between_a_deletions_parts_quarantines_nobody_and_a_resend_completes(
    tmp_path: Path,
) -> None:
    """A server killed while a client's large deletion is taken in by parts keeps the
    parts committed before; a part of deletions only names no client id, so the apply
    slot quarantines nobody, and the writer's deletion sent again (as its next sync step 2
    would) completes it."""
    wedding = f"w{uuid.uuid4().hex[:10]}"
    auth = {"Authorization": f"Bearer {_token(wedding)}"}
    doc: Doc[Any] = Doc(client_id=WRITER)
    guests = doc.get("guests", type=Map)
    with doc.transaction():
        for i in range(2000):  # 4,000 map items: 80 parts of 50, each committed in turn
            guests[f"g{i:04d}"] = Map({"name": f"Guest {i}"})
    added, state = doc.get_update(), doc.get_state()
    with doc.transaction():
        for i in range(2000):
            del guests[f"g{i:04d}"]
    change = doc.get_update(state)
    env = {**MINT.env, "CRDT_SERVER_UPDATE_SLICE_STRUCTS": str(SLICE)}
    server = ServerProcess(tmp_path / "data", env=env)
    server.anonymous = False
    history = f"/api/weddings/{wedding}/docs/guests/history"
    async with server, httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        await _post(http, wedding, added)
        listed = await http.get(history, params={"limit": 1000}, headers=auth)
        before = len(listed.json()["history"])
        sent = asyncio.create_task(
            http.post(
                f"/api/weddings/{wedding}/docs/guests/update",
                content=change,
                headers={**auth, "Content-Type": "application/octet-stream"},
            )
        )

        async def some_parts_in() -> bool:
            found = await http.get(history, params={"limit": 1000}, headers=auth)
            return len(found.json()["history"]) > before

        await until(some_parts_in, 20, every=0.005)
        await server.kill()
        with contextlib.suppress(httpx.HTTPError):  # cut off, unless every part was in
            await sent
        await server.start()
        kept = (await http.get(f"/api/weddings/{wedding}/docs/guests", headers=auth)).json()
        assert len(kept["guests"]) < 2000  # the parts committed before the kill
        # Nobody is quarantined: the writer's new edit and its deletion again are taken.
        guests["after"] = Map({"name": "After"})
        assert (await _post(http, wedding, doc.get_update(state)))["committed"] is True
        read = await http.get(f"/api/weddings/{wedding}/docs/guests", headers=auth)
        assert list(read.json()["guests"]) == ["after"]
