"""Several processes serve one room as one: through Redis, on a shared store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from pycrdt import Doc, Map

from crdt_server.auth.tokens import TokenCodec
from crdt_server.storage import NewUpdate, SqliteStore
from tests.cluster.conftest import RedisProcess
from tests.jsclient import JsClientGroup, map_set
from tests.server import ServerProcess
from tests.yclient import YClient

ROOM = "w5/guests"


def keys(client: YClient, doc: str = "confirmed") -> set[str]:
    source = client.confirmed if doc == "confirmed" else client.doc
    return set(source.get("m", type=Map).to_py() or {})


async def write(client: YClient, prefix: str, count: int) -> None:
    for i in range(count):
        client.doc.get("m", type=Map)[f"{prefix}{i}"] = i
        await client.flush()


@pytest.mark.js
@pytest.mark.asyncio
async def test_stock_clients_on_two_processes_converge_and_see_presence(
    cluster: list[ServerProcess],
) -> None:
    a_server, b_server = cluster
    async with JsClientGroup() as group:
        a = await group.start(version=2)
        b = await group.start(version=3)
        a_id = await a.connect(a_server.ws_url, ROOM)
        b_id = await b.connect(b_server.ws_url, ROOM)
        await a.wait_synced()
        await b.wait_synced()
        await asyncio.gather(
            *(a.edit(map_set("m", f"a{i}", i)) for i in range(20)),
            *(b.edit(map_set("m", f"b{i}", i)) for i in range(20)),
        )
        expected = {**{f"a{i}": i for i in range(20)}, **{f"b{i}": i for i in range(20)}}
        await a.wait_for({"m": expected}, roots={"m": "map"})
        await b.wait_for({"m": expected}, roots={"m": "map"})
        await a.set_awareness({"user": {"name": "on A"}})
        await b.wait_awareness(a_id, field=["user", "name"], equals="on A")
        await b.set_awareness({"user": {"name": "on B"}})
        await a.wait_awareness(b_id, field=["user", "name"], equals="on B")
        # A client leaving one process disappears from the other's presence.
        await a.destroy()
        await b.wait_awareness(a_id, present=False)


@pytest.mark.asyncio
async def test_a_dead_process_leaves_no_ghost_presence(cluster: list[ServerProcess]) -> None:
    a_server, b_server = cluster
    async with YClient(a_server.ws_url, ROOM) as a, YClient(b_server.ws_url, ROOM) as b:
        await a.wait(a.synced.is_set)
        await b.wait(b.synced.is_set)
        await a.set_awareness({"user": {"name": "doomed"}})
        await b.wait(lambda: a.doc.client_id in b.awareness)
        await a_server.kill()
        await b.wait(lambda: a.doc.client_id not in b.awareness, timeout=15)


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_redis_restart_mid_editing_loses_nothing(
    cluster: list[ServerProcess], redis_server: RedisProcess
) -> None:
    a_server, b_server = cluster
    async with YClient(a_server.ws_url, ROOM) as a, YClient(b_server.ws_url, ROOM) as b:
        await a.wait(a.synced.is_set)
        await b.wait(b.synced.is_set)
        writing = asyncio.gather(write(a, "a", 150), write(b, "b", 150))
        await b.wait(lambda: any(k.startswith("a") for k in keys(b, "doc")))
        await redis_server.stop()
        await asyncio.sleep(0.3)  # the outage itself is the experiment
        await redis_server.start()
        await writing
        await a.wait(a.is_confirmed, timeout=30)
        await b.wait(b.is_confirmed, timeout=30)
        everything = {f"a{i}" for i in range(150)} | {f"b{i}" for i in range(150)}
        await a.wait(lambda: keys(a, "doc") == everything, timeout=30)
        await b.wait(lambda: keys(b, "doc") == everything, timeout=30)
    for server in cluster:
        async with YClient(server.ws_url, ROOM) as fresh:
            await fresh.wait(lambda: keys(fresh, "doc") == everything)  # noqa: B023


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_sigkill_of_one_process_its_clients_move_and_lose_nothing(
    cluster: list[ServerProcess],
) -> None:
    a_server, b_server = cluster
    async with YClient(a_server.ws_url, ROOM) as a, YClient(b_server.ws_url, ROOM) as b:
        await a.wait(a.synced.is_set)
        await b.wait(b.synced.is_set)
        writing = asyncio.gather(write(a, "a", 200), write(b, "b", 200), return_exceptions=True)
        await b.wait(lambda: len(keys(b, "doc")) > 50)
        await a_server.kill()
        await writing
        echoed = keys(a)  # what A's server acknowledged before it died
        await a.close()
        # The client reconnects through the load balancer to the surviving process.
        moved = YClient(b_server.ws_url, ROOM)
        moved.doc.apply_update(a.doc.get_update())
        async with moved:
            await moved.flush()
            await b.wait(b.is_confirmed)
            local = keys(moved, "doc")
            await b.wait(lambda: keys(b, "doc") >= local, timeout=20)
            assert echoed <= keys(b, "doc")
            await moved.wait(lambda: keys(moved, "doc") == keys(b, "doc"), timeout=20)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_dropped_bus_messages_are_repaired_from_the_store(
    cluster: list[ServerProcess], redis_server: RedisProcess
) -> None:
    a_server, b_server = cluster
    async with YClient(a_server.ws_url, ROOM) as a, YClient(b_server.ws_url, ROOM) as b:
        await a.wait(a.synced.is_set)
        await b.wait(b.synced.is_set)
        # 1. A commit nobody hears of (its process died between commit and publish): a
        #    third writer appends straight to the shared store.
        ghost: Doc[Any] = Doc()
        ghost.get("m", type=Map)["ghost"] = "committed, never published"
        store = SqliteStore(a_server.data_dir / "crdt.sqlite3")
        await store.open()
        try:
            await store.append([NewUpdate(ROOM, ghost.get_update(), "dead-process")])
        finally:
            await store.close()
        # The next published commit reveals the gap; both processes repair it.
        await write(a, "after", 1)
        await a.wait(lambda: "ghost" in keys(a, "doc"), timeout=10)
        await b.wait(lambda: "ghost" in keys(b, "doc"), timeout=10)

        # 2. The bus drops B's subscription (as Redis does to a slow subscriber): B
        #    reconnects and catches up with what it missed meanwhile.
        admin = redis.Redis.from_url(redis_server.url)
        try:
            await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        finally:
            await admin.aclose()
        await write(a, "during", 20)
        await b.wait(lambda: {f"during{i}" for i in range(20)} <= keys(b, "doc"), timeout=15)


@pytest.mark.asyncio
async def test_revocation_and_deletion_reach_every_process(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    secret = "cluster-test-secret-of-at-least-32-bytes"
    env = {
        "CRDT_SERVER_REDIS_URL": redis_server.url,
        "CRDT_SERVER_AUTH_SECRET": secret,
        "CRDT_SERVER_ADMIN_API_KEY": "admin",
    }
    codec = TokenCodec(algorithms=["HS256"], secret=secret.encode())
    eve = codec.mint(sub="eve", role="planner", wedding="w5", ttl=600)
    bob = codec.mint(sub="bob", role="planner", wedding="w5", ttl=600)
    servers = [ServerProcess(tmp_path / "data", env=env, anonymous=False) for _ in range(2)]
    for server in servers:
        await server.start()
    try:
        a_server, b_server = servers
        async with (
            YClient(b_server.ws_url, ROOM, token=eve) as eve_b,
            YClient(b_server.ws_url, ROOM, token=bob) as bob_b,
            YClient(a_server.ws_url, "w5/budget", token=bob) as bob_a,
        ):
            for client in (eve_b, bob_b, bob_a):
                await client.wait(client.synced.is_set)
            admin = {"Authorization": "Bearer admin"}
            async with httpx.AsyncClient(base_url=a_server.url) as http:
                revoked = await http.post("/api/admin/revoke", json={"sub": "eve"}, headers=admin)
                assert revoked.status_code == 200
                await eve_b.wait(eve_b.closed.is_set)
                assert eve_b.close_code == 4401
                assert not bob_b.closed.is_set()
                deleted = await http.delete("/api/weddings/w5", headers=admin)
                assert deleted.status_code == 200
            await bob_b.wait(bob_b.closed.is_set)
            await bob_a.wait(bob_a.closed.is_set)
            assert bob_b.close_code == bob_a.close_code == 4404
    finally:
        for server in servers:
            await server.stop()


@pytest.mark.asyncio
async def test_serve_with_workers(tmp_path: Path, redis_server: RedisProcess) -> None:
    server = ServerProcess(
        tmp_path / "data", args=["--workers", "2", "--redis-url", redis_server.url]
    )
    async with server:
        clients = [YClient(server.ws_url, ROOM) for _ in range(6)]
        for client in clients:
            await client.connect()
        try:
            for i, client in enumerate(clients):
                await write(client, f"c{i}-", 3)
            everything = {f"c{i}-{j}" for i in range(6) for j in range(3)}
            for client in clients:
                await client.wait(lambda c=client: keys(c, "doc") == everything, timeout=15)
        finally:
            for client in clients:
                await client.close()


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_two_hosts_on_postgresql(
    tmp_path: Path, redis_server: RedisProcess, postgres_url: str
) -> None:
    """The several-hosts deployment: separate data dirs, one PostgreSQL, one Redis."""
    env = {"CRDT_SERVER_REDIS_URL": redis_server.url, "CRDT_SERVER_DATABASE_URL": postgres_url}
    servers = [ServerProcess(tmp_path / f"host{i}", env=env) for i in range(2)]
    for server in servers:
        await server.start()
    try:
        a_server, b_server = servers
        async with YClient(a_server.ws_url, ROOM) as a, YClient(b_server.ws_url, ROOM) as b:
            await a.wait(a.synced.is_set)
            await b.wait(b.synced.is_set)
            await asyncio.gather(write(a, "a", 40), write(b, "b", 40))
            everything = {f"a{i}" for i in range(40)} | {f"b{i}" for i in range(40)}
            await a.wait(lambda: keys(a, "doc") == everything, timeout=20)
            await b.wait(lambda: keys(b, "doc") == everything, timeout=20)
            await a.wait(a.is_confirmed)
        await a_server.kill()
        async with YClient(b_server.ws_url, ROOM) as late:
            await late.wait(lambda: keys(late, "doc") == everything, timeout=20)
    finally:
        for server in servers:
            await server.stop()
