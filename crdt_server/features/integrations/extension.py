"""The integrations' service: incoming webhook sources, calendar feed state, CSV imports.

It keeps its tables in the store (:mod:`crdt_server.features.integrations.tables`) and
follows the rooms the feed reads: the committed changes of a wedding's timeline (its items,
and its profile's wedding date, which moves the tasks due relative to it), budget or tasks
(here or in another process) bring the feed's per-entry ``SEQUENCE`` and ``LAST-MODIFIED``
up to date, so a calendar app sees the time of the change rather than the time it next
asked. Changes are gathered for ``follow_window`` seconds (0.25) and reconciled once,
stamped with the time of the last of them: under a burst of edits that is four
reconciliations a second per wedding, not one per commit (one per commit, each loading all
four documents, was 2,706 reconciliations and 9,258 document reads in a 10 s throughput
benchmark run). That background step reads only the entries the window's changes touched
(:class:`Touched`), and only their rows: its cost follows the edits, not the size of the
wedding. A change it cannot place (content another process committed, a wedding date
that moves every task due relative to it, a category renamed under its payments) makes it
read that kind of entry whole. The feed itself reconciles everything again before
answering, so nothing depends on that background step having run.

A batch of operations applied for an incoming webhook carries the delivery in its origin
(``inbound:<source>:<webhook-id>``); :meth:`IntegrationService.on_commit` then stores an
``integration.inbound_applied`` event in the same transaction, which is how a delivery
whose answer was never recorded (the process died after the commit) is recognised as done.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from crdt_server import clock
from crdt_server.core.hooks import CommitBatch, Core, Extension, RoomView
from crdt_server.documents.changes import entry_changes
from crdt_server.documents.model import (
    CATEGORY,
    PAYMENT,
    TASK,
    TIMELINE_ITEM,
    format_money,
    parse_instant,
)
from crdt_server.documents.schema import (
    Category,
    Payment,
    Task,
    TimelineItem,
    read_budget,
    read_budget_settings,
    read_profile,
    read_some,
    read_tasks,
    read_timeline,
)
from crdt_server.documents.tasks import due_dates
from crdt_server.features.events import read_events
from crdt_server.features.integrations.tables import FeedItem, IntegrationStore
from crdt_server.features.people import People
from crdt_server.storage import EventFilter, Gateway, NewEvent

__all__ = [
    "APPLIED_EVENT",
    "INBOUND_ORIGIN",
    "PAYMENT_KEY",
    "TASK_KEY",
    "DuePayment",
    "DueTask",
    "Feed",
    "IntegrationService",
    "Touched",
    "due_payments",
    "due_tasks",
    "fingerprint",
    "timeline_items",
]

log = logging.getLogger("crdt_server.integrations")

INBOUND_ORIGIN = "inbound:"
"""Origin prefix of the updates an incoming webhook makes: ``inbound:<source>:<id>``."""
APPLIED_EVENT = "integration.inbound_applied"
"""Stored with the update of an incoming webhook's operations (``{"source", "webhook_id"}``)."""


def fingerprint(item: TimelineItem) -> str:
    """What the calendar shows of an item, hashed: a change of any of it is a new SEQUENCE."""
    shown = [item.title, item.start, item.end, item.location, item.owner, item.vendor]
    shown += [item.status, item.notes]
    return hashlib.sha256(json.dumps(shown).encode()).hexdigest()


PAYMENT_KEY = "payment:"
"""Prefix of a scheduled payment's row in the feed's state (``payment:p1``): no entry id
holds a colon, so a payment never shares a timeline item's SEQUENCE."""


@dataclass(frozen=True, slots=True)
class DuePayment:
    """A scheduled payment as the calendar shows it: an all-day event on its due date."""

    id: str
    due: str
    amount: str
    """Formatted in the budget's currency (``1,200.00 EUR``)."""
    category: str
    vendor: str | None
    payer: str | None
    notes: str | None

    def fingerprint(self) -> str:
        shown = [self.due, self.amount, self.category, self.vendor, self.payer, self.notes]
        return hashlib.sha256(json.dumps(shown).encode()).hexdigest()


TASK_KEY = "task:"
"""Prefix of an open task's row in the feed's state (``task:t-venue``), as
:data:`PAYMENT_KEY` is of a payment's."""


@dataclass(frozen=True, slots=True)
class DueTask:
    """An open task with a day as the calendar shows it: an all-day event on that day."""

    id: str
    due: str
    """Its day: its own ``due``, or its ``due_offset`` from the wedding date."""
    title: str
    owner: str | None
    """The owner's ``sub``."""
    notes: str | None
    owner_name: str | None = None
    """The owner's display name in the member directory (their ``sub`` where the directory
    does not know them)."""

    def fingerprint(self) -> str:
        shown = [self.due, self.title, self.owner_name or self.owner, self.notes]
        return hashlib.sha256(json.dumps(shown).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Feed:
    """What the feed shows, each entry with its feed state; who may see the payments and
    the tasks is the route's to decide."""

    items: list[tuple[TimelineItem, FeedItem]]
    """The timeline items, by start."""
    payments: list[tuple[DuePayment, FeedItem]] = field(default_factory=list)
    """The scheduled payments with a due date, by due date."""
    tasks: list[tuple[DueTask, FeedItem]] = field(default_factory=list)
    """The open tasks with a day, by day."""


@dataclass(slots=True)
class Touched:
    """What a wedding's changes touched since the feed's state was last brought up to date:
    the ids of timeline items, payments and tasks (``None``: every one of that kind), and
    the time of the last change."""

    at: float
    items: set[str] | None = field(default_factory=set)
    payments: set[str] | None = field(default_factory=set)
    tasks: set[str] | None = field(default_factory=set)

    @classmethod
    def everything(cls, at: float) -> Touched:
        return cls(at, None, None, None)

    def add(self, kind: str, change_root: str, entry: str) -> None:
        """Note a change to ``entry`` of root ``change_root`` of a ``kind`` document."""
        if kind == "timeline":
            if change_root == "items" and self.items is not None:
                self.items.add(entry)
            elif change_root == "profile" and entry == "date":
                self.tasks = None  # due relative to the wedding date
        elif kind == "budget":
            if change_root == "payments" and self.payments is not None:
                self.payments.add(entry)
            elif change_root == "categories" or (change_root == "settings" and entry == "currency"):
                self.payments = None  # shown with each payment: its category, its amount
        elif kind == "tasks" and change_root == "tasks" and self.tasks is not None:
            self.tasks.add(entry)

    def merge(self, other: Touched) -> None:
        self.at = max(self.at, other.at)
        self.items = _union(self.items, other.items)
        self.payments = _union(self.payments, other.payments)
        self.tasks = _union(self.tasks, other.tasks)

    def __bool__(self) -> bool:
        return any(ids is None or ids for ids in (self.items, self.payments, self.tasks))


def _union(a: set[str] | None, b: set[str] | None) -> set[str] | None:
    return None if a is None or b is None else a | b


FOLLOWED = ("timeline", "budget", "tasks")
"""The documents the feed reads."""


class IntegrationService(Extension):
    """See the module docstring; routes reach it with ``server_state(r).extension(...)``."""

    name = "integrations"
    wants_changes = True

    def __init__(
        self, core: Core, *, follow_window: float = 0.25, people: People | None = None
    ) -> None:
        self.core = core
        self._people = people
        """The member directory, for the names of the tasks' owners (without it: their
        ``sub``)."""
        self.rows = IntegrationStore(core.store)
        self._follow_window = follow_window
        self._dirty: dict[str, Touched] = {}
        """wedding -> what changed in the documents the feed reads (timeline, budget,
        tasks) and is not yet reconciled."""
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    # -- hooks ----------------------------------------------------------------------------

    async def start(self, core: Core) -> None:
        self._task = asyncio.create_task(self._follow_documents(), name="calendar-sequences")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def on_commit(self, room: RoomView, batch: CommitBatch) -> Sequence[NewEvent]:
        rows: list[NewEvent] = []
        for update in batch.updates:
            origin = update.sender.origin
            if not origin.startswith(INBOUND_ORIGIN):
                continue
            source, _, webhook_id = origin.removeprefix(INBOUND_ORIGIN).partition(":")
            data = {"source": source, "webhook_id": webhook_id}
            rows.append(
                NewEvent(
                    room.wedding_id,
                    APPLIED_EVENT,
                    json.dumps(data, separators=(",", ":")),
                    room.kind,
                    sub=update.sender.actor.sub,
                    role=update.sender.actor.role,
                )
            )
        return rows

    def on_change(self, room: RoomView, batch: CommitBatch) -> None:
        if room.kind not in FOLLOWED:
            return
        now = clock.now()
        if batch.remote:
            touched = Touched.everything(now)  # another process's content: not itemised
        else:
            touched = Touched(now)
            for _, records in batch.changes:
                for change in entry_changes(records):
                    touched.add(room.kind, change.root, change.id)
            if not touched:
                return  # nothing the feed shows (a vendor's contact, a seat)
        known = self._dirty.get(room.wedding_id)
        if known is None:
            self._dirty[room.wedding_id] = touched
        else:
            known.merge(touched)
        self._idle.clear()
        self._wake.set()

    async def settled(self) -> None:
        """Wait until every change seen so far is reconciled (tests)."""
        await self._idle.wait()

    # -- calendar -------------------------------------------------------------------------

    async def feed_items(
        self, wedding_id: str, *, changed_at: float | None = None
    ) -> list[tuple[TimelineItem, FeedItem]]:
        """The wedding's timeline items (by start) with their feed state, brought up to date;
        an item found changed is stamped ``changed_at`` (default: now)."""
        return (await self.feed(wedding_id, changed_at=changed_at)).items

    async def feed(self, wedding_id: str, *, changed_at: float | None = None) -> Feed:
        """The timeline items (by start), the scheduled payments with a due date and the
        open tasks with a day (both by day), each with its feed state, brought up to date in
        one reconciliation; an entry found changed is stamped ``changed_at`` (default: now).
        Who may see the payments and the tasks is the route's to decide."""
        at = clock.now() if changed_at is None else changed_at
        items, due, tasks = await self._entries(wedding_id, Touched.everything(at))
        state = await self.rows.reconcile(wedding_id, _fingerprints(items, due, tasks), at)
        return Feed(
            [(item, state[item.id]) for item in sorted(items, key=_start_key)],
            [(p, state[PAYMENT_KEY + p.id]) for p in due],
            [(t, state[TASK_KEY + t.id]) for t in tasks],
        )

    async def _entries(
        self, wedding_id: str, touched: Touched
    ) -> tuple[list[TimelineItem], list[DuePayment], list[DueTask]]:
        """The timeline items, due payments and due tasks ``touched`` names, each kind
        read whole where it names every one, else only the entries named."""
        docs = await self.core.weddings.documents(wedding_id, kinds=FOLLOWED)
        timeline = docs.get("timeline")
        items = timeline_items(timeline, touched.items)
        due: list[DuePayment] = []
        if touched.payments is None or touched.payments:
            due = due_payments(docs.get("budget"), touched.payments)
        tasks: list[DueTask] = []
        if touched.tasks is None or touched.tasks:
            day = read_profile(timeline).date
            tasks = await self._named(wedding_id, due_tasks(docs.get("tasks"), day, touched.tasks))
        return items, due, tasks

    async def _named(self, wedding_id: str, tasks: list[DueTask]) -> list[DueTask]:
        """``tasks`` with their owners' display names: the directory read once (only when a
        task has an owner), whatever the number of tasks."""
        if self._people is None or not any(t.owner for t in tasks):
            return tasks
        names = {m.sub: m.name for m in await self._people.members(wedding_id)}
        return [_with_name(t, names) for t in tasks]

    async def follow(self, wedding_id: str, touched: Touched) -> None:
        """Bring the feed state of what ``touched`` names up to date, reading only those
        entries (and their rows), stamped with the time of its last change."""
        fingerprints = _fingerprints(*await self._entries(wedding_id, touched))
        if fingerprints:
            await self.rows.reconcile(wedding_id, fingerprints, touched.at, only=True)

    async def _follow_documents(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._follow_window)  # gather the window's changes
            self._wake.clear()
            weddings, self._dirty = self._dirty, {}
            for wedding_id, touched in weddings.items():
                try:
                    await self.follow(wedding_id, touched)
                except Exception:
                    # The feed reconciles again when it is read: nothing is lost.
                    log.exception("updating the calendar sequences of %s failed", wedding_id)
            if not self._dirty:
                self._idle.set()

    # -- incoming webhooks ----------------------------------------------------------------

    async def on_revoke(self, sub: str, wedding: str | None) -> None:
        """``sub`` lost their access (in ``wedding``, or everywhere with ``None``): the
        sources and calendar feeds they created stop working for good (deleted, so their
        deliveries and feed reads answer 401); a manager creates new ones to take over."""
        gone = await self.rows.delete_created_by(sub, wedding)
        if gone:
            log.info("revocation removed %d inbound sources and calendar feeds", gone)

    async def on_member_erased(self, wedding: str, sub: str) -> bool:
        """A member is erased: what they set up goes, as on a revocation."""
        await self.on_revoke(sub, wedding)
        return False

    async def applied(self, wedding_id: str, source: str, webhook_id: str) -> bool:
        """Whether an incoming webhook's operations were committed (its marker event)."""
        sql = Gateway.of(self.core.store)
        where = EventFilter(types=(APPLIED_EVENT,))
        after = 0
        while True:
            page = await read_events(sql, wedding_id, after=after, limit=500, where=where)
            for event in page:
                data: Any = json.loads(event.data)
                if data == {"source": source, "webhook_id": webhook_id}:
                    return True
            if len(page) < 500:
                return False
            after = page[-1].seq


def timeline_items(timeline_doc: Any, ids: set[str] | None = None) -> list[TimelineItem]:
    """The timeline's valid items, by id (of ``ids`` only, each read alone, when given)."""
    if timeline_doc is None or ids is None:
        return list(read_timeline(timeline_doc).items.values())
    return list(read_some(timeline_doc, TIMELINE_ITEM, TimelineItem, ids).values())


def _fingerprints(
    items: Sequence[TimelineItem], due: Sequence[DuePayment], tasks: Sequence[DueTask]
) -> dict[str, str]:
    """Each entry's fingerprint under its key in the feed's state."""
    found = {i.id: fingerprint(i) for i in items}
    found.update({PAYMENT_KEY + p.id: p.fingerprint() for p in due})
    found.update({TASK_KEY + t.id: t.fingerprint() for t in tasks})
    return found


def due_payments(budget_doc: Any, ids: set[str] | None = None) -> list[DuePayment]:
    """The budget's scheduled payments that have a due date, by due date then id (of
    ``ids`` only, each read alone, when given)."""
    if budget_doc is None or ids is None:
        budget = read_budget(budget_doc)
        currency, payments, categories = budget.currency, budget.payments, budget.categories
    else:
        currency = read_budget_settings(budget_doc)[0]["currency"]
        payments = read_some(budget_doc, PAYMENT, Payment, ids)
        wanted = {p.category_id for p in payments.values() if p.category_id}
        categories = read_some(budget_doc, CATEGORY, Category, wanted)
    found = [
        DuePayment(
            p.id,
            p.due,
            format_money(p.amount, currency),
            category.name if (category := categories.get(p.category_id)) else p.category_id,
            p.vendor,
            p.payer,
            p.notes or None,
        )
        for p in payments.values()
        if p.scheduled and p.due is not None
    ]
    return sorted(found, key=lambda p: (p.due, p.id))


def due_tasks(
    tasks_doc: Any, wedding_date: str | None, ids: set[str] | None = None
) -> list[DueTask]:
    """The tasks not done that have a day (their own ``due``, or their ``due_offset`` from
    ``wedding_date``), by day then id; owners as their ``sub`` (of ``ids`` only, each read
    alone, when given). One pass of the tasks' reader: a task that breaks the schema, or an
    offset that leaves the calendar, is none."""
    if tasks_doc is None or ids is None:
        tasks = read_tasks(tasks_doc).tasks
    else:
        tasks = read_some(tasks_doc, TASK, Task, ids)
    found = [
        DueTask(task_id, day, task.title, task.owner, task.notes or None)
        for task_id, day in due_dates(tasks, wedding_date).items()
        if day is not None and not (task := tasks[task_id]).done
    ]
    return sorted(found, key=lambda t: (t.due, t.id))


def _with_name(task: DueTask, names: Mapping[str, str]) -> DueTask:
    if task.owner is None:
        return task
    return replace(task, owner_name=names.get(task.owner) or task.owner)


def _start_key(item: TimelineItem) -> tuple[datetime, str]:
    return (parse_instant(item.start), item.id)
