"""Each limit gives its documented code to the client over it; everybody else carries on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from pycrdt import Doc, Map, Text
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.server import ServerProcess
from tests.yclient import YClient

LIMITS = {
    "CRDT_SERVER_MAX_DOCUMENT_BYTES": "20000",
    "CRDT_SERVER_MAX_UPDATES_PER_SECOND": "5",
    "CRDT_SERVER_MAX_AWARENESS_PER_SECOND": "2",
    "CRDT_SERVER_MAX_CONNECTIONS_PER_ADDRESS": "6",
    "CRDT_SERVER_MAX_ROOMS": "3",
}


@pytest_asyncio.fixture
async def limited(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    async with ServerProcess(tmp_path / "data", env=LIMITS) as server:
        yield server


async def _healthy(client: YClient, key: str) -> None:
    """The client can still edit and gets its echo."""
    client.doc.get("m", type=Map)[key] = key
    await client.flush()
    await client.wait(client.is_confirmed)


@pytest.mark.asyncio
async def test_document_size_limit_closes_with_1009(limited: ServerProcess) -> None:
    async with (
        YClient(limited.ws_url, "w1/guests") as big,
        YClient(limited.ws_url, "w1/guests") as other,
    ):
        await big.wait(big.synced.is_set)
        notes = big.doc.get("notes", type=Text)
        for i in range(8):  # within the rate limit's burst
            notes += f"{i:04d}" + "x" * 2996
            await big.flush()
            if big.closed.is_set():
                break
        await big.wait(big.closed.is_set)
        assert big.close_code == 1009
        # What was accepted before the limit is what a late joiner gets; a client that was
        # there all along ends up with the same (its last echoes may still be on the way).
        async with YClient(limited.ws_url, "w1/guests") as late:
            await late.wait(late.synced.is_set)
            size = len(str(late.doc.get("notes", type=Text)))
            assert 12_000 <= size < 20_000
            await other.wait(lambda: len(str(other.doc.get("notes", type=Text))) == size)


@pytest.mark.asyncio
async def test_update_rate_limit_closes_with_1008(limited: ServerProcess) -> None:
    async with (
        YClient(limited.ws_url, "w2/guests") as flood,
        YClient(limited.ws_url, "w2/guests") as calm,
    ):
        await flood.wait(flood.synced.is_set)
        for i in range(40):
            flood.doc.get("m", type=Map)[f"k{i}"] = i
            await flood.flush()
        await flood.wait(flood.closed.is_set)
        assert flood.close_code == 1008
        await _healthy(calm, "calm")


@pytest.mark.asyncio
async def test_awareness_rate_limit_closes_with_1008(limited: ServerProcess) -> None:
    async with (
        YClient(limited.ws_url, "w3/guests") as chatty,
        YClient(limited.ws_url, "w3/guests") as calm,
    ):
        await chatty.wait(chatty.synced.is_set)
        for i in range(20):
            await chatty.set_awareness({"cursor": i})
        await chatty.wait(chatty.closed.is_set)
        assert chatty.close_code == 1008
        await _healthy(calm, "calm")


@pytest.mark.asyncio
async def test_connections_per_address_get_429(limited: ServerProcess) -> None:
    clients = [await YClient(limited.ws_url, "w1/budget").connect() for _ in range(6)]
    try:
        with pytest.raises(InvalidStatus) as info:
            async with connect(f"{limited.ws_url}/w1/budget"):
                pass
        assert info.value.response.status_code == 429
        await _healthy(clients[0], "still-fine")
    finally:
        for client in clients:
            await client.close()
    async with YClient(limited.ws_url, "w1/budget") as again:  # freed on close
        await again.wait(again.synced.is_set)


@pytest.mark.asyncio
async def test_rooms_per_process_limit_closes_with_1013(limited: ServerProcess) -> None:
    async with (
        YClient(limited.ws_url, "r1/guests") as a,
        YClient(limited.ws_url, "r2/guests") as b,
        YClient(limited.ws_url, "r3/guests") as c,
    ):
        for client in (a, b, c):
            await client.wait(client.synced.is_set)
        async with YClient(limited.ws_url, "r4/guests") as one_too_many:
            await one_too_many.wait(one_too_many.closed.is_set)
            assert one_too_many.close_code == 1013
        await _healthy(a, "a")


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_reconnect_storm_is_admitted_in_order(tmp_path: Path) -> None:
    env = {"CRDT_SERVER_MAX_CONCURRENT_LOADS": "2", "CRDT_SERVER_MAX_UPGRADES_PER_SECOND": "1000"}
    async with ServerProcess(tmp_path / "data", env=env) as server:
        rooms = [f"s{i}/guests" for i in range(40)]
        seeders = [await YClient(server.ws_url, room).connect() for room in rooms]
        for client in seeders:
            client.doc.get("m", type=Map)["seed"] = client.url
            await client.flush()
        for client in seeders:
            await client.wait(client.is_confirmed)
            await client.close()
        await server.kill()
        await server.start()
        storm = [YClient(server.ws_url, rooms[i % len(rooms)]) for i in range(400)]
        await asyncio.gather(*(client.connect() for client in storm))
        try:
            for client in storm:
                await client.wait(
                    lambda c=client: "seed" in (c.doc.get("m", type=Map).to_py() or {})
                )
        finally:
            await asyncio.gather(*(client.close() for client in storm))


@pytest.mark.asyncio
async def test_a_weddings_storage_quota_refuses_like_the_document_limit(tmp_path: Path) -> None:
    """The quota counts every document of the wedding, the ones stored before this process
    started too (read from the store when the wedding's first room loads): past it, an
    update is refused with the per-document limit's codes (1009 on a socket, 413 over
    HTTP), what was accepted stays, and other weddings carry on."""
    env = {"CRDT_SERVER_MAX_WEDDING_BYTES": "20000", "CRDT_SERVER_MAX_DOCUMENT_BYTES": "1000000"}
    async with ServerProcess(tmp_path / "data", env=env) as first:
        async with YClient(first.ws_url, "w1/guests") as guests:
            await guests.wait(guests.synced.is_set)
            notes = guests.doc.get("notes", type=Text)
            for i in range(4):  # about 12 000 bytes, within the quota
                notes += f"{i:04d}" + "x" * 2996
                await guests.flush()
            await guests.wait(guests.is_confirmed)
            assert not guests.closed.is_set()
    # Another process on the same store: the guests document is not loaded, yet counts.
    async with ServerProcess(tmp_path / "data", env=env) as server:
        async with (
            YClient(server.ws_url, "w1/budget") as budget,
            YClient(server.ws_url, "w2/budget") as elsewhere,
        ):
            await budget.wait(budget.synced.is_set)
            text = budget.doc.get("notes", type=Text)
            for i in range(4):
                text += f"{i:04d}" + "y" * 2996
                await budget.flush()
                if budget.closed.is_set():
                    break
            await budget.wait(budget.closed.is_set)
            assert budget.close_code == 1009
            # Over HTTP: the same refusal as a document past its limit, and nothing changed.
            big = Doc()
            big.get("notes", type=Text).insert(0, "z" * 9000)
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                refused = await http.post(
                    "/api/weddings/w1/docs/timeline/update", content=big.get_update()
                )
                assert refused.status_code == 413, refused.text
                assert "quota" in refused.json()["detail"]
                timeline = await http.get("/api/weddings/w1/docs/timeline")
                assert "z" * 10 not in timeline.text
                # What was accepted stays: a late joiner gets it.
                async with YClient(server.ws_url, "w1/budget") as late:
                    await late.wait(late.synced.is_set)
                    kept = len(str(late.doc.get("notes", type=Text)))
                    assert 3_000 <= kept < 9_000
                # Another wedding has its own quota.
                accepted = await http.post(
                    "/api/weddings/w2/docs/timeline/update", content=big.get_update()
                )
                assert accepted.status_code == 200, accepted.text
            await _healthy(elsewhere, "still")
