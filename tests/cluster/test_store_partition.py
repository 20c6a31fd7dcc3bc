"""One host's lost database link never stops another host's writes for long (issue 74).

Two real server processes on one PostgreSQL database and one Redis: host A reaches the
database through a proxy the test cuts (:class:`tests.partition.BlackHoleProxy`), host B
directly. A is cut off right after it sent a commit's request for the write lock every
process shares, so PostgreSQL holds that lock for a session nobody will ever speak to
again: the worst moment of a partition, made deterministic. Before the fix, B's commits
waited out ``lock_timeout`` (5 s), failed, and closed B's rooms with 1011 every 5 s for as
long as the cut lasted. Now PostgreSQL ends A's silent transaction after
``CRDT_SERVER_DATABASE_IDLE_TIMEOUT_SECONDS`` (2 s) and B goes on; A, which cannot commit,
says so within seconds: ``/readyz`` answers 503 inside its own timeout, one log line says
the store is lost (and one that it is back), and A's clients are closed with 1011 once its
commit has waited ``CRDT_SERVER_DATABASE_ANSWER_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from pycrdt import Map

from crdt_server.storage.postgres import PostgresStore
from tests.cluster.conftest import RedisProcess
from tests.partition import BlackHoleProxy
from tests.server import ServerProcess
from tests.yclient import YClient

CUT_SECONDS = 15.0
"""How long host A stays cut off while host B writes."""
LOCK_REQUEST = (0x596A7300).to_bytes(4, "big")
"""The first half of the write lock's key as it crosses the wire (``"Yjs\\0"``): a commit's
``pg_advisory_xact_lock`` request (:mod:`storage.postgres`)."""


def _through(proxy: BlackHoleProxy, url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) > 1 else host))


async def _write_one(client: YClient, key: str) -> float:
    """Write one key and wait for its acknowledgement; seconds it took."""
    started = time.monotonic()
    client.doc.get("m", type=Map)[key] = key
    await client.flush()
    await client.wait(client.is_confirmed, timeout=20)
    return time.monotonic() - started


async def _readyz(http: httpx.AsyncClient) -> tuple[int, dict[str, object], float]:
    started = time.monotonic()
    # A connection of its own each time: one left idle through the cut may be closed by the
    # server's keep-alive timeout just as it is used again ("Server disconnected without
    # sending a response", seen once in a loaded full tier).
    answer = await http.get("/readyz", headers={"Connection": "close"})
    return answer.status_code, answer.json(), time.monotonic() - started


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_a_host_cut_off_mid_commit_does_not_stop_the_others(
    tmp_path: Path, redis_server: RedisProcess, postgres_url: str
) -> None:
    # The tables exist before either host starts (so A's first lock request is a commit's).
    store = PostgresStore(postgres_url)
    await store.open()
    await store.close()
    proxy = BlackHoleProxy(urlsplit(postgres_url).port or 5432)
    await proxy.start()
    env = {"CRDT_SERVER_REDIS_URL": redis_server.url}
    a_server = ServerProcess(
        tmp_path / "a", env={**env, "CRDT_SERVER_DATABASE_URL": _through(proxy, postgres_url)}
    )
    b_server = ServerProcess(tmp_path / "b", env={**env, "CRDT_SERVER_DATABASE_URL": postgres_url})
    await a_server.start()
    await b_server.start()
    try:
        async with (
            YClient(a_server.ws_url, "wa/guests") as a,
            YClient(b_server.ws_url, "wb/guests") as b,
            httpx.AsyncClient(base_url=a_server.url, timeout=10) as a_http,
        ):
            await a.wait(a.synced.is_set)
            await b.wait(b.synced.is_set)
            await _write_one(a, "a-before")
            await _write_one(b, "b-before")

            proxy.cut_after(LOCK_REQUEST)
            a.doc.get("m", type=Map)["a-cut"] = "never acknowledged"
            await a.flush()
            async with asyncio.timeout(10):
                await proxy.cut_happened.wait()
            cut_at = time.monotonic()

            # B writes one update after the other for the whole cut.
            latencies: list[float] = []
            written: list[str] = []
            readiness: list[tuple[int, dict[str, object], float]] = []
            while time.monotonic() - cut_at < CUT_SECONDS:
                key = f"b{len(written)}"
                latencies.append(await _write_one(b, key))
                written.append(key)
                # A writer's pace (at most 50 a second): on a quiet machine the echo comes
                # fast enough that back-to-back writes pass the server's 200 updates a
                # second per connection, which closes it with 1008.
                await asyncio.sleep(0.02)
                if not readiness and time.monotonic() - cut_at > 8:
                    readiness.append(await _readyz(a_http))

            # A said so: its client closed with 1011 once the commit waited past its bound,
            # and /readyz answered 503 with the reason inside its own timeout.
            assert a.closed.is_set() and a.close_code == 1011, a_server.log_text()
            assert "a-cut" not in (a.confirmed.get("m", type=Map).to_py() or {})
            status, body, took = readiness[0]
            assert status == 503, body
            assert took < 2 + 1.5, took  # CRDT_SERVER_READINESS_TIMEOUT_SECONDS, and slack
            assert "store" in body and body["store"], body

            # B never stopped for long, and never failed.
            assert not b.closed.is_set(), b_server.log_text()
            latencies.sort()
            p99 = latencies[int(len(latencies) * 0.99) - 1]
            assert latencies[-1] < 2 + 2, latencies[-5:]  # the idle timeout, and slack
            assert p99 < 1.0, latencies[-5:]
            assert len(written) > 50, len(written)
            assert "commit failed" not in b_server.log_text()

            proxy.heal()
            deadline = time.monotonic() + 20
            while (ready := await _readyz(a_http))[0] != 200:
                assert time.monotonic() < deadline, (ready[1].get("store"), a_server.log_text())
                await asyncio.sleep(0.1)  # polling a route: nothing to wait on

        a_log = a_server.log_text()
        assert a_log.count("the store is lost") == 1, a_log
        assert a_log.count("the store is back") == 1, a_log
        # Everything B acknowledged is in the store, as a fresh client of A reads it.
        async with YClient(a_server.ws_url, "wb/guests") as late:
            expected = {"b-before", *written}
            await late.wait(lambda: expected <= set(late.doc.get("m", type=Map).to_py() or {}))
    finally:
        await a_server.stop()
        await b_server.stop()
        await proxy.close()
