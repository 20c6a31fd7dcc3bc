"""Bounded work per update (issue 47): one update touching the notes of many guests opens
one edit session per note, and closing them all costs the server CPU in proportion to the
notes touched, never the whole guest list once per note (5,000 notes once took 39 minutes
of one core), while ``/healthz`` keeps answering.

A real server on an ephemeral port; its CPU is read from ``/proc`` (the time on CPU of
the server process's threads), so the test's own work does not count; stored events and
open sessions are counted in the SQLite file directly, which costs the server nothing, and
``/healthz`` is asked every 10 ms throughout, from a process of its own.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pycrdt import Doc, Map, Text

from crdt_server.auth.tokens import TokenCodec
from crdt_server.testing.waits import until
from tests.server import ServerProcess

pytestmark = pytest.mark.asyncio

WEDDING = "bounded"
SECRET = "bounded-work-test-secret-at-least-32-bytes"
CODEC = TokenCodec(algorithms=["HS256"], secret=SECRET.encode())
CPU_BUDGET = 10.0
"""Seconds of server CPU for every session to close and its event to be stored."""
RATIO = 3.0
"""Most the CPU may grow when the notes touched double: linear is 2, a quadratic close 4.
(2.3 failed the full tier once at a load of 3.1: medians 0.178 and 0.426 s, 2.4x; four runs
here at loads 3 to 4 gave 2.0 to 2.2. 2.6 failed a clean-clone run once at a load of 2.3:
medians 0.235 and 0.633 s, 2.7x, where the same commit alone at a load of 3.7 gave 2.0x.)"""


def bearer(role: str) -> dict[str, str]:
    return {"authorization": f"Bearer {CODEC.mint(sub=role, role=role, wedding=WEDDING, ttl=600)}"}


def server_cpu(pid: int) -> float:
    """CPU seconds process ``pid`` used so far, all its threads (their ``schedstat``:
    nanoseconds, where ``/proc/PID/stat`` counts 10 ms ticks, too coarse for a ratio of
    small figures; the server's threads live as long as it does)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that just ended
    return total / 1e9


def guest_list(guests: int) -> Doc[Any]:
    """A guest list of ``guests`` entries, each with a short note (a ``Y.Text``)."""
    doc: Doc[Any] = Doc()
    root = doc.get("guests", type=Map)
    with doc.transaction():
        for i in range(guests):
            root[f"g{i}"] = Map({"name": f"Guest {i}", "rsvp": "pending", "notes": Text("note")})
    return doc


def touch_notes(doc: Doc[Any], touched: int) -> bytes:
    """One update appending to the notes of the first ``touched`` guests."""
    before = doc.get_state()
    root = doc.get("guests", type=Map)
    with doc.transaction():
        for i in range(touched):
            notes = root[f"g{i}"]["notes"]
            assert isinstance(notes, Text)
            notes += " changed"
    return doc.get_update(before)


class Store:
    """Counts read from the server's SQLite file (read-only, a reader beside its WAL)."""

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / "crdt.sqlite3"

    def count(self, sql: str) -> int:
        with sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute(sql).fetchone()[0])

    def closed(self) -> int:
        return self.count("SELECT count(*) FROM events WHERE type = 'guest.notes_edited'")

    def still_open(self) -> int:
        return self.count("SELECT count(*) FROM note_sessions")


async def quiet(pid: int) -> None:
    """Wait until process ``pid`` uses (almost) no CPU for a moment."""
    last = [server_cpu(pid)]

    async def idle() -> bool:
        await asyncio.sleep(0.25)
        now = server_cpu(pid)
        used, last[0] = now - last[0], now
        return used < 0.03

    await until(idle, 30, every=0)


@dataclass
class Measured:
    cpu: dict[int, list[float]]
    """Notes touched -> server CPU seconds of each round, from the update's post until
    every session it opened is closed and its event stored."""
    healthz: list[tuple[float, float]]
    """(seconds, CPU seconds of the server's event loop) of each /healthz answer meanwhile:
    on a loaded machine an answer waits on the other processes too, but the loop's CPU
    while it waited is what the loop spent, on that answer and on whatever held it up (the
    store's writer threads, which do not hold the loop, are not counted)."""

    def p99(self, cpu: bool = False) -> float:
        ordered = sorted(c if cpu else t for t, c in self.healthz)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    def figures(self) -> str:
        rounds = "; ".join(
            f"{n} notes: " + ", ".join(f"{c:.3f}" for c in cpus) + " s CPU"
            for n, cpus in self.cpu.items()
        )
        p99 = (
            f"/healthz p99 {self.p99() * 1000:.0f} ms of {len(self.healthz)}, "
            f"event loop CPU meanwhile p99 {self.p99(cpu=True) * 1000:.0f} ms"
        )
        return f"{rounds}; {p99}; load average {os.getloadavg()[0]:.1f}"


_POLLER = """
import http.client, os, select, sys, time
connection = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
loop_thread = f"/proc/{sys.argv[2]}/task/{sys.argv[2]}/schedstat"
def server_cpu():
    with open(loop_thread) as stat:
        return int(stat.read().split()[0]) / 1e9
took = []
def ask():
    started, cpu = time.perf_counter(), server_cpu()
    connection.request("GET", "/healthz")
    reply = connection.getresponse()
    reply.read()
    assert reply.status == 200, reply.status
    return f"{time.perf_counter() - started}/{server_cpu() - cpu}"
ask()  # connected
print("ready", flush=True)
while not select.select([sys.stdin], [], [], 0.01)[0]:
    took.append(ask())
print(" ".join(took), flush=True)
"""
"""Asks /healthz every 10 ms on one connection (as a load balancer's checks keep theirs)
until its stdin closes, then prints how long each answer took and how much CPU the server's
event loop (the main thread of process ``pid``) used meanwhile. A process of its own: the
test's own work (reading the store, its event loop) is never counted as the server's."""


async def poll_health(port: int, pid: int) -> asyncio.subprocess.Process:
    """A started :data:`_POLLER` (it answered once)."""
    poller = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _POLLER,
        str(port),
        str(pid),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert poller.stdout is not None
    assert (await asyncio.wait_for(poller.stdout.readline(), 20)).strip() == b"ready"
    return poller


async def stop_polling(poller: asyncio.subprocess.Process) -> list[tuple[float, float]]:
    """(seconds, server CPU seconds) of each answer, once the poller is told to stop."""
    out, _ = await asyncio.wait_for(poller.communicate(b""), 30)  # b"": its stdin closes
    assert poller.returncode == 0
    return [(float(t), float(c)) for t, c in (pair.split(b"/") for pair in out.split())]


async def measure(tmp_path: Path, guests: int, sizes: tuple[int, ...], rounds: int) -> Measured:
    """Rounds of one update touching the notes of each of ``sizes`` guests in turn (A B A
    B: the machine's load falls on both alike) on a list of ``guests``."""
    env = {
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        # Sessions close soon after the one update that opens them all.
        "CRDT_SERVER_NOTES_SESSION_IDLE_SECONDS": "0.2",
        "CRDT_SERVER_NOTES_SESSION_MAX_SECONDS": "60",
    }
    data = tmp_path / "data"
    doc = guest_list(guests)
    measured = Measured({n: [] for n in sizes}, [])
    async with (
        ServerProcess(data, env=env, anonymous=False) as live,
        httpx.AsyncClient(base_url=live.url, timeout=60) as http,
    ):
        assert live.process is not None
        pid = live.process.pid
        url = f"/api/weddings/{WEDDING}/docs/guests/update"
        binary = {"content-type": "application/octet-stream"} | bearer("couple")
        answer = await http.post(url, content=doc.get_update(), headers=binary)
        assert answer.status_code == 200, answer.text
        store = Store(data)
        closed = 0
        for _ in range(rounds):
            for touched in sizes:
                update = touch_notes(doc, touched)
                # A vendor reads the guest list through its projection (no notes, no
                # contacts): the projection is loaded, and each update is mirrored into it.
                read = {"accept": "application/octet-stream"} | bearer("vendor")
                seen = await http.get(f"/api/weddings/{WEDDING}/docs/guests", headers=read)
                assert seen.status_code == 200, seen.text
                await quiet(pid)  # what came before is done
                poller = await poll_health(live.port, pid)
                try:
                    cpu_before = server_cpu(pid)
                    answer = await http.post(url, content=update, headers=binary)
                    assert answer.status_code == 200, answer.text
                    closed += touched

                    async def all_closed(wanted: int = closed, start: float = cpu_before) -> bool:
                        used = server_cpu(pid) - start
                        assert used < CPU_BUDGET, f"{used:.1f} s of CPU, {store.closed()} closed"
                        return store.closed() >= wanted and store.still_open() == 0

                    await until(all_closed, 120, every=0.05)
                finally:
                    measured.healthz += await stop_polling(poller)
                measured.cpu[touched].append(server_cpu(pid) - cpu_before)
                assert store.closed() == closed
    return measured


def check_scaling(measured: Measured) -> None:
    figures = measured.figures()
    print(figures)
    small, large = sorted(measured.cpu)
    assert all(c < CPU_BUDGET for cpus in measured.cpu.values() for c in cpus), figures
    # The median of each size's rounds: what the work costs, where one round the machine
    # happened to favour (or slow) moves neither side.
    cpu = {n: statistics.median(cpus) for n, cpus in measured.cpu.items()}
    assert cpu[large] <= RATIO * cpu[small], figures
    # The sessions' work is cut into steps: the server's event loop never spends a quarter of a
    # second while an answer waits (closing 2,000 sessions in one step takes seconds). The
    # loop's CPU while an answer waits includes the touching update's own apply, and CPU time
    # itself grows on a loaded machine (86 ms at a load of 1.4, 105 ms in CI at 2.7): the bound
    # is the one that tells steps from one long hold. (Its
    # wall-clock time is that, plus the time the other processes had the cores.)
    assert measured.p99(cpu=True) < 0.25, figures


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_closing_the_sessions_of_thousands_of_notes_is_linear(tmp_path: Path) -> None:
    check_scaling(await measure(tmp_path, 3000, (1000, 2000), 3))


@pytest.mark.timeout(120)
async def test_closing_the_sessions_of_many_notes_is_linear(tmp_path: Path) -> None:
    check_scaling(await measure(tmp_path, 1500, (250, 500), 2))
