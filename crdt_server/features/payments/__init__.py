"""Payments due: ``budget.payment_due`` once on a scheduled payment's due day, with a
reminder in the inbox (and email) of each member who may read the budget, through the
scheduler; rescheduled when the due date moves, cancelled when the payment is paid or
removed (:mod:`crdt_server.features.payments.extension`)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.events import EventLog
from crdt_server.features.jobs import JobKind
from crdt_server.features.notifications import Mailer, Notifications
from crdt_server.features.payments.extension import (
    KIND,
    PAYMENT_DUE,
    REASON,
    REMIND_AT,
    PaymentReminders,
    describe,
    due_moment,
    due_when,
    remind,
    told,
)
from crdt_server.features.people import People
from crdt_server.features.scheduler import Job, JobContext, Scheduler

__all__ = [
    "FEATURE",
    "KIND",
    "PAYMENT_DUE",
    "REASON",
    "REMIND_AT",
    "PaymentReminders",
    "due_moment",
    "due_when",
    "told",
]


def _build(built: Built) -> Sequence[Extension]:
    # Reminding people needs the directory and the inbox (optional: the event is stored
    # without them).
    people = built.find(People) if built.find(Notifications) is not None else None
    reminders = PaymentReminders(built.core, built.get(Scheduler), people)
    mailer = built.find(Mailer)
    if mailer is not None:
        mailer.describe(REASON, partial(describe, reminders), "A payment falls due")
    return [reminders]


def _wake_mailer(job: Job, context: JobContext) -> None:
    # The event and the reminders' emails were committed in the job's transaction: wake
    # the wedding's event readers (an open app refreshes its inbox on the event), then send
    # the emails.
    context.get(EventLog).announce(job.wedding)
    try:
        inbox = context.get(Notifications)
    except LookupError:  # no inbox: the job wrote the event only
        return
    inbox.queued(job.wedding)


FEATURE = Feature(
    "payments",
    _build,
    needs=("scheduler",),
    jobs=(JobKind(KIND, remind, after=_wake_mailer),),
)
