"""An update's events are stored once, whichever servers commit it: two servers on one store
that each integrate the same update as new (its writer re-sent it to the second, whose room
never heard of the first's commit: a commit the first saw fail though it went through, or a
bus message not there yet) derive the same events, each from its own room, and the wedding
keeps one of each (the doubled ``guest.added`` of the fault campaign's ``pg-cut``). On a
PostgreSQL store, the one servers share: on SQLite one process derives a room's events (the
server, or the wedding's worker), and events carry no keys."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from pycrdt import Map

from crdt_server.features.events.tables import read_events
from crdt_server.storage import Gateway, store_for
from tests.server import ServerProcess
from tests.yclient import YClient


async def _added(url: str | None, data: Path, wedding: str) -> Counter[str]:
    """``guest.added`` events of the wedding in the store, by guest."""
    store = store_for(url, data / "crdt.sqlite3")
    await store.open()
    try:
        events = await read_events(Gateway.of(store), wedding, limit=1000)
    finally:
        await store.close()
    return Counter(json.loads(e.data)["id"] for e in events if e.type == "guest.added")


async def _commit_by_two_servers(tmp_path: Path, url: str | None) -> Counter[str]:
    """Three guests written through A, then sent again by their writer to B, whose room
    was loaded before and never hears of A's commits (no shared bus: as B never heard of
    the one A made while it took it to have failed); the ``guest.added`` events stored."""
    env = {"CRDT_SERVER_DATABASE_URL": url} if url else {}
    a_server = ServerProcess(tmp_path / "data", env=env)
    b_server = ServerProcess(tmp_path / "data", env=env)
    await a_server.start()
    await b_server.start()
    try:
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
    finally:
        await b_server.stop()
        await a_server.stop()


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_an_update_committed_by_two_servers_has_its_events_once_on_postgres(
    tmp_path: Path, postgres_url: str
) -> None:
    added = await _commit_by_two_servers(tmp_path, postgres_url)
    assert added == {"g0": 1, "g1": 1, "g2": 1}
