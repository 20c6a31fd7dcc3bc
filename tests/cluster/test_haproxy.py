"""Several hosts behind HAProxy: deploy/haproxy.cfg, as shipped, in front of two server
processes on one PostgreSQL store and one Redis (scripts/setup-haproxy installs Debian's
haproxy). Every connection of a wedding reaches one process; when it dies its clients
reconnect to the other and converge; when it is back, the wedding's connections are split
across both and converge through the bus."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from tests.cluster.conftest import RedisProcess
from tests.jsclient import JsClient, JsClientGroup, map_set
from tests.server import ServerProcess
from tests.wire.test_wire import fresh_room, refusal, ws_connect

ROOT = Path(__file__).resolve().parents[2]
HAPROXY = os.environ.get("CRDT_SERVER_HAPROXY", "/usr/sbin/haproxy")
WEDDING = "ha-wedding"
ROOM = f"{WEDDING}/guests"
CLIENT = "127.0.0.2"  # a client on another loopback address than the proxy's


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HaProxy:
    """``haproxy -f deploy/haproxy.cfg`` on an ephemeral port, plus a stats socket (a
    second file) through which the test reads which servers HAProxy holds up."""

    def __init__(self, tmp_path: Path, servers: list[ServerProcess]) -> None:
        self.port = _free_port()
        self.stats = tmp_path / "haproxy.sock"
        self.extra = tmp_path / "stats.cfg"
        self.extra.write_text(f"global\n    stats socket {self.stats} mode 600 level user\n")
        self.env = {
            **os.environ,
            "CRDT_BIND": f"127.0.0.1:{self.port}",
            **{f"CRDT_SERVER_{i + 1}": f"127.0.0.1:{s.port}" for i, s in enumerate(servers)},
        }
        self.process: asyncio.subprocess.Process | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/sync"

    async def start(self) -> None:
        if not os.access(HAPROXY, os.X_OK):
            pytest.fail(f"no haproxy at {HAPROXY} (scripts/setup-haproxy installs it)")
        self.process = await asyncio.create_subprocess_exec(
            HAPROXY,
            "-db",
            "-f",
            str(ROOT / "deploy" / "haproxy.cfg"),
            "-f",
            str(self.extra),
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()

    async def status(self) -> dict[str, str]:
        """``by_wedding``'s servers: name -> UP / DOWN / ... (``show stat``)."""
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.stats))
        except OSError:
            return {}
        try:
            writer.write(b"show stat\n")
            await writer.drain()
            text = (await reader.read()).decode()
        finally:
            writer.close()
        found = {}
        for line in text.splitlines():
            cells = line.split(",")
            if len(cells) > 17 and cells[0] == "by_wedding" and cells[1] in ("s1", "s2"):
                found[cells[1]] = cells[17]
        return found

    async def wait_up(self, servers: set[str], timeout: float = 30) -> None:
        """Until exactly ``servers`` are UP."""
        deadline = time.monotonic() + timeout
        while True:
            status = await self.status()
            if {name for name, state in status.items() if state.startswith("UP")} == servers:
                if not any(s.startswith("UP") for n, s in status.items() if n not in servers):
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"haproxy: {status}")
            await asyncio.sleep(0.1)  # HAProxy's checks: nothing to wait on


@pytest_asyncio.fixture
async def hosts(
    tmp_path: Path, redis_server: RedisProcess, postgres_url: str
) -> AsyncIterator[tuple[list[ServerProcess], HaProxy]]:
    env = {"CRDT_SERVER_REDIS_URL": redis_server.url, "CRDT_SERVER_DATABASE_URL": postgres_url}
    servers = [ServerProcess(tmp_path / f"host{i}", env=env) for i in range(2)]
    proxy: HaProxy | None = None
    try:
        for server in servers:
            await server.start()
        proxy = HaProxy(tmp_path, servers)
        await proxy.start()
        await proxy.wait_up({"s1", "s2"})
        yield servers, proxy
    finally:
        if proxy is not None:
            await proxy.stop()
        for server in servers:
            await server.stop()


async def sync_connections(server: ServerProcess) -> float:
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        text = (await http.get("/metrics")).text
    match = re.search(r'^crdt_sync_connections_total\{worker="0"\} ([0-9.e+]+)$', text, re.M)
    assert match, text
    return float(match.group(1))


async def connect(group: JsClientGroup, proxy: HaProxy, count: int) -> list[JsClient]:
    clients = [await group.start() for _ in range(count)]
    for client in clients:
        await client.connect(proxy.ws_url, ROOM, max_backoff_time=500)
    for client in clients:
        await client.wait_synced(timeout=20)
    return clients


async def converge(clients: list[JsClient], expected: dict[str, int]) -> None:
    for client in clients:
        await client.wait_for({"m": expected}, roots={"m": "map"}, timeout=40)


@pytest.mark.js
@pytest.mark.asyncio
@pytest.mark.timeout(180)
async def test_one_wedding_one_process_failover_and_back_through_haproxy(
    hosts: tuple[list[ServerProcess], HaProxy],
) -> None:
    servers, proxy = hosts
    async with JsClientGroup() as group:
        first = await connect(group, proxy, 10)
        counts = [await sync_connections(s) for s in servers]
        # Every connection of the wedding reached one process.
        assert sorted(counts) == [0, 10], counts
        home = counts.index(10)
        other = servers[1 - home]
        await asyncio.gather(*(c.edit(map_set("m", f"a{i}", i)) for i, c in enumerate(first)))
        expected = {f"a{i}": i for i in range(10)}
        await converge(first, expected)

        # The process dies: its clients reconnect through HAProxy to the other one.
        await servers[home].kill()
        await asyncio.gather(*(c.edit(map_set("m", f"b{i}", i)) for i, c in enumerate(first)))
        expected |= {f"b{i}": i for i in range(10)}
        await converge(first, expected)
        assert await sync_connections(other) >= 10

        # It comes back: new connections of the wedding go to it again, the first ten stay
        # where they are; split across two processes, they converge through the bus.
        await servers[home].start()
        await proxy.wait_up({"s1", "s2"})
        second = await connect(group, proxy, 5)
        assert await sync_connections(servers[home]) == 5
        everyone = first + second
        await asyncio.gather(*(c.edit(map_set("m", f"c{i}", i)) for i, c in enumerate(everyone)))
        expected |= {f"c{i}": i for i in range(15)}
        await converge(everyone, expected)


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_wedding_routes_go_to_one_server_and_the_rest_to_any(
    hosts: tuple[list[ServerProcess], HaProxy],
) -> None:
    servers, proxy = hosts
    routes = ("/healthz", "/api/weddings/{wedding_id}/presence")
    before = [await _requests(s, routes) for s in servers]
    for _ in range(20):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{proxy.port}") as http:
            assert (await http.get("/healthz")).status_code == 200
            presence = await http.get(f"/api/weddings/{WEDDING}/presence")
            assert presence.status_code == 200, presence.text
    after = [await _requests(s, routes) for s in servers]
    healthz = [a["/healthz"] - b["/healthz"] for a, b in zip(after, before, strict=True)]
    assert all(n > 0 for n in healthz) and sum(healthz) == 20, healthz
    wedding = [a[routes[1]] - b[routes[1]] for a, b in zip(after, before, strict=True)]
    assert sorted(wedding) == [0, 20], wedding
    # The app's one socket per wedding (/collab/{wedding}) lands where the wedding's other
    # routes do; a bare /collab (documents of any wedding) on any server.
    owner = servers[wedding.index(20)]
    sockets = [await sync_connections(s) for s in servers]
    for _ in range(6):
        async with await ws_connect(proxy.port, f"/collab/{WEDDING}") as socket:
            await socket.send_close(1000)
            assert (await socket.read_close())[0] == 1000
    landed = [await sync_connections(s) - n for s, n in zip(servers, sockets, strict=True)]
    assert landed[servers.index(owner)] == 6 and sum(landed) == 6, landed


async def _requests(server: ServerProcess, routes: tuple[str, ...]) -> dict[str, float]:
    """Requests the server answered, per route template (its access counter)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        text = (await http.get("/metrics")).text
    found = dict.fromkeys(routes, 0.0)
    for m in re.finditer(
        r'^crdt_http_requests_total\{[^}]*route="([^"]+)"[^}]*\} ([0-9.e+]+)$', text, re.M
    ):
        if m.group(1) in found:
            found[m.group(1)] += float(m.group(2))
    return found


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_forged_forwarded_for_line_does_not_escape_the_per_address_limit(
    tmp_path: Path,
) -> None:
    """HAProxy adds its own X-Forwarded-For line after any the client sent (issue 47): the
    server, trusting the proxy, counts the address the proxy saw, so a client that forges a
    new first line on every upgrade is still one address. The client connects from
    127.0.0.2, so that it is not the trusted proxy's own address."""
    env = {
        "CRDT_SERVER_MAX_CONNECTIONS_PER_ADDRESS": "1",
        "CRDT_SERVER_TRUSTED_PROXIES": "127.0.0.1",
    }
    async with ServerProcess(tmp_path / "data", env=env) as server:
        proxy = HaProxy(tmp_path, [server, server])
        await proxy.start()
        try:
            await proxy.wait_up({"s1", "s2"})
            async with await ws_connect(
                proxy.port, fresh_room(), {"X-Forwarded-For": "192.0.2.1"}, source=CLIENT
            ) as first:
                await first.greeting()
                response, body = await refusal(
                    proxy.port, fresh_room(), {"X-Forwarded-For": "192.0.2.2"}, source=CLIENT
                )
                assert response.status == 429, (response, body)
        finally:
            await proxy.stop()


def test_the_deployment_docs_show_the_configuration_that_is_tested() -> None:
    readme = (ROOT / "deploy" / "README.md").read_text()
    section = readme.split("## Several hosts behind HAProxy", 1)[1]
    excerpt = section.split("```", 2)[1]
    shipped = {line.strip() for line in (ROOT / "deploy" / "haproxy.cfg").read_text().splitlines()}
    for line in excerpt.splitlines():
        assert not line.strip() or line.strip() in shipped, line
