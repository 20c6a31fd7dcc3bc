"""The scheduler's settings (``CRDT_SERVER_SCHEDULER_*``)."""

from __future__ import annotations

from dataclasses import dataclass

from crdt_server.settings import require_positive

__all__ = ["SchedulerSettings"]


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    scheduler_lease_seconds: float = 60.0
    """Scheduled jobs (reminders): how long a process holds a job it claimed. A process
    that dies holding one leaves it to another process (or itself, restarted) once this
    has passed; a run that takes longer loses the job and writes nothing."""
    scheduler_poll_seconds: float = 30.0
    """Scheduled jobs: the longest a process waits before looking for due jobs again (a
    job another process scheduled is seen within this; its own are seen at once)."""
    scheduler_attempts: int = 5
    """Scheduled jobs: runs of a job that fails (raises) before it is given up (kept as
    ``failed``, logged); the runs are spaced by a growing back-off."""

    def __post_init__(self) -> None:
        require_positive(
            self, "scheduler_lease_seconds", "scheduler_poll_seconds", "scheduler_attempts"
        )
