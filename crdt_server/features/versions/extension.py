"""Version history: restore points of the wedding documents, reading a document as of a
seq, and restoring one.

Every ``CRDT_SERVER_VERSION_CHECK_SECONDS`` the keeper looks at the documents this process
committed changes to. Each burst of one person's work that another person's work followed
gets a restore point of its own (the state as of its last update), at once; the work since
then gets one once its first update is ``CRDT_SERVER_VERSION_INTERVAL_SECONDS`` old (a
minute): no edit goes more than a minute (and a check) without a point. A point is rebuilt
from the store (so it is exactly what was committed) and keeps who changed the document
since the previous point and what they changed (the feed's events between the two states,
:func:`~crdt_server.features.versions.domain.changes_between`); a state equal to the
previous point's makes no point, so no two points in a row are the same. Points are thinned
as they age (every one for a day, hourly for a week, then the first of each day) and
deleted past ``CRDT_SERVER_EVENT_RETENTION_DAYS``. They live in their own table, so
compaction keeps them.

Reading a document as of seq N replays its log up to N while the log still holds it (exact
at every seq); past a compaction, the newest restore point at or before N answers.
Restoring writes one update made as the restorer: the difference between the document now
and its state then (:func:`crdt_server.features.versions.domain.restore`), so it is
validated, committed, broadcast and turned into events like any other edit, and concurrent
edits still merge. It is made on a copy on a worker thread and taken in by slices
(:meth:`~crdt_server.core.weddings.WeddingService.edit_off_loop`), each committed before
the next, so a large restore holds no other wedding.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pycrdt import Doc, Map

from crdt_server import clock
from crdt_server.core.crdt import replay
from crdt_server.core.hooks import CommitBatch, Core, Extension, RoomView, Sender
from crdt_server.documents import DOCUMENT_KINDS, to_json
from crdt_server.features.versions.domain import changes_between, restore
from crdt_server.features.versions.settings import VersionSettings
from crdt_server.features.versions.tables import (
    SHOWN_CHANGES,
    VersionPoint,
    VersionStore,
    to_thin,
)
from crdt_server.storage import NewEvent, StoreError
from crdt_server.times import rfc3339

if TYPE_CHECKING:
    from crdt_server.features.events import EventLog

__all__ = ["NotKept", "Restored", "VersionKeeper"]

log = logging.getLogger("crdt_server.versions")

ALL_FOR = 86400.0
"""Points younger than this are all kept; older ones, one an hour."""
HOURLY_FOR = 7 * 86400.0
"""Points younger than this are kept one an hour at least; older ones, one a day."""
MAX_BURSTS = 8
"""Bursts of work made points of their own in one check (older ones merge into the first
of these): a bound on what one check replays."""


class NotKept(LookupError):
    """No state of the document at or before that seq is kept (before its first update,
    or compacted away and older than every restore point)."""


@dataclass(frozen=True, slots=True)
class Restored:
    seq: int
    """The seq whose state the document now has again."""
    changed: bool
    event: str | None
    """The id of the ``document.restored`` event."""


class VersionKeeper(Extension):
    """Takes, thins and serves restore points (see the module docstring)."""

    name = "versions"

    def __init__(self, core: Core, *, events: EventLog | None = None) -> None:
        self._event_log = events
        self._core = core
        self._versions = VersionStore(core.store)
        self._changed: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._last_thin = 0.0

    async def start(self, core: Core) -> None:
        self._task = asyncio.create_task(self._loop(), name="restore-points")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def on_stored(self, room: RoomView, batch: CommitBatch) -> None:
        if room.kind in DOCUMENT_KINDS:
            self._changed.add(room.name)

    # -- taking and thinning points ---------------------------------------------------

    async def _loop(self) -> None:
        core = self._core
        while True:
            await clock.sleep(core.settings.fragment(VersionSettings).version_check_seconds)
            try:
                await self.check()
            except StoreError as exc:  # a full disk, a lost database: one line, not a trace
                log.warning("restore points paused, the store failed: %s; trying again later", exc)
            except Exception:
                log.exception("could not take or thin restore points; trying again later")

    async def check(self, *, force: bool = False) -> None:
        """Take the points that are due (``force``: for every changed document now), then
        thin old points (at most hourly)."""
        core = self._core
        interval = core.settings.fragment(VersionSettings).version_interval_seconds
        changed, self._changed = self._changed, set()
        for name in sorted(changed):
            try:
                if not await self.take(name, interval=0.0 if force else interval):
                    self._changed.add(name)  # not due yet: look again later
            except Exception:
                self._changed.add(name)
                raise
        now = clock.now()
        if now - self._last_thin >= min(3600.0, interval):
            self._last_thin = now
            keep_for = core.settings.event_retention_days * 86400
            versions = self._versions
            doomed = to_thin(
                await versions.older_than(now - min(ALL_FOR, keep_for)),
                now,
                hourly_for=HOURLY_FOR,
                keep_for=keep_for,
                all_for=ALL_FOR,
            )
            await versions.delete(doomed)

    async def take(self, name: str, *, interval: float) -> bool:
        """Take the points of document ``name`` that are due: one for each burst of a
        person's work that another's followed, and one for the newest work once its first
        update is ``interval`` seconds old; whether the document is up to date (nothing
        waits for a point)."""
        versions = self._versions
        newest = await versions.points(name, limit=1)
        now = clock.now()
        stored = await self._core.store.load(name)
        if stored is None or (newest and newest[0].seq >= stored.last_seq):
            return True
        previous = newest[0].seq if newest else 0
        runs, first_at = await versions.runs_between(name, previous, stored.last_seq)
        due = first_at is None or now - first_at >= interval
        ends = [seq for seq, _ in runs[:-1]][-MAX_BURSTS:]
        if due:
            ends.append(stored.last_seq)
        if not ends:
            return False
        kind = name.split("/", 1)[1]
        wedding = name.split("/", 1)[0]
        before: Doc[Any] = (await self.state_at(name, previous))[1] if previous else Doc()
        since = previous  # whose work the next point credits: after an undone burst's
        for seq in ends:
            log = stored if seq == stored.last_seq else await versions.log_upto(name, seq)
            if log is None:
                continue  # compacted past it meanwhile: the later point covers it
            # On a worker thread (private documents): for a 20,000-guest list, replaying
            # it and comparing the two states is seconds every other wedding would wait on.
            doc, changes, count, state = await asyncio.to_thread(
                _next_point, kind, before, log.updates
            )
            if state is None:
                since = log.last_seq  # the same as the point before it: work undone
                continue
            actors = await versions.actors_between(name, since, log.last_seq)
            point = VersionPoint(name, log.last_seq, now, tuple(actors), tuple(changes), count)
            await versions.add(wedding, point, state)
            before, since = doc, log.last_seq
        return due

    # -- reading and restoring -------------------------------------------------------

    async def points(self, name: str, *, before: int | None, limit: int) -> list[VersionPoint]:
        return await self._versions.points(name, before=before, limit=limit)

    async def state_at(self, name: str, seq: int) -> tuple[int, Doc[Any]]:
        """The document as of ``seq``: the seq it is exactly the state of (the newest at
        or before ``seq``) and the document. Raises :class:`NotKept`."""
        versions = self._versions
        log = await versions.log_upto(name, seq)
        # Replayed on a worker thread (a private document): a log of 20,000 guests is
        # seconds of Python every other wedding would wait on.
        if log is not None:
            return log.last_seq, (await asyncio.to_thread(replay, log.updates))[0].doc
        point = await versions.state(name, seq)
        if point is None:
            raise NotKept(name)
        # Through the shape rule: a point taken before it may hold content no reader can
        # iterate (served as deleted content, as a room serves its document).
        return point.seq, (await asyncio.to_thread(replay, [bytes(point.data)]))[0].doc

    async def past_state(self, name: str, seq: int) -> tuple[int, Doc[Any]] | None:
        """:meth:`state_at`, ``None`` when nothing that old is kept (what ``GET`` of a
        document with ``?at=SEQ`` asks: :class:`crdt_server.edge.documents.PastStates`)."""
        try:
            return await self.state_at(name, seq)
        except NotKept:
            return None

    async def restore(self, wedding: str, kind: str, seq: int, sender: Sender) -> Restored:
        """Write one update, made as ``sender``, that makes the document equal to its state
        as of ``seq``; answered once committed. Raises :class:`NotKept`."""
        core = self._core
        name = f"{wedding}/{kind}"
        used, target = await self.state_at(name, seq)
        kept = await self._versions.points(name, before=used + 1, limit=1)
        point_at = kept[0].at if kept and kept[0].seq == used else None
        # Off the loop, taken in by slices: restoring a 20,000-guest list as it was is as
        # large an edit as importing it.
        changed = await core.weddings.edit_off_loop(
            name, lambda doc: restore(doc, kind, target, origin=sender.origin), sender
        )
        event_log = self._event_log
        event_id = None
        if event_log is not None:
            data: dict[str, Any] = {"doc": kind, "seq": used, "changed": changed}
            if point_at is not None:
                data["point_at"] = rfc3339(point_at)  # the feed says "as it was at ..."
            added = await event_log.record(
                [
                    NewEvent(
                        wedding,
                        "document.restored",
                        json.dumps(data),
                        kind,
                        sub=sender.actor.sub,
                        role=sender.actor.role,
                    )
                ]
            )
            event_id = f"{wedding}:{added.events[0].seq}"
        return Restored(used, changed, event_id)

    async def on_guest_erased(self, wedding: str, guest_id: str) -> None:
        """Per-person erasure: rewrite every restore point of the wedding's guest list and
        seating plan without the guest (their deleted content garbage collected), and
        leave the changes that name them out of what the points say changed."""
        versions = self._versions
        for kind, root in (("guests", "guests"), ("seating", "assignments")):
            name = f"{wedding}/{kind}"
            rewritten: list[tuple[int, bytes]] = []
            for kept in await versions.states(name):
                seq, state = kept.seq, bytes(kept.data)
                doc = replay([state])[0].doc  # through the shape rule, as state_at reads
                entries = doc.get(root, type=Map)
                if guest_id in entries:
                    del entries[guest_id]
                    rewritten.append((seq, doc.get_update()))
            await versions.replace_states(name, rewritten)
            await versions.forget_changes(name, guest_id)


def _next_point(
    kind: str, before: Doc[Any], updates: list[bytes]
) -> tuple[Doc[Any], list[dict[str, Any]], int, bytes | None]:
    """The document ``updates`` make, what changed since ``before`` (the first
    :data:`SHOWN_CHANGES` of the feed's events, and how many) and its encoded state, or
    ``None`` for the state if it reads as ``before`` does (on a worker thread)."""
    doc = replay(updates)[0].doc
    changes, count = changes_between(kind, before, doc, keep=SHOWN_CHANGES)
    if count == 0 and to_json(doc, kind) == to_json(before, kind):
        return doc, changes, count, None
    return doc, changes, count, doc.get_update()
