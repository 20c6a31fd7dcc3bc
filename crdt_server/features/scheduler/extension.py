"""The scheduler: keeps jobs, and runs the due ones of the kinds the running features declare.

One loop per process waits (on :mod:`crdt_server.clock`) until the next job may be claimed,
capped by ``CRDT_SERVER_SCHEDULER_POLL_SECONDS`` (jobs another process scheduled), claims the
due jobs under a lease and runs each: its kind's run reads what it needs and returns the
rows to write, which commit in the transaction that marks the job done, so they are written
once even if several processes or hosts race, or one dies and restarts. A fake clock's
``advance`` runs the jobs it made due before it returns (:meth:`Scheduler.run_due` is its
runner).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from crdt_server import clock
from crdt_server.core.hooks import Core, Extension
from crdt_server.features.jobs import Job, JobContext, JobKind
from crdt_server.features.scheduler import tables
from crdt_server.features.scheduler.settings import SchedulerSettings
from crdt_server.storage import Gateway, StoreError
from crdt_server.storage.gateway import Tx

__all__ = ["Scheduler", "UnknownJobKind"]

log = logging.getLogger("crdt_server.scheduler")

_BATCH = 50
_MAX_BACKOFF = 3600.0


class UnknownJobKind(ValueError):
    """A job was scheduled for a kind no running feature declares."""


class Scheduler(Extension):
    """Schedules, reschedules and cancels jobs, and runs the due ones (module docstring)."""

    name = "scheduler"

    def __init__(
        self, core: Core, kinds: Mapping[str, JobKind], extensions: list[Extension]
    ) -> None:
        self.kinds = dict(kinds)
        self._extensions = extensions
        self.db = Gateway.of(core.store)
        self._core = core
        self._settings = core.settings.fragment(SchedulerSettings)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._running = asyncio.Lock()
        self._forget: Callable[[], None] | None = None
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        """This process's name on the leases it takes."""
        self.done = 0
        """Jobs this process completed (for tests and metrics)."""

    async def start(self, core: Core) -> None:
        self._forget = clock.current().on_advance(self.run_due)
        self._task = asyncio.create_task(self._loop(), name="scheduler")

    async def close(self) -> None:
        if self._forget is not None:
            self._forget()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- the API features use ------------------------------------------------------------

    def _kind(self, kind: str) -> str:
        if kind not in self.kinds:
            raise UnknownJobKind(f"no running feature declares the job kind {kind!r}")
        return kind

    def scheduled(
        self,
        wedding: str,
        kind: str,
        entry: str,
        due: float | datetime,
        data: Mapping[str, Any] | None = None,
    ) -> Tx[bool]:
        """The step (to compose into a feature's own transaction) that makes (wedding,
        kind, entry) due at ``due`` (Unix seconds, or an aware ``datetime``): its pending
        jobs due at another time go; a job already there for this very time (pending or
        done) stays as it is. Whether a job was added. Call :meth:`wake` after the commit."""
        at = due.timestamp() if isinstance(due, datetime) else float(due)
        return tables.schedule(wedding, self._kind(kind), entry, at, dict(data or {}), clock.now())

    def cancelled(self, wedding: str, kind: str, entry: str) -> Tx[int]:
        """The step that deletes (wedding, kind, entry)'s pending jobs; how many."""
        return tables.cancel(wedding, self._kind(kind), entry)

    async def schedule(
        self,
        wedding: str,
        kind: str,
        entry: str,
        due: float | datetime,
        data: Mapping[str, Any] | None = None,
    ) -> bool:
        """Make (wedding, kind, entry) due at ``due`` in a transaction of its own (see
        :meth:`scheduled`); also the way to reschedule. Whether a job was added."""
        added = await self.db.run(self.scheduled(wedding, kind, entry, due, data))
        self.wake()
        return added

    async def reschedule(
        self,
        wedding: str,
        kind: str,
        entry: str,
        due: float | datetime | None,
        data: Mapping[str, Any] | None = None,
    ) -> bool:
        """The entry's due time changed to ``due`` (``None``: it has none any more, the
        pending job is cancelled). Whether a job was added."""
        if due is None:
            await self.cancel(wedding, kind, entry)
            return False
        return await self.schedule(wedding, kind, entry, due, data)

    async def cancel(self, wedding: str, kind: str, entry: str) -> int:
        """Delete (wedding, kind, entry)'s pending jobs; how many."""
        removed = await self.db.run(self.cancelled(wedding, kind, entry))
        self.wake()
        return removed

    async def plan(
        self,
        wedding: str,
        kind: str,
        wanted: Mapping[str, tuple[float | datetime, Mapping[str, Any] | None]],
    ) -> int:
        """Make the wedding's jobs of ``kind`` be ``wanted`` (entry -> due and data), in one
        transaction: what :meth:`schedule` does for each wanted entry, and the pending jobs
        of every other entry cancelled. For a feature that derives all its reminders of a
        wedding from its documents (after they changed); only the differences are written.
        How many jobs were added or deleted."""
        due = {
            entry: (at.timestamp() if isinstance(at, datetime) else float(at), dict(data or {}))
            for entry, (at, data) in wanted.items()
        }
        changed = await self.db.run(tables.plan(wedding, self._kind(kind), due, clock.now()))
        if changed:
            self.wake()
        return changed

    async def jobs(self, wedding: str, kind: str, entry: str) -> list[tables.JobRow]:
        """(wedding, kind, entry)'s jobs, pending, done and failed, by due time."""
        return await tables.jobs_of_entry(self.db, wedding, kind, entry)

    def wake(self) -> None:
        """Look for due jobs now (a job was scheduled in a transaction of the caller's)."""
        self._wake.set()

    # -- running jobs --------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_due()
                wake_at = await tables.next_wake(self.db, self.kinds)
            except StoreError as exc:  # a full disk, a lost database: one line, not a trace
                log.warning("scheduled jobs paused, the store failed: %s; trying again", exc)
                wake_at = None
            except Exception:
                log.exception("running scheduled jobs failed; trying again")
                wake_at = None
            pause = self._settings.scheduler_poll_seconds
            if wake_at is not None:
                pause = min(pause, max(0.0, wake_at - clock.now()))
            await clock.wait(self._wake, pause)

    async def run_due(self) -> int:
        """Claim and run every job due now (by the clock); how many completed."""
        async with self._running:
            count = 0
            while True:
                jobs = await tables.claim(
                    self.db,
                    list(self.kinds),
                    self.owner,
                    clock.now(),
                    self._settings.scheduler_lease_seconds,
                    _BATCH,
                )
                for job in jobs:
                    count += await self._run(job)
                if len(jobs) < _BATCH:
                    return count

    async def _run(self, job: Job) -> int:
        kind = self.kinds[job.kind]
        context = JobContext(self._extensions, self._core)
        try:
            step = await kind.run(job, context)
            await self.db.run(_completing(job.id, self.owner, step))
        except tables.LeaseLost:
            log.warning(
                "scheduled job %s (%s) ran past its lease; left to another", job.id, kind.name
            )
            return 0
        except Exception as exc:
            given_up = job.attempts >= self._settings.scheduler_attempts
            retry_at = (
                None
                if given_up
                else clock.now() + min(_MAX_BACKOFF, 30.0 * 4 ** (job.attempts - 1))
            )
            log.exception(
                "scheduled job %s (%s) failed (attempt %d)%s",
                job.id,
                kind.name,
                job.attempts,
                "; given up" if given_up else "; will retry",
            )
            await self.db.run(tables.fail(job.id, self.owner, type(exc).__name__, retry_at))
            return 0
        self.done += 1
        if kind.after is not None:
            try:
                kind.after(job, context)
            except Exception:  # the job is done: its follow-up failing changes nothing stored
                log.exception("the follow-up of scheduled job %s (%s) failed", job.id, kind.name)
        return 1


def _completing(job: int, owner: str, step: Tx[None] | None) -> Tx[None]:
    # The lease is checked first: a run that lost it writes nothing.
    yield from tables.complete(job, owner, clock.now())
    if step is not None:
        yield from step
