"""The vocabulary of scheduled jobs, shared by the scheduler feature and the features that
declare job kinds (a :class:`JobKind` in their :attr:`crdt_server.features.Feature.jobs`).

A job is one piece of work due at a wall-clock time (by :mod:`crdt_server.clock`) for one
entry of one wedding: "remind about task t7 on 2026-05-01 09:00". The scheduler
(:mod:`crdt_server.features.scheduler`) keeps jobs in a table, claims the due ones under a
lease and calls their kind's :attr:`JobKind.run`; what that returns is committed in the
transaction that marks the job done, so its rows are written exactly once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from crdt_server.storage.gateway import Tx

if TYPE_CHECKING:
    from crdt_server.core.hooks import Core, Extension

__all__ = ["Job", "JobContext", "JobKind", "JobRun"]

E = TypeVar("E", bound="Extension")


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed job, as its kind's :attr:`JobKind.run` receives it."""

    id: int
    wedding: str
    kind: str
    entry: str
    """What the job is about, in its kind's terms (a task id, a household id)."""
    due_at: float
    """Unix seconds it was due at (the scheduler's clock)."""
    data: dict[str, Any]
    """What the feature stored with it when it scheduled it (JSON)."""
    attempts: int
    """1 on the first run; more when an earlier run failed or its process died."""


class JobContext:
    """What a job's run may reach: the server's extensions (the feature's own one, and
    those it builds on) and the core (its store, registry and documents)."""

    def __init__(self, extensions: list[Extension], core: Core) -> None:
        self._extensions = extensions
        self.core = core

    def get(self, kind: type[E]) -> E:
        """The running extension of type ``kind`` (``LookupError`` when none runs)."""
        for ext in self._extensions:
            if isinstance(ext, kind):
                return ext
        raise LookupError(f"no running extension is a {kind.__name__}")


JobRun = Callable[[Job, JobContext], Awaitable[Tx[None] | None]]
"""A job kind's work: reads what it needs (awaiting freely; the job is leased to this
process meanwhile) and returns the transaction step (:data:`crdt_server.storage.gateway.Tx`)
the scheduler runs in the transaction that completes the job, or ``None`` when there is
nothing to write (the job is obsolete: the task was done, the guest answered). Raising
leaves the job to be tried again later (with a back-off, a few times)."""


@dataclass(frozen=True, slots=True)
class JobKind:
    """A kind of job a feature declares (:attr:`crdt_server.features.Feature.jobs`)."""

    name: str
    """``"<feature>.<what>"`` (``"rsvp.reminder"``), unique across the features."""
    run: JobRun
    after: Callable[[Job, JobContext], None] | None = None
    """Called once the job's transaction committed (wake a mailer for the email rows it
    wrote); not called when the run wrote nothing because it lost its lease."""
