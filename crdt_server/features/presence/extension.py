"""Who is online in a wedding, across every process of a cluster.

Each process knows its own connections. When one joins or leaves a wedding's room, the
process publishes its whole view of that wedding (who, in which document, since when, how
many connections, last activity) on the bus as a ``presence`` message, and republishes the
views of every wedding it serves every third of ``CRDT_SERVER_PRESENCE_TIMEOUT_SECONDS``.
Other processes keep the last view of each process and forget it when it is not refreshed
in time (a process that died leaves no ghosts). A process that starts asks the others for
their views (``presence_query``), so it answers like them from its first seconds.

``GET /api/weddings/{id}/presence`` then merges the local view with the remote ones: every
process gives the same answer (once the bus has carried the last change, a few
milliseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from crdt_server.cluster.messages import BusMessage, from_event, item_from_bus, to_event
from crdt_server.core.hooks import ConnectionView, Core, Extension, RoomView
from crdt_server.documents import DOCUMENT_KINDS
from crdt_server.names import projection_of
from crdt_server.times import rfc3339

__all__ = ["PresenceDirectory", "PresenceEntry"]

log = logging.getLogger("crdt_server.presence")

_PRESENCE = "presence"
_QUERY = "presence_query"
_PUBLISH_DELAY = 0.02
"""Joins and leaves this close together go out as one message."""


@dataclass(frozen=True, slots=True)
class PresenceEntry:
    """One person in one document of a wedding, over every process."""

    doc: str
    user_id: str
    name: str
    role: str
    connections: int
    last_activity: float
    """Unix time of the person's last frame in this document (see ``last_activity_at``)."""
    last_activity_at: str
    since: str
    """When the person's oldest open connection to this document was accepted (RFC 3339)."""
    documents: list[str]
    """Every document of the wedding the person is in (of those the caller may read)."""


class _Seen(msgspec.Struct, array_like=True):
    """A person in a document as one process sees them. On the bus: a list of exactly
    these seven values (the previous release drops any other length; a newer one's extra
    trailing items are ignored here)."""

    doc: str
    user_id: str
    name: str
    role: str
    connections: int
    last_activity: float
    since: float

    @classmethod
    def from_bus(cls, raw: Any) -> _Seen | None:
        seen = item_from_bus(raw, cls)
        return seen if seen is not None and seen.doc in DOCUMENT_KINDS else None


class _Presence(BusMessage, frozen=True, tag=_PRESENCE):
    """A process's whole view of a wedding (empty: it serves nobody there any more)."""

    wedding: str
    seen: list[Any]
    """:class:`_Seen` values, each read on its own (a bad one is dropped, not the rest)."""


class _Query(BusMessage, frozen=True, tag=_QUERY):
    """A process that starts asks the others for their views."""


class PresenceDirectory(Extension):
    """The cluster-wide presence of each wedding (see the module docstring)."""

    name = "presence"

    def __init__(self) -> None:
        self._core: Core | None = None
        self._remote: dict[str, dict[str, tuple[float, list[_Seen]]]] = {}
        """wedding -> process -> (when heard, monotonic; what it sees)."""
        self._published: set[str] = set()
        """Weddings whose non-empty view this process has published (others hold it)."""
        self._dirty: set[str] = set()
        self._flush: asyncio.TimerHandle | None = None
        self._refresher: asyncio.Task[None] | None = None

    async def start(self, core: Core) -> None:
        self._core = core
        self._refresher = asyncio.create_task(self._refresh(), name="presence-refresh")

    async def close(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        # Leaving: the others forget this process's people now rather than at the timeout.
        for wedding in sorted(self._published):
            self._publish(wedding, [])

    # -- what happens here -----------------------------------------------------------

    def on_connect(self, room: RoomView, conn: ConnectionView) -> None:
        self._changed(room)

    def on_disconnect(self, room: RoomView, conn: ConnectionView) -> None:
        self._changed(room)

    def _changed(self, room: RoomView) -> None:
        if _document_of(room) is None or self._core is None or not self._core.registry.bus.shared:
            return
        self._dirty.add(room.wedding_id)
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(_PUBLISH_DELAY, self._publish_dirty)

    def _publish_dirty(self) -> None:
        self._flush = None
        dirty, self._dirty = self._dirty, set()
        for wedding in sorted(dirty):
            self._publish(wedding, self._local(wedding))

    def _publish(self, wedding: str, seen: list[_Seen]) -> None:
        core = self._core
        if core is None:
            return
        if seen:
            self._published.add(wedding)
        elif wedding in self._published:
            self._published.discard(wedding)
        else:
            return  # nobody was told of anyone here: nothing to take back
        core.registry.bus.publish_event(to_event(_Presence(wedding, list(seen))))

    async def _refresh(self) -> None:
        core = self._core
        assert core is not None
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
            bus.publish_event(to_event(_Query()))
        while True:
            await asyncio.sleep(timeout / 3)
            try:
                if core.registry.bus.shared:
                    for wedding in self._local_weddings() | self._published:
                        self._publish(wedding, self._local(wedding))
                self._expire(time.monotonic() - timeout)
            except Exception:
                log.exception("could not refresh presence; trying again later")

    def _expire(self, older_than: float) -> None:
        for wedding, processes in list(self._remote.items()):
            for process, (heard, _) in list(processes.items()):
                if heard < older_than:
                    del processes[process]
            if not processes:
                del self._remote[wedding]

    # -- what the others say ---------------------------------------------------------

    def on_bus_event(self, event: dict[str, Any]) -> None:
        if from_event(event, _Query) is not None:
            for served in self._local_weddings():
                self._publish(served, self._local(served))
            return
        origin = event.get("origin")
        message = from_event(event, _Presence)
        if message is None or not isinstance(origin, str):
            return
        wedding = message.wedding
        seen = [s for s in map(_Seen.from_bus, message.seen) if s is not None]
        processes = self._remote.setdefault(wedding, {})
        if seen:
            processes[origin] = (time.monotonic(), seen)
        else:
            processes.pop(origin, None)
            if not processes:
                del self._remote[wedding]

    # -- answers ---------------------------------------------------------------------

    def presence(self, wedding: str, docs: set[str]) -> list[PresenceEntry]:
        """Who is in which of ``docs`` of the wedding, one entry per person and document,
        over every process (ordered by document, then user id)."""
        core = self._core
        timeout = core.settings.presence_timeout_seconds if core is not None else 30.0
        fresh_after = time.monotonic() - timeout
        views: list[Iterable[_Seen]] = [self._local(wedding)]
        views += [
            seen for heard, seen in self._remote.get(wedding, {}).values() if heard >= fresh_after
        ]
        merged: dict[tuple[str, str], _Seen] = {}
        for view in views:
            for s in view:
                if s.doc not in docs:
                    continue
                known = merged.get((s.doc, s.user_id))
                if known is None:
                    merged[(s.doc, s.user_id)] = _Seen(
                        s.doc, s.user_id, s.name, s.role, s.connections, s.last_activity, s.since
                    )
                else:
                    known.connections += s.connections
                    known.last_activity = max(known.last_activity, s.last_activity)
                    known.since = min(known.since, s.since)
        documents: dict[str, list[str]] = {}
        for doc, user in merged:
            documents.setdefault(user, []).append(doc)
        order = {kind: i for i, kind in enumerate(DOCUMENT_KINDS)}
        return [
            PresenceEntry(
                doc=s.doc,
                user_id=s.user_id,
                name=s.name,
                role=s.role,
                connections=s.connections,
                last_activity=s.last_activity,
                last_activity_at=rfc3339(s.last_activity),
                since=rfc3339(s.since),
                documents=sorted(documents[s.user_id], key=order.__getitem__),
            )
            for s in sorted(merged.values(), key=lambda s: (order[s.doc], s.user_id))
        ]

    def _local_weddings(self) -> set[str]:
        core = self._core
        if core is None:
            return set()
        return {
            room.wedding_id
            for room in core.registry.rooms.values()
            if _document_of(room) is not None and room.connections
        }

    def _local(self, wedding: str) -> list[_Seen]:
        """Who this process serves in the wedding's documents."""
        core = self._core
        if core is None:
            return []
        seen: list[_Seen] = []
        rooms = [
            (kind, room)
            for room in core.registry.rooms.values()
            if room.wedding_id == wedding and (kind := _document_of(room)) is not None
        ]
        for kind, room in rooms:
            users: dict[str, _Seen] = {}
            for conn in room.connections:
                p = conn.principal
                known = users.get(p.user_id)
                if known is None:
                    users[p.user_id] = _Seen(
                        kind, p.user_id, p.name, p.role, 1, conn.last_activity, conn.connected_at
                    )
                else:
                    known.connections += 1
                    known.last_activity = max(known.last_activity, conn.last_activity)
                    known.since = min(known.since, conn.connected_at)
            seen += users.values()
        return seen


def _document_of(room: RoomView) -> str | None:
    """The wedding document whose readers ``room`` holds: its own kind, or the document a
    projection room projects (a vendor reading the guests is in ``guests``); else ``None``."""
    if room.kind in DOCUMENT_KINDS:
        return room.kind
    found = projection_of(room.name)
    return found[1] if found is not None else None
