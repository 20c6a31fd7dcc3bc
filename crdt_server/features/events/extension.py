"""The wedding event log: domain events derived from every committed update, stored in the
update's own transaction, and woken readers (Server-Sent Events) here and in every process.

Derivation is :func:`documents.events.derive_events` over the entry changes the room
recorded for each update, credited to that update's own sender (a held update's changes to
its sender, when it finally integrates). The rows go into the store through
:meth:`Extension.on_commit`, so an event is durable exactly when its update is, and each
wedding's events are numbered without gaps in commit order. After the commit, readers of
the wedding are woken; other processes hear of it on the bus and wake theirs. Readers then
read the store: delivery is at least once (dedupe by id), and a reader that missed a wake-up
catches up at its next heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from crdt_server import clock
from crdt_server.auth.permissions import PermissionMatrix
from crdt_server.cluster.messages import BusMessage, from_event, to_event
from crdt_server.core.hooks import CommitBatch, Core, Extension, PendingUpdate, RoomView
from crdt_server.documents import DOCUMENT_KINDS
from crdt_server.documents.changes import entry_changes
from crdt_server.documents.domain import WEDDINGS
from crdt_server.documents.events import derive_events
from crdt_server.features.events.domain import (
    DerivedEvent,
    derivation_of,
    items_by_path,
    told_items,
)
from crdt_server.features.events.settings import EventSettings
from crdt_server.features.events.tables import (
    add_events,
    erase_custom_events_of,
    erase_entity_events,
    purge_events,
    purge_tickets,
    read_events,
    store_events,
)
from crdt_server.names import LANE_PRIORITIES, Lane
from crdt_server.storage import (
    AddedEvents,
    DocumentStore,
    EventFilter,
    Gateway,
    NewEvent,
    Once,
    StoredEvent,
)
from crdt_server.storage.gateway import Tx
from crdt_server.times import rfc3339

__all__ = ["EmergencyRaised", "Ephemeral", "EventLog", "keyed_on"]

log = logging.getLogger("crdt_server.events")

_BUS_TYPE = "events"
_READERS = "events:"
PAGE = 200
"""Events a follower reads at once (per lane)."""


class EventsStored(BusMessage, frozen=True, tag=_BUS_TYPE):
    """Events of the wedding were stored (by the process that says so): wake readers.

    Sent only where it is needed: to the wedding's owner among the host's workers when
    another process stored them (its webhook dispatcher fans them out), and while another
    process has readers of the wedding (:func:`readers_topic`)."""

    wedding: str


def readers_topic(wedding: str) -> str:
    """The bus topic a process watches while it has readers of ``wedding``'s events (no
    room has this name: a room's has a slash)."""
    return f"{_READERS}{wedding}"


class EmergencyRaised(Protocol):
    """Told of each emergency posted here (:meth:`EventLog.on_emergency`): what it makes
    is written in the transaction that stores it, so an emergency is never stored without
    it (nor the other way), and a repeat with its ``Idempotency-Key`` makes nothing again."""

    async def prepare(self, event: NewEvent) -> Callable[[StoredEvent], Tx[None]]:
        """Read what the step needs (before the transaction); the step, given the
        emergency as stored, writes what it makes."""
        ...

    def told(self, event: StoredEvent) -> None:
        """The emergency and what it made are committed (wake whoever sends them)."""
        ...


@dataclass(frozen=True, slots=True)
class Ephemeral:
    """A record for the event stream that is never stored: it has no seq, is not resumed
    after a reconnect and reaches only the streams open now in this process
    (:meth:`EventLog.tell`). ``data`` is what every reader who may see it reads."""

    type: str
    at: float
    data: dict[str, Any]
    """Its ``data``; a ``documents`` list in it is cut to those the reader may read."""
    docs: frozenset[str]
    """The documents it concerns: a reader sees it if it may read one of them."""


_TOLD_KEPT = 64
"""Ephemeral records one stream holds while it is not reading (the oldest go first)."""


@dataclass(slots=True, eq=False)
class _Reader:
    wake: asyncio.Event
    sub: str | None = None
    sid: str | None = None
    kicked: bool = False
    """Woken to look at its credential again (a revocation, a device's end), not for events."""
    stale: bool = True
    """Events may have been stored since it last read (woken by a commit, or a heartbeat
    passed); a reader woken only for :attr:`told` records does not read the store."""
    told: deque[Ephemeral] | None = None
    """Ephemeral records to send before anything else (:meth:`EventLog.tell`)."""


def keyed_on(store: DocumentStore) -> bool:
    """Whether events derived from updates carry their items' keys on ``store``: where
    several servers share it (PostgreSQL), each may integrate the same content as new (a
    writer that re-sent it to another host) and derive its events. On SQLite one process
    derives a room's events (the server, or the wedding's worker under ``--workers``): the
    keys' statement in every commit would buy nothing there."""
    return Gateway.of(store).dialect == "postgres"


class EventLog(Extension):
    """Derives, stores and announces a wedding's domain events (see the module docstring)."""

    name = "events"
    domain = WEDDINGS
    wants_changes = True

    def __init__(
        self,
        core: Core,
        *,
        on_recorded: Sequence[Callable[[str], None]] = (),
        keyed: bool = False,
    ) -> None:
        """``on_recorded``: called with the wedding each time events of it are stored by
        this process (with an update or on their own), after the commit. ``keyed``: events
        carry the items they tell of (:func:`event_key`), for a store several servers
        share (:func:`keyed_on`)."""
        self._on_recorded = tuple(on_recorded)
        self._keyed = keyed
        self.wants_overwrites = keyed  # the items each update wrote: the keys
        self._readers: dict[str, set[_Reader]] = {}
        self._reads: dict[tuple[str, int, int, EventFilter], asyncio.Future[list[StoredEvent]]] = {}
        """Store reads in flight for followers: woken together, followers that want the
        same page share one query (ten streams of a wedding cost one read per commit)."""
        self._wakes = 0
        """Wake-ups so far: a read is shared only by followers woken by the same commits
        (a read started before a commit must not answer for it)."""
        self._core = core
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._emergency: tuple[EmergencyRaised, ...] = ()
        self._personal: dict[str, str] = {}
        """Namespace -> the capability whose holders read all its events (others: only
        those naming them, :meth:`may_read`)."""

    def personal(self, namespace: str, capability: str) -> None:
        """Make ``namespace``'s events (``"session."``) personal: each is read only by the
        person its data's ``sub`` names and by holders of ``capability``, in every way
        events leave the server (the list, the stream, webhook deliveries)."""
        self._personal[namespace] = capability

    def may_read(
        self, item: dict[str, Any], permissions: PermissionMatrix, role: str, sub: str
    ) -> bool:
        """Whether a reader (``role``, ``sub``) may read ``item`` (an event as
        :func:`event_json` shows it) under the personal namespaces' rule; every other
        event is as readable as its document."""
        kind = str(item.get("type", ""))
        for namespace, capability in self._personal.items():
            if kind.startswith(namespace):
                if permissions.can(role, capability):
                    return True
                data = item.get("data")
                named = data.get("sub") if isinstance(data, dict) else None
                return bool(sub) and named == sub
        return True

    # -- hooks --------------------------------------------------------------------------

    async def start(self, core: Core) -> None:
        self._sweeper = asyncio.create_task(self._sweep(), name="event-retention")

    def on_emergency(self, listener: EmergencyRaised) -> None:
        """Have ``listener`` write what each emergency posted here makes, in the
        transaction that stores it (the emergencies feature notifies the couple and the
        planner)."""
        self._emergency = (*self._emergency, listener)

    async def raise_emergency(self, event: NewEvent, *, once: Once | None = None) -> AddedEvents:
        """Store an emergency with what its listeners make, in one transaction (with
        ``once``, a repeated key stores and makes nothing), then tell them it is committed."""
        steps = [await listener.prepare(event) for listener in self._emergency]

        def then(stored: list[StoredEvent]) -> Tx[None]:
            for step in steps if stored else ():  # none: the wedding was erased meanwhile
                yield from step(stored[0])

        added = await self.record([event], once=once, then=then if steps else None)
        if added.first and added.events:
            for listener in self._emergency:
                listener.told(added.events[0])
        return added

    def listen(self, listener: Callable[[str], None]) -> None:
        """Call ``listener`` with the wedding each time events of it are stored here."""
        self._on_recorded = (*self._on_recorded, listener)

    def on_commit(self, room: RoomView, batch: CommitBatch) -> Sequence[NewEvent]:
        if room.kind not in DOCUMENT_KINDS:
            return ()
        rows: list[NewEvent] = []
        for update in batch.updates:
            crossed = _crossed(update)
            items = items_by_path(update.found) if self._keyed else None
            for sender, changes in update.changes:
                for change in entry_changes(changes):
                    events = derive_events(room.kind, [change])
                    told = [
                        None
                        if items is None
                        else told_items(room.kind, event.type, event.data, change, items)
                        for event in events
                    ]
                    derivation = None if items is None else derivation_of(room.kind, change, told)
                    for event, slots in zip(events, told, strict=True):
                        data = _honest(event.type, event.data, crossed) if crossed else event.data
                        rows.append(
                            DerivedEvent(
                                room.wedding_id,
                                event.type,
                                json.dumps(data, separators=(",", ":")),
                                room.kind,
                                sub=sender.actor.sub,
                                role=sender.actor.role,
                                key=" ".join(sorted(slots)) if slots else None,
                                derivation=derivation,
                            )
                        )
        return rows

    def events_step(self, events: Sequence[NewEvent]) -> Tx[list[StoredEvent]]:
        """The events of a commit, numbered and stored in its transaction (this feature's
        tables, :func:`crdt_server.features.events.tables.store_events`)."""
        return store_events(events)

    def on_stored(self, room: RoomView, batch: CommitBatch) -> None:
        if batch.events:
            self._announce(room.wedding_id)

    async def on_guest_erased(self, wedding: str, guest_id: str) -> None:
        """Their events go (guest.added carries the name), the findings about their
        entries (a concurrent edit quotes the values that crossed) and what they wrote from
        their household's RSVP page (credited to ``guest:<guest id>``: the note to the
        couple)."""
        paths = WEDDINGS.person_paths(guest_id)
        gateway = Gateway.of(self._core.store)
        await erase_entity_events(gateway, wedding, guest_id, paths, sub=f"guest:{guest_id}")

    async def on_member_erased(self, wedding: str, sub: str) -> bool:
        """What they wrote in the custom events they posted goes: each keeps its place in
        the feed (seq, type, time, priority, actor) with its data replaced by
        ``{"erased": true}``, and their posts' idempotency keys go
        (:func:`~crdt_server.features.events.tables.erase_custom_events_of`). The events
        the server made of their edits stay, as the documents' history does; the features
        whose events carry their name or their words (``member.*``, ``session.*``,
        ``thread.*``) delete those themselves."""
        gateway = Gateway.of(self._core.store)
        return await gateway.run(erase_custom_events_of(wedding, sub)) > 0

    def on_bus_event(self, event: dict[str, Any]) -> None:
        if (stored := from_event(event, EventsStored)) is not None:
            self._wake(stored.wedding)

    def on_opened_elsewhere(self, topic: str) -> None:
        # Another process's first reader of a wedding: what was stored here before this
        # process heard of it woke nobody there. Wake them now (they read from their
        # cursor, so a wake-up with nothing new costs one read).
        wedding = topic.removeprefix(_READERS)
        if wedding != topic:
            self._core.registry.bus.publish_event(to_event(EventsStored(wedding)))

    async def close(self) -> None:
        self._closed.set()
        for readers in self._readers.values():
            for reader in readers:
                reader.wake.set()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    # -- writing ------------------------------------------------------------------------

    async def record(
        self,
        events: Sequence[NewEvent],
        *,
        once: Once | None = None,
        then: Callable[[list[StoredEvent]], Tx[None]] | None = None,
    ) -> AddedEvents:
        """Store events of their own (custom events, the server's own findings) and wake
        their readers everywhere. With ``once``, a repeated key stores nothing. ``then``: a
        step in the same transaction, the first time (:func:`add_events`)."""
        added = await add_events(Gateway.of(self._core.store), events, once=once, then=then)
        if added.first:
            for wedding in {e.wedding for e in added.events}:
                self._announce(wedding)
        return added

    def announce(self, wedding: str) -> None:
        """Wake the wedding's readers here and in every process: a feature stored events in
        a transaction of its own (:func:`store_events`)."""
        self._announce(wedding)

    def _announce(self, wedding: str) -> None:
        self._wake(wedding)
        for listener in self._on_recorded:
            listener(wedding)
        core = self._core
        bus = core.registry.bus
        if not core.placement.owns(wedding) or bus.open_elsewhere(readers_topic(wedding)):
            bus.publish_event(to_event(EventsStored(wedding)))

    def _wake(self, wedding: str) -> None:
        self._wakes += 1
        for reader in self._readers.get(wedding, ()):
            reader.stale = True
            reader.wake.set()

    def tell(self, wedding: str, record: Ephemeral) -> None:
        """Send ``record`` to the wedding's event streams open in this process, after what
        each is sending now: never stored, never resent (another process tells its own
        streams). A stream that does not keep up drops its oldest records."""
        for reader in self._readers.get(wedding, ()):
            if reader.told is None:
                reader.told = deque(maxlen=_TOLD_KEPT)
            reader.told.append(record)
            reader.wake.set()

    # -- reading ------------------------------------------------------------------------

    async def read(
        self, wedding: str, *, after: int, limit: int, where: EventFilter
    ) -> list[StoredEvent]:
        gateway = Gateway.of(self._core.store)
        return await read_events(gateway, wedding, after=after, limit=limit, where=where)

    async def follow(
        self,
        wedding: str,
        *,
        after: int,
        where: EventFilter,
        heartbeat: float,
        sub: str | None = None,
        until: float | None = None,
        sid: str | None = None,
    ) -> AsyncGenerator[StoredEvent | Ephemeral | None, None]:
        """The wedding's events after ``after`` as they are committed, oldest first, and
        the :class:`Ephemeral` records :meth:`tell` sends meanwhile.

        ``None`` each ``heartbeat`` seconds without one, at ``until`` (Unix time: when the
        reader's credential expires), when :meth:`on_revoked` names ``sub`` or
        :meth:`session_ended` its device session (``sid``): the moments the reader should
        look at its credential again. Ends when the server stops."""
        lanes = self.follow_lanes(
            wedding,
            after=after,
            where=where,
            heartbeat=heartbeat,
            sub=sub,
            until=until,
            urgent=False,
            sid=sid,
        )
        try:
            async for item in lanes:
                yield item if item is None or isinstance(item, Ephemeral) else item[1]
        finally:
            await lanes.aclose()

    async def follow_lanes(
        self,
        wedding: str,
        *,
        after: int,
        where: EventFilter,
        heartbeat: float,
        sub: str | None = None,
        until: float | None = None,
        urgent: bool = True,
        sid: str | None = None,
    ) -> AsyncGenerator[tuple[Lane, StoredEvent] | Ephemeral | None, None]:
        """:meth:`follow` on two lanes: each event once on the ``normal`` lane, in order
        (its cursor starts at ``after``); with ``urgent``, the urgent and emergency events
        also on the ``urgent`` lane, ahead of any backlog: those after ``after`` first,
        then, before each page of the normal lane, those committed since. The urgent lane
        has a cursor of its own and never goes back behind the normal lane's (an event
        the normal lane gave already is not given again; one the urgent lane's read missed,
        committed just before the normal lane's page, comes on the urgent lane first from
        that page), so each urgent event comes once on each lane."""
        reader = _Reader(asyncio.Event(), sub, sid)
        readers = self._readers.get(wedding)
        if readers is None:
            readers = self._readers[wedding] = set()
            self._watch(wedding, True)
        readers.add(reader)
        ahead = replace(where, priorities=LANE_PRIORITIES["urgent"])
        urgent_after = after
        try:
            while not self._closed.is_set():
                reader.wake.clear()
                if reader.kicked:
                    reader.kicked = False
                    yield None
                while reader.told:
                    yield reader.told.popleft()
                while reader.stale:  # drain what is there, a page at a time, urgent lane first
                    reader.stale = False
                    while urgent:
                        urgent_after = max(urgent_after, after)
                        page = await self._shared_read(wedding, urgent_after, ahead)
                        for event in page:
                            urgent_after = event.seq
                            yield "urgent", event
                        if len(page) < PAGE:
                            break
                    page = await self._shared_read(wedding, after, where)
                    # An urgent event committed after the urgent lane's read but before
                    # this page's: on its lane first all the same (each lane, every time).
                    for event in page if urgent else ():
                        if event.seq > urgent_after and event.priority in ahead.priorities:
                            urgent_after = event.seq
                            yield "urgent", event
                    for event in page:
                        after = event.seq
                        yield "normal", event
                    if len(page) >= PAGE:
                        reader.stale = True
                if self._closed.is_set():
                    return
                # The heartbeat is the process's own elapsed time; ``until`` is a moment of
                # the server's clock (a fake one in tests), which checks the credential.
                woken = (
                    reader.wake.wait()
                    if until is None
                    else clock.wait(reader.wake, until - clock.now())
                )
                try:
                    timely = await asyncio.wait_for(woken, heartbeat)
                except TimeoutError:
                    timely = False
                if timely is False:
                    reader.stale = True  # a wake-up missed is caught up at a heartbeat
                    yield None
        finally:
            readers.discard(reader)
            if not readers and self._readers.get(wedding) is readers:
                del self._readers[wedding]
                self._watch(wedding, False)

    def _watch(self, wedding: str, watch: bool) -> None:
        """Readers of ``wedding`` here (or none any more): other processes that store its
        events wake them (a wake-up that crosses this news is caught up at a heartbeat)."""
        bus = self._core.registry.bus
        (bus.watch if watch else bus.unwatch)(readers_topic(wedding))

    async def _shared_read(self, wedding: str, after: int, where: EventFilter) -> list[StoredEvent]:
        key = (wedding, self._wakes, after, where)
        pending = self._reads.get(key)
        if pending is None:
            read = self.read(wedding, after=after, limit=PAGE, where=where)
            pending = asyncio.ensure_future(read)
            self._reads[key] = pending
            pending.add_done_callback(lambda _: self._reads.pop(key, None))
        # shield: one follower going away must not cancel the others' read
        return await asyncio.shield(pending)

    def on_revoked(self, sub: str, wedding: str | None) -> None:
        """``sub`` was revoked (in ``wedding``, or everywhere): wake its readers here so
        they look at their credential again (:meth:`follow` yields ``None``)."""
        weddings = (
            self._readers if wedding is None else {wedding: self._readers.get(wedding, set())}
        )
        for readers in weddings.values():
            for reader in readers:
                if reader.sub == sub:
                    reader.kicked = reader.stale = True
                    reader.wake.set()

    def session_ended(self, sid: str) -> None:
        """The device session ``sid`` ended (the sign-in feature's ``ended_listeners``, in
        every process): wake the readers whose credential it minted, as :meth:`on_revoked`."""
        for readers in self._readers.values():
            for reader in readers:
                if reader.sid == sid:
                    reader.kicked = reader.stale = True
                    reader.wake.set()

    def readers(self, wedding: str) -> int:
        return len(self._readers.get(wedding, ()))

    # -- retention ----------------------------------------------------------------------

    async def _sweep(self) -> None:
        core = self._core
        settings = core.settings
        while True:
            try:
                cutoff = clock.now() - settings.event_retention_days * 86400
                purged = await purge_events(Gateway.of(core.store), cutoff)
                await purge_tickets(Gateway.of(core.store), clock.now())
                if purged:
                    log.info("retention: deleted %d events older than %s", purged, rfc3339(cutoff))
            except Exception:
                log.exception("the event retention sweep failed; trying again later")
            await clock.sleep(settings.fragment(EventSettings).event_sweep_seconds)


def _crossed(update: PendingUpdate) -> dict[str, set[str]]:
    """The keys ``update`` won concurrently (its author replaced a value they never saw):
    entry (or root key) -> its fields involved (empty: the entry itself)."""
    crossed: dict[str, set[str]] = {}
    for _, found in update.found:
        for o in found.overwrites:
            if o.new_won and len(o.path) >= 2:
                crossed.setdefault(o.path[1], set()).update(o.path[2:3])
    return crossed


_FIELDS_OF = {"guest.rsvp_changed": {"rsvp"}, "timeline.item_rescheduled": {"start", "end"}}
"""Events about some fields of an entry (the others are about the whole entry or key)."""


def _honest(kind: str, data: dict[str, Any], crossed: dict[str, set[str]]) -> dict[str, Any]:
    """An event of a write that won a race, as its author saw it: ``"concurrent": true``,
    and the value it overwrote as ``"replaced"`` instead of ``"from"`` (its author never saw
    that value)."""
    entry = data.get("id", data.get("guest_id", data.get("field")))
    if not isinstance(entry, str) or entry not in crossed:
        return data
    fields = crossed[entry]
    concerned = _FIELDS_OF.get(kind)
    if concerned is not None and fields and not concerned & fields:
        return data
    out = dict(data)
    changes = out.get("changes")
    if isinstance(changes, dict) and fields:
        hit = {n for n in fields if isinstance(changes.get(n), dict)}
        if not hit:
            return data
        out["changes"] = {
            n: ({"replaced": c.get("from"), "to": c.get("to")} if n in hit else c)
            for n, c in changes.items()
        }
    elif "from" in out:
        out["replaced"] = out.pop("from")
    else:
        return data
    out["concurrent"] = True
    return out
