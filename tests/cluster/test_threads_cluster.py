"""Threads on two processes sharing PostgreSQL and Redis: a message posted on one reaches an
event stream followed on the other (live, filtered by audience), the same message PUT on
both is stored once, and full-text search runs on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from crdt_server.auth.tokens import TokenCodec
from tests.cluster.conftest import RedisProcess
from tests.server import ServerProcess

SECRET = "threads-cluster-secret-at-least-32-bytes"
CODEC = TokenCodec(algorithms=["HS256"], secret=SECRET.encode())
W = "/api/weddings/w1"


def auth(sub: str, role: str) -> dict[str, str]:
    # Minted at import: it must outlive a whole test run.
    token = CODEC.mint(sub=sub, role=role, wedding="w1", ttl=24 * 3600)
    return {"Authorization": f"Bearer {token}"}


PLANNER, VENDOR, OTHER = auth("pat", "planner"), auth("flo", "vendor"), auth("dj", "vendor")


async def first_message_event(http: httpx.AsyncClient, headers: dict[str, str]) -> Any:
    async with http.stream("GET", f"{W}/events/stream", headers=headers) as answer:
        assert answer.status_code == 200
        async for line in answer.aiter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                if event["type"] == "thread.message_posted":
                    return event
    return None


@pytest.mark.slow
@pytest.mark.asyncio
async def test_thread_messages_are_live_across_processes_and_searchable_on_postgres(
    tmp_path: Path, redis_server: RedisProcess, postgres_url: str
) -> None:
    env = {
        "CRDT_SERVER_REDIS_URL": redis_server.url,
        "CRDT_SERVER_DATABASE_URL": postgres_url,
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        "CRDT_SERVER_SSE_HEARTBEAT_SECONDS": "0.5",
    }
    servers = [ServerProcess(tmp_path / f"data{i}", env=env, anonymous=False) for i in (1, 2)]
    for server in servers:
        await server.start()
    try:
        async with (
            httpx.AsyncClient(base_url=servers[0].url, timeout=10) as one,
            httpx.AsyncClient(base_url=servers[1].url, timeout=10) as two,
        ):
            for headers in (PLANNER, VENDOR, OTHER):
                assert (await one.get(f"{W}/members", headers=headers)).status_code == 200
            created = await one.post(
                f"{W}/threads",
                json={"subject": "Photo slot 15:30", "participants": ["flo"]},
                headers=PLANNER,
            )
            assert created.status_code == 201, created.text
            tid = created.json()["id"]
            # Follow on process two (the vendor in the thread, and one not in it).
            watcher = asyncio.create_task(first_message_event(two, VENDOR))
            outsider = asyncio.create_task(first_message_event(two, OTHER))
            await asyncio.sleep(0.5)  # let the streams start (they catch up from seq 0 anyway)
            url = f"{W}/threads/{tid}/messages/m1"
            body = {"body": "The golden hour light is best"}
            answers = await asyncio.gather(
                one.put(url, json=body, headers=VENDOR), two.put(url, json=body, headers=VENDOR)
            )
            assert sorted(a.status_code for a in answers) == [200, 201]
            assert answers[0].json() == answers[1].json()
            event = await asyncio.wait_for(watcher, 10)
            assert event["data"]["message"] == "m1" and event["actor"]["sub"] == "flo"
            # The other vendor's stream gets nothing of it (heartbeats only).
            await asyncio.sleep(1.0)
            assert not outsider.done()
            outsider.cancel()
            listed = await two.get(f"{W}/threads/{tid}/messages", headers=PLANNER)
            assert [m["id"] for m in listed.json()["messages"]] == ["m1"]
            for q, found in (("golden light", [tid]), ("photo", [tid]), ("tulips", [])):
                answer = await two.get(f"{W}/threads", params={"q": q}, headers=PLANNER)
                assert [t["id"] for t in answer.json()["threads"]] == found, q
            assert (await two.get(f"{W}/threads/{tid}", headers=PLANNER)).json()["unread"] == 1
    finally:
        for server in servers:
            await server.stop()
