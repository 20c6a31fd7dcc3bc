"""Each wedding's CalDAV calendars kept in step with its timeline, both ways.

A background worker (started by :meth:`CalendarSync.start`, in every process) is woken by
each committed change of a timeline (here or, through the store, in another process) and
otherwise looks at every calendar each ``CRDT_SERVER_CALDAV_POLL_SECONDS``. It takes a
calendar's lease in the store (one process at a time synchronises a calendar), then:

1. lists the calendar's events and their ETags (``PROPFIND``, depth 1);
2. reads back what a vendor changed: an event whose ETag is not the one kept (our own
   PUT's answer, so our writes are never read back as theirs) is read; a new start or end
   becomes one ``calendar.changed`` event (with the delays feature: with the delay
   proposal its ripple makes, which a timeline writer applies with ``POST
   .../day/delays``), an event removed there likewise; the timeline itself is never
   changed by it, and that version of the event is left as it is until the item changes;
3. writes out the scope's items whose content changed since last written (``PUT`` at a
   path made of the item's stable UID, over the ETag kept: ``If-Match``), and removes
   the events of items gone from the scope.

Every step is idempotent: a calendar that cannot be reached (or refuses the password)
keeps its rows, shows ``error`` with the reason, and is tried again at the next poll;
since an item's event always has the same path, a write repeated after a failure replaces
it rather than adding another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from crdt_server import clock
from crdt_server.actor import Actor
from crdt_server.core.hooks import CommitBatch, Core, Extension, RoomView
from crdt_server.documents.delays import DelayError
from crdt_server.documents.model import parse_instant
from crdt_server.documents.schema import TimelineItem, read_timeline
from crdt_server.documents.vendors import Vendor
from crdt_server.features.calendars.domain import (
    CalendarError,
    CredentialsError,
    KeyRing,
    event_uid,
    fingerprint,
    key_of,
    parse_scope,
    read_times,
    render_event,
)
from crdt_server.features.calendars.settings import CalendarSettings
from crdt_server.features.calendars.tables import (
    CALENDAR_COLUMNS,
    CalendarRow,
    EventRow,
    claim,
    forget_event,
    keep_event,
    release,
    remove_created_by,
    reseal,
)
from crdt_server.features.delays import DayDelays
from crdt_server.features.events import EventLog
from crdt_server.storage import Gateway, NewEvent, StoreError

if TYPE_CHECKING:
    from crdt_server.features.calendars.service import Dav

__all__ = ["CHANGED", "CalendarSync"]

log = logging.getLogger("crdt_server.calendars")
_T = TypeVar("_T")

CHANGED = "calendar.changed"
"""A vendor moved or removed an item's event in their calendar (the timeline unchanged)."""
CLAIM_SECONDS = 300.0
"""A calendar's lease: longer than a synchronisation's requests take (each has its
timeout), so another process takes it over only from one that died."""
TICK_SECONDS = 1.0
"""How often the worker looks for calendars due without a wake-up."""
PARALLEL = 8
"""Calendars synchronised at once by one process."""


@dataclass(frozen=True)
class Snapshot:
    """What a synchronisation reads of the timeline: its valid items and its zone."""

    items: dict[str, TimelineItem]
    zone: str | None


class CalendarSync(Extension):
    """See the module docstring."""

    name = "calendars"

    def __init__(self, core: Core, events: EventLog, delays: DayDelays | None) -> None:
        self._events = events
        self._delays = delays
        self._core = core
        self.db = Gateway.of(core.store)
        self.settings = core.settings.fragment(CalendarSettings)
        self._task: asyncio.Task[None] | None = None
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._gate = asyncio.Semaphore(PARALLEL)

    # -- hooks ---------------------------------------------------------------------------

    async def start(self, core: Core) -> None:
        ring = self.settings.key_ring
        if ring is not None:
            moved = await self.rekey(ring)
            if moved:
                log.info("re-encrypted %d calendar passwords under key %r", moved, ring.current)
        self._task = asyncio.create_task(self._run(), name="calendars")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def on_revoke(self, sub: str, wedding: str | None) -> None:
        """``sub`` lost their access (in ``wedding``, or everywhere): the calendars they
        added go, and their passwords with them (a manager adds them again to take over)."""
        gone = await self.db.run(remove_created_by(sub, wedding))
        if gone:
            log.info("a revocation removed %d calendars", gone)

    async def on_member_erased(self, wedding: str, sub: str) -> bool:
        """A member is erased: the calendars they added go, as on a revocation."""
        return bool(await self.db.run(remove_created_by(sub, wedding)))

    def on_change(self, room: RoomView, batch: CommitBatch) -> None:
        if room.kind == "timeline":
            self._dirty.add(room.wedding_id)
            self._wake.set()

    # -- what routes use -----------------------------------------------------------------

    def changed(self, wedding: str) -> None:
        """Synchronise the wedding's calendars soon (one was added)."""
        self._dirty.add(wedding)
        self._wake.set()

    def allows(self, url: str) -> bool:
        """Whether ``url``'s host is on the calendars' allowlist (a private address is
        then accepted)."""
        return (urlsplit(url).hostname or "").lower() in self.settings.caldav_hosts

    async def vendors(self, wedding: str) -> Mapping[str, Vendor]:
        """The timeline's vendor directory."""
        docs = await self._core.weddings.documents(wedding, kinds=("timeline",))
        return read_timeline(docs.get("timeline")).vendors

    async def calendars(self, wedding: str) -> list[CalendarRow]:
        return await self.db.fetch_as(
            CalendarRow,
            f"SELECT {CALENDAR_COLUMNS} FROM {{t}}calendars WHERE wedding = ?"
            " ORDER BY created_at, id",
            wedding,
        )

    async def rekey(self, ring: KeyRing) -> int:
        """Seal again under the current key every password sealed under another key the
        ring has; how many. One the ring cannot open is left (its calendar shows why)."""
        rows = await self.db.fetch_as(
            CalendarRow,
            f"SELECT {CALENDAR_COLUMNS} FROM {{t}}calendars WHERE kid <> ?",
            ring.current,
        )
        moved = 0
        for row in rows:
            try:
                password = ring.open(row.kid, row.secret, row.id)
            except CredentialsError:
                continue
            kid, sealed = ring.seal(password, row.id)
            moved += await self.db.run(reseal(row.id, row.kid, kid, sealed))
        return moved

    # -- the worker ----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.sync_due()
            except StoreError as exc:  # a full disk, a lost database: one line, not a trace
                log.warning("calendar synchronisation paused, the store failed: %s", exc)
            except Exception:
                log.exception("calendar synchronisation failed; retrying")
            await clock.wait(self._wake, TICK_SECONDS)

    async def sync_due(self) -> None:
        """Synchronise the calendars of the weddings whose timeline changed, and those not
        synchronised for a poll interval."""
        if self.settings.key_ring is None:
            self._dirty.clear()
            return
        now = clock.now()
        dirty, self._dirty = self._dirty, set()
        due = await self.db.fetch_as(
            CalendarRow,
            f"SELECT {CALENDAR_COLUMNS} FROM {{t}}calendars WHERE claimed_until < ?"
            " AND synced_at <= ?",
            now,
            now - self.settings.caldav_poll_seconds,
        )
        for wedding in sorted(dirty):
            due += await self.calendars(wedding)
        unique = {row.id: row for row in due}
        await asyncio.gather(*(self._one(row) for row in unique.values()))

    async def _one(self, row: CalendarRow) -> None:
        async with self._gate:
            if not await self.db.run(claim(row.id, clock.now(), CLAIM_SECONDS)):
                self._dirty.add(row.wedding)  # another process is on it: after it, again
                return
            status, error = "ok", ""
            try:
                await self.sync(row)
            except (CalendarError, CredentialsError) as exc:
                status, error = "error", str(exc)
            except asyncio.CancelledError:
                # Stopping: the lease is given back, the state left as it was.
                await self.db.run(release(row.id, row.status, row.error, row.synced_at))
                raise
            except Exception:
                log.exception("synchronising a calendar of %s failed", row.wedding)
                status, error = "error", "the server could not synchronise this calendar"
            await self.db.run(release(row.id, status, error, clock.now()))
            if (status, error) != (row.status, row.error) and status == "error":
                log.info("a calendar of %s: %s", row.wedding, error)  # once, not each poll

    async def _snapshot(self, wedding: str) -> Snapshot:
        docs = await self._core.weddings.documents(wedding, kinds=("timeline",))
        timeline = read_timeline(docs.get("timeline"))
        return Snapshot(dict(timeline.items), timeline.profile.time_zone)

    async def sync(self, row: CalendarRow) -> None:
        """One synchronisation of one calendar (see the module docstring); raises
        :class:`CalendarError` or :class:`CredentialsError` when it cannot be done."""
        # The CalDAV client is imported by the first synchronisation, not at start.
        from crdt_server.features.calendars.service import open_calendar

        settings = self.settings
        ring = settings.key_ring
        if ring is None:
            raise CredentialsError("CRDT_SERVER_CREDENTIALS_KEY is not set")
        scope = parse_scope(row.scope)
        if scope is None:
            raise CalendarError(f"unknown scope {row.scope!r}")
        password = ring.open(row.kid, row.secret, row.id)
        timeout = settings.caldav_timeout_seconds
        dav = await open_calendar(
            row.url, row.username, password, allowed=settings.caldav_hosts, seconds=timeout
        )
        deadline = timeout * 2 + 5
        try:
            remote = await _in_thread(dav.listing, deadline=deadline)
            kept = {
                e.item: e
                for e in await self.db.fetch_as(
                    EventRow,
                    "SELECT item, href, etag, fingerprint, start_at, end_at"
                    " FROM {t}calendar_events WHERE calendar = ?",
                    row.id,
                )
            }
            now = await self._snapshot(row.wedding)
            for item_id, event in list(kept.items()):
                kept[item_id] = await self._read_back(row, dav, remote, event, now, deadline)
            wanted = {i.id: i for i in now.items.values() if scope.holds(i)}
            for item in wanted.values():
                await self._write_out(row, dav, kept.get(item.id), item, now.zone, deadline)
            for item_id, event in kept.items():
                if item_id not in wanted:
                    await self._remove(row, dav, event, remote, deadline)
        finally:
            dav.close()

    async def _read_back(
        self,
        row: CalendarRow,
        dav: Dav,
        remote: dict[str, str],
        event: EventRow,
        now: Snapshot,
        deadline: float,
    ) -> EventRow:
        """The event as the calendar has it now: a vendor's change reported (once)."""
        etag = remote.get(key_of(event.href))
        if etag == event.etag:
            return event
        if etag is None:
            # Removed in the calendar: said once (the kept ETag is then empty), and written
            # again only when the item changes.
            await self._report(row, event, now, None)
            seen = EventRow(event.item, event.href, "", event.fingerprint, event.start_at,
                            event.end_at)  # fmt: skip
        else:
            data, _ = await _in_thread(dav.get, event.href, deadline=deadline)
            times = read_times(data, now.zone)
            was = parse_instant(event.start_at), parse_instant(event.end_at)
            if times is not None and times != was:
                await self._report(row, event, now, times)
            seen = EventRow(event.item, event.href, etag, event.fingerprint, event.start_at,
                            event.end_at)  # fmt: skip
        await self.db.run(keep_event(row.wedding, row.id, seen))
        return seen

    async def _write_out(
        self,
        row: CalendarRow,
        dav: Dav,
        event: EventRow | None,
        item: TimelineItem,
        zone: str | None,
        deadline: float,
    ) -> None:
        mark = fingerprint(item, zone)
        if event is not None and event.fingerprint == mark:
            return
        href = event.href if event is not None else dav.href_for(event_uid(row.wedding, item.id))
        body = render_event(row.wedding, item, zone, clock.utcnow())
        try:
            etag = await _in_thread(
                dav.put, href, body, if_match=event.etag if event else None, deadline=deadline
            )
        except CalendarError as exc:
            if exc.conflict:
                return  # the vendor changed it since the listing: read back next time
            raise
        done = EventRow(item.id, href, etag, mark, item.start, item.end)
        await self.db.run(keep_event(row.wedding, row.id, done))

    async def _remove(
        self, row: CalendarRow, dav: Dav, event: EventRow, remote: dict[str, str], deadline: float
    ) -> None:
        if key_of(event.href) in remote:
            try:
                await _in_thread(dav.delete, event.href, if_match=None, deadline=deadline)
            except CalendarError as exc:
                if not exc.conflict:
                    raise
        await self.db.run(forget_event(row.id, event.item))

    async def _report(
        self,
        row: CalendarRow,
        event: EventRow,
        now: Snapshot,
        times: tuple[datetime, datetime] | None,
    ) -> None:
        """One ``calendar.changed`` event: the item's times as written, and the vendor's
        (``None``: removed), with the delay proposal when the move is a delay."""
        item = now.items.get(event.item)
        data: dict[str, Any] = {
            "calendar": row.id,
            "scope": row.scope,
            "item": event.item,
            "title": item.title if item is not None else "",
            "start": event.start_at,
            "end": event.end_at,
            "removed": times is None,
            "new_start": None if times is None else times[0].isoformat(),
            "new_end": None if times is None else times[1].isoformat(),
            "delay": None,
        }
        if times is not None and item is not None and self._delays is not None:
            data["delay"] = await self._proposal(row, event, item, times[0])
        record = NewEvent(
            row.wedding,
            CHANGED,
            json.dumps(data, separators=(",", ":")),
            "timeline",
            sub=f"calendar:{row.id}",
            role="integration",
        )
        await self._events.record([record])

    async def _proposal(
        self, row: CalendarRow, event: EventRow, item: TimelineItem, start: datetime
    ) -> dict[str, Any] | None:
        """The delay a later start proposes (the timeline still at the times written)."""
        minutes = int((start - parse_instant(event.start_at)).total_seconds() // 60)
        if minutes < 1 or parse_instant(item.start) != parse_instant(event.start_at):
            return None
        assert self._delays is not None
        try:
            found = await self._delays.propose(
                row.wedding, item.id, minutes, Actor(f"calendar:{row.id}", "integration")
            )
        except DelayError as exc:
            return {"item": item.id, "minutes": minutes, "refused": str(exc)}
        return {
            "item": item.id,
            "minutes": minutes,
            "moves": [
                {
                    "item": m.id,
                    "start": m.start.isoformat(),
                    "end": m.end.isoformat(),
                    "new_start": m.new_start.isoformat(),
                    "new_end": m.new_end.isoformat(),
                }
                for m in found.ripple.moves
            ],
            "fixed": list(found.ripple.fixed),
        }


async def _in_thread(call: Callable[..., _T], *args: Any, deadline: float, **kw: Any) -> _T:
    """``call`` in a worker thread, abandoned (:class:`CalendarError`) past ``deadline``."""
    try:
        async with asyncio.timeout(deadline):
            return await asyncio.to_thread(call, *args, **kw)
    except TimeoutError as exc:
        raise CalendarError("the calendar did not answer in time") from exc
