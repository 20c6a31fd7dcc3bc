"""An update's events are stored once, whichever servers commit it: two servers on one store
that each integrate the same update as new (its writer re-sent it to the second, whose room
never heard of the first's commit: a commit the first saw fail though it went through, or a
bus message not there yet) derive the same events, each from its own room, and the wedding
keeps one of each (the doubled ``guest.added`` of the fault campaign's ``pg-cut``). On a
PostgreSQL store, the one servers share: on SQLite one process derives a room's events (the
server, or the wedding's worker), and events carry no keys."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Map

from crdt_server.features.events.tables import read_events
from crdt_server.storage import Gateway, store_for
from tests.server import ServerProcess
from tests.yclient import YClient


async def _events(url: str | None, data: Path, wedding: str) -> list[tuple[str, dict[str, Any]]]:
    """The wedding's events in the store: (type, data), oldest first."""
    store = store_for(url, data / "crdt.sqlite3")
    await store.open()
    try:
        events = await read_events(Gateway.of(store), wedding, limit=1000)
    finally:
        await store.close()
    return [(e.type, json.loads(e.data)) for e in events]


async def _added(url: str | None, data: Path, wedding: str) -> Counter[str]:
    """``guest.added`` events of the wedding in the store, by guest."""
    events = await _events(url, data, wedding)
    return Counter(d["id"] for t, d in events if t == "guest.added")


@contextlib.asynccontextmanager
async def _two_servers(
    tmp_path: Path, env: dict[str, str]
) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    """Two server processes, A and B, on one store and no shared bus."""
    a_server = ServerProcess(tmp_path / "data", env=env)
    b_server = ServerProcess(tmp_path / "data", env=env)
    await a_server.start()
    await b_server.start()
    try:
        yield a_server, b_server
    finally:
        await b_server.stop()
        await a_server.stop()


async def _commit_by_two_servers(tmp_path: Path, url: str | None) -> Counter[str]:
    """Three guests written through A, then sent again by their writer to B, whose room
    was loaded before and never hears of A's commits (no shared bus: as B never heard of
    the one A made while it took it to have failed); the ``guest.added`` events stored."""
    env = {"CRDT_SERVER_DATABASE_URL": url} if url else {}
    async with _two_servers(tmp_path, env) as (a_server, b_server):
        async with YClient(b_server.ws_url, "w1/guests") as watcher:
            await watcher.wait(watcher.synced.is_set)  # B's room is loaded, without them
            async with YClient(a_server.ws_url, "w1/guests") as writer:
                await writer.wait(writer.synced.is_set)
                guests = writer.doc.get("guests", type=Map)
                for n in range(3):
                    guests[f"g{n}"] = Map({"name": f"Guest {n}", "rsvp": "pending"})
                    await writer.flush()
                await writer.wait(writer.is_confirmed)  # A committed them, with their events
                # The writer goes over to B: its step 2 carries what B's room lacks.
                await writer.go_offline()
                writer.url = f"{b_server.ws_url}/w1/guests"
                await writer.reconnect()
                await watcher.wait(lambda: len(watcher.doc.get("guests", type=Map)) == 3)
                guests["g0"]["rsvp"] = "accepted"  # an event after them, on B
                await writer.flush()
                await writer.wait(writer.is_confirmed)
        return await _added(url, tmp_path / "data", "w1")


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_an_update_committed_by_two_servers_has_its_events_once_on_postgres(
    tmp_path: Path, postgres_url: str
) -> None:
    added = await _commit_by_two_servers(tmp_path, postgres_url)
    assert added == {"g0": 1, "g1": 1, "g2": 1}


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_an_answer_merged_with_its_guest_on_a_second_server_is_told_once_on_postgres(
    tmp_path: Path, postgres_url: str
) -> None:
    """The campaign's ``pg-failover-dropped``: a guest committed through A (its
    ``guest.added`` says ``pending``), then answered offline, the answer re-sent to B with
    the guest in one merged update. B's ``guest.added`` tells of the guest's items A told
    of and of the answer's new one: the answer is told as ``guest.rsvp_changed`` from what
    A told, once, and the guest is not added again."""
    env = {"CRDT_SERVER_DATABASE_URL": postgres_url}
    async with _two_servers(tmp_path, env) as (a_server, b_server):
        async with YClient(b_server.ws_url, "w1/guests") as watcher:
            await watcher.wait(watcher.synced.is_set)  # B's room is loaded, without them
            async with YClient(a_server.ws_url, "w1/guests") as writer:
                await writer.wait(writer.synced.is_set)
                guests = writer.doc.get("guests", type=Map)
                for n in range(2):
                    guests[f"g{n}"] = Map({"name": f"Guest {n}", "rsvp": "pending"})
                    await writer.flush()
                await writer.wait(writer.is_confirmed)
                await writer.go_offline()
                guests["g0"]["rsvp"] = "accepted"  # offline: goes to B with the guests
                writer.url = f"{b_server.ws_url}/w1/guests"
                await writer.reconnect()
                await writer.wait(writer.is_confirmed)
                await watcher.wait(lambda: len(watcher.doc.get("guests", type=Map)) == 2)
        events = await _events(postgres_url, tmp_path / "data", "w1")
    added = Counter(d["id"] for t, d in events if t == "guest.added")
    answers = [(d["id"], d["from"], d["to"]) for t, d in events if t == "guest.rsvp_changed"]
    assert added == {"g0": 1, "g1": 1}, events
    assert answers == [("g0", "pending", "accepted")], events
