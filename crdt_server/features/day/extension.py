"""The wedding day: check-ins, the day's state, and late and missing alerts through the
durable scheduler.

After a commit to a wedding's timeline that can move a call time (an item's times, status
or vendor; the vendor directory; the wedding's date or zone: not typing a title), and when
a timeline room loads, a background step derives every vendor's call time on the wedding's
date (:func:`crdt_server.features.day.domain.call_times`) and makes the scheduler's
``day.missing`` jobs exactly those (:meth:`Scheduler.plan`, entry: the vendor's key, due:
its call time). A job is unique per (wedding, kind, entry, due time) and a done job never
runs again, so the alert fires once per (wedding, vendor, call time), across restarts and
processes; a call time already past when it is added is due at once (the scheduler's next
pass). When it runs, it reads the timeline and the check-ins again: a vendor who checked
in that day, or whose call time moved, raises nothing; otherwise it stores
``day.vendor_missing`` and an urgent notification for the couple and the planner, in the
transaction that completes the job.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from crdt_server import clock
from crdt_server.actor import Actor
from crdt_server.auth.permissions import LEADS
from crdt_server.core.hooks import CommitBatch, ConnectionView, Core, Extension, RoomView
from crdt_server.documents import DOCUMENT_KINDS, to_json
from crdt_server.documents.changes import EntryChange, entry_changes, touches
from crdt_server.documents.domain import WEDDINGS
from crdt_server.documents.model import local_moment, zone_of
from crdt_server.documents.vendors import VENDORS_ROOT, read_directory, spellings, vendor_name
from crdt_server.features.day import tables
from crdt_server.features.day.domain import call_times, local_day
from crdt_server.features.day.settings import DaySettings
from crdt_server.features.events import EventLog, store_events
from crdt_server.features.follow import Follower
from crdt_server.features.jobs import Job, JobContext
from crdt_server.features.notifications import Notifications, notify
from crdt_server.features.people import Member, People
from crdt_server.features.presence import PresenceDirectory
from crdt_server.features.scheduler import Scheduler
from crdt_server.names import RESERVED_EVENT_TYPES
from crdt_server.storage import Gateway, NewEvent
from crdt_server.storage.gateway import Tx

__all__ = [
    "CHECKED_IN",
    "MISSING",
    "MISSING_KIND",
    "OFFLINE",
    "MODE_CHANGED",
    "RESERVED",
    "DayWatch",
    "missing",
    "told",
]

log = logging.getLogger("crdt_server.day")

CHECKED_IN = "day.vendor_checked_in"
MISSING = "day.vendor_missing"
OFFLINE = "day.member_offline"
MODE_CHANGED = "day.mode_changed"
RESERVED = RESERVED_EVENT_TYPES
"""The ``day.`` event types only the server makes: clients' custom events may not use them
(:data:`crdt_server.names.RESERVED_EVENT_TYPES`)."""
MISSING_KIND = "day.missing"
"""The scheduler's job kind: one per (vendor, call time) on the wedding's date."""
OFFLINE_KIND = "day.offline"
"""The scheduler's job kind that looks at a member on duty (entry: ``sub`` and the window's
start); it raises ``day.member_offline`` at most once per window."""
SERVER = Actor("server", "server")
_ITEM_FIELDS = frozenset({"start", "end", "status", "vendor", "vendor_id"})
"""The fields of a timeline item that :func:`~crdt_server.features.day.domain.call_times`
reads (which day it is on, whether it counts, whose it is)."""
_PROFILE_FIELDS = frozenset({"date", "time_zone"})


def _moves_call_times(change: EntryChange) -> bool:
    """Whether ``change`` can move a vendor's call time, so the day is planned again.

    Planning reads the whole timeline, so it runs only for what it reads: an item's times,
    status and vendor (typing its title or notes does not plan), the wedding's date and
    zone, and any change to the vendor directory (read whole, an entry that breaks the
    schema leaves it).
    """
    if change.root == VENDORS_ROOT:
        return True
    if change.root == "profile":
        return change.id in _PROFILE_FIELDS
    return change.root == "items" and touches(change, _ITEM_FIELDS)


def timeline_view(doc: Any) -> dict[str, Any]:
    """The timeline's JSON view (an empty one when there is no document)."""
    return to_json(doc, "timeline") if doc is not None else {"items": {}, VENDORS_ROOT: {}}


def day_bounds(day: date, zone: str | None) -> tuple[float, float]:
    """Unix seconds of the local day's start and the next day's."""
    start = local_moment(day, time(0, 0), zone)
    return start.timestamp(), local_moment(day + timedelta(days=1), time(0, 0), zone).timestamp()


def _compact(data: Mapping[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


class DayWatch(Extension):
    """Keeps the ``day.missing`` jobs, and records check-ins (module docstring)."""

    name = "day"
    domain = WEDDINGS
    wants_changes = True

    def __init__(
        self,
        core: Core,
        scheduler: Scheduler,
        events: EventLog,
        people: People | None,
        presence: PresenceDirectory | None,
    ) -> None:
        self.scheduler = scheduler
        self.events = events
        self.people = people
        self.presence = presence
        self._on_duty: dict[str, set[str]] = {}
        """Wedding -> the subs with a duty window (loaded with the wedding's first room)."""
        self._writes: set[asyncio.Task[Any]] = set()
        self.grace = core.settings.fragment(DaySettings).day_offline_grace_seconds
        self.core = core
        self.db = Gateway.of(core.store)
        self._follower = Follower(
            "day-watch", self._plan, log, "planning the call times of a wedding"
        )

    async def start(self, core: Core) -> None:
        self._follower.start()

    async def close(self) -> None:
        await self._follower.close()
        await asyncio.gather(*self._writes, return_exceptions=True)

    async def on_member_erased(self, wedding: str, sub: str) -> bool:
        return await self.db.run(tables.forget_member(wedding, sub)) > 0

    # -- following the timeline ----------------------------------------------------------

    async def on_load(self, room: RoomView) -> None:
        if room.kind == "timeline":
            self._follower.mark(room.wedding_id)
        if room.wedding_id not in self._on_duty:
            duties = await self.db.run(tables.duties_of(room.wedding_id))
            self._on_duty.setdefault(room.wedding_id, set()).update(d.sub for d in duties)

    def on_connect(self, room: RoomView, conn: ConnectionView) -> None:
        self._seen(room.wedding_id, conn.principal.user_id)

    def on_disconnect(self, room: RoomView, conn: ConnectionView) -> None:
        self._seen(room.wedding_id, conn.principal.user_id)

    def _seen(self, wedding: str, sub: str) -> None:
        """A connection of a member on duty opened or closed: note it in their window."""
        if sub not in self._on_duty.get(wedding, ()):
            return
        task = asyncio.create_task(self.db.run(tables.duty_seen(wedding, sub, clock.now())))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def put_duty(self, wedding: str, duty: tables.Duty) -> None:
        """Put a member on duty for a window, and plan the look at them ``grace`` seconds
        into it (a window already open counts from now)."""
        self._on_duty.setdefault(wedding, set()).add(duty.sub)
        first = max(duty.start, clock.now()) + self.grace
        scheduler = self.scheduler

        def tx() -> Tx[None]:
            yield from tables.put_duty(wedding, duty)
            if first < duty.until:
                yield from scheduler.scheduled(
                    wedding, OFFLINE_KIND, duty_entry(duty.sub, duty.start), first,
                    {"sub": duty.sub, "start": duty.start},
                )  # fmt: skip

        await self.db.run(tx())
        scheduler.wake()

    def connected(self, wedding: str, sub: str) -> bool:
        """Whether ``sub`` has a connection to the wedding now (any process)."""
        if self.presence is None:
            return False
        listed = self.presence.presence(wedding, set(DOCUMENT_KINDS))
        # (the directory also lists who left, as offline, with no connection)
        return any(e.user_id == sub and e.connections > 0 for e in listed)

    def on_stored(self, room: RoomView, batch: CommitBatch) -> None:
        if room.kind != "timeline":
            return
        if any(
            _moves_call_times(change)
            for _, records in batch.changes
            for change in entry_changes(records)
        ):
            self._follower.mark(room.wedding_id)

    async def settled(self) -> None:
        """Wait until every timeline change seen so far reached the scheduler (tests)."""
        await self._follower.settled()

    async def _plan(self, wedding: str, _: set[str] | None) -> None:
        await self.plan(wedding)

    async def timeline(self, wedding: str) -> dict[str, Any]:
        docs = await self.core.weddings.documents(wedding, ("timeline",))
        return timeline_view(docs.get("timeline"))

    async def plan(self, wedding: str) -> None:
        """Make the wedding's ``day.missing`` jobs its vendors' call times on its date."""
        view = await self.timeline(wedding)
        profile = view.get("profile") or {}
        wanted: dict[str, tuple[float | datetime, Mapping[str, Any] | None]] = {}
        if profile.get("date"):
            zone = profile.get("time_zone")
            day = date.fromisoformat(profile["date"])
            # A wedding whose day is over raises nothing (a past wedding's timeline loaded
            # for the first time since this feature came would otherwise alert at once).
            over = clock.now() >= day_bounds(day, zone)[1]
            times = {} if over else call_times(view, day, zone)
            for key, at in times.items():
                wanted[key] = (at, {"call": at.isoformat()})
        await self.scheduler.plan(wedding, MISSING_KIND, wanted)

    # -- check-ins -----------------------------------------------------------------------

    async def set_mode(self, wedding: str, mode: str, actor: Actor) -> None:
        """Keep the planner's switch (``on``, ``off``, ``auto``: back to the window) and its
        ``day.mode_changed`` event in one transaction, so every open app reads the day
        again at once."""
        now = clock.now()
        event = NewEvent(
            wedding,
            MODE_CHANGED,
            _compact({"mode": mode}),
            "timeline",
            sub=actor.sub,
            role=actor.role,
        )

        def tx() -> Tx[None]:
            yield from tables.set_mode(wedding, None if mode == "auto" else mode)
            yield from store_events([event], now)

        await self.db.run(tx())
        self.events.announce(wedding)

    async def check_in(
        self,
        wedding: str,
        vendor: str,
        name: str,
        status: str,
        eta: str | None,
        at: float,
        actor: Actor,
        key: str | None,
        fingerprint: str,
    ) -> tuple[tables.CheckIn, bool]:
        """Keep a check-in and its ``day.vendor_checked_in`` event in one transaction; the
        check-in kept and whether it is new (a repeated Idempotency-Key: the first one)."""
        received = clock.now()
        if key is not None:
            check_in_id = hashlib.sha256(f"{actor.sub}\0{key}".encode()).hexdigest()[:32]
        else:
            check_in_id = secrets.token_hex(16)
        row = tables.CheckIn(
            check_in_id, vendor, status, eta, min(at, received), received, actor.sub,
            actor.role, fingerprint,
        )  # fmt: skip
        data = {
            "vendor": vendor,
            "name": name,
            "status": status,
            "eta": eta,
            "at": _iso(row.at),
        }
        event = NewEvent(
            wedding, CHECKED_IN, _compact(data), "timeline", sub=actor.sub, role=actor.role
        )

        def tx() -> Tx[tuple[tables.CheckIn, bool]]:
            added = yield from tables.check_in(wedding, row)
            if not added:
                kept = yield from tables.check_in_by_id(wedding, check_in_id)
                assert kept is not None
                return kept, False
            yield from store_events([event], received)
            return row, True

        kept, new = await self.db.run(tx())
        if new:
            self.events.announce(wedding)
        return kept, new

    async def check_ins(self, wedding: str, day: date, zone: str | None) -> list[tables.CheckIn]:
        since, until = day_bounds(day, zone)
        return await self.db.run(tables.check_ins_of(wedding, since, until))

    async def recipients(self, wedding: str, vendor: str) -> tuple[list[Member], str | None]:
        """Who hears of ``vendor`` (a key, :func:`documents.vendors.vendor_key`): the member
        accounts its directory entry lists (those the wedding has), else, for a vendor with
        no member account, the email in its contact (``None`` when there is none). A
        free-text vendor has neither."""
        directory = read_directory(await self.timeline(wedding))
        entry = directory.get(vendor)
        if entry is None:
            return [], None
        members: list[Member] = []
        if self.people is not None and entry.members:
            known = {m.sub: m for m in await self.people.members(wedding)}
            members = [known[sub] for sub in entry.members if sub in known]
        if members:
            return members, None
        contact = await self.db.run(tables.contact_of(wedding, vendor))
        return [], contact.email if contact is not None else None

    async def leads(self, wedding: str) -> list[Member]:
        if self.people is None:
            return []
        return [m for m in await self.people.members(wedding) if m.role in LEADS]


def duty_entry(sub: str, start: float) -> str:
    return f"{start:.3f} {sub}"


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, zone_of(None)).isoformat()


async def missing(job: Job, context: JobContext) -> Tx[None] | None:
    """The job's run: ``day.vendor_missing`` and the leads' urgent notifications, unless
    the vendor checked in that day or its call time moved."""
    watch = context.get(DayWatch)
    view = await watch.timeline(job.wedding)
    profile = view.get("profile") or {}
    if not profile.get("date"):
        return None
    zone = profile.get("time_zone")
    day = date.fromisoformat(profile["date"])
    now_due = call_times(view, day, zone).get(job.entry)
    if now_due is None or now_due.isoformat() != job.data.get("call"):
        return None  # gone or moved since: its new job (if any) says it
    if any(c.vendor == job.entry for c in await watch.check_ins(job.wedding, day, zone)):
        return None
    directory = read_directory(view)
    data = {
        "vendor": job.entry,
        "name": vendor_name(job.entry, directory, spellings(view)),
        "call_time": now_due.isoformat(),
        "local_day": local_day(now_due, zone).isoformat(),
    }
    event = NewEvent(job.wedding, MISSING, _compact(data), "timeline", sub="server", role="server")
    leads = await watch.leads(job.wedding)
    emails = context.get(Notifications).emails

    def steps() -> Tx[None]:
        stored = yield from store_events([event])
        now = clock.now()
        for member in leads:
            yield from notify(
                job.wedding,
                member.sub,
                MISSING,
                "",
                str(stored[0].seq),
                SERVER,
                "urgent",
                now,
                email=emails and member.takes_email,
            )

    return steps()


def told(job: Job, context: JobContext) -> None:
    """The alert is committed: wake the event readers and the mailers."""
    context.get(DayWatch).events.announce(job.wedding)
    context.get(Notifications).queued(job.wedding)


async def offline(job: Job, context: JobContext) -> Tx[None] | None:
    """The job's run: a member on duty with no connection for ``grace`` seconds inside
    their window raises ``day.member_offline`` (once per window), urgent to the leads;
    else the next look is planned (``grace`` after their last connection closed, or
    ``grace`` from now while they are connected)."""
    watch = context.get(DayWatch)
    sub = str(job.data.get("sub", ""))
    start = float(job.data.get("start", 0.0))
    duty = await watch.db.run(tables.duty_of(job.wedding, sub, start))
    now = clock.now()
    if duty is None or duty.alerted or now >= duty.until:
        return None
    scheduler = watch.scheduler
    entry = job.entry
    last = max(duty.seen or duty.start, duty.start)
    if watch.connected(job.wedding, sub) or now - last < watch.grace:
        following = now + watch.grace if watch.connected(job.wedding, sub) else last + watch.grace
        if following >= duty.until:
            return None

        def later() -> Tx[None]:
            yield from scheduler.scheduled(job.wedding, OFFLINE_KIND, entry, following, job.data)

        return later()
    member = await watch.people.member(job.wedding, sub) if watch.people is not None else None
    data = {
        "sub": sub,
        "name": member.name if member is not None else None,
        "start": _iso(duty.start),
        "end": _iso(duty.until),
        "seen": _iso(duty.seen) if duty.seen is not None else None,
    }
    event = NewEvent(job.wedding, OFFLINE, _compact(data), "timeline", sub="server", role="server")
    leads = [m for m in await watch.leads(job.wedding) if m.sub != sub]
    emails = context.get(Notifications).emails

    def alert() -> Tx[None]:
        if not (yield from tables.duty_alerted(job.wedding, sub, start)):
            return
        stored = yield from store_events([event])
        for lead in leads:
            yield from notify(
                job.wedding, lead.sub, OFFLINE, "", str(stored[0].seq), SERVER, "urgent", now,
                email=emails and lead.takes_email,
            )  # fmt: skip

    return alert()
