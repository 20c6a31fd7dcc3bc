"""The scheduler: durable jobs due at a wall-clock time (reminders), run once.

A feature declares its kinds of job on its :class:`~crdt_server.features.Feature`
(``jobs=(JobKind("<feature>.<what>", run),)``, :mod:`crdt_server.features.jobs`); no
central list names them. It schedules, reschedules and cancels jobs through the
:class:`Scheduler` extension (``built.get(Scheduler)`` in its ``build``: the scheduler
comes before it in ``crdt_server.app.FEATURES``), by (wedding, kind, entry):

* ``await scheduler.schedule(wedding, kind, entry, due, data)``: the entry is due at
  ``due`` (Unix seconds by :mod:`crdt_server.clock`, or an aware ``datetime``). Its
  pending job due at another time is deleted; a job for this very time that exists
  already (pending, or done) is kept as it is, so scheduling again is harmless (re-derive
  every reminder at start, from two processes at once). This is also how a due date that
  changed is rescheduled.
* ``await scheduler.reschedule(wedding, kind, entry, due_or_None, data)``: the same, and
  ``None`` (the due date was removed) cancels.
* ``await scheduler.cancel(wedding, kind, entry)``: the pending job goes.
* ``await scheduler.plan(wedding, kind, {entry: (due, data), ...})``: the wedding's jobs
  of ``kind`` become exactly these (the others' pending jobs are cancelled), in one
  transaction that writes only the differences: for a feature that derives all its
  reminders of a wedding from its documents after they changed.
* ``scheduler.scheduled(...)`` / ``scheduler.cancelled(...)``: the same as transaction
  steps (:data:`crdt_server.storage.gateway.Tx`) to ``yield from`` in a feature's own
  transaction (then call ``scheduler.wake()`` after the commit).

When a job is due, one process claims it under a lease (``CRDT_SERVER_SCHEDULER_LEASE_SECONDS``)
and awaits its kind's ``run(job, context)``: the run reads what it needs (``context.get(
Extension)`` reaches the running extensions, ``context.core`` the store and documents) and
returns a transaction step, or ``None`` when there is nothing to do any more. That step
commits in the same transaction that marks the job done, and only while the lease is still
this process's: an inbox row written there is written exactly once, across restarts,
workers and hosts. A job is unique per (wedding, kind, entry, due time); a done job is
never run again. An email the step queues (the notifications outbox, the guest-mail
outbox) is sent after that commit by the mailer, which deletes it in a commit of its own
once the SMTP server accepted it: a process that dies between the SMTP server's
acceptance and that commit sends it again when the outbox is retried (at least once; the
inbox row stays exactly once).

Example: a feature that reminds a task's owner on its due date::

    from crdt_server.features.jobs import Job, JobContext, JobKind
    from crdt_server.features.notifications import Notifications, notify
    from crdt_server.features.scheduler import Scheduler

    async def remind(job: Job, context: JobContext) -> Tx[None] | None:
        if await task_is_done(context, job.wedding, job.entry):
            return None                          # nothing to remind any more
        return notify(job.wedding, job.data["owner"], "task.due", "", job.entry,
                      SYSTEM, "normal", clock.now(), email=True)

    def wake_mailer(job: Job, context: JobContext) -> None:
        context.get(Notifications).queued(job.wedding)

    REMIND = JobKind("tasks.reminder", remind, after=wake_mailer)
    FEATURE = Feature("tasks", _build, jobs=(REMIND,), ...)

    # in the feature's extension, when a task's due date is set, moved or removed:
    await scheduler.reschedule(wedding, "tasks.reminder", task_id, due_or_none,
                               {"owner": owner_sub})

Tests move time with a fake clock (``crdt_server.clock.use(FakeClock(...))``): its
``await advance(seconds)`` runs the jobs it made due before it returns.
"""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature, job_kinds_of
from crdt_server.features.jobs import Job, JobContext, JobKind
from crdt_server.features.scheduler.extension import Scheduler, UnknownJobKind
from crdt_server.features.scheduler.settings import SchedulerSettings
from crdt_server.features.scheduler.tables import SCHEMA, JobRow

__all__ = [
    "FEATURE",
    "Job",
    "JobContext",
    "JobKind",
    "JobRow",
    "Scheduler",
    "SchedulerSettings",
    "UnknownJobKind",
]


def _build(built: Built) -> Sequence[Extension]:
    # The kinds of every feature the server runs, built before or after this one; their
    # runs reach the extensions through the list, complete by the time any job runs.
    return [Scheduler(built.core, job_kinds_of(built.features), built.extensions)]


FEATURE = Feature(
    "scheduler",
    _build,
    schemas=(SCHEMA,),
    settings=SchedulerSettings,
)
