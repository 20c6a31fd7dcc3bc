"""Tasks: reminders of the wedding's checklist (the ``tasks`` document) when a task falls due.

The document itself is the domain's (:mod:`crdt_server.documents.tasks`); this feature keeps
one scheduler job per open task with a due day (kind ``tasks.reminder``, 09:00 of the day
in the wedding's time zone), moves it when the task's day or the wedding date moves,
cancels it when the task is done or removed, and, when it is due, writes the owner's
notification (``task.due``; with an email where they take them), exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.jobs import JobKind
from crdt_server.features.notifications import Mailer
from crdt_server.features.scheduler import Scheduler

from .extension import (
    KIND,
    REASON,
    TaskReminders,
    due_time,
    due_when,
    remind,
    told,
    wake_mailer,
)

__all__ = ["FEATURE", "KIND", "REASON", "TaskReminders", "due_time", "due_when", "told"]


def _build(built: Built) -> Sequence[Extension]:
    reminders = TaskReminders(built.core, built.get(Scheduler))
    mailer = built.find(Mailer)
    if mailer is not None:
        mailer.describe(REASON, reminders.describe, subject="A task falls due")
    return [reminders]


FEATURE = Feature(
    "tasks",
    _build,
    needs=("scheduler",),
    jobs=(JobKind(KIND, remind, after=wake_mailer),),
)
