"""Issue 47's restart test under ``--workers 2``: a worker whose loop stalls (the test
extension of :mod:`tests.stalling`, fed over the socket and over HTTP) is ended by its
watchdog and started again by the supervisor within ``CRDT_SERVER_LOOP_STALL_SECONDS`` + 5 s,
the other worker's weddings answer throughout, and every worker then refuses the update and
the client's resync. A SIGSTOPped owner (whose own watchdog cannot fire) swallows no
connection: the worker that accepted it serves it once the hand-off's deadline passes, the
owner closes that hand-off unread when it runs again, and the supervisor restarts an owner
that stays stopped (its heartbeat)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pycrdt import Doc, Map

from tests.cluster.conftest import RedisProcess
from tests.cluster.test_workers import (
    metric,
    scrape_each_worker,
    served,
    wait_workers,
    wedding_owned_by,
)
from tests.core.test_watchdog import ENV, STALL, _edit, _post
from tests.server import ServerProcess
from tests.stalling import MARKER
from tests.yclient import YClient


async def _keep_reading(
    url: str, wedding: str, stop: asyncio.Event, slow: list[float], lost: list[str]
) -> int:
    """Read ``wedding``'s guest list on a new connection each time until ``stop``; the
    answers slower than a second go to ``slow``, requests that got no answer to ``lost``;
    how many reads were made."""
    reads = 0
    while not stop.is_set():
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            try:
                answer = await http.get(f"/api/weddings/{wedding}/docs/guests")
            except httpx.TransportError as exc:
                # A request the stalling worker had accepted just before its loop stuck
                # (plain HTTP is served by the worker that accepts it) ends with it.
                lost.append(repr(exc))
                continue
        assert answer.status_code == 200, answer.text
        took = time.monotonic() - started
        if took > 1.0:
            slow.append(took)
        reads += 1
        await asyncio.sleep(0.05)  # pacing the reader, not waiting for anything
    return reads


@pytest.fixture(scope="session")  # not "module": its tests need not share a worker
def start_seconds() -> float:
    """Seconds ``crdt-server --version`` takes here and now: the interpreter's start and
    the imports, which a restarted worker pays before it serves (well under a second on a
    quiet machine, several on a loaded one)."""
    began = time.monotonic()
    subprocess.run([sys.executable, "-m", "crdt_server", "--version"], check=True, timeout=60)
    return time.monotonic() - began


async def _restarted(
    server: ServerProcess,
    before: dict[int, int],
    started: float,
    index: int,
    clients: int,
    start_seconds: float,
) -> None:
    """Worker ``index`` (only) was replaced within the threshold + 5 s (+ what starting a
    process takes here and now, beyond the watchdog's and the supervisor's part), and every
    worker knows the ``clients`` quarantined clients."""
    within = STALL + 5 + start_seconds
    after = await wait_workers(server, 2, not_pid=before[index], timeout=within)
    assert after[1 - index] == before[1 - index], "the other worker was restarted too"
    deadline = started + within
    while True:
        texts = await scrape_each_worker(server, 2)
        if all(metric(text, "crdt_quarantined_clients") >= clients for text in texts):
            break
        assert time.monotonic() < deadline, "a worker does not know the quarantine yet"
    assert time.monotonic() - started <= within
    log = server.log_text()
    said = [line for line in log.splitlines() if "exited" in line or "watchdog" in line]
    assert "exited with -14" in log and "_spin_on_marker" in log, said


async def _refused(server: ServerProcess, wedding: str, doc: Doc[Any], stall: bytes) -> None:
    for _ in range(4):  # new connections: whichever worker accepts them
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            assert (await _post(http, wedding, stall)).status_code == 422
            assert (await _post(http, wedding, doc.get_update())).status_code == 422
    reconnecting = YClient(server.ws_url, f"{wedding}/guests")
    reconnecting.doc = Doc(client_id=doc.client_id)
    reconnecting.doc.apply_update(doc.get_update())
    await reconnecting.connect()
    await reconnecting.wait(reconnecting.closed.is_set, 10)
    assert reconnecting.close_code == 1007


async def _which_stalled(server: ServerProcess, before: dict[int, int]) -> int:
    deadline = time.monotonic() + STALL + 5
    while True:
        now = await wait_workers(server, 2, timeout=STALL + 5)
        changed = [i for i, pid in now.items() if pid != before[i]]
        if changed:
            return changed[0]
        assert time.monotonic() < deadline, "no worker was restarted"
        await asyncio.sleep(0.05)  # a process table: nothing to wait on


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.timeout(150)
async def test_a_stalled_worker_is_restarted_and_refuses_the_update(
    tmp_path: Path, redis_server: RedisProcess, start_seconds: float
) -> None:
    server = ServerProcess(
        tmp_path / "data",
        args=["--workers", "2", "--redis-url", redis_server.url],
        env=dict(ENV),
        module="tests.stalling",
    )
    stuck, other = wedding_owned_by(1), wedding_owned_by(0)
    await server.start()
    stop = asyncio.Event()
    slow: list[float] = []
    lost: list[str] = []
    try:
        before = await wait_workers(server, 2)
        await scrape_each_worker(server, 2)
        reader = asyncio.create_task(_keep_reading(server.url, other, stop, slow, lost))

        # Over the socket (handed to worker 1, the wedding's owner).
        client = YClient(server.ws_url, f"{stuck}/guests")
        await client.connect()
        await client.wait(client.synced.is_set)
        _edit(client.doc, "g-ok", "harmless")
        await client.flush()
        await client.wait(client.is_confirmed)
        stall = _edit(client.doc, "g-stall", MARKER.decode())
        started = time.monotonic()
        await client.flush()
        await _restarted(server, before, started, 1, 1, start_seconds)
        await client.wait(client.closed.is_set)
        await _refused(server, stuck, client.doc, stall)

        # Over HTTP: run by the wedding's owner, whichever worker accepts the connection
        # (the other one proxies it).
        before = await wait_workers(server, 2)
        doc: Doc[Any] = Doc(client_id=90211)
        _edit(doc, "g-fine", "fine")
        stall = _edit(doc, "g-stall-2", MARKER.decode())
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=server.url, timeout=STALL + 5) as http:
            try:
                answer = await _post(http, stuck, doc.get_update())
            except httpx.TransportError:
                pass  # the worker that applied it ended
            else:
                # Accepted by worker 0: the owner took it and ended before answering.
                assert answer.status_code == 502, answer.text
        stalled = await _which_stalled(server, before)
        assert stalled == 1
        await _restarted(server, before, started, stalled, 2, start_seconds)
        stop.set()
        reads = await reader
        # The other worker's wedding answered throughout, but for a request the stalling
        # worker had accepted as it stalled.
        assert reads > 10 and not slow and len(lost) <= 2, (reads, slow, lost)
        await _refused(server, stuck, doc, stall)
    finally:
        stop.set()
        await server.stop()


_STOPPED_STALL = 6.0
"""CRDT_SERVER_LOOP_STALL_SECONDS of the SIGSTOP test: room for a stop shorter than the
heartbeat's threshold (the stall + two ticks: 7.2 s), and shorter than the watchdog's own
timer, which runs on while the process is stopped and fires when it is continued."""
_HANDOFF = 1.0
"""CRDT_SERVER_HANDOFF_TIMEOUT_SECONDS of the SIGSTOP test."""


async def _wait_log(server: ServerProcess, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.log_text():
        assert time.monotonic() < deadline, f"no {text!r} in the log:\n{server.log_text()}"
        await asyncio.sleep(0.05)  # a log file: nothing to wait on


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_a_sigstopped_owner_swallows_no_connection_and_is_restarted(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    server = ServerProcess(
        tmp_path / "data",
        args=["--workers", "2", "--redis-url", redis_server.url],
        env={
            "CRDT_SERVER_LOOP_STALL_SECONDS": str(_STOPPED_STALL),
            "CRDT_SERVER_HANDOFF_TIMEOUT_SECONDS": str(_HANDOFF),
        },
    )
    wedding = wedding_owned_by(1)
    stopped: int | None = None
    await server.start()
    try:
        before = await wait_workers(server, 2)
        texts = await scrape_each_worker(server, 2)
        owner_served = served(texts)[1]

        os.kill(before[1], signal.SIGSTOP)
        stopped = before[1]
        # Only worker 0 accepts now: it hands the connection to the stopped owner, which
        # never acknowledges it; at the deadline worker 0 serves it itself.
        started = time.monotonic()
        client = YClient(server.ws_url, f"{wedding}/guests")
        await client.connect()
        await client.wait(client.synced.is_set, _HANDOFF + 3)
        took = time.monotonic() - started
        assert _HANDOFF * 0.9 <= took <= _HANDOFF + 3, took

        # The owner runs again before the supervisor gives up on it: it reads the hand-off
        # late and closes it unread, without ending the connection worker 0 serves.
        os.kill(before[1], signal.SIGCONT)
        stopped = None
        await _wait_log(server, "closed unread", 10)
        assert await wait_workers(server, 2) == before

        # A sync round trip on that socket: exactly one server answers it.
        _edit(client.doc, "g-socket", "from the socket")
        await client.flush()
        await client.wait(client.is_confirmed)
        other: Doc[Any] = Doc(client_id=77001)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            assert (await _post(http, wedding, _edit(other, "g-http", "over http"))).is_success
            read = (await http.get(f"/api/weddings/{wedding}/docs/guests")).json()
        assert "from the socket" in str(read)
        guests = client.doc.get("guests", type=Map)
        await client.wait(lambda: "g-http" in guests)
        assert not client.closed.is_set()
        texts = await scrape_each_worker(server, 2)
        assert metric(texts[0], "crdt_handoffs_taken_back_total") == 1
        assert metric(texts[0], "crdt_connections_served_off_owner_total") >= 1
        assert served(texts)[1] == owner_served  # the owner never admitted it
        assert metric(texts[1], "crdt_connections_adopted_total") == 0

        # Stopped for good: the heartbeat stays silent and the supervisor restarts it.
        os.kill(before[1], signal.SIGSTOP)
        stopped = before[1]
        started = time.monotonic()
        after = await wait_workers(server, 2, not_pid=before[1], timeout=_STOPPED_STALL + 10)
        stopped = None
        assert time.monotonic() - started <= _STOPPED_STALL + 2 * 0.6 + 5
        assert after[0] == before[0]
        assert "sent no heartbeat" in server.log_text()
        # The client served by worker 0 kept working throughout.
        _edit(client.doc, "g-after", "after the restart")
        await client.flush()
        await client.wait(client.is_confirmed)
        await client.close()
    finally:
        if stopped is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(stopped, signal.SIGCONT)
        await server.stop()
