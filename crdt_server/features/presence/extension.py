"""Who is online in a wedding, across every process of a cluster, and how.

Each process knows its own connections. When one joins or leaves a wedding's room, or says
something new of its presence, the process publishes its whole view of that wedding (who,
in which document, since when, how many connections, last activity; and what their presence
says: busy, the section they are in, typing) on the bus as a ``presence`` message, and
republishes the views of every wedding it serves every third of
``CRDT_SERVER_PRESENCE_TIMEOUT_SECONDS``. Other processes keep the last view of each process
and forget it when it is not refreshed in time (a process that died leaves no ghosts). A
process that starts asks the others for their views (``presence_query``), so it answers
like them from its first seconds.

``GET /api/weddings/{id}/presence`` then merges the local view with the remote ones: every
process gives the same answer (once the bus has carried the last change, a few
milliseconds). Each person has a status: ``busy`` when their presence says so, ``away``
after ``CRDT_SERVER_AWAY_AFTER_SECONDS`` without activity (a document update, or a presence
state whose content changed: the 15-s renewal of an unchanged state is not activity), else
``online``; ``offline`` with ``last_seen`` once they left (remembered by each process for
:data:`GONE_SECONDS`, at most :data:`GONE_PEOPLE` people a wedding).

Each process compares what it knows of each person after every change (and every few
seconds, for those who became away) with what it said last, and tells its own event streams
(``presence.changed``, never stored: :meth:`EventLog.tell`) and its listeners
(:meth:`PresenceDirectory.listen`) of each person whose status, section, typing or
documents changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from crdt_server import clock
from crdt_server.cluster.messages import from_event, to_event
from crdt_server.codec.awareness import AwarenessEntry
from crdt_server.core.hooks import CommitBatch, ConnectionView, Core, Extension, RoomView
from crdt_server.core.pacing import in_turns
from crdt_server.features.events import Ephemeral, EventLog
from crdt_server.features.people import People
from crdt_server.features.presence.domain import CHANGED, PresenceChange, here_of
from crdt_server.features.presence.domain_bus import (
    PresenceMessage,
    PresenceQuery,
    Seen,
    State,
)
from crdt_server.features.presence.domain_views import (
    _ORDER,
    GONE_PEOPLE,
    GONE_SECONDS,
    _Activity,
    _change,
    _document_of,
    _forget_gone,
    _Gone,
    _Person,
)
from crdt_server.features.presence.extension_views import PresenceViews
from crdt_server.storage import StoreError

__all__ = ["GONE_PEOPLE", "GONE_SECONDS", "PresenceDirectory"]

log = logging.getLogger("crdt_server.presence")

_PUBLISH_DELAY = 0.02
"""Joins and leaves this close together go out as one message."""
_SWEEP_MOST = 5.0
"""Who became away is noticed at most this late (or a twentieth of the away time)."""


class PresenceDirectory(PresenceViews, Extension):
    """The cluster-wide presence of each wedding (see the module docstring)."""

    name = "presence"

    def __init__(
        self, core: Core, events: EventLog | None = None, people: People | None = None
    ) -> None:
        """``core``: the rooms it reads, the bus it speaks on, the settings (the away
        time); ``events``: the event log whose streams are told of presence changes;
        ``people``: the member directory, where who went offline is recorded as last
        seen."""
        super().__init__(core)
        self._events = events
        self._members = people
        self._writes: set[asyncio.Future[None]] = set()
        self._published: set[str] = set()
        """Weddings whose non-empty view this process has published (others hold it)."""
        self._dirty: set[str] = set()
        self._flush: asyncio.TimerHandle | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._said: dict[str, dict[str, _Person]] = {}
        """wedding -> user -> what was last said of them (people present only)."""
        self._listeners: list[Callable[[PresenceChange], None]] = []

    def listen(self, listener: Callable[[PresenceChange], None]) -> None:
        """Call ``listener`` with each presence change this process notices (each process
        of a cluster notices each change on its own)."""
        self._listeners.append(listener)

    async def start(self, core: Core) -> None:
        self._refresher = asyncio.create_task(self._refresh(), name="presence-refresh")
        self._sweeper = asyncio.create_task(self._sweep(), name="presence-away")

    async def close(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
        for task in (self._refresher, self._sweeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        # Leaving: the others forget this process's people now rather than at the timeout.
        for wedding in sorted(self._published):
            self._publish(wedding, [], [])

    # -- what happens here -----------------------------------------------------------

    def on_connect(self, room: RoomView, conn: ConnectionView) -> None:
        if _document_of(room) is None:
            return
        self._activity[conn.id] = _Activity(clock.now(), conn.principal.user_id)
        self._changed(room)

    def on_disconnect(self, room: RoomView, conn: ConnectionView) -> None:
        if self._activity.pop(conn.id, None) is None:
            return
        self._changed(room)

    def on_awareness(
        self, room: RoomView, conn: ConnectionView, entries: Sequence[AwarenessEntry]
    ) -> None:
        activity = self._activity.get(conn.id)
        if activity is None:
            return
        said = next((e.state for e in reversed(entries) if not e.removed), None)
        if said is None or said == activity.state:
            return  # a renewal of the same state, or a removal: not activity
        activity.state = said
        activity.here = here_of(said)
        activity.active = clock.now()
        self._changed(room)

    def on_stored(self, room: RoomView, batch: CommitBatch) -> None:
        """A document update counts as activity: an away person is back."""
        back = False
        for update in batch.updates:
            activity = self._activity.get(update.sender.origin)
            if activity is not None:
                activity.active = clock.now()
                said = self._said.get(room.wedding_id, {}).get(activity.user)
                back |= said is not None and said.status == "away"
        if back:  # only then does an update change what was said (cheap otherwise)
            self._changed(room)

    def _changed(self, room: RoomView) -> None:
        self._tell(room.wedding_id)
        if not self._core.registry.bus.shared:
            return
        self._dirty.add(room.wedding_id)
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(_PUBLISH_DELAY, self._publish_dirty)

    def _publish_dirty(self) -> None:
        self._flush = None
        dirty, self._dirty = self._dirty, set()
        for wedding in sorted(dirty):
            self._publish(wedding, *self._local(wedding))

    def _publish(self, wedding: str, seen: list[Seen], states: list[State]) -> None:
        if seen:
            self._published.add(wedding)
        elif wedding in self._published:
            self._published.discard(wedding)
        else:
            return  # nobody was told of anyone here: nothing to take back
        message = PresenceMessage(wedding, list(seen), list(states) if seen else [])
        self._core.registry.bus.publish_event(to_event(message))

    async def _refresh(self) -> None:
        core = self._core
        timeout = core.settings.presence_timeout_seconds
        bus = core.registry.bus
        if bus.shared:
            # Ask the others once this process hears the bus (their answers would be lost
            # before it has subscribed); give up waiting after a while, the refreshes of
            # the others will tell it anyway.
            loop = asyncio.get_running_loop()
            give_up = loop.time() + timeout
            while bus.status != "ok" and loop.time() < give_up:  # noqa: ASYNC110 (no event)
                await asyncio.sleep(0.05)
            bus.publish_event(to_event(PresenceQuery()))
        while True:
            await asyncio.sleep(timeout / 3)
            try:
                if core.registry.bus.shared:
                    await in_turns(
                        sorted(self._local_weddings() | self._published), self._refresh_one
                    )
                if self._expire(time.monotonic() - timeout):
                    await self._tell_all()
            except Exception:
                log.exception("could not refresh presence; trying again later")

    async def _sweep(self) -> None:
        """Tell who became away (time passing changes nothing else)."""
        every = min(_SWEEP_MOST, self._away_after / 20)
        while True:
            await clock.sleep(every)
            try:
                await self._tell_all()
            except Exception:
                log.exception("could not look for people who became away; trying again later")

    def _expire(self, older_than: float) -> bool:
        """Forget the views of processes not heard since ``older_than``; whether any."""
        expired = False
        for wedding, processes in list(self._remote.items()):
            for process, (heard, _, _) in list(processes.items()):
                if heard < older_than:
                    del processes[process]
                    expired = True
            if not processes:
                del self._remote[wedding]
        return expired

    # -- what the others say ---------------------------------------------------------

    def on_bus_event(self, event: dict[str, Any]) -> None:
        if from_event(event, PresenceQuery) is not None:
            for served in self._local_weddings():
                self._publish(served, *self._local(served))
            return
        origin = event.get("origin")
        message = from_event(event, PresenceMessage)
        if message is None or not isinstance(origin, str):
            return
        wedding = message.wedding
        seen = [s for s in map(Seen.from_bus, message.seen) if s is not None]
        states = [s for s in map(State.from_bus, message.states[: len(seen)]) if s is not None]
        processes = self._remote.setdefault(wedding, {})
        if seen:
            processes[origin] = (time.monotonic(), seen, states)
        else:
            processes.pop(origin, None)
            if not processes:
                del self._remote[wedding]
        self._tell(wedding)

    # -- telling what changed ----------------------------------------------------------

    def _refresh_one(self, wedding: str) -> None:
        self._publish(wedding, *self._local(wedding))

    async def _tell_all(self) -> None:
        """:meth:`_tell` every wedding with people present, a few milliseconds of them in
        each turn of the loop (:func:`~crdt_server.core.pacing.in_turns`)."""
        await in_turns(list(self._said), self._tell)

    def _tell(self, wedding: str) -> None:
        """Compare what is known of each person of ``wedding`` now with what was last said;
        tell the streams and the listeners of each difference."""
        now = clock.now()
        people = self._people(wedding, now)
        before = self._said.get(wedding, {})
        if not people and not before:
            return
        changes: list[PresenceChange] = []
        for user, person in people.items():
            was = before.get(user)
            visited = person.visited | (frozenset() if was is None else was.visited)
            people[user] = replace(person, visited=visited)
            if was != person:
                changes.append(_change(wedding, user, person, now, None, self._me))
        gone = self._gone.setdefault(wedding, OrderedDict())
        for user in people.keys() & gone.keys():
            del gone[user]
        for user in before.keys() - people.keys():
            was = before[user]
            documents = tuple(sorted(was.visited, key=_ORDER.__getitem__))
            gone[user] = _Gone(was.name, was.role, documents, was.last_activity, now)
            gone.move_to_end(user)
            offline = _Person(was.name, was.role, "offline", None, False, documents, 0.0, by=was.by)
            changes.append(_change(wedding, user, offline, now, now, self._me))
        _forget_gone(gone, now)
        if not gone:
            del self._gone[wedding]
        if people:
            self._said[wedding] = people
        else:
            self._said.pop(wedding, None)
        for change in changes:
            self._announce(change)

    def _keep_last_seen(self, change: PresenceChange) -> None:
        """Record in the member directory when someone went offline (once, by the process
        that speaks for the change)."""
        people = self._members
        if people is None or change.status != "offline" or not change.sender:
            return
        at = change.last_seen if change.last_seen is not None else change.at
        task = asyncio.ensure_future(people.seen_leaving(change.wedding, change.user_id, at))
        self._writes.add(task)
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Future[None]) -> None:
        self._writes.discard(task)
        failed = None if task.cancelled() else task.exception()
        if isinstance(failed, StoreError):  # a full disk, a lost database: said as such
            log.warning("last seen not recorded, the store failed: %s", failed)
        elif failed is not None:
            log.error("could not record when a member was last seen: %r", failed)

    def _announce(self, change: PresenceChange) -> None:
        self._keep_last_seen(change)
        if self._events is not None:
            record = Ephemeral(CHANGED, change.at, change.data(), frozenset(change.documents))
            self._events.tell(change.wedding, record)
        for listener in self._listeners:
            try:
                listener(change)
            except Exception:
                log.exception("a presence listener failed")
