"""``serve --workers N``: a wedding's HTTP requests are served by its owner worker.

The worker that accepted an HTTP connection proxies each request naming a wedding another
worker owns to that owner over its control socket (crdt_server/wire/proxy.py), one request
at a time: a kept-alive connection may carry requests of several weddings. Proved with the
workers' metrics (proxied, adopted, rooms loaded), on real processes, real Redis, real
clients: plain requests, an SSE stream, two weddings on one connection, and a stopped
owner, whose requests the accepting worker serves itself once the hand-off deadline passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from crdt_server.auth.tokens import TokenCodec
from tests.cluster.conftest import RedisProcess
from tests.cluster.test_workers import metric, scrape_each_worker, wait_workers, wedding_owned_by
from tests.server import ServerProcess

SECRET = "workers-http-secret-at-least-32-bytes!"
CODEC = TokenCodec(algorithms=["HS256"], secret=SECRET.encode())
_HANDOFF = 1.0
"""CRDT_SERVER_HANDOFF_TIMEOUT_SECONDS of these tests."""
_OFF_OWNER = "crdt_http_served_off_owner_total"


def _auth(wedding: str) -> dict[str, str]:
    token = CODEC.mint(sub="ada", role="planner", wedding=wedding, ttl=600)
    return {"Authorization": f"Bearer {token}"}


def _server(tmp_path: Path, redis: RedisProcess, **env: str) -> ServerProcess:
    return ServerProcess(
        tmp_path / "data",
        args=["--workers", "2", "--redis-url", redis.url],
        env={
            "CRDT_SERVER_AUTH_SECRET": SECRET,
            "CRDT_SERVER_HANDOFF_TIMEOUT_SECONDS": str(_HANDOFF),
            "CRDT_SERVER_SSE_HEARTBEAT_SECONDS": "0.5",
            "CRDT_SERVER_RATE_READ_PER_MINUTE": "0",
            "CRDT_SERVER_RATE_WRITE_PER_MINUTE": "0",
            **env,
        },
        anonymous=False,
    )


def _proxied(texts: list[str], to: int) -> float:
    return metric(texts[1 - to], "crdt_http_proxied_total", f'{{owner="{to}"}}')


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_a_weddings_http_requests_are_answered_by_its_owner(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    server = _server(tmp_path, redis_server)
    wedding = wedding_owned_by(1)
    async with server:
        await wait_workers(server, 2)
        texts = await scrape_each_worker(server, 2)
        rounds = 0
        while rounds < 10 or _proxied(texts, 1) == 0:
            rounds += 1
            assert rounds < 100, "worker 0 never accepted a request"
            # A new connection each time: the kernel gives it to either worker.
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                got = await http.get(f"/api/weddings/{wedding}/docs/guests", headers=_auth(wedding))
                assert got.status_code == 200, got.text
                # A refusal is the owner's too (it runs the whole request).
                refused = await http.get(f"/api/weddings/{wedding}/docs/guests")
                assert refused.status_code == 401
            texts = await scrape_each_worker(server, 2)
        proxied = _proxied(texts, 1)
        assert proxied >= 2 and proxied % 2 == 0
        assert metric(texts[1], "crdt_http_adopted_total") == proxied
        # Worker 0 never loaded the wedding's documents: the owner served every request.
        assert metric(texts[0], "crdt_rooms_loaded") == 0
        assert metric(texts[1], "crdt_rooms_loaded") >= 1
        assert metric(texts[0], "crdt_http_served_off_owner_total") == 0
        # Requests naming no wedding are served where they land.
        assert metric(texts[1], "crdt_http_proxied_total", '{owner="0"}') == 0


async def _request(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    """One request on a kept-alive connection, and its whole answer (content-length)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: x", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    found: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        found[name.strip().lower()] = value.strip()
    data = await reader.readexactly(int(found["content-length"]))
    return status, found, data


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_one_kept_alive_connection_carries_two_weddings_requests(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    server = _server(tmp_path, redis_server)
    ours, theirs = wedding_owned_by(0), wedding_owned_by(1)
    async with server:
        await wait_workers(server, 2)
        before = await scrape_each_worker(server, 2)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            async with asyncio.timeout(30):
                for round_ in range(3):
                    for wedding in (ours, theirs, ours):
                        body = json.dumps({"op": "add_guest", "name": f"G{round_}"}).encode()
                        headers = {**_auth(wedding), "Content-Type": "application/json"}
                        status, _, data = await _request(
                            reader,
                            writer,
                            "POST",
                            f"/api/weddings/{wedding}/docs/guests/ops",
                            headers,
                            body,
                        )
                        assert status == 200, data
                        status, found, data = await _request(
                            reader,
                            writer,
                            "GET",
                            f"/api/weddings/{wedding}/docs/guests",
                            _auth(wedding),
                        )
                        assert status == 200, data
                        assert found.get("connection") != "close"
        finally:
            writer.close()
        after = await scrape_each_worker(server, 2)
    # The connection landed on one worker: of its 18 requests (6 of wedding 1, 12 of
    # wedding 0), those of the wedding the other worker owns went to that owner.
    delta = [_proxied(after, to) - _proxied(before, to) for to in (0, 1)]
    adopted = [
        metric(after[i], "crdt_http_adopted_total") - metric(before[i], "crdt_http_adopted_total")
        for i in (0, 1)
    ]
    assert delta in ([0, 6], [12, 0]), delta
    assert adopted == delta
    for i in (0, 1):
        assert metric(after[i], "crdt_http_served_off_owner_total") == 0


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_an_sse_stream_through_the_proxy_delivers_events(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    server = _server(tmp_path, redis_server)
    wedding = wedding_owned_by(1)
    async with server:
        await wait_workers(server, 2)
        texts = await scrape_each_worker(server, 2)
        for attempt in range(60):
            proxied = _proxied(texts, 1)
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                ticket = (
                    await http.post(
                        f"/api/weddings/{wedding}/events/stream-tickets", headers=_auth(wedding)
                    )
                ).json()["ticket"]
            texts = await scrape_each_worker(server, 2)
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                url = f"/api/weddings/{wedding}/events/stream?ticket={ticket}"
                async with http.stream("GET", url) as stream:
                    assert stream.status_code == 200
                    assert stream.headers["content-type"].startswith("text/event-stream")
                    texts = await scrape_each_worker(server, 2)
                    through_proxy = _proxied(texts, 1) > proxied
                    async with httpx.AsyncClient(base_url=server.url, timeout=10) as poster:
                        posted = await poster.post(
                            f"/api/weddings/{wedding}/events",
                            json={"type": "custom.hello", "data": {"n": attempt}},
                            headers=_auth(wedding),
                        )
                        assert posted.status_code == 201, posted.text
                    received: dict[str, Any] = {}
                    async with asyncio.timeout(10):
                        async for line in stream.aiter_lines():
                            if line.startswith("data:"):
                                record = json.loads(line.removeprefix("data:").strip())
                                # A new stream starts with the wedding's stored events:
                                # the earlier attempts' come first.
                                if record.get("data") == {"n": attempt}:
                                    received = record
                                    break
                    assert received["type"] == "custom.hello"
            if through_proxy:
                break
            texts = await scrape_each_worker(server, 2)
        else:
            pytest.fail("no stream landed on worker 0")
        texts = await scrape_each_worker(server, 2)
        assert metric(texts[0], "crdt_rooms_loaded") == 0
        assert metric(texts[0], "crdt_http_served_off_owner_total") == 0


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_a_stopped_owners_requests_are_served_locally_within_the_deadline(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    server = _server(tmp_path, redis_server, CRDT_SERVER_LOOP_STALL_SECONDS="8")
    wedding = wedding_owned_by(1)
    stopped: int | None = None
    async with server:
        pids = await wait_workers(server, 2)
        await scrape_each_worker(server, 2)
        # Channels to the owner exist (one is kept idle) before it stops.
        for _ in range(10):
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                got = await http.get(f"/api/weddings/{wedding}/docs/guests", headers=_auth(wedding))
                assert got.status_code == 200
        before = metric((await scrape_each_worker(server, 2))[0], _OFF_OWNER)
        try:
            os.kill(pids[1], signal.SIGSTOP)
            stopped = pids[1]
            # Only worker 0 accepts now: it proxies to the stopped owner, which never
            # acknowledges; at the deadline worker 0 serves the request itself.
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                started = time.monotonic()
                body = {"op": "add_guest", "name": "While stopped"}
                got = await http.post(
                    f"/api/weddings/{wedding}/docs/guests/ops", json=body, headers=_auth(wedding)
                )
                took = time.monotonic() - started
                assert got.status_code == 200, got.text
                assert _HANDOFF * 0.9 <= took <= _HANDOFF + 3, took
                # The owner is skipped for a while after a missed deadline: at once now.
                started = time.monotonic()
                got = await http.get(f"/api/weddings/{wedding}/docs/guests", headers=_auth(wedding))
                assert got.status_code == 200
                assert time.monotonic() - started < _HANDOFF * 0.9
            os.kill(pids[1], signal.SIGCONT)
            stopped = None
            deadline = time.monotonic() + 10
            while "a request came past its deadline" not in server.log_text():
                assert time.monotonic() < deadline, server.log_text()
                await asyncio.sleep(0.05)  # a log file: nothing to wait on
        finally:
            if stopped is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(stopped, signal.SIGCONT)
        texts = await scrape_each_worker(server, 2)
        assert metric(texts[0], _OFF_OWNER) == before + 2
        # The operation was run once (by worker 0), not again by the owner.
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            doc = (
                await http.get(f"/api/weddings/{wedding}/docs/guests", headers=_auth(wedding))
            ).json()
        assert str(doc).count("While stopped") == 1, doc
