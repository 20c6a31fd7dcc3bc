"""Payments due: a scheduled payment's due day brings ``budget.payment_due`` once, and a
reminder in the inbox of each member who may read the budget.

The budget's committed changes name the payments they touched (the change records every
room keeps for the events feature); a background step re-reads those payments and asks the
scheduler for one job per scheduled payment with a due date (kind ``payments.due``, entry
the payment's id), due at :data:`REMIND_AT` on that day in the wedding's time zone (the
profile's; UTC without one). A new due date reschedules it (the scheduler deletes the
pending job due at the old time); a payment paid, unscheduled or removed cancels it. A
budget room loaded from the store schedules its scheduled payments again (harmless: a job
for the same time is kept as it is), so a process that died between a commit and this step
loses no reminder.

When the job is due, its run reads the payment again and writes nothing if it is no longer
scheduled for that day (paid meanwhile, moved, removed: the run is the last word, whatever
raced with the cancellation); otherwise it returns the event and the inbox rows, which the
scheduler commits with the job's completion: once, across restarts and processes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import date, datetime, time

from crdt_server import clock
from crdt_server.actor import Actor
from crdt_server.auth.permissions import PermissionMatrix
from crdt_server.core.hooks import CommitBatch, Core, Extension, RoomView
from crdt_server.documents.changes import entry_changes, touches
from crdt_server.documents.domain import WEDDINGS
from crdt_server.documents.model import format_money, local_moment, zone_of
from crdt_server.documents.schema import Payment, read_budget, read_profile
from crdt_server.features.events import store_events
from crdt_server.features.follow import Follower
from crdt_server.features.jobs import Job, JobContext
from crdt_server.features.notifications import Told, notify
from crdt_server.features.people import Member, People
from crdt_server.features.scheduler import Scheduler
from crdt_server.storage import NewEvent
from crdt_server.storage.gateway import Tx

__all__ = [
    "KIND",
    "PAYMENT_DUE",
    "REASON",
    "REMIND_AT",
    "PaymentReminders",
    "due_moment",
    "due_when",
    "remind",
    "told",
]

log = logging.getLogger("crdt_server.payments")

KIND = "payments.due"
"""The scheduler's job kind: one per scheduled payment (entry: the payment's id)."""
PAYMENT_DUE = "budget.payment_due"
"""The event the job stores on the due day: ``{"id", "due", "when", "amount",
"category_id", "vendor"}`` (``when``: :func:`due_when`), credited to the server."""
REASON = "payment_due"
"""The reason of the reminder in the inbox (its ``message`` is the payment's id)."""
REMIND_AT = time(9, 0)
"""The time of day, in the wedding's zone, a payment's due day is marked."""
SERVER = Actor("server", "server")


def due_moment(due: str, zone: str | None) -> datetime:
    """When a payment due on ``due`` (``YYYY-MM-DD``) is reminded: :data:`REMIND_AT` that
    day in ``zone`` (an IANA name; UTC when ``None`` or unknown)."""
    return local_moment(date.fromisoformat(due), REMIND_AT, zone)


_REMINDED_BY = frozenset({"status", "due"})
"""The fields of a payment its reminder follows (:func:`_reminded`, the job's due day)."""


def _reminded(payment: Payment | None) -> bool:
    return payment is not None and payment.scheduled and payment.due is not None


def days_until(due: str, zone: str | None) -> int:
    """Days from today in the wedding's zone to ``due`` (negative: it is past)."""
    today = datetime.fromtimestamp(clock.now(), zone_of(zone)).date()
    return (date.fromisoformat(due) - today).days


def due_when(due: str, zone: str | None) -> str:
    """``today`` for a payment due today in the wedding's zone, ``overdue`` for one due
    before (scheduled after its day: its job is due at once), ``soon`` for a later day."""
    days = days_until(due, zone)
    return "overdue" if days < 0 else "today" if days == 0 else "soon"


def told(payment: Payment, category: str, currency: str | None, days: int) -> Told:
    """A payment's reminder as an email and a push say it, ``days`` before its due day
    (:func:`days_until`): overdue, due today or due in so many days, each titled its own
    way, with the amount in the budget's currency, the vendor and the category."""
    money = format_money(payment.amount, currency)
    to = f" to {payment.vendor}" if payment.vendor else ""
    if days < 0:
        title = "Payment overdue"
        state = f"is overdue: it was due on {payment.due} and is not marked paid"
    elif days == 0:
        title, state = "Payment due today", f"is due today ({payment.due})"
    else:
        soon = "tomorrow" if days == 1 else f"in {days} days"
        title, state = f"Payment due {soon}", f"is due {soon}, on {payment.due}"
    return Told(
        f"{title}: {money}{to or f' for {category}'}",
        f"A payment of {money}{to} ({category}) {state}.",
    )


class PaymentReminders(Extension):
    """Keeps one scheduler job per scheduled payment (module docstring)."""

    name = "payment-reminders"
    domain = WEDDINGS
    wants_changes = True  # which payments each budget commit touched

    def __init__(self, core: Core, scheduler: Scheduler, people: People | None) -> None:
        self.scheduler = scheduler
        self.people = people
        self.core = core
        text = core.settings.permissions
        self._permissions = PermissionMatrix.from_json(text) if text else PermissionMatrix()
        self._follower = Follower(
            "payment-reminders", self.sync, log, "scheduling the payments of a wedding"
        )

    async def start(self, core: Core) -> None:
        self._follower.start()

    async def close(self) -> None:
        await self._follower.close()

    # -- following the budget -------------------------------------------------------------

    async def on_load(self, room: RoomView) -> None:
        if room.kind == "budget":
            self._follower.mark(room.wedding_id)

    def on_stored(self, room: RoomView, batch: CommitBatch) -> None:
        if room.kind != "budget":
            return
        touched = {
            change.id
            for _, records in batch.changes
            for change in entry_changes(records)
            if change.root == "payments" and touches(change, _REMINDED_BY)
        }
        if touched:
            self._follower.mark(room.wedding_id, touched)

    async def settled(self) -> None:
        """Wait until every budget change seen so far has reached the scheduler (tests)."""
        await self._follower.settled()

    async def sync(self, wedding: str, payments: set[str] | None = None) -> None:
        """Bring the jobs of ``payments`` (``None``: every scheduled payment) in line with
        the budget as it is now."""
        docs = await self.core.weddings.documents(wedding, kinds=("budget", "timeline"))
        budget = read_budget(docs.get("budget"))
        zone = read_profile(docs.get("timeline")).time_zone
        wanted = payments if payments is not None else set(budget.payments)
        for payment_id in sorted(wanted):
            payment = budget.payments.get(payment_id)
            if payment is not None and _reminded(payment):
                assert payment.due is not None
                due = due_moment(payment.due, zone)
                await self.scheduler.schedule(wedding, KIND, payment_id, due, {"due": payment.due})
            elif payments is not None:
                await self.scheduler.cancel(wedding, KIND, payment_id)

    def may_read_budget(self, role: str) -> bool:
        return self._permissions.access(role, "budget").can_read

    async def readers(self, wedding: str) -> list[Member]:
        """The members whose role may read the budget now (who are reminded)."""
        if self.people is None:
            return []
        return [m for m in await self.people.members(wedding) if self.may_read_budget(m.role)]


async def remind(job: Job, context: JobContext) -> Tx[None] | None:
    """The job's run: the event and the reminders, if the payment is still due that day."""
    reminders = context.get(PaymentReminders)
    docs = await context.core.weddings.documents(job.wedding, kinds=("budget", "timeline"))
    budget = read_budget(docs.get("budget"))
    payment = budget.payments.get(job.entry)
    if payment is None or not _reminded(payment) or payment.due != job.data.get("due"):
        return None  # paid, moved or removed since: nothing is due today
    assert payment.due is not None
    data = {
        "id": payment.id,
        "due": payment.due,
        "when": due_when(payment.due, read_profile(docs.get("timeline")).time_zone),
        "amount": payment.amount,
        "category_id": payment.category_id,
        "vendor": payment.vendor,
    }
    event = NewEvent(
        job.wedding,
        PAYMENT_DUE,
        json.dumps(data, separators=(",", ":"), ensure_ascii=False),
        "budget",
        sub=SERVER.sub,
        role=SERVER.role,
    )
    readers = await reminders.readers(job.wedding)
    return _rows(job, event, readers)


def _rows(job: Job, event: NewEvent, readers: Sequence[Member]) -> Tx[None]:
    yield from store_events([event])
    now = clock.now()
    for member in readers:
        yield from notify(
            job.wedding,
            member.sub,
            REASON,
            "",
            job.entry,
            SERVER,
            "normal",
            now,
            email=member.takes_email,
        )


async def describe(
    reminders: PaymentReminders, wedding: str, ref: str, reader: Member
) -> Told | None:
    """The reminder in an email or a push (:func:`told`, as the payment is now): ``None``
    once the payment is no longer scheduled, or when the reader's role may no longer read
    the budget."""
    if not reminders.may_read_budget(reader.role):
        return None
    docs = await reminders.core.weddings.documents(wedding, kinds=("budget", "timeline"))
    budget = read_budget(docs.get("budget"))
    payment = budget.payments.get(ref)
    if payment is None or not _reminded(payment):
        return None
    assert payment.due is not None
    category = budget.categories.get(payment.category_id)
    what = category.name if category else payment.category_id
    days = days_until(payment.due, read_profile(docs.get("timeline")).time_zone)
    return told(payment, what, budget.currency, days)
