"""The event stream and presence across real processes on one store and one Redis: an
event committed on A reaches a stream on B, a revocation on A ends B's stream, and every
process gives the same presence answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import redis.asyncio as redis

from crdt_server.auth.tokens import TokenCodec
from crdt_server.cluster.messages import read_rooms_message
from crdt_server.testing.waits import until
from tests.cluster.conftest import RedisProcess
from tests.server import ServerProcess
from tests.yclient import YClient

SECRET = "cluster-events-secret-of-at-least-32-bytes"
CODEC = TokenCodec(algorithms=["HS256"], secret=SECRET.encode())
ADMIN = {"Authorization": "Bearer admin"}


def auth(sub: str = "ada", role: str = "planner") -> dict[str, str]:
    return {"Authorization": f"Bearer {CODEC.mint(sub=sub, role=role, wedding='w7', ttl=600)}"}


@pytest_asyncio.fixture
async def pair(tmp_path: Path, redis_server: RedisProcess) -> AsyncIterator[list[ServerProcess]]:
    env = {
        "CRDT_SERVER_REDIS_URL": redis_server.url,
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        "CRDT_SERVER_ADMIN_API_KEY": "admin",
        "CRDT_SERVER_PRESENCE_TIMEOUT_SECONDS": "3",
        "CRDT_SERVER_SSE_HEARTBEAT_SECONDS": "5",
    }
    servers = [ServerProcess(tmp_path / "data", env=env, anonymous=False) for _ in range(2)]
    for server in servers:
        await server.start()
    try:
        yield servers
    finally:
        for server in servers:
            await server.stop()


async def frames(stream: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    kind = "message"
    async for line in stream.aiter_lines():
        if line.startswith("event:"):
            kind = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            yield kind, json.loads(line.removeprefix("data:").strip())
            kind = "message"


@pytest.mark.asyncio
async def test_a_stream_on_one_process_hears_events_and_revocation_from_another(
    pair: list[ServerProcess],
) -> None:
    a, b = pair
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=10) as on_a,
        httpx.AsyncClient(base_url=b.url, timeout=10) as on_b,
        on_b.stream("GET", "/api/weddings/w7/events/stream", headers=auth()) as stream,
    ):
        assert stream.status_code == 200
        posted = await on_a.post(
            "/api/weddings/w7/events", json={"type": "day.cake_arrived"}, headers=auth()
        )
        assert posted.status_code == 201
        seen: list[tuple[str, dict[str, Any]]] = []
        received = frames(stream)
        async with asyncio.timeout(4):  # before the 5 s heartbeat: the bus woke B
            async for frame in received:
                seen.append(frame)
                if frame[0] == "day.cake_arrived":
                    break
            revoked = await on_a.post("/api/admin/revoke", json={"sub": "ada"}, headers=ADMIN)
            assert revoked.status_code == 200
            async for frame in received:
                seen.append(frame)
        assert seen[0][1]["id"] == posted.json()["id"]
        assert seen[-1] == ("end", {"reason": "token_revoked"})


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_events_wake_only_a_process_with_readers_of_the_wedding(
    pair: list[ServerProcess], redis_server: RedisProcess
) -> None:
    """A wedding's events cross the bus only while another process has readers of them;
    the process whose first reader starts is woken at once by the others (what they
    stored before they heard of it), then by each commit."""
    a, b = pair
    bus = redis.Redis.from_url(redis_server.url)
    heard = bus.pubsub()
    await heard.subscribe("crdt:events", "crdt:rooms")
    told: list[str] = []

    async def listen(until_told: str) -> None:
        async with asyncio.timeout(10):
            while until_told not in told:
                message = await heard.get_message(True, timeout=1)
                if message is None:
                    continue
                if message["channel"] == b"crdt:events":
                    event = json.loads(message["data"])
                    if event["type"] == "events":
                        told.append(f"events {event['wedding']}")
                elif b"events:w7" in message["data"]:
                    told.append(f"readers {read_rooms_message(message['data']).origin[:4]}")

    try:
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=10) as on_a,
            httpx.AsyncClient(base_url=b.url, timeout=10) as on_b,
        ):
            for kind in ("day.cake_arrived", "day.band_arrived"):
                posted = await on_a.post(
                    "/api/weddings/w7/events", json={"type": kind}, headers=auth()
                )
                assert posted.status_code == 201
            async with on_b.stream(
                "GET", "/api/weddings/w7/events/stream?after=0", headers=auth()
            ) as stream:
                assert stream.status_code == 200
                received = frames(stream)
                async with asyncio.timeout(4):
                    async for kind, _ in received:
                        if kind == "day.band_arrived":
                            break
                await listen("events w7")
                # Nothing was told of w7's events before B's first reader said so.
                assert told[0].startswith("readers ")
                assert told[1:] == ["events w7"]
                posted = await on_a.post(
                    "/api/weddings/w7/events",
                    json={"type": "day.flowers_arrived"},
                    headers=auth(),
                )
                async with asyncio.timeout(4):  # before the 5 s heartbeat: the bus woke B
                    async for kind, _ in received:
                        if kind == "day.flowers_arrived":
                            break
    finally:
        await heard.aclose()  # type: ignore[no-untyped-call]
        await bus.aclose()


@pytest.mark.asyncio
async def test_a_status_change_on_one_process_reaches_a_stream_on_the_other(
    pair: list[ServerProcess],
) -> None:
    """Each process tells its own streams of what the bus told it: ann is busy on A, bob's
    stream on B hears it (with her section), once."""
    a, b = pair
    async with (
        httpx.AsyncClient(base_url=b.url, timeout=10) as on_b,
        on_b.stream("GET", "/api/weddings/w7/events/stream", headers=auth("bob")) as stream,
        YClient(a.ws_url, "w7/guests", token=auth("ann")["Authorization"][7:]) as ann,
    ):
        await ann.wait(ann.synced.is_set)
        await ann.set_awareness({"here": {"section": "menu", "status": "busy"}})
        told: list[dict[str, Any]] = []
        async with asyncio.timeout(10):
            async for kind, record in frames(stream):
                if kind == "presence.changed" and record["data"]["sub"] == "ann":
                    told.append(record["data"])
                    if record["data"]["status"] == "busy":
                        break
        assert (told[-1]["section"], told[-1]["documents"]) == ("menu", ["guests"])
        assert [t["status"] for t in told].count("busy") == 1


@pytest.mark.asyncio
async def test_presence_is_the_same_on_every_process(pair: list[ServerProcess]) -> None:
    a, b = pair
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=10) as on_a,
        httpx.AsyncClient(base_url=b.url, timeout=10) as on_b,
    ):

        async def answers() -> list[list[dict[str, Any]]]:
            return [
                (await http.get("/api/weddings/w7/presence", headers=auth())).json()["presence"]
                for http in (on_a, on_b)
            ]

        async with (
            YClient(a.ws_url, "w7/guests", token=auth("ada")["Authorization"][7:]) as ada_a,
            YClient(b.ws_url, "w7/budget", token=auth("ada")["Authorization"][7:]) as ada_b,
            YClient(b.ws_url, "w7/guests", token=auth("bob", "couple")["Authorization"][7:]) as bob,
        ):
            for client in (ada_a, ada_b, bob):
                await client.wait(client.synced.is_set)

            async def agreed() -> list[dict[str, Any]] | None:
                first, second = await answers()
                return first if first == second and len(first) == 3 else None

            presence = await until(agreed)
            by = {(p["doc"], p["user_id"]): p for p in presence}
            assert set(by) == {("guests", "ada"), ("guests", "bob"), ("budget", "ada")}
            assert by[("guests", "ada")]["documents"] == ["budget", "guests"]
            assert by[("guests", "bob")]["documents"] == ["guests"]
            assert by[("guests", "bob")]["role"] == "couple"
            assert by[("guests", "ada")]["connections"] == 1
            assert by[("budget", "ada")]["since"].endswith("Z")
            # a vendor may not read the budget: neither its entry nor its name in documents
            vendor = await on_b.get("/api/weddings/w7/presence", headers=auth("v", "vendor"))
            assert [(p["doc"], p["documents"]) for p in vendor.json()["presence"]] == [
                ("guests", ["guests"]),
                ("guests", ["guests"]),
            ]

        async def empty() -> bool:
            # everyone left: each is offline, with when they were last seen, on both
            first, second = await answers()
            return [(p["doc"], p["user_id"], p["status"]) for p in first] == [
                (p["doc"], p["user_id"], p["status"]) for p in second
            ] and all(p["status"] == "offline" and p["last_seen"] for p in first + second)

        await until(empty)


@pytest.mark.asyncio
async def test_a_new_process_knows_who_is_already_here(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    # a long presence timeout: the others' refreshes (a third of it) come too late to
    # explain what the new process knows
    env = {
        "CRDT_SERVER_REDIS_URL": redis_server.url,
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        "CRDT_SERVER_PRESENCE_TIMEOUT_SECONDS": "60",
    }
    async with ServerProcess(tmp_path / "data", env=env, anonymous=False) as a:
        async with YClient(a.ws_url, "w7/guests", token=auth("ada")["Authorization"][7:]) as ada:
            await ada.wait(ada.synced.is_set)
            async with (
                ServerProcess(tmp_path / "data", env=env, anonymous=False) as c,
                httpx.AsyncClient(base_url=c.url, timeout=10) as on_c,
            ):

                async def ada_seen() -> bool:
                    got = await on_c.get("/api/weddings/w7/presence", headers=auth())
                    return [(p["user_id"], p["status"]) for p in got.json()["presence"]] == [
                        ("ada", "online")
                    ]

                await until(ada_seen, deadline=5)


@pytest.mark.asyncio
@pytest.mark.slow
async def test_the_people_of_a_killed_process_leave_the_presence_at_the_timeout(
    pair: list[ServerProcess],
) -> None:
    a, b = pair
    async with httpx.AsyncClient(base_url=a.url, timeout=10) as on_a:

        async def people() -> list[str]:
            got = await on_a.get("/api/weddings/w7/presence", headers=auth())
            return [p["user_id"] for p in got.json()["presence"] if p["status"] != "offline"]

        async with YClient(b.ws_url, "w7/guests", token=auth("bob")["Authorization"][7:]) as bob:
            await bob.wait(bob.synced.is_set)
            await until(lambda: _eq(people(), ["bob"]))
            await b.kill()
            await until(lambda: _eq(people(), []), deadline=8)


async def _eq(value: Awaitable[Any], expected: Any) -> bool:
    return bool(await value == expected)
