"""The presence directory's views: what this process sees of each wedding's people, what
the other processes say they see, and their merge into people with a status (see
:mod:`crdt_server.features.presence.extension`)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable

from crdt_server import clock
from crdt_server.core.hooks import Core
from crdt_server.documents import DOCUMENT_KINDS
from crdt_server.features.presence.domain import PresenceEntry, status_of
from crdt_server.features.presence.domain_bus import Seen, State
from crdt_server.features.presence.domain_views import (
    _ORDER,
    GONE_SECONDS,
    _Activity,
    _document_of,
    _Gone,
    _Merged,
    _Person,
    _said,
)
from crdt_server.features.presence.settings import PresenceSettings
from crdt_server.times import rfc3339

__all__ = ["PresenceViews"]


class PresenceViews:
    """The views of each wedding that
    :class:`~crdt_server.features.presence.extension.PresenceDirectory` keeps and merges
    (see its module docstring)."""

    def __init__(self, core: Core) -> None:
        self._core = core
        self._away_after = core.settings.fragment(PresenceSettings).away_after_seconds
        self._remote: dict[str, dict[str, tuple[float, list[Seen], list[State]]]] = {}
        """wedding -> process -> (when heard, monotonic; what it sees; what they say)."""
        self._activity: dict[str, _Activity] = {}
        """This process's connections (by id) in wedding documents."""
        self._gone: dict[str, OrderedDict[str, _Gone]] = {}
        """wedding -> user -> who left, longest gone first."""
        self._me = core.registry.bus.process_id
        """This process's id on the bus."""

    def _people(self, wedding: str, now: float) -> dict[str, _Person]:
        """Each person present in the wedding, over every process and document."""
        merged = self._merged(wedding, set(DOCUMENT_KINDS))
        by_user: dict[str, list[_Merged]] = {}
        for m in merged.values():
            by_user.setdefault(m.seen.user_id, []).append(m)
        return {user: self._person(entries, now) for user, entries in by_user.items()}

    def _person(self, entries: list[_Merged], now: float) -> _Person:
        latest = max(entries, key=lambda m: m.active)
        busy = any(m.busy for m in entries)
        status = status_of(busy, latest.active, now, self._away_after)
        section = latest.section
        if section is None:
            section = next((m.section for m in entries if m.section is not None), None)
        documents = tuple(sorted((m.seen.doc for m in entries), key=_ORDER.__getitem__))
        return _Person(
            latest.seen.name,
            latest.seen.role,
            status,
            section,
            any(m.typing for m in entries),
            documents,
            max(m.seen.last_activity for m in entries),
            frozenset(documents),
            frozenset(p for m in entries for p in m.by),
        )

    # -- answers ---------------------------------------------------------------------

    def presence(self, wedding: str, docs: set[str]) -> list[PresenceEntry]:
        """Who is in which of ``docs`` of the wedding, one entry per person and document,
        over every process, and who left (``offline``, in the documents they were last in),
        ordered by document, then user id."""
        now = clock.now()
        merged = self._merged(wedding, docs)
        by_user: dict[str, list[_Merged]] = {}
        for m in merged.values():
            by_user.setdefault(m.seen.user_id, []).append(m)
        people = self._people(wedding, now)
        entries: list[PresenceEntry] = []
        for user, ms in by_user.items():
            person = people.get(user) or self._person(ms, now)
            documents = sorted((m.seen.doc for m in ms), key=_ORDER.__getitem__)
            for m in ms:
                s = m.seen
                entries.append(
                    PresenceEntry(
                        doc=s.doc,
                        user_id=s.user_id,
                        name=s.name,
                        role=s.role,
                        connections=s.connections,
                        last_activity=s.last_activity,
                        last_activity_at=rfc3339(s.last_activity),
                        since=rfc3339(s.since),
                        documents=documents,
                        status=person.status,
                        section=m.section,
                        typing=m.typing,
                        last_seen=None,
                    )
                )
        for user, gone in self._gone.get(wedding, {}).items():
            if user in people or now - gone.last_seen > GONE_SECONDS:
                continue
            documents = [d for d in gone.documents if d in docs]
            for doc in documents:
                entries.append(
                    PresenceEntry(
                        doc=doc,
                        user_id=user,
                        name=gone.name,
                        role=gone.role,
                        connections=0,
                        last_activity=gone.last_activity,
                        last_activity_at=rfc3339(gone.last_activity),
                        since=rfc3339(gone.last_seen),
                        documents=documents,
                        status="offline",
                        section=None,
                        typing=False,
                        last_seen=rfc3339(gone.last_seen),
                    )
                )
        entries.sort(key=lambda e: (_ORDER[e.doc], e.user_id))
        return entries

    def _merged(self, wedding: str, docs: set[str]) -> dict[tuple[str, str], _Merged]:
        """Each person in each of ``docs`` of the wedding, over every process."""
        fresh_after = time.monotonic() - self._core.settings.presence_timeout_seconds
        views: list[tuple[str, Iterable[Seen], Iterable[State]]] = [
            (self._me, *self._local(wedding))
        ]
        views += [
            (process, seen, states)
            for process, (heard, seen, states) in self._remote.get(wedding, {}).items()
            if heard >= fresh_after
        ]
        merged: dict[tuple[str, str], _Merged] = {}
        for process, seen, states in views:
            said = {(t.doc, t.user_id): t for t in states}
            for s in seen:
                if s.doc not in docs:
                    continue
                t = said.get((s.doc, s.user_id))
                active = s.last_activity if t is None else t.active
                known = merged.get((s.doc, s.user_id))
                if known is None:
                    copy = Seen(
                        s.doc, s.user_id, s.name, s.role, s.connections, s.last_activity, s.since
                    )
                    merged[(s.doc, s.user_id)] = _Merged(
                        copy,
                        active,
                        t is not None and t.busy,
                        None if t is None else t.section,
                        t is not None and t.typing,
                        {process},
                    )
                    continue
                known.by.add(process)
                k = known.seen
                k.connections += s.connections
                k.last_activity = max(k.last_activity, s.last_activity)
                k.since = min(k.since, s.since)
                if t is not None:
                    if active > known.active and t.section is not None:
                        known.section = t.section
                    known.busy |= t.busy
                    known.typing |= t.typing
                known.active = max(known.active, active)
        return merged

    def _local_weddings(self) -> set[str]:
        return {
            room.wedding_id
            for room in self._core.registry.rooms.values()
            if _document_of(room) is not None and room.connections
        }

    def _local(self, wedding: str) -> tuple[list[Seen], list[State]]:
        """Who this process serves in the wedding's documents, and what they say there."""
        seen: list[Seen] = []
        states: list[State] = []
        rooms = [
            (kind, room)
            for room in self._core.registry.wedding_rooms(wedding)
            if (kind := _document_of(room)) is not None
        ]
        for kind, room in rooms:
            users: dict[str, tuple[Seen, State]] = {}
            for conn in room.connections:
                p = conn.principal
                activity = self._activity.get(conn.id) or _Activity(conn.connected_at)
                here = activity.here
                known = users.get(p.user_id)
                if known is None:
                    first = conn.last_activity, conn.connected_at
                    users[p.user_id] = (
                        Seen(kind, p.user_id, p.name, p.role, 1, *first),
                        State(kind, p.user_id, activity.active, *_said(here)),
                    )
                    continue
                s, t = known
                s.connections += 1
                s.last_activity = max(s.last_activity, conn.last_activity)
                s.since = min(s.since, conn.connected_at)
                if activity.active > t.active:
                    t.active = activity.active
                    t.section = here.section if here.section is not None else t.section
                t.busy |= here.busy
                t.typing |= here.typing
            for s, t in users.values():
                seen.append(s)
                states.append(t)
        return seen, states
