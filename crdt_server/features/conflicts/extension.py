"""The conflicts keeper: each wedding's read-only ``{wedding_id}/conflicts`` room, kept up
to date, ``conflict.detected`` / ``conflict.resolved`` / ``conflict.acknowledged`` events,
and resolution: by domain operations made as the resolver, or by acknowledging. What a
conflict's records look like (its id, its view, its events) is
:mod:`crdt_server.features.conflicts.domain`'s; the steps of resolution are
:mod:`~crdt_server.features.conflicts.extension_resolution`'s, and what the keeper holds of
each wedding :mod:`~crdt_server.features.conflicts.extension_wedding`'s."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pycrdt import Array, Doc, Map, Text

from crdt_server import clock
from crdt_server.actor import Actor
from crdt_server.core.domain import ChangeRecord
from crdt_server.core.hooks import CommitBatch, Core, Extension, RoomView, Sender
from crdt_server.documents import DOCUMENT_KINDS, Conflict, OperationError, check
from crdt_server.documents.changes import EntryChange, entry_changes
from crdt_server.documents.domain import WEDDINGS
from crdt_server.documents.findings import Ident, WeddingFindings
from crdt_server.features.conflicts.domain import (
    SENDER,
    ConflictView,
    as_dict,
    conflict_event,
    conflict_id,
    is_concurrent_event,
    is_stored_id,
    last_writers,
    resolved_event,
)
from crdt_server.features.conflicts.extension_concurrent import (
    ConcurrentEdits,
    entry_path,
    finding_view,
)
from crdt_server.features.conflicts.extension_notices import Notices
from crdt_server.features.conflicts.extension_resolution import (
    acknowledge_checked,
    apply_ops,
    mark,
    settle,
    tried,
)
from crdt_server.features.conflicts.extension_wedding import KeptWedding
from crdt_server.names import CONFLICTS
from crdt_server.storage import StoredEvent

if TYPE_CHECKING:
    from crdt_server.features.events import EventLog

__all__ = ["ConflictView", "ConflictsKeeper", "conflict_id"]

log = logging.getLogger("crdt_server.conflicts")

_WRITERS_PER_WEDDING = 5000
_WEDDINGS_REMEMBERED = 1000
REMOTE_GRACE = 0.5
"""Seconds a process waits before writing findings another process's content made: that
process writes them first (right after its commit)."""


class ConflictsKeeper(Extension):
    """Keeps each wedding's read-only ``{wedding_id}/conflicts`` room up to date.

    The findings of :func:`documents.check` are kept by a
    :class:`~documents.findings.WeddingFindings` per wedding: built from the four documents
    when a wedding is first changed here (or one of its documents was replaced, e.g.
    loaded again), then updated from the entries each integrated change touched, committed
    here or in another process. After each change, only the affected findings are
    evaluated, and only what came, went or changed is written into the conflicts
    document's ``conflicts`` map: one entry per finding, keyed by :func:`conflict_id`, each
    ``{"code", "paths", "message"}``. Editors show conflicts live by joining that room. A
    finding that appears or goes is recorded as a ``conflict.detected`` or
    ``conflict.resolved`` event when an :class:`EventLog` is given, right after the commit
    that made it so.
    """

    name = "conflicts"

    domain = WEDDINGS
    wants_changes = True  # the entries each change touched; who wrote them

    def __init__(
        self,
        core: Core,
        *,
        events: EventLog | None = None,
        concurrent: ConcurrentEdits | None = None,
    ) -> None:
        self._events = events
        self._concurrent = concurrent
        if concurrent is not None:
            concurrent.on_findings_changed = self._stored_changed
        self._service = core.weddings
        self._notices = Notices(core.registry, core.settings)
        self._weddings: OrderedDict[str, KeptWedding] = OrderedDict()
        self._running: set[asyncio.Task[None]] = set()
        self._writers: OrderedDict[str, OrderedDict[str, tuple[str, str, float]]] = OrderedDict()
        """wedding -> entry path -> (sub, role, when) of its last write committed here."""
        self._elsewhere: dict[str, set[str]] = {}
        """wedding -> entry paths of :attr:`_writers` that another process's content
        changed since (their last writer may not be the one kept here)."""

    def on_stored(self, room: RoomView, batch: CommitBatch) -> None:
        if room.kind not in DOCUMENT_KINDS:
            return
        now = clock.now()
        writers = self._writers.get(room.wedding_id)
        if writers is None:
            writers = self._writers[room.wedding_id] = OrderedDict()
            while len(self._writers) > _WEDDINGS_REMEMBERED:
                forgotten, _ = self._writers.popitem(last=False)
                self._elsewhere.pop(forgotten, None)
        else:
            self._writers.move_to_end(room.wedding_id)
        elsewhere = self._elsewhere.get(room.wedding_id, set())
        touched: list[EntryChange] = []
        written: list[str] = []
        for update in batch.updates:
            for sender, changes in update.changes:
                touched += entry_changes(changes)
                actor = sender.actor
                if actor.role == "server":
                    continue
                for change in changes:
                    path = entry_path(room.kind, (change.root, change.id))
                    last = writers.get(path)
                    writers[path] = (actor.sub, actor.role, now)
                    writers.move_to_end(path)
                    # Its findings are written again when the entry's last writer changed
                    # (here, or content of another process came since), not each time the
                    # same person writes it again: each of a planner's edits of an item's
                    # notes rewrote its findings (a conflicts update committed, broadcast
                    # and derived per edit). An actor's ``at`` is then the first write of
                    # such a run; it only orders two processes' writers.
                    if last is None or last[:2] != (actor.sub, actor.role) or path in elsewhere:
                        written.append(path)
                        elsewhere.discard(path)
        while len(writers) > _WRITERS_PER_WEDDING:
            path, _ = writers.popitem(last=False)
            elsewhere.discard(path)
        wedding = self._wedding(room.wedding_id)
        wedding.local = True
        wedding.touch(room, touched)
        if wedding.findings is not None and written:
            wedding.keys |= wedding.findings.touching(written)  # their writers changed
        if any(is_concurrent_event(e) for e in batch.events):
            wedding.stored = True

    def on_remote_changes(self, room: RoomView, changes: Sequence[ChangeRecord]) -> None:
        if room.kind not in DOCUMENT_KINDS:
            return
        self._wedding(room.wedding_id).touch(room, entry_changes(changes))
        writers = self._writers.get(room.wedding_id)
        if writers is not None:  # whoever wrote there, the next write here says it again
            paths = {entry_path(room.kind, (change.root, change.id)) for change in changes}
            moved = paths.intersection(writers)
            if moved:
                self._elsewhere.setdefault(room.wedding_id, set()).update(moved)

    def on_change(self, room: RoomView, batch: CommitBatch) -> None:
        if room.kind not in DOCUMENT_KINDS:
            return
        wedding = self._wedding(room.wedding_id)
        if wedding.local:
            wedding.local = False
            # Most changes move no finding: settled here, without a task, when nothing
            # else is under way (an evaluation holds the lock across its awaits).
            quiet = False
            if wedding.task is None and not wedding.lock.locked():
                try:
                    quiet = wedding.settle_quietly()
                except Exception:
                    log.exception("could not update the conflicts of wedding %s", room.wedding_id)
            if not quiet:
                self._schedule(room.wedding_id)
        elif wedding.timer is None:
            # Content another process committed: that process writes what it changed
            # within milliseconds; this one only makes sure, a moment later (writing, and
            # recording events for, what is still missing then), so that the two rarely
            # both record one finding.
            loop = asyncio.get_running_loop()
            wedding.timer = loop.call_later(REMOTE_GRACE, self._later, room.wedding_id)

    def _later(self, wedding_id: str) -> None:
        self._wedding(wedding_id).timer = None
        self._schedule(wedding_id)

    def _stored_changed(self, wedding_id: str) -> None:
        """Concurrent-edit findings of the wedding were opened or closed (not by a commit
        here: those come with their events in :meth:`on_stored`)."""
        self._wedding(wedding_id).stored = True
        self._schedule(wedding_id)

    def _wedding(self, wedding_id: str) -> KeptWedding:
        wedding = self._weddings.get(wedding_id)
        if wedding is None:
            wedding = self._weddings[wedding_id] = KeptWedding()
            while len(self._weddings) > _WEDDINGS_REMEMBERED:
                self._weddings.popitem(last=False)  # built again if it changes again
        else:
            self._weddings.move_to_end(wedding_id)
        return wedding

    def _schedule(self, wedding_id: str) -> None:
        """Evaluate the wedding's findings now (on the next turn of the loop); if that is
        under way, once more when it is done."""
        wedding = self._wedding(wedding_id)
        if wedding.task is not None:
            wedding.again = True
            return
        task = asyncio.create_task(self._run(wedding_id, wedding), name=f"conflicts-{wedding_id}")
        wedding.task = task
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, wedding_id: str, wedding: KeptWedding) -> None:
        try:
            while True:
                wedding.again = False
                try:
                    await self._update(wedding_id, wedding)
                except Exception:
                    wedding.stale = True  # read whole again at the next change
                    log.exception("could not update the conflicts of wedding %s", wedding_id)
                if not wedding.again:
                    break
        finally:
            wedding.task = None

    async def on_guest_erased(self, wedding: str, guest_id: str) -> None:
        await self.refresh(wedding)  # findings quote guests' names

    async def refresh(self, wedding_id: str) -> None:
        """Compare every finding and open concurrent edit with the conflicts room now and
        record what came and went."""
        await self._refresh_once(wedding_id)

    async def _refresh_once(self, wedding_id: str) -> list[StoredEvent]:
        wedding = self._wedding(wedding_id)
        wedding.full = wedding.stored = True
        return await self._update(wedding_id, wedding)

    async def _update(self, wedding_id: str, wedding: KeptWedding) -> list[StoredEvent]:
        """Bring the conflicts room up to date with what changed since the last call."""
        async with wedding.lock:
            return await self._update_locked(wedding_id, wedding)

    async def _update_locked(self, wedding_id: str, wedding: KeptWedding) -> list[StoredEvent]:
        service = self._service
        findings = await wedding.up_to_date(service, wedding_id)
        if findings is None:
            return []
        changed = findings.evaluate()
        keys, wedding.keys = wedding.keys | changed, set()
        full, wedding.full = wedding.full, False
        sync_stored, wedding.stored = wedding.stored or full, False
        if not (keys or full or sync_stored):
            return []
        wanted, checked = _wanted(findings, None if full else keys)
        related = {key: findings.related(c) for key, c in wanted.items()}
        stored = await self._stored(wedding_id) if sync_stored else None
        known: Mapping[str, tuple[str, str, float]] = self._writers.get(wedding_id, {})
        now = clock.now()
        # What comes and goes is recorded before the room shows it: whoever sees a finding
        # there finds its event (this wedding's updates here take turns: see the lock).
        current = await self._entries(wedding_id, checked)
        came = [key for key in wanted if not as_dict(current.get(key))]
        gone = current.keys() if checked is None else sorted(checked)
        went = [
            (key, as_dict(current[key]))
            for key in gone
            if key in current and key not in wanted and not is_stored_id(key)
        ]
        recorded = await self._record(wedding, wedding_id, [(k, wanted[k]) for k in came], went)

        def write(doc: Doc[Any]) -> None:
            entries = doc.get(CONFLICTS, type=Map)
            with doc.transaction(origin="conflicts"):
                if stored is not None:
                    # Concurrent edits: stored findings, their events recorded with them.
                    _write_stored(entries, stored)
                for key, _old in went:
                    if key in entries:
                        del entries[key]
                for key, conflict in wanted.items():
                    old = as_dict(entries.get(key))
                    actors = last_writers(
                        old.get("actors"), known, (*conflict.paths, *related[key])
                    )
                    value = _finding_value(conflict, old, now, actors)
                    if old != value:
                        entries[key] = value

        await service.edit(f"{wedding_id}/{CONFLICTS}", write, SENDER)
        # The documents' Hocuspocus providers hear of each new finding, once recorded.
        for new in came:
            self._notices.finding(wedding_id, new, wanted[new])
        return recorded

    async def _record(
        self,
        wedding: KeptWedding,
        wedding_id: str,
        came: Sequence[tuple[str, Conflict]],
        went: Sequence[tuple[str, dict[str, Any]]],
    ) -> list[StoredEvent]:
        """Record the findings that came and went as events (none without an event log);
        a resolution credited to someone is kept for :meth:`resolve` to name."""
        if self._events is None or not (came or went):
            return []
        events = [
            conflict_event(wedding_id, "conflict.detected", key, found.code, found.paths)
            for key, found in came
        ] + [resolved_event(wedding_id, key, old) for key, old in went]
        recorded = list((await self._events.record(events)).events)
        for event in recorded:
            if event.type == "conflict.resolved" and event.sub != SENDER.actor.sub:
                wedding.resolved[json.loads(event.data).get("id")] = event
        return recorded

    async def _stored(self, wedding_id: str) -> dict[str, dict[str, Any]]:
        """The wedding's open stored findings (concurrent edits), by id, as views."""
        if self._concurrent is None:
            return {}
        return {f.id: finding_view(f) for f in await self._concurrent.findings(wedding_id)}

    # -- resolution -----------------------------------------------------------------

    async def views(self, wedding_id: str, readable: set[str]) -> list[ConflictView]:
        """The wedding's current findings whose entries are all in ``readable`` documents,
        with their ids, first-seen times, actors and suggested resolutions."""
        service = self._service
        docs = await service.documents(wedding_id)
        entries = await self._entries(wedding_id)
        views: list[ConflictView] = []
        for conflict in check(docs):
            if all(p.split("/")[0] in readable for p in conflict.paths):
                key = conflict_id(conflict)
                views.append(ConflictView.checked(key, conflict, as_dict(entries.get(key)), docs))
        for view in (await self._stored(wedding_id)).values():
            if view["doc"] in readable:
                views.append(ConflictView.stored(view))
        return views

    async def acknowledge(self, wedding_id: str, key: str, actor: Actor) -> str | None:
        """Record that ``actor`` has seen conflict ``key`` and keeps the state as it is;
        returns the id of the ``conflict.acknowledged`` event (``None`` if this person had
        already acknowledged it). Raises :class:`LookupError` if there is no such conflict."""
        if is_stored_id(key):
            return await settle(
                self._concurrent, self._events, self.refresh, wedding_id, key, "acknowledged", actor
            )
        return await acknowledge_checked(self._service, self._events, wedding_id, key, actor)

    async def resolve(
        self, wedding_id: str, key: str, ops: Sequence[Mapping[str, Any]], sender: Sender
    ) -> str | None:
        """Resolve conflict ``key`` with domain operations made as ``sender``.

        The operations are first tried together on copies of the documents: an invalid
        one raises :class:`documents.OperationError` naming ``ops[i]``, and operations that
        leave the conflict in place raise one naming ``ops`` (422); either way nothing
        changed. Then the conflict is marked as being resolved by ``sender`` (so whichever
        process sees it go records ``conflict.resolved`` with its actor), each document's
        operations are committed in one update, and the findings are refreshed. Returns
        the id of the ``conflict.resolved`` event when this process recorded it. Raises
        :class:`LookupError` if there is no such conflict.
        """
        service = self._service
        live = await service.documents(wedding_id)
        stored = is_stored_id(key)
        if stored:
            if key not in await self._stored(wedding_id):
                raise LookupError(key)
        elif key not in {conflict_id(c) for c in check(live)}:
            raise LookupError(key)
        scratch, by_kind = tried(live, ops)
        if stored:
            # A race is settled by writing the key again (the write closes the finding, as
            # any later write of it does); operations elsewhere settle it too.
            await apply_ops(service, wedding_id, by_kind, sender)
            return await settle(
                self._concurrent,
                self._events,
                self.refresh,
                wedding_id,
                key,
                "resolved",
                sender.actor,
                ops,
            )
        if key in {conflict_id(c) for c in check(scratch)}:
            raise OperationError(
                "these operations leave the conflict in place", reason="impossible", path="ops"
            )
        actor = sender.actor
        marker = {"sub": actor.sub, "role": actor.role, "ops": list(ops), "at": clock.now()}
        await mark(service, self._refresh_once, wedding_id, key, marker)
        try:
            await apply_ops(service, wedding_id, by_kind, sender)
        except BaseException:
            await mark(service, self._refresh_once, wedding_id, key, None)
            raise
        await self._refresh_once(wedding_id)
        # Recorded by this refresh, or by the one the operations' commit started first.
        event = self._wedding(wedding_id).resolved.pop(key, None)
        return None if event is None else f"{wedding_id}:{event.seq}"

    async def _entries(
        self, wedding_id: str, keys: Collection[str] | None = None
    ) -> dict[str, Any]:
        """The conflicts room's entries; only those of ``keys`` when given (an update
        reads the few findings it evaluated, not every finding of the wedding)."""
        async with self._service.room(f"{wedding_id}/{CONFLICTS}") as room:
            entries = room.doc.get(CONFLICTS, type=Map)
            if keys is None:
                found = dict(entries.to_py() or {})
            else:
                found = {}
                for key in keys:
                    value = entries.get(key)
                    if isinstance(value, Map | Array | Text):
                        value = value.to_py()
                    if value is not None:
                        found[key] = value
            await room.wait_committed()
            return found

    async def close(self) -> None:
        for wedding in self._weddings.values():
            if wedding.timer is not None:
                wedding.timer.cancel()
                wedding.timer = None
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)


def _wanted(
    findings: WeddingFindings, keys: Collection[Ident] | None
) -> tuple[dict[str, Conflict], set[str] | None]:
    """The findings to show, by id, and the ids to compare with the conflicts room: every
    finding and every entry (``None``) when ``keys`` is ``None``, else those of ``keys``
    (a key with no finding now: its entry, to remove)."""
    if keys is None:
        return {conflict_id(c): c for c in findings.findings()}, None
    wanted: dict[str, Conflict] = {}
    checked: set[str] = set()
    for key in keys:
        found = findings.get(key)
        if found is None:
            checked.add(conflict_id(Conflict(key[0], key[1], "")))
        else:
            wanted[conflict_id(found)] = found
    checked |= wanted.keys()
    return dict(sorted(wanted.items(), key=lambda item: item[1])), checked


_STORED_FIELDS = ("code", "kind", "paths", "field", "message", "same_actor")


def _write_stored(entries: Map[Any], stored: Mapping[str, Mapping[str, Any]]) -> None:
    """The conflicts room's entries of the stored findings (concurrent edits) as ``stored``
    has them: the closed ones removed, the others written where they differ."""
    for key in [k for k in entries.keys() if is_stored_id(k) and k not in stored]:
        del entries[key]
    for key, view in stored.items():
        value = {k: view[k] for k in _STORED_FIELDS}
        value["first_seen"] = view["detected_at"]
        if entries.get(key) != value:
            entries[key] = value


def _finding_value(
    conflict: Conflict, old: Mapping[str, Any], now: float, actors: list[dict[str, Any]]
) -> dict[str, Any]:
    """A finding's entry in the conflicts room: its first-seen time and what people said
    of it (acknowledged, resolving) kept from its ``old`` entry."""
    value: dict[str, Any] = {
        "code": conflict.code,
        "paths": list(conflict.paths),
        "message": conflict.message,
        "first_seen": old.get("first_seen", now),
        "actors": actors,
    }
    for kept in ("acknowledged", "resolving"):
        if kept in old:
            value[kept] = old[kept]
    return value
