"""A worker thread's long Python work pauses for the event loop's thread (crdt_server.threads)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from crdt_server import threads


@pytest.mark.timeout(10)
def test_work_off_the_main_thread_pauses_and_the_main_thread_never_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pauses: list[float] = []
    real = threads.select.select

    def select(r: list[int], w: list[int], x: list[int], timeout: float) -> object:
        pauses.append(timeout)
        return real(r, w, x, timeout)

    monkeypatch.setattr(threads.select, "select", select)

    def work(seconds: float) -> None:
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            threads.share_gil()

    work(0.05)
    assert pauses == []  # the main thread: its work is the loop's

    async def on_a_loop() -> None:
        work(0.05)

    looping = threading.Thread(target=asyncio.run, args=(on_a_loop(),))
    looping.start()
    looping.join(5)
    assert pauses == []  # a thread running an event loop (an in-process server) neither
    worker = threading.Thread(target=work, args=(0.2,))
    worker.start()
    worker.join(5)
    # about one pause per WORK seconds of work, each of PAUSE
    assert 4 <= len(pauses) <= 0.2 / threads.WORK + 1, pauses
    assert set(pauses) == {threads.PAUSE}


@pytest.mark.timeout(10)
def test_a_worker_thread_idle_between_jobs_does_not_pause_when_the_next_begins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pool's thread runs a short job, waits, runs another: the wait is no work, so the
    second job (a room's load, a commit's decoding) does not begin with a pause."""
    pauses: list[float] = []
    monkeypatch.setattr(threads.select, "select", lambda r, w, x, t: pauses.append(t))
    jobs = 0
    woken = threading.Event()

    def two_short_jobs() -> None:
        nonlocal jobs
        for _ in range(2):
            threads.share_gil()
            threads.share_gil()
            jobs += 1
            woken.wait(3 * threads.WORK)  # idle: no CPU time spent

    worker = threading.Thread(target=two_short_jobs)
    worker.start()
    worker.join(5)
    assert jobs == 2
    assert pauses == []


@pytest.mark.timeout(30)
def test_the_replay_of_a_log_on_a_worker_thread_pauses_for_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Replays (a room's load, a restore point, the conflicts keeper's read) run on worker
    threads: they pause every few milliseconds."""
    from pycrdt import Doc, Map

    from crdt_server.core.crdt import replay

    doc: Doc[object] = Doc()
    rows: list[bytes] = []
    doc.observe(lambda event: rows.append(event.update))
    guests = doc.get("guests", type=Map)
    for n in range(3000):
        guests[f"g{n}"] = Map({"name": f"Guest {n}", "rsvp": "pending"})
    pauses: list[float] = []
    monkeypatch.setattr(threads.select, "select", lambda r, w, x, t: pauses.append(t))
    worker = threading.Thread(target=replay, args=(rows,))
    worker.start()
    worker.join(20)
    assert pauses, "a replay of 3,000 rows took over 5 ms without a pause"
