"""The one writer every store uses: group commit, writes in queue order.

Concurrent :meth:`GroupCommitter.append` calls queued while a transaction is in flight
share the next transaction (one commit, one fsync, for all of them); so do the gateway's
transactions (:meth:`GroupCommitter.run`: every feature's writes), each in a savepoint of
its own, and appends and gateway transactions queued side by side share it too, carried
out in queue order (the features write beside the rooms' commits: in the product
scenario, ending the transaction at each change of kind made 2.7 transactions where one
does); any other write (a feature's tables installed, documents moved in, a held
transaction) runs in a transaction of its own, in queue order. A failed transaction fails
every caller in it and commits nothing; later ones go on. This is the store's one write
queue: nothing writes beside it.

A shared transaction takes at most :data:`MAX_SHARED_UPDATES` updates (the rest wait for
the next one, in order), and an append asked to go ``first`` (a quiet wedding's commit
under overload, :mod:`crdt_server.core.backlog`) is taken from behind the shared jobs
queued ahead of it and committed in a small transaction of its own before them; it never
passes a write of another kind. A backend that commits on the event loop's own thread
(SQLite on a fast disk, :mod:`storage.sqlite`) passes ``commit_now``: then such an append,
made while no transaction is under way, commits at once, in its caller's turn of the loop,
instead of waiting for the writer task to wake and for its own wake-up afterwards (under
overload each of those waits for a whole turn of the loop: 40 to 60 ms each in the
overload benchmark). Such a writer also lets the loop turn after each transaction, so it
holds the loop for one transaction at a time.

A backend that commits on a thread of its own (SQLite by default) passes ``lead`` instead:
leader/follower group commit with no timer. An append that finds no transaction under way
and nothing queued is the leader: its transaction is handed to the backend's thread at
once, from the caller's turn (no wake-up of the writer task, no turn of the loop before the
commit starts), and the appends that arrive while its fsync runs queue as followers and
share the next transaction, which the writer task hands to the same thread behind it. So a
light load adds no wait and never blocks the loop on an fsync, and a heavy load batches as
before. The backend's thread runs one job at a time in the order given, so a leader's
transaction and whatever the writer task hands over after it never overlap.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, Generic, TypeGuard, TypeVar

from .base import FeatureRow, NewUpdate, StoreError
from .gateway import Tx

__all__ = ["Appending", "CommitNow", "GroupCommitter", "Lead", "Part", "handed_over"]

W = TypeVar("W")
"""The backend's kind of write job (what its ``run_write`` carries out in a transaction)."""


@dataclass(frozen=True, slots=True)
class Appending:
    """The appends of a shared transaction that queued one after the other, as one."""

    updates: list[NewUpdate]
    steps: list[Tx[Any]]
    rows: list[FeatureRow]


CommitNow = Callable[[list[NewUpdate], list[Tx[Any]], list[FeatureRow]], list[int] | None]
"""Commits appends in one transaction on the caller's thread: their seqs (or StoreError);
``None``, having done nothing, where it cannot now (the append is queued instead)."""

Lead = Callable[[list[NewUpdate], list[Tx[Any]], list[FeatureRow]], asyncio.Future[list[int]]]
"""Hands appends to the backend's one writing thread, in one transaction, at once; the
future of their seqs (or StoreError), done once that transaction has ended. Whatever the
backend is given to write afterwards runs after it."""

Part = Appending | list[Tx[Any]]
"""One part of a shared transaction: appends, or gateway transactions (each in a
savepoint of its own, :func:`storage.gateway.each_in_a_savepoint`)."""


@dataclass(slots=True)
class _Append:
    updates: list[NewUpdate]
    steps: list[Tx[Any]]
    rows: list[FeatureRow]
    future: asyncio.Future[list[int]]
    first: bool = False


@dataclass(slots=True)
class _Run:
    tx: Tx[Any]
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _Write(Generic[W]):
    job: W
    future: asyncio.Future[Any]


class GroupCommitter(Generic[W]):
    """One writer task for one store.

    ``commit_rows(updates, steps, rows)`` appends updates, the features' gateway steps
    about them (:meth:`storage.base.DocumentStore.append`) and feature rows in one
    committed transaction and returns the updates' seqs in order;
    ``commit_now(updates, steps, rows)``, if :meth:`start` is given one, does what
    ``commit_rows`` does, in the caller's thread, without suspending (see the module
    docstring);
    ``run_write(job)`` carries out any other write in one committed transaction and
    returns what the job returned; ``run_shared(txs)`` carries out gateway transactions
    (already in the store's dialect) in one committed transaction and returns each one's
    outcome, ``(True, result)`` or ``(False, exception)``
    (:func:`storage.gateway.each_in_a_savepoint`); ``commit_parts(parts)`` carries out
    appends and gateway transactions queued side by side, part after part, in one
    committed transaction and returns each part's result (the seqs of an
    :class:`Appending`, the outcomes of a list of transactions, as those two do).
    All raise :class:`StoreError` having committed nothing.
    """

    def __init__(
        self,
        where: str,
        commit_rows: Callable[
            [list[NewUpdate], list[Tx[Any]], list[FeatureRow]], Awaitable[list[int]]
        ],
        run_write: Callable[[W], Awaitable[Any]],
        run_shared: Callable[[list[Tx[Any]]], Awaitable[list[tuple[bool, Any]]]],
        commit_parts: Callable[[list[Part]], Awaitable[list[Any]]],
    ) -> None:
        self._where = where
        self._commit_now: CommitNow | None = None
        self._lead: Lead | None = None
        self._leading = False
        """A leader's transaction is on the backend's thread and has not ended (one at most:
        an append leads only when none is)."""
        self._busy = False
        """The writer task holds jobs it has not finished (a transaction is under way)."""
        self._commit_rows = commit_rows
        self._run_write = run_write
        self._run_shared = run_shared
        self._commit_parts = commit_parts
        self._queue: _Queue[W] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, commit_now: CommitNow | None = None, lead: Lead | None = None) -> None:
        """Start the writer task; ``commit_now`` and ``lead`` (one at most): see the module
        docstring."""
        if commit_now is not None and lead is not None:
            raise ValueError("commit_now and lead exclude each other")
        self._commit_now = commit_now
        self._lead = lead
        self._leading = False
        self._queue = _Queue()
        self._task = asyncio.create_task(self._run(self._queue), name=f"writer {self._where}")

    @property
    def behind(self) -> bool:
        """Whether a whole shared transaction's worth is queued behind the jobs being
        carried out (:data:`MAX_SHARED_UPDATES`) and no leader's transaction is on the
        backend's thread: the writer cannot keep up. A backend that commits on a thread
        of its own may then carry out the writer task's shared transactions on the loop's
        thread (:mod:`storage.sqlite`)."""
        queue = self._queue
        return queue is not None and not self._leading and queue.updates >= MAX_SHARED_UPDATES

    async def stop(self) -> None:
        """Carry out everything already queued, then stop; later calls raise StoreError."""
        queue, task = self._queue, self._task
        self._queue = None
        if queue is not None:
            queue.put(None)
        if task is not None:
            await asyncio.wait({task})
        self._task = None

    async def append(
        self,
        updates: Sequence[NewUpdate],
        steps: Sequence[Tx[Any]] = (),
        rows: Sequence[FeatureRow] = (),
        first: bool = False,
    ) -> list[int]:
        """Append in a shared transaction, in queue order (the next one, unless those
        queued ahead fill it: :data:`MAX_SHARED_UPDATES`); ``first``: ahead of the appends
        and gateway transactions queued beside it, in a transaction of its own: at once,
        without suspending, where the backend commits on the loop's thread and no
        transaction is under way (see the module docstring)."""
        queue = self._queue
        if self._lead is not None and queue is not None:
            if not self._busy and not self._leading and queue.empty():
                return await self._led(self._lead(list(updates), list(steps), list(rows)))
        elif first and self._commit_now is not None and queue is not None:
            if not self._busy and queue.shared_only():
                seqs = self._commit_now(list(updates), list(steps), list(rows))
                if seqs is not None:
                    return seqs
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._enqueue(_Append(list(updates), list(steps), list(rows), future, first))
        return await future

    async def _led(self, done: asyncio.Future[list[int]]) -> list[int]:
        """Wait for a leader's transaction; the next append may lead once it has ended
        (not when its caller stops waiting: the thread goes on with it regardless)."""
        self._leading = True
        done.add_done_callback(self._ended)
        return await asyncio.shield(done)

    def _ended(self, _: asyncio.Future[list[int]]) -> None:
        self._leading = False

    async def run(self, tx: Tx[Any]) -> Any:
        """Carry out a gateway transaction (in the store's dialect), in queue order, with
        the others queued beside it; its result."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue(_Run(tx, future))
        return await future

    async def write(self, job: W) -> Any:
        """Carry out ``job`` in a transaction of its own, in queue order; its result."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue(_Write(job, future))
        return await future

    def _enqueue(self, job: _Job[W]) -> None:
        if self._queue is None:
            raise StoreError(f"{self._where} is not open")
        self._queue.put(job)

    async def _run(self, queue: _Queue[W]) -> None:
        jobs: list[_Job[W] | None] = []
        try:
            while True:
                self._busy = False
                if self._commit_now is not None:
                    # A turn of the loop between transactions: one on the loop's thread
                    # holds the loop while it runs (elsewhere each one already waits).
                    await asyncio.sleep(0)
                jobs = await queue.take()
                self._busy = True
                shared: list[_Append | _Run] = []
                for job in jobs:
                    if isinstance(job, _Append | _Run):
                        shared.append(job)  # both kinds share one transaction, in order
                        continue
                    # Anything else ends the run, so writes stay in queue order.
                    if shared:
                        await self._commit_shared(shared)
                        shared = []
                    if job is None:
                        return
                    try:
                        result = await self._run_write(job.job)
                    except Exception as exc:  # delivered to the caller, not swallowed
                        _fail(job.future, exc)
                    else:
                        if not job.future.done():  # the caller may have been cancelled
                            job.future.set_result(result)
                if shared:
                    await self._commit_shared(shared)
        finally:
            # Reached with work left only if this task was cancelled: nobody waits forever.
            jobs += queue.drain()
            for job in jobs:
                if job is not None:
                    _fail(job.future, StoreError(f"{self._where}: writer stopped"))

    async def _commit_shared(self, jobs: list[_Append | _Run]) -> None:
        firsts = [job for job in jobs if _first(job)]
        if firsts and len(firsts) < len(jobs):
            # Committed and answered before the others: a small transaction of their own.
            await self._commit_appends(firsts)
            jobs = [job for job in jobs if not _first(job)]
        appends = [job for job in jobs if isinstance(job, _Append)]
        runs = [job for job in jobs if isinstance(job, _Run)]
        if appends and runs:
            await self._commit_mixed(jobs)
            return
        if appends:
            await self._commit_appends(appends)
            return
        try:
            outcomes = await self._run_shared([run.tx for run in runs])
        except Exception as exc:  # delivered to every caller of the batch
            for run in runs:
                _fail(run.future, exc)
            return
        _deliver_outcomes(runs, outcomes)

    async def _commit_mixed(self, jobs: list[_Append | _Run]) -> None:
        """Appends and gateway transactions in one transaction, in queue order: each run
        of appends as one :class:`Appending`, each run of transactions as one list."""
        segments = [list(run) for _, run in itertools.groupby(jobs, key=type)]
        parts: list[Part] = []
        for segment in segments:
            appends = [job for job in segment if isinstance(job, _Append)]
            if appends:
                parts.append(_appending(appends))
            else:
                parts.append([job.tx for job in segment if isinstance(job, _Run)])
        try:
            results = await self._commit_parts(parts)
        except Exception as exc:  # delivered to every caller of the transaction
            for job in jobs:
                _fail(job.future, exc)
            return
        for segment, result in zip(segments, results, strict=True):
            if isinstance(segment[0], _Append):
                _deliver_seqs([job for job in segment if isinstance(job, _Append)], result)
            else:
                _deliver_outcomes([job for job in segment if isinstance(job, _Run)], result)

    async def _commit_appends(self, jobs: list[_Append]) -> None:
        appending = _appending(jobs)
        try:
            seqs = await self._commit_rows(appending.updates, appending.steps, appending.rows)
        except Exception as exc:  # delivered to every caller of the batch
            for job in jobs:
                _fail(job.future, exc)
            return
        _deliver_seqs(jobs, seqs)


_Job = _Append | _Run | _Write[W]

MAX_SHARED_UPDATES = 50
"""Updates one shared transaction takes at most (the jobs queued past them wait for the
next one, in order). Under overload the queue holds hundreds of rooms' batches: in one
transaction (measured: up to 937 updates, 480 ms) every room waits for all of them, and
every one of them resumes its commit in the same turn of the loop. And a quiet wedding's
append that goes first still waits for the transaction in flight: in the overload
benchmark, with the writers' updates merged (``Room.apply_run``), its echo's median was
157 ms at 200 and 34 ms at 50 at four times the sustainable rate, for 1 % fewer updates
acknowledged at eight times."""


def _size(job: _Job[W] | None) -> int:
    """What ``job`` counts towards :data:`MAX_SHARED_UPDATES`: its updates, at least one
    (an append of events alone, a gateway transaction, a write)."""
    return max(1, len(job.updates)) if isinstance(job, _Append) else 1


def _first(job: _Job[W] | None) -> TypeGuard[_Append]:
    """Whether ``job`` is an append asked to go first."""
    return isinstance(job, _Append) and job.first


class _Queue(Generic[W]):
    """The writer's queue (FIFO; ``None`` stops the writer)."""

    def __init__(self) -> None:
        self._jobs: deque[_Job[W] | None] = deque()
        self._ready = asyncio.Event()
        self._firsts = 0
        """Appends asked to go first that are queued."""
        self._others = 0
        """Jobs queued that are neither appends nor gateway transactions."""
        self.updates = 0
        """What the jobs queued count towards :data:`MAX_SHARED_UPDATES`, together."""

    def put(self, job: _Job[W] | None) -> None:
        self._jobs.append(job)
        self.updates += _size(job)
        self._firsts += _first(job)
        self._others += not isinstance(job, _Append | _Run)
        self._ready.set()

    def empty(self) -> bool:
        """Whether nothing is queued."""
        return not self._jobs

    def shared_only(self) -> bool:
        """Whether every job queued is an append or a gateway transaction (an append that
        goes first may pass them all)."""
        return not self._others

    async def take(self) -> list[_Job[W] | None]:
        """The next jobs to carry out, in queue order: at least one, and more while they
        hold fewer than :data:`MAX_SHARED_UPDATES` updates; then the appends asked to go
        first from the shared jobs queued right behind those, in order, as many as hold
        that bound (never from past a write of another kind: they join the last shared
        run, where they commit first). Taken all at once, the quiet weddings' appends at
        the start of an overload (1,000 and more) made one transaction of 55,294
        statements: ten seconds on the writer thread, every room waiting."""
        while not self._jobs:
            self._ready.clear()
            await self._ready.wait()
        queued = self._jobs
        jobs = [queued.popleft()]
        size = _size(jobs[0])
        while queued and size < MAX_SHARED_UPDATES:
            jobs.append(queued.popleft())
            size += _size(jobs[-1])
        if self._firsts and queued:
            behind: deque[_Job[W] | None] = deque()
            firsts = sum(_size(job) for job in jobs if _first(job))
            while queued and isinstance(queued[0], _Append | _Run):
                if firsts >= MAX_SHARED_UPDATES:
                    break  # the others go first in the next transactions, in order
                job = queued.popleft()
                if _first(job):
                    jobs.append(job)
                    firsts += _size(job)
                else:
                    behind.append(job)
            behind.extend(queued)
            self._jobs = behind
        self.updates -= sum(_size(job) for job in jobs)
        self._firsts -= sum(_first(job) for job in jobs)
        self._others -= sum(not isinstance(job, _Append | _Run) for job in jobs)
        return jobs

    def drain(self) -> list[_Job[W] | None]:
        """Every job still queued (the writer stopped)."""
        jobs = list(self._jobs)
        self._jobs.clear()
        self._firsts = self._others = self.updates = 0
        return jobs


def _deliver_seqs(jobs: list[_Append], seqs: list[int]) -> None:
    start = 0
    for job in jobs:
        if not job.future.done():  # the caller may have been cancelled
            job.future.set_result(seqs[start : start + len(job.updates)])
        start += len(job.updates)


def _deliver_outcomes(runs: list[_Run], outcomes: list[tuple[bool, Any]]) -> None:
    for run, (ok, value) in zip(runs, outcomes, strict=True):
        if run.future.done():  # the caller may have been cancelled
            continue
        if ok:
            run.future.set_result(value)
        else:
            _fail(run.future, value)


def _fail(future: asyncio.Future[Any], exc: Exception) -> None:
    if future.done():
        return
    if isinstance(exc, StoreError):
        # One instance per waiter: tasks re-raising a shared exception object would
        # splice their tracebacks into each other's.
        fresh = type(exc)(*exc.args)  # the same kind (StoreUnavailable stays one)
        fresh.__cause__ = exc.__cause__
        exc = fresh
    future.set_exception(exc)


_H = TypeVar("_H")


@asynccontextmanager
async def handed_over(
    start: Callable[[asyncio.Future[_H], asyncio.Future[bool]], Awaitable[Any]],
) -> AsyncIterator[_H]:
    """The caller's side of a held transaction (both backends' ``held_transaction``):
    ``start(entered, leave)`` is the writer's work, begun at once, which sets ``entered``
    to the open transaction once its turn comes and then waits for ``leave`` (``True``:
    commit; ``False``: roll back). Yields the transaction; what kept it from starting is
    raised here, an exception in the caller's block rolls it back and is raised again,
    and leaving the block waits for the commit."""
    loop = asyncio.get_running_loop()
    entered: asyncio.Future[_H] = loop.create_future()
    leave: asyncio.Future[bool] = loop.create_future()
    job = asyncio.ensure_future(start(entered, leave))
    await asyncio.wait({entered, job}, return_when=asyncio.FIRST_COMPLETED)
    if not entered.done():
        entered.cancel()
        await job  # raises what kept the transaction from starting
    try:
        yield entered.result()
    except BaseException:
        leave.set_result(False)
        with suppress(Exception):
            await asyncio.shield(job)
        raise
    leave.set_result(True)
    await job


def _appending(jobs: list[_Append]) -> Appending:
    """Appends queued one after the other, as one."""
    return Appending(
        [update for job in jobs for update in job.updates],
        [step for job in jobs for step in job.steps],
        [row for job in jobs for row in job.rows],
    )
