"""``serve --workers N``: our supervisor (stable worker indices, restarts, clean stop) and
worker affinity (every connection of a wedding served by its owner worker, handed over with
SCM_RIGHTS by the worker that accepted it), on real processes, real Redis, real clients."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pycrdt import Doc, Map
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidMessage

from crdt_server.auth.tokens import TokenCodec
from crdt_server.codec.protocol import (
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_sync_step1,
    encode_update,
    read_var_string,
    write_var_string,
)
from crdt_server.settings import Settings
from crdt_server.wire.affinity import owner
from tests.cluster.conftest import Listener, RedisProcess
from tests.jsclient import JsClient, JsClientGroup, map_set
from tests.server import ServerProcess
from tests.yclient import YClient

SHUTDOWN_SECONDS = Settings().shutdown_timeout_seconds

_INDEX = re.compile(rb"--index=(\d+)")
_RUN_DIR = re.compile(rb"--run-dir=([^\0]+)")
_WORKER = re.compile(r'^crdt_sync_connections_total\{worker="(\d+)"\} ([0-9.e+]+)$', re.M)


def workers(server: ServerProcess) -> dict[int, int]:
    """The supervisor's worker processes: index -> pid (from their command lines)."""
    assert server.process is not None
    pid = server.process.pid
    found: dict[int, int] = {}
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        match = _INDEX.search(cmdline)
        if match:
            found[int(match.group(1))] = int(child)
    return found


async def wait_workers(
    server: ServerProcess, count: int, *, not_pid: int | None = None, timeout: float = 30
) -> dict[int, int]:
    """Worker processes, once ``count`` run (and none has pid ``not_pid``)."""
    deadline = time.monotonic() + timeout
    while True:
        found = workers(server)
        if len(found) == count and not_pid not in found.values():
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"workers: {found}\n{server.log_text()}")
        await asyncio.sleep(0.05)  # a process table: nothing to wait on


def run_dir_of(pid: int) -> Path:
    match = _RUN_DIR.search(Path(f"/proc/{pid}/cmdline").read_bytes())
    assert match
    return Path(match.group(1).decode())


def metric(text: str, name: str, labels: str = "") -> float:
    """One sample of a scrape (0 when absent)."""
    match = re.search(rf"^{re.escape(name + labels)} ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def scrape_each_worker(server: ServerProcess, count: int, timeout: float = 30) -> list[str]:
    """``/metrics`` of every worker: scraped on new connections (the kernel gives each to
    one worker) until every worker index has answered; its latest scrape each."""
    seen: dict[int, str] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < count:
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
            text = (await http.get("/metrics")).text
        match = _WORKER.search(text)
        assert match, text
        seen[int(match.group(1))] = text
        if time.monotonic() > deadline:
            raise TimeoutError(f"only workers {sorted(seen)} answered /metrics")
    return [seen[i] for i in range(count)]


def served(texts: list[str]) -> list[float]:
    """Sync connections admitted by each worker."""
    return [
        metric(text, "crdt_sync_connections_total", f'{{worker="{i}"}}')
        for i, text in enumerate(texts)
    ]


def wedding_owned_by(index: int, count: int = 2) -> str:
    return next(w for w in (f"aff{i}" for i in range(1000)) if owner(w, count) == index)


@pytest.fixture
def two_workers(tmp_path: Path, redis_server: RedisProcess) -> ServerProcess:
    return ServerProcess(
        tmp_path / "data",
        args=["--workers", "2", "--redis-url", redis_server.url],
        env={"CRDT_SERVER_WEBSOCKET_PING_SECONDS": "2"},
    )


def test_owner_is_a_stable_rendezvous_hash() -> None:
    weddings = [f"w{i}" for i in range(2000)]
    two = [owner(w, 2) for w in weddings]
    assert {0, 1} == set(two) and 800 < two.count(0) < 1200
    three = [owner(w, 3) for w in weddings]
    # A third worker takes weddings only for itself: no wedding moves between 0 and 1.
    assert all(t == 2 or t == o for o, t in zip(two, three, strict=True))
    assert owner("anything", 1) == 0


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_a_dead_worker_comes_back_with_its_index_and_sigterm_stops_all(
    two_workers: ServerProcess,
) -> None:
    server = two_workers
    await server.start()
    try:
        before = await wait_workers(server, 2)
        run_dir = run_dir_of(before[0])
        os.kill(before[1], signal.SIGKILL)
        after = await wait_workers(server, 2, not_pid=before[1])
        assert after[0] == before[0]
        assert after[1] != before[1]
        # The new worker 1 serves, under its index.
        texts = await scrape_each_worker(server, 2)
        assert [_WORKER.search(t).group(1) for t in texts] == ["0", "1"]  # type: ignore[union-attr]
    finally:
        # Past the supervisor's own bound (each worker's shutdown timeout, then SIGKILL):
        # a worker slow to flush on a loaded machine is within the contract, a stuck one
        # is not (its own timer would say so in the log).
        code = await server.stop(signal.SIGTERM, timeout=SHUTDOWN_SECONDS + 15)
    assert code == 0, server.log_text()
    assert "did not finish in time" not in server.log_text()
    assert "did not stop in time" not in server.log_text()
    assert all(_gone(pid) for pid in after.values())
    assert not run_dir.exists(), "the run directory outlived the server"
    assert "exited with -9; starting it again" in server.log_text()


def _gone(pid: int) -> bool:
    """The process has exited (reaped, or a zombie of a supervisor that is gone too)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_control_sockets_are_private(two_workers: ServerProcess) -> None:
    server = two_workers
    async with server:
        pids = await wait_workers(server, 2)
        await scrape_each_worker(server, 2)  # both started: both listen
        # The run directory is the supervisor's: 0700, two sockets (0600) per worker index:
        # hand-offs (w) and proxied HTTP requests (h).
        run_dir = run_dir_of(pids[0])
        assert sorted(p.name for p in run_dir.iterdir()) == ["h0", "h1", "w0", "w1"]
        assert run_dir.stat().st_mode & 0o777 == 0o700
        for name in ("w0", "w1", "h0", "h1"):
            assert (run_dir / name).stat().st_mode & 0o777 == 0o600
        assert len(str(run_dir / "w99")) < 108
        # A peer of the same uid may connect (SO_PEERCRED checked); nothing here can be
        # handed a socket by anyone else, since nobody else can enter the directory.
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as peer:
            peer.connect(str(run_dir / "w0"))
            # A hand-off that is not a TCP socket is dropped, not adopted.
            r, w = os.pipe()
            try:
                socket.send_fds(peer, [b"GET / HTTP/1.1\r\n\r\n"], [r])
            finally:
                os.close(r)
                os.close(w)
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/healthz")).status_code == 200
    assert "dropped a hand-off that is not a TCP socket" in server.log_text()


async def _connect_all(
    group: JsClientGroup, server: ServerProcess, room: str, count: int
) -> list[JsClient]:
    clients = [await group.start() for _ in range(count)]
    for client in clients:
        await client.connect(server.ws_url, room, max_backoff_time=300)
    for client in clients:
        await client.wait_synced()
    return clients


@pytest.mark.js
@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_a_weddings_connections_all_land_on_its_owner(
    two_workers: ServerProcess, listener: Listener
) -> None:
    server = two_workers
    wedding = "aff-one"
    home = owner(wedding, 2)
    async with server, JsClientGroup() as group:
        await wait_workers(server, 2)
        await scrape_each_worker(server, 2)
        clients = await _connect_all(group, server, f"{wedding}/guests", 10)
        texts = await scrape_each_worker(server, 2)
        # The kernel gave some of them to the other worker, which handed them over;
        # a few more probes when it happened to give none.
        probes = 0
        handed_off = ("crdt_connections_handed_off_total", f'{{owner="{home}"}}')
        while metric(texts[1 - home], *handed_off) == 0:
            probes += 1
            assert probes < 60, "the other worker never accepted a connection"
            async with YClient(server.ws_url, f"{wedding}/guests") as probe:
                await probe.wait(probe.synced.is_set)
            texts = await scrape_each_worker(server, 2)
        assert served(texts)[home] == 10 + probes
        assert served(texts)[1 - home] == 0
        handed = metric(texts[1 - home], *handed_off)
        assert metric(texts[home], "crdt_connections_adopted_total") == handed
        assert metric(texts[1 - home], "crdt_rooms_loaded") == 0
        assert metric(texts[1 - home], "crdt_connections_served_off_owner_total") == 0
        await asyncio.gather(*(c.edit(map_set("m", f"c{i}", i)) for i, c in enumerate(clients)))
        expected = {f"c{i}": i for i in range(10)}
        for client in clients:
            await client.wait_for({"m": expected}, roots={"m": "map"}, timeout=20)
        # Its room is open in its owner only: none of its updates crossed the bus.
        assert f"{wedding}/guests" not in await listener.drain()


class CollabSocket:
    """A raw Hocuspocus socket on ``/collab/{wedding_id}`` (anonymous: an empty token per
    document), each attached document mirrored into a pycrdt ``Doc`` (root map ``m``)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.docs: dict[str, Doc[Any]] = {}
        self.synced: set[str] = set()
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, server: ServerProcess, wedding: str, names: list[str]) -> CollabSocket:
        ws = await connect(f"ws://127.0.0.1:{server.port}/collab/{wedding}")
        sock = cls(ws)
        for name in names:
            sock.docs[name] = Doc()
            await ws.send(write_var_string(name) + b"\x02\x00" + write_var_string(""))
            await ws.send(write_var_string(name) + encode_sync_step1(b"\x00"))
        return sock

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in self.ws:
                assert isinstance(frame, bytes)
                if frame == b"\x09":
                    continue
                key, pos = read_var_string(frame, 0)
                if key in self.docs and frame[pos] == 0:  # y-protocols sync
                    message = decode_message(frame[pos:])
                    if isinstance(message, SyncStep2 | SyncUpdate):
                        self.docs[key].apply_update(message.update)
                        if isinstance(message, SyncStep2):
                            self.synced.add(key)
                self._changed.set()

    async def set(self, name: str, key: str, value: int) -> None:
        doc = self.docs[name]
        before = doc.get_state()
        doc.get("m", type=Map)[key] = value
        await self.ws.send(write_var_string(name) + encode_update(doc.get_update(before)))

    def value(self, name: str) -> dict[str, object]:
        return dict(self.docs[name].get("m", type=Map).to_py() or {})

    async def wait_synced(self, timeout: float = 20.0) -> None:
        """Wait until every attached document had its step 2; deadline-bound."""
        await self._wait(lambda: self.synced == set(self.docs), timeout)

    async def wait_values(
        self, expected: dict[str, dict[str, object]], timeout: float = 20.0
    ) -> None:
        """Wait until each document's root map is ``expected[name]``; deadline-bound."""
        await self._wait(lambda: all(self.value(n) == v for n, v in expected.items()), timeout)

    async def _wait(self, predicate: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def close(self) -> None:
        await self.ws.close()
        await self._reader


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_a_weddings_collab_sockets_all_land_on_its_owner(
    two_workers: ServerProcess,
) -> None:
    """``/collab/{wedding_id}`` (the app's Hocuspocus socket) is handed to the wedding's
    owner at the upgrade, as ``/sync`` is: every socket of one wedding, with all its
    documents, is served there, and the other worker loads none of its rooms."""
    server = two_workers
    wedding = "aff-collab"
    home = owner(wedding, 2)
    names = [f"{wedding}/timeline", f"{wedding}/guests"]
    sockets: list[CollabSocket] = []
    async with server:
        try:
            await wait_workers(server, 2)
            await scrape_each_worker(server, 2)
            for _ in range(10):
                sockets.append(await CollabSocket.open(server, wedding, names))
            for sock in sockets:
                await sock.wait_synced()
            texts = await scrape_each_worker(server, 2)
            # The kernel gave some of them to the other worker, which handed them over;
            # a few more when it happened to give none.
            probes = 0
            handed_off = ("crdt_connections_handed_off_total", f'{{owner="{home}"}}')
            while metric(texts[1 - home], *handed_off) == 0:
                probes += 1
                assert probes < 60, "the other worker never accepted a connection"
                probe = await CollabSocket.open(server, wedding, names[:1])
                sockets.append(probe)
                await probe.wait_synced()
                texts = await scrape_each_worker(server, 2)
            assert served(texts)[home] == 10 + probes
            assert served(texts)[1 - home] == 0
            handed = metric(texts[1 - home], *handed_off)
            assert metric(texts[home], "crdt_connections_adopted_total") == handed
            assert metric(texts[1 - home], "crdt_rooms_loaded") == 0
            assert metric(texts[1 - home], "crdt_connections_served_off_owner_total") == 0
            for i, sock in enumerate(sockets[:10]):
                await sock.set(names[i % 2], f"c{i}", i)
            expected: dict[str, dict[str, object]] = {
                names[0]: {f"c{i}": i for i in range(0, 10, 2)},
                names[1]: {f"c{i}": i for i in range(1, 10, 2)},
            }
            for sock in sockets[:10]:
                await sock.wait_values(expected)
        finally:
            await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)


async def _edit_loop(client: JsClient, prefix: str, count: int) -> None:
    for j in range(count):
        await client.edit(map_set("m", f"{prefix}{j}", j))


@pytest.mark.js
@pytest.mark.asyncio
@pytest.mark.timeout(150)
async def test_killing_the_owner_mid_edit_loses_nothing_and_it_takes_its_index_back(
    two_workers: ServerProcess,
) -> None:
    server = two_workers
    wedding = wedding_owned_by(1)
    room = f"{wedding}/guests"
    async with server, JsClientGroup() as group:
        pids = await wait_workers(server, 2)
        await scrape_each_worker(server, 2)
        clients = await _connect_all(group, server, room, 10)
        await clients[0].set_awareness({"user": {"name": "zero"}})
        await clients[9].wait_awareness(clients[0].client_id, field=["user", "name"], equals="zero")
        writer = YClient(server.ws_url, room)
        await writer.connect()
        await writer.wait(writer.synced.is_set)
        editing = asyncio.gather(*(_edit_loop(c, f"c{i}-", 40) for i, c in enumerate(clients)))
        written: list[str] = []
        for j in range(20):
            writer.doc.get("m", type=Map)[f"y{j}"] = j
            written.append(f"y{j}")
            await writer.flush()
        await writer.wait(writer.is_confirmed)
        os.kill(pids[1], signal.SIGKILL)  # the owner, mid-edit
        acknowledged = set(writer.confirmed.get("m", type=Map).to_py() or {})
        assert set(written) <= acknowledged
        await editing
        await writer.close()
        # The writer comes back (to whichever worker now serves the wedding) with its doc.
        again = YClient(server.ws_url, room)
        again.doc.apply_update(writer.doc.get_update())
        await _reconnect(again)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(again.close)
            await again.wait(again.synced.is_set, timeout=20)
            expected = {f"c{i}-{j}": j for i in range(10) for j in range(40)}
            expected.update({f"y{j}": j for j in range(20)})
            for client in clients:
                await client.wait_for({"m": expected}, roots={"m": "map"}, timeout=40)
            got = again.doc.get("m", type=Map).to_py() or {}
            await again.wait(
                lambda: set(again.doc.get("m", type=Map).to_py() or {}) >= set(expected),
                timeout=20,
            )
            assert acknowledged <= set(got) | set(expected)
        # Presence after the failover, whichever workers the clients came back to.
        await clients[0].set_awareness({"user": {"name": "zero again"}})
        await clients[9].wait_awareness(
            clients[0].client_id, field=["user", "name"], equals="zero again", timeout=20
        )
        await clients[0].destroy()
        # At once, not when it expires: a late echo of its state from another client
        # (stock clients relay every awareness change) does not bring it back.
        await clients[9].wait_awareness(clients[0].client_id, present=False, timeout=10)
        # The supervisor started worker 1 again; it owns the wedding again: a new
        # connection of it lands there.
        await wait_workers(server, 2, not_pid=pids[1])
        texts = await scrape_each_worker(server, 2)
        before = served(texts)[1]
        async with YClient(server.ws_url, room) as late:
            await late.wait(
                lambda: set(late.doc.get("m", type=Map).to_py() or {}) >= set(expected),
                timeout=20,
            )
            texts = await scrape_each_worker(server, 2)
            assert served(texts)[1] == before + 1


async def _reconnect(client: YClient, attempts: int = 5) -> None:
    """Connect as a stock provider does while a worker is replaced: a connection closed
    before the upgrade's answer (it reached the failover's window) is tried again, with a
    growing backoff, a few times."""
    for attempt in range(attempts):
        try:
            await client.connect()
            return
        except (InvalidMessage, OSError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))


async def _upgrade(server: ServerProcess, path: str, *, version: str = "13") -> bytes:
    """One raw upgrade request; the status line of the answer (within 10 s: never hangs)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}"
            "\r\n\r\n".encode()
        )
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_handed_off_upgrades_run_the_owners_gate_and_never_hang(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    secret = "s" * 40
    server = ServerProcess(
        tmp_path / "data",
        args=["--workers", "2", "--redis-url", redis_server.url],
        env={"CRDT_SERVER_AUTH_SECRET": secret, "CRDT_SERVER_MAX_UPGRADES_PER_SECOND": "1000"},
        anonymous=False,
    )
    wedding = "aff-gate"
    home = owner(wedding, 2)
    codec = TokenCodec(algorithms=["HS256"], secret=secret.encode())
    token = codec.mint(sub="ann", role="planner", wedding=wedding, ttl=600)
    async with server:
        await wait_workers(server, 2)
        texts = await scrape_each_worker(server, 2)
        rounds = 0
        handed_off = ("crdt_connections_handed_off_total", f'{{owner="{home}"}}')
        while rounds < 10 or metric(texts[1 - home], *handed_off) == 0:
            rounds += 1
            assert rounds < 100, "the other worker never accepted a connection"
            base = f"/sync/{wedding}/guests"
            assert (await _upgrade(server, base)).startswith(b"HTTP/1.1 401 ")
            assert (await _upgrade(server, f"{base}?token={token}")).startswith(b"HTTP/1.1 101 ")
            refused = await _upgrade(server, f"{base}?token={token}", version="8")
            assert refused.startswith(b"HTTP/1.1 426 ")
            texts = await scrape_each_worker(server, 2)
        refusals = [
            metric(text, "crdt_upgrades_refused_total", f'{{status="{status}"}}')
            for text in texts
            for status in ("401", "426")
        ]
        # Every refusal and every admission was the owner's, handed-over sockets included.
        assert refusals[home * 2 : home * 2 + 2] == [rounds, rounds]
        assert refusals[(1 - home) * 2 : (1 - home) * 2 + 2] == [0, 0]
        assert served(texts) == ([rounds, 0] if home == 0 else [0, rounds])
