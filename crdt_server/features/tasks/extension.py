"""Reminders of the tasks that fall due: one scheduler job per task (kind ``tasks.reminder``),
kept equal to what the tasks document and the wedding date want
(:func:`crdt_server.documents.tasks.wanted_reminders`).

After a commit to a wedding's ``tasks`` document (the tasks it changed) or to its timeline's
profile (``date`` or ``time_zone``: every task), the extension reads the documents and
schedules each open task with a day at 09:00 of that day in the wedding's time zone (UTC
without one), reschedules a task whose day moved and cancels one that was done, removed or
left without a day. A tasks room that loads is reconciled whole, so a change committed
just before a crash is caught up the next time the wedding is opened. The work runs off
the commit path, one wedding at a time, coalescing what arrives meanwhile.

When a job is due, :func:`remind` reads the task again (done, removed or moved since:
nothing is written) and writes the event ``task.due`` (which tells an open app to refresh
its inbox) and a notification (reason ``task.due``, reference the task id) in the inbox of
its owner, or of every member of the couple when it has none, with an email for who has an
address and takes emails; in the transaction that completes the job, so both are written
once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import date, datetime, time

from crdt_server import clock
from crdt_server.actor import Actor
from crdt_server.auth.permissions import PermissionMatrix
from crdt_server.core.hooks import CommitBatch, Core, Extension, RoomView
from crdt_server.documents.changes import entry_changes, touches
from crdt_server.documents.domain import WEDDINGS
from crdt_server.documents.model import local_moment, zone_of
from crdt_server.documents.schema import read_profile, read_tasks
from crdt_server.documents.tasks import REMINDER_KIND, due_dates, wanted_reminders
from crdt_server.features.events import EventLog, store_events
from crdt_server.features.follow import Follower
from crdt_server.features.jobs import Job, JobContext
from crdt_server.features.notifications import Notifications, Told, notify
from crdt_server.features.people import Member, People
from crdt_server.features.scheduler import Scheduler
from crdt_server.storage import NewEvent
from crdt_server.storage.gateway import Tx

__all__ = [
    "KIND",
    "REASON",
    "REMIND_AT",
    "TASK_DUE",
    "TaskReminders",
    "due_time",
    "due_when",
    "remind",
    "told",
    "wake_mailer",
]

log = logging.getLogger("crdt_server.tasks")

KIND = REMINDER_KIND
"""The scheduler's job kind, ``tasks.reminder`` (one job per wedding, task and due time)."""
REASON = "task.due"
"""The notification's reason (its reference is the task id)."""
TASK_DUE = "task.due"
"""The event the job stores with the reminders: ``{"id", "title", "due", "owner", "when"}``
(``when``: :func:`due_when`), credited to the server (the open apps of who may read the
tasks refresh their inbox)."""
REMIND_AT = time(9, 0)
"""When on its due day a task is reminded, in the wedding's time zone."""
SYSTEM = Actor("scheduler", "server")


def due_time(day: str, zone: str | None) -> float:
    """Unix seconds of :data:`REMIND_AT` on ``day`` in ``zone`` (UTC without one)."""
    return local_moment(date.fromisoformat(day), REMIND_AT, zone).timestamp()


def days_until(day: str, zone: str | None) -> int:
    """Days from today in the wedding's zone to ``day`` (negative: it is past)."""
    today = datetime.fromtimestamp(clock.now(), zone_of(zone)).date()
    return (date.fromisoformat(day) - today).days


def due_when(day: str, zone: str | None) -> str:
    """``today`` for a task due today in the wedding's zone, ``overdue`` for one due before
    (a reminder run late: the server was down on its day), ``soon`` for a later day."""
    days = days_until(day, zone)
    return "overdue" if days < 0 else "today" if days == 0 else "soon"


def told(title: str, day: str | None, days: int) -> Told:
    """A task's reminder as an email and a push say it, ``days`` before its ``day``
    (:func:`days_until`; ``None``: it has none): overdue, due today or due in so many days,
    each titled its own way, with the task's title."""
    if day is None:
        return Told(f"Task to do: {title}", f"A task is to do: {title}.")
    if days < 0:
        return Told(f"Task overdue: {title}", f"A task is overdue (it was due on {day}): {title}.")
    if days == 0:
        return Told(f"Task due today: {title}", f"A task is due today ({day}): {title}.")
    soon = "tomorrow" if days == 1 else f"in {days} days"
    return Told(f"Task due {soon}: {title}", f"A task is due {soon}, on {day}: {title}.")


_REMINDED_BY = frozenset({"due", "due_offset", "done"})
"""The fields of a task its reminder follows (:func:`wanted_reminders`)."""


class TaskReminders(Extension):
    """Keeps the scheduler's ``tasks.reminder`` jobs equal to what the tasks want."""

    name = "task-reminders"
    domain = WEDDINGS
    wants_changes = True

    def __init__(self, core: Core, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self._core = core
        text = core.settings.permissions
        self._permissions = PermissionMatrix.from_json(text) if text else PermissionMatrix()
        self._follower = Follower(
            "task-reminders", self.reconcile, log, "updating the reminders of a wedding's tasks"
        )

    async def start(self, core: Core) -> None:
        self._follower.start()

    async def close(self) -> None:
        await self._follower.close()

    async def settled(self) -> None:
        """Wait until every change seen so far has reached the scheduler (tests)."""
        await self._follower.settled()

    async def on_load(self, room: RoomView) -> None:
        if room.kind == "tasks":
            self._follower.mark(room.wedding_id)

    def on_stored(self, room: RoomView, batch: CommitBatch) -> None:
        if room.kind not in ("tasks", "timeline"):
            return
        ids: set[str] = set()
        every = False
        for _, records in batch.changes:
            for change in entry_changes(records):
                if room.kind == "tasks" and change.root == "tasks":
                    if touches(change, _REMINDED_BY):
                        ids.add(change.id)
                elif room.kind == "timeline" and change.root == "profile":
                    every |= change.id in ("date", "time_zone")
        if every:
            self._follower.mark(room.wedding_id)
        elif ids:
            self._follower.mark(room.wedding_id, ids)

    async def describe(self, wedding: str, ref: str, member: Member) -> Told | None:
        """A reminder as its email and push say it (the notice for :data:`REASON`,
        :func:`told`): the task as it is now; ``None`` when it is gone or done, or when the
        member's role may no longer read the tasks."""
        if not self._permissions.access(member.role, "tasks").can_read:
            return None
        docs = await self._core.weddings.documents(wedding, ("tasks", "timeline"))
        task = read_tasks(docs.get("tasks")).tasks.get(ref)
        if task is None or task.done:
            return None
        profile = read_profile(docs.get("timeline"))
        day = due_dates({ref: task}, profile.date).get(ref)
        return told(task.title, day, 0 if day is None else days_until(day, profile.time_zone))

    async def reconcile(self, wedding: str, ids: Iterable[str] | None = None) -> None:
        """Schedule, move or cancel the reminders of ``ids`` (every task: ``None``)."""
        docs = await self._core.weddings.documents(wedding, ("tasks", "timeline"))
        tasks = read_tasks(docs.get("tasks")).tasks
        profile = read_profile(docs.get("timeline"))
        today = datetime.fromtimestamp(clock.now(), zone_of(profile.time_zone)).date()
        wanted = wanted_reminders(tasks, profile.date, today.isoformat())
        for task_id in sorted(tasks if ids is None else ids):
            day = wanted.get(task_id)
            due = None if day is None else due_time(day, profile.time_zone)
            await self.scheduler.reschedule(wedding, KIND, task_id, due, {"day": day})


async def remind(job: Job, context: JobContext) -> Tx[None] | None:
    """The job's notification, if the task is still open and still due that day."""
    docs = await context.core.weddings.documents(job.wedding, ("tasks", "timeline"))
    tasks = read_tasks(docs.get("tasks")).tasks
    task = tasks.get(job.entry)
    profile = read_profile(docs.get("timeline"))
    if task is None or task.done:
        return None
    if due_dates({job.entry: task}, profile.date).get(job.entry) != job.data.get("day"):
        return None  # moved since: its new job reminds it
    people = context.get(People)
    text = context.core.settings.permissions
    permissions = PermissionMatrix.from_json(text) if text else PermissionMatrix()
    if task.owner is not None:
        owner = await people.member(job.wedding, task.owner)
        members = [owner] if owner is not None else []
    else:
        members = [m for m in await people.members(job.wedding) if m.role == "couple"]
    readers = [m for m in members if permissions.access(m.role, "tasks").can_read]
    if not readers:
        return None
    day = str(job.data.get("day"))
    data = {
        "id": task.id,
        "title": task.title,
        "due": day,
        "owner": task.owner,
        "when": due_when(day, profile.time_zone),
    }
    event = NewEvent(
        job.wedding,
        TASK_DUE,
        json.dumps(data, separators=(",", ":"), ensure_ascii=False),
        "tasks",
        sub=SYSTEM.sub,
        role=SYSTEM.role,
    )
    now = clock.now()

    def steps() -> Tx[None]:
        yield from store_events([event])
        for member in readers:
            yield from notify(
                job.wedding,
                member.sub,
                REASON,
                "",
                job.entry,
                SYSTEM,
                "normal",
                now,
                email=member.takes_email,
            )

    return steps()


def wake_mailer(job: Job, context: JobContext) -> None:
    """The reminder and its event are committed: wake the wedding's event readers (an open
    app refreshes its inbox on ``task.due``) and the mailers."""
    context.get(EventLog).announce(job.wedding)
    context.get(Notifications).queued(job.wedding)
