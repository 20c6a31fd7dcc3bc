"""The worker supervisor of ``crdt-server serve --workers N``: the parent process.

It holds the listening socket and starts N worker processes, each with a stable index
``0..N-1`` (the index decides which worker owns which wedding, see
:mod:`crdt_server.wire.affinity`). Each worker inherits the listening socket (``pass_fds``)
and runs one uvicorn server on it. A worker that dies is started again with the same index,
soon after a worker that had been up a while, backing off (up to
:data:`MAX_RESTART_DELAY` seconds) when one keeps dying young. SIGTERM or SIGINT stop
every worker gracefully (SIGTERM to each, SIGKILL to one still there after
``shutdown_timeout``), remove the private run directory and return 0.

No polling: the loop sleeps in ``select`` on the signal wake-up pipe (SIGCHLD, SIGTERM,
SIGINT) and the workers' heartbeat pipes, with a timeout only while a restart or a
heartbeat is due.

**Heartbeats.** Each worker gets the write end of a pipe (``--heartbeat-fd``) and its loop
watchdog writes a byte to it every tick (:mod:`crdt_server.core.watchdog`). A worker whose
pipe stays silent for ``heartbeat_seconds`` after its first beat is stuck in a way its own
watchdog did not end (stopped by SIGSTOP, where no handler runs, or its watchdog is off):
the supervisor kills it (SIGKILL, which a stopped process obeys) and starts it again.
A supervisor that wakes more than a second after it meant to was paused itself (a frozen
or migrated machine, a stopped process group): its workers were most likely paused with
it, and each gets a fresh heartbeat window instead of being killed.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

__all__ = ["MAX_RESTART_DELAY", "Supervisor", "WorkerCommand"]

log = logging.getLogger("crdt_server.edge.supervisor")

WorkerCommand = Callable[[int, int, int], Sequence[str]]
"""``(index, listening fd, heartbeat fd)`` -> the argv of that worker."""

MAX_RESTART_DELAY = 5.0
"""The longest wait before a worker that keeps dying young is started again."""
_YOUNG_SECONDS = 5.0
"""A worker that dies within this of its start counts as dying young (backoff grows)."""


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    delay: float = 0.0
    due_at: float | None = None
    """When a restart is due (``None``: running, or stopping)."""
    heartbeat: int | None = None
    """The read end of the worker's heartbeat pipe."""
    beat_at: float | None = None
    """When the last heartbeat came (``None``: none yet since this start)."""


class Supervisor:
    """Runs ``count`` workers on ``sock`` until SIGTERM or SIGINT; see the module doc."""

    def __init__(
        self,
        command: WorkerCommand,
        count: int,
        sock: socket.socket,
        *,
        run_dir: Path | None = None,
        shutdown_timeout: float = 30.0,
        env: dict[str, str] | None = None,
        heartbeat_seconds: float = 0.0,
    ) -> None:
        """``heartbeat_seconds``: how long a worker's heartbeat may stay silent before it
        is killed and started again (0: not watched)."""
        self._command = command
        self._sock = sock
        self._run_dir = run_dir
        self._shutdown_timeout = shutdown_timeout
        self._env = env
        self._workers = [_Worker(index) for index in range(count)]
        self._stopping = False
        self._heartbeat_seconds = heartbeat_seconds

    def run(self) -> int:
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        os.set_blocking(write_end, False)
        previous_fd = signal.set_wakeup_fd(write_end)
        handled = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        try:
            for worker in self._workers:
                self._start(worker)
            while not self._stopping:
                self._reap()
                if self._stopping:
                    break
                now = time.monotonic()
                for worker in self._workers:
                    if worker.due_at is not None and worker.due_at <= now:
                        self._start(worker)
                self._kill_silent(time.monotonic())
                due = [w.due_at for w in self._workers if w.due_at is not None]
                due += self._beats_due()
                timeout = max(0.0, min(due) - time.monotonic()) if due else None
                beats = [w.heartbeat for w in self._workers if w.heartbeat is not None]
                asleep = time.monotonic()
                with contextlib.suppress(InterruptedError):
                    ready, _, _ = select.select([read_end, *beats], [], [], timeout)
                    self._read_beats(ready)
                if timeout is not None:
                    self._after_pause(time.monotonic() - asleep - timeout)
                with contextlib.suppress(BlockingIOError):
                    os.read(read_end, 512)
            self._stop_all()
            return 0
        finally:
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(read_end)
            os.close(write_end)
            for worker in self._workers:
                self._close_heartbeat(worker)
            if self._run_dir is not None:
                shutil.rmtree(self._run_dir, ignore_errors=True)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self._stopping = True

    def _start(self, worker: _Worker) -> None:
        worker.due_at = None
        self._close_heartbeat(worker)
        beat_read, beat_write = os.pipe()
        os.set_blocking(beat_read, False)
        os.set_blocking(beat_write, False)
        try:
            argv = list(self._command(worker.index, self._sock.fileno(), beat_write))
            worker.process = subprocess.Popen(
                argv, pass_fds=(self._sock.fileno(), beat_write), env=self._env
            )
        except BaseException:
            os.close(beat_read)
            raise
        finally:
            os.close(beat_write)
        worker.heartbeat, worker.beat_at = beat_read, None
        worker.started_at = time.monotonic()
        log.info("worker %d started (pid %d)", worker.index, worker.process.pid)

    def _close_heartbeat(self, worker: _Worker) -> None:
        if worker.heartbeat is not None:
            os.close(worker.heartbeat)
            worker.heartbeat, worker.beat_at = None, None

    def _read_beats(self, ready: Sequence[int]) -> None:
        now = time.monotonic()
        for worker in self._workers:
            if worker.heartbeat is None or worker.heartbeat not in ready:
                continue
            try:
                data = os.read(worker.heartbeat, 4096)
            except BlockingIOError:
                continue
            if data:
                worker.beat_at = now
            else:  # the worker closed it (it is exiting): SIGCHLD follows
                self._close_heartbeat(worker)

    def _beats_due(self) -> list[float]:
        if self._heartbeat_seconds <= 0:
            return []
        return [
            w.beat_at + self._heartbeat_seconds
            for w in self._workers
            if w.beat_at is not None and w.process is not None
        ]

    def _after_pause(self, overslept: float) -> None:
        """The supervisor woke ``overslept`` seconds after it meant to: over a second, it
        was paused itself (its machine frozen or migrated, its process group stopped), and
        its workers with it most likely. Their silence meanwhile is not theirs: each gets a
        fresh heartbeat window (a worker stopped alone is still killed after it)."""
        if overslept < 1.0:
            return
        log.warning(
            "the supervisor was paused for about %.1f s; its workers get a fresh heartbeat window",
            overslept,
        )
        now = time.monotonic()
        for worker in self._workers:
            if worker.beat_at is not None:
                worker.beat_at = now

    def _kill_silent(self, now: float) -> None:
        """Kill every worker whose heartbeat is overdue (it is reaped and restarted)."""
        if self._heartbeat_seconds <= 0:
            return
        for worker in self._workers:
            process = worker.process
            if process is None or worker.beat_at is None:
                continue
            silent = now - worker.beat_at
            if silent < self._heartbeat_seconds:
                continue
            log.error(
                "worker %d (pid %d) sent no heartbeat for %.1f s (stopped, or stuck past"
                " its own watchdog); killing it",
                worker.index,
                process.pid,
                silent,
            )
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            worker.beat_at = None  # killed once; its exit restarts it

    def _reap(self) -> None:
        """Collect every worker that exited and schedule its restart."""
        for worker in self._workers:
            process = worker.process
            if process is None or process.poll() is None:
                continue
            worker.process = None
            lived = time.monotonic() - worker.started_at
            if lived < _YOUNG_SECONDS:
                worker.delay = min(MAX_RESTART_DELAY, max(0.1, worker.delay * 2))
            else:
                worker.delay = 0.0
            worker.due_at = time.monotonic() + worker.delay
            log.warning(
                "worker %d (pid %d) exited with %s; starting it again in %.1f s",
                worker.index,
                process.pid,
                process.returncode,
                worker.delay,
            )

    def _stop_all(self) -> None:
        running = [w.process for w in self._workers if w.process is not None]
        for process in running:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._shutdown_timeout
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop in time; killing it", process.pid)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait()
            except OSError as exc:  # pragma: no cover - already reaped
                if exc.errno != errno.ECHILD:
                    raise
