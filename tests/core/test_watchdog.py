"""A stuck event loop is found and survived (issue 47, point 2).

A real server runs with the test extension of :mod:`tests.stalling`, whose change observer
spins for ever inside pycrdt's apply when an update carries its marker: a stall of the kind
the nested-array hang of issue 47 caused, made without a hostile shape so that it outlives
the codec's fix. The loop watchdog ends the process (by SIGALRM, every thread's stack in
the log); started again as a service manager would, the server refuses that client's
update and its resync (merged differently) in that room, over HTTP (422) and the socket
(1007), until ``crdt-server quarantine lift``.
"""

from __future__ import annotations

import asyncio
import logging
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

from crdt_server import clock
from crdt_server.core.quarantine import (
    REFRESH_SECONDS,
    ApplySlot,
    Interrupted,
    Quarantine,
    read_slot,
    slot_path,
)
from crdt_server.core.watchdog import LoopWatchdog
from crdt_server.errors import Quarantined
from crdt_server.testing.waits import until
from tests.server import ServerProcess
from tests.stalling import BLOCKER, MARKER
from tests.yclient import YClient

STALL = 2.0
"""CRDT_SERVER_LOOP_STALL_SECONDS in these tests."""
ENV = {"CRDT_SERVER_LOOP_STALL_SECONDS": str(STALL)}


def _client_doc(client_id: int) -> tuple[Doc[Any], bytes, bytes]:
    """A client's document: a harmless edit, then the stalling one; returns the doc, the
    stalling update alone, and the client's whole state (what a resync sends)."""
    doc: Doc[Any] = Doc(client_id=client_id)
    guests = doc.get("guests", type=Map)
    with doc.transaction():
        guests["g-ok"] = "harmless"
    before = doc.get_state()
    with doc.transaction():
        guests["g-stall"] = MARKER.decode()
    return doc, doc.get_update(before), doc.get_update()


def _wait_exit(server: ServerProcess, timeout: float) -> int:
    assert server.process is not None
    return server.process.wait(timeout)


def test_the_apply_slot_survives_its_process(tmp_path: Path) -> None:
    path = slot_path(tmp_path, 3)
    code = (
        "import sys, os; from pathlib import Path;"
        "from crdt_server.core.quarantine import ApplySlot;"
        "s = ApplySlot(Path(sys.argv[1])); s.arm('w1/guests', 'mallory', [7, 9]); os._exit(9)"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=False, timeout=30)
    slot = ApplySlot(path)
    assert slot.previous() == Interrupted("w1/guests", "mallory", (7, 9))
    slot.clear()
    assert slot.previous() is None
    slot.arm("w1/guests", "x" * 1000, range(1000))  # long names and many clients: cut
    again = read_slot(path)
    assert again is not None and len(again.clients) == 400
    slot.close()


def test_an_apply_armed_again_reads_back_as_itself(tmp_path: Path) -> None:
    """A writer's next update arms the same apply (only the length is written again): it
    reads back whole, and a different apply after it reads back as itself."""
    path = slot_path(tmp_path, None)
    slot = ApplySlot(path)
    slot.arm("w1/guests", "ann", {7: None}.keys())
    slot.clear()
    assert read_slot(path) is None
    slot.arm("w1/guests", "ann", {7: None}.keys())
    assert read_slot(path) == Interrupted("w1/guests", "ann", (7,))
    slot.clear()
    slot.arm("w1/guests", "bo", [7])
    assert read_slot(path) == Interrupted("w1/guests", "bo", (7,))
    slot.clear()
    slot.arm("w1/guests", "bo", [7, 8])
    assert read_slot(path) == Interrupted("w1/guests", "bo", (7, 8))
    slot.clear()
    slot.arm("w1/guests", "bo", [7, 8])
    assert read_slot(path) == Interrupted("w1/guests", "bo", (7, 8))
    slot.close()


def test_processes_sharing_a_data_folder_hold_their_own_slots(tmp_path: Path) -> None:
    """Two servers on one data folder (one SQLite file) never read each other's apply: the
    second holds the next slot; one that died leaves its slot to the next process, which
    reads what it was applying, while the live one's stays its own."""
    path = slot_path(tmp_path, None)
    live = ApplySlot(path)
    live.arm("w1/guests", "ann", [7])  # an apply in flight in a live process
    code = (
        "import sys, os; from pathlib import Path;"
        "from crdt_server.core.quarantine import ApplySlot;"
        "s = ApplySlot(Path(sys.argv[1])); print(s.path.name, flush=True);"
        "s.arm('w1/guests', 'mallory', [9]); os._exit(9)"
    )
    died = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=30
    )
    assert died.stdout.strip() == "apply-slot.2", died.stderr
    restarted = ApplySlot(path)  # the dead one's slot, not the live one's
    assert restarted.path.name == "apply-slot.2"
    assert restarted.previous() == Interrupted("w1/guests", "mallory", (9,))
    assert read_slot(path) == Interrupted("w1/guests", "ann", (7,))
    restarted.close()
    live.close()
    assert ApplySlot(path).path == path  # both released


@pytest.mark.asyncio
async def test_the_quarantine_refuses_by_client_in_its_room_only() -> None:
    quarantine = Quarantine()
    await quarantine.add(Interrupted("w1/guests", "mallory", (7,)))
    with pytest.raises(Quarantined, match="quarantined"):
        quarantine.check("w1/guests", [3, 7])
    quarantine.check("w1/guests", [3])
    quarantine.check("w2/guests", [7])
    quarantine.check("w1/budget", [7])


async def _post(http: httpx.AsyncClient, wedding: str, update: bytes) -> httpx.Response:
    return await http.post(
        f"/api/weddings/{wedding}/docs/guests/update",
        content=update,
        headers={"content-type": "application/octet-stream"},
    )


def _edit(doc: Doc[Any], key: str, value: str) -> bytes:
    """Edit ``doc``'s guest list; the update of that edit alone."""
    before = doc.get_state()
    with doc.transaction():
        doc.get("guests", type=Map)[key] = value
    return doc.get_update(before)


async def _stalled(server: ServerProcess) -> None:
    """The server's loop is stuck: its watchdog ends it by SIGALRM within the threshold
    (plus a tick), with every thread's stack in the log; then it is started again."""
    assert server.process is not None
    started = time.monotonic()
    code = await asyncio.to_thread(server.process.wait, STALL + 5)
    assert code == -signal.SIGALRM, server.log_text()
    assert time.monotonic() - started <= STALL + 5
    log = server.log_text()
    assert "most recent call first" in log and "_spin_on_marker" in log
    await server.stop()
    await server.start()
    assert "are quarantined in that room" in server.log_text()


async def _refused(
    server: ServerProcess, http: httpx.AsyncClient, wedding: str, doc: Doc[Any], stall: bytes
) -> None:
    """The stalling update and its client's resync are refused over HTTP (422) and the
    socket (1007); another client of the room is served."""
    answer = await _post(http, wedding, stall)
    assert answer.status_code == 422, answer.text
    assert "quarantined" in answer.json()["detail"]
    # A resync: the same items merged with the rest of the client's state, other bytes.
    resync = doc.get_update()
    assert resync != stall
    answer = await _post(http, wedding, resync)
    assert answer.status_code == 422, answer.text
    reconnecting = YClient(server.ws_url, f"{wedding}/guests")
    reconnecting.doc = Doc(client_id=doc.client_id)
    reconnecting.doc.apply_update(resync)
    await reconnecting.connect()
    await reconnecting.wait(reconnecting.closed.is_set, STALL + 5)
    assert reconnecting.close_code == 1007
    answer = await _post(http, wedding, _edit(Doc(), "g-other", "fine"))
    assert answer.status_code == 200, answer.text


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_one_process_stalls_exits_and_refuses_the_update_after_restart(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, env=dict(ENV), module="tests.stalling")
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            # Over the socket: a client's edit, confirmed, then the stalling one.
            client = YClient(server.ws_url, "w1/guests")
            await client.connect()
            await client.wait(client.synced.is_set)
            harmless = _edit(client.doc, "g-ok", "harmless")
            await client.flush()
            await client.wait(client.is_confirmed)
            stall = _edit(client.doc, "g-stall", MARKER.decode())
            await client.flush()
            await _stalled(server)
            await client.wait(client.closed.is_set)
            await _refused(server, http, "w1", client.doc, stall)
            # Its harmless edit alone is refused too: the client is quarantined.
            assert (await _post(http, "w1", harmless)).status_code == 422

            # Over HTTP: the request never gets an answer; the process ends.
            doc: Doc[Any] = Doc(client_id=90210)
            _edit(doc, "g-fine", "fine")
            stall = _edit(doc, "g-stall-2", MARKER.decode())
            with pytest.raises(httpx.TransportError):
                await _post(http, "w2", doc.get_update())
            await _stalled(server)
            await _refused(server, http, "w2", doc, stall)

            # Lifted: the client's updates are taken again (the running server re-reads
            # the quarantine within REFRESH_SECONDS).
            lifted = await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable,
                    "-m",
                    "crdt_server",
                    "quarantine",
                    "lift",
                    "--wedding",
                    "w1",
                    "--data-dir",
                    str(data),
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert lifted.returncode == 0, lifted.stderr
            assert "lifted the quarantine of 1 client(s)" in lifted.stdout
            deadline = time.monotonic() + REFRESH_SECONDS + 5
            while (await _post(http, "w1", harmless)).status_code != 200:
                assert time.monotonic() < deadline, "the lift was not noticed in time"
                await asyncio.sleep(0.2)  # polling an HTTP route: nothing to wait on
            assert (await _post(http, "w2", stall)).status_code == 422
    finally:
        await server.stop()


async def _log_says(server: ServerProcess, text: str, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while text not in server.log_text():  # noqa: ASYNC110 (a child's log: no event)
            await asyncio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_paused_process_goes_on_and_a_blocked_loop_still_ends_it(tmp_path: Path) -> None:
    """Issue 74: SIGSTOP for four times the stall threshold, then SIGCONT (a VM frozen or
    migrated), is not a stall: the process logs the pause and serves on. A loop blocked
    without spinning (no CPU, like a paused process) still ends it by SIGALRM, after a
    grace of a second."""
    server = ServerProcess(tmp_path / "data", env=dict(ENV), module="tests.stalling")
    await server.start()
    try:
        assert server.process is not None
        pid = server.process.pid
        async with YClient(server.ws_url, "w1/guests") as client:
            await client.wait(client.synced.is_set)
            for pause in range(2):
                os.kill(pid, signal.SIGSTOP)
                await asyncio.sleep(4 * STALL)  # the fault itself: four thresholds stopped
                os.kill(pid, signal.SIGCONT)
                _edit(client.doc, f"g-after-pause-{pause}", "served")
                await client.flush()
                await client.wait(client.is_confirmed, timeout=10)
                assert server.alive, server.log_text()
            await _log_says(server, "the process was paused for about")
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                assert (await http.get("/healthz")).status_code == 200
            # Its stacks were written when it ran again (a turn past half the threshold,
            # by the monotonic clock), but nothing ended it.
            assert "ending the process" not in server.log_text()

            _edit(client.doc, "g-block", BLOCKER.decode())
            await client.flush()
            started = time.monotonic()
            code = await asyncio.to_thread(server.process.wait, STALL + 10)
            assert code == -signal.SIGALRM, server.log_text()
            assert time.monotonic() - started <= STALL + 1 + 5
            log = server.log_text()
            assert "most recent call first" in log and "_spin_on_marker" in log
    finally:
        await server.stop()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_wall_clock_jump_is_logged_and_never_taken_for_a_stall(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 74 (the fault campaign's ``server-clock-jump``): the wall clock stepped ten
    minutes forwards, then backwards (an NTP step), while the monotonic clock goes on. The
    watchdog measures on the monotonic clock, so it neither ends the process nor counts a
    pause; it logs each jump once, since tokens' ``exp`` and ``iat`` are checked against
    the wall clock."""
    stepped = _Stepped()
    with clock.use(stepped), caplog.at_level(logging.INFO, "crdt_server.core.watchdog"):
        dog = LoopWatchdog(1.0)
        dog.start(asyncio.get_running_loop())
        try:
            for n, step in enumerate((600, -600), start=1):
                stepped.offset += step

                async def jumped(n: int = n) -> bool:
                    return dog.clock_jumps == n

                await until(jumped, 5)
            ticks = dog.ticks
            await until(lambda: _after(dog, ticks + 5), 5)  # turning on, nothing more logged
        finally:
            dog.stop()
    said = [r.getMessage() for r in caplog.records if "wall clock" in r.getMessage()]
    assert len(said) == 2, said
    assert "+600 s" in said[0] and "-600 s" in said[1], said
    assert dog.pauses == 0 and dog.clock_jumps == 2
    assert not [r for r in caplog.records if "did not turn" in r.getMessage()]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_turn_of_half_the_threshold_writes_the_stacks_while_it_lasts(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 74 (the fault campaign's stalls of 4 to 6 s under a 10-s threshold): the
    process survives them, so the stacks written when the watchdog ends one are never
    written; a turn that lasts half the threshold writes them while it lasts."""
    with caplog.at_level(logging.INFO, "crdt_server.core.watchdog"):
        dog = LoopWatchdog(2.0)
        dog.start(asyncio.get_running_loop())
        try:
            await until(lambda: _after(dog, 2), 5)
            capfd.readouterr()
            _hold_the_loop(1.6)  # past half the threshold (1 s), short of it (2 s)
            ticks = dog.ticks
            await until(lambda: _after(dog, ticks + 2), 5)
        finally:
            dog.stop()
    written = capfd.readouterr().err
    assert "Timeout (0:00:01)!" in written, written
    assert "_hold_the_loop" in written  # the loop's thread, where it was
    assert [r for r in caplog.records if "did not turn" in r.getMessage()]
    assert dog.pauses == 0


def _hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)


class _Stepped(clock.SystemClock):
    """The real wall clock, stepped by ``offset`` seconds (what libfaketime does)."""

    offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


async def _after(dog: LoopWatchdog, ticks: int) -> bool:
    return dog.ticks >= ticks
