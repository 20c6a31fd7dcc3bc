"""The seam between the sync core and the features built on it: named hooks.

The core (rooms, the registry, sessions) knows nothing of events, webhooks, conflicts or
threads. It calls the hooks below at fixed points; features are :class:`Extension`
subclasses, passed to the app factory, that override the hooks they need (every hook is a
no-op by default). Extensions run in the order given. A hook that raises is logged with
its extension's name and does not stop the others. :meth:`Extension.on_commit` is the
domain observing a commit, and the domain never gates: an extension that raises for an
update contributes no rows for that update, which commits anyway with a
``system.derivation_failed`` event (no content) in its place.

Hooks receive narrow views (:mod:`crdt_server.core.views`: a :class:`RoomView`, a
:class:`ConnectionView`), never the concrete room or connection, and one payload each
(:mod:`crdt_server.core.payloads`). The commit-side hooks (``on_prepare``, ``on_commit``,
``on_stored``, ``on_change``) receive a :class:`CommitBatch`: the updates a room commits
together (those it took in within one turn of the event loop, or while its previous batch
was being committed), with their merged changes; each hook is called once per batch.

Order of one batch of updates in a room::

    apply to the room's document -> on_prepare(batch) -> on_commit(batch) (rows for the
    same transaction) -> COMMIT -> broadcast -> on_stored(batch + seqs, events)
    -> on_change(the same batch)

The events ``on_commit`` returns go into the same transaction as the step of the extension
that keeps the wedding events (:meth:`Extension.events_step`: the events feature's tables);
rows of an extension's own tables as :class:`~crdt_server.storage.FeatureRow` values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from crdt_server.codec.awareness import AwarenessEntry
from crdt_server.core.domain import ChangeRecord, Domain
from crdt_server.core.overwrites import Found
from crdt_server.core.payloads import (
    DERIVATION_FAILED,
    SERVER,
    CommitBatch,
    PendingUpdate,
    Sender,
)
from crdt_server.core.views import ConnectionView, RoomsView, RoomView, WeddingsView
from crdt_server.placement import ALONE, Placement
from crdt_server.storage import FeatureRow, NewEvent
from crdt_server.storage.gateway import Tx

if TYPE_CHECKING:
    from crdt_server.settings import Settings
    from crdt_server.storage import Store

__all__ = [
    "DERIVATION_FAILED",
    "SERVER",
    "CommitBatch",
    "ConnectionView",
    "Core",
    "Extension",
    "Hooks",
    "PendingUpdate",
    "RoomView",
    "Sender",
]

log = logging.getLogger("crdt_server.hooks")

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Core:
    """What an extension may use once the server runs (given to :meth:`Extension.start`):
    the registry and the documents service as views (:mod:`crdt_server.core.views`)."""

    settings: Settings
    store: Store
    registry: RoomsView
    weddings: WeddingsView
    placement: Placement = ALONE
    """Which weddings this process owns among its host's workers: the work an extension
    does for a wedding on its own schedule is the owner's (:mod:`crdt_server.placement`)."""


class Extension:
    """A feature plugged into the core. Override what you need; each hook is a no-op."""

    name = "extension"
    domain: Domain | None = None
    """The domain of the documents this extension reads (the wedding domain,
    :data:`crdt_server.documents.domain.WEDDINGS`): it records the changes
    :attr:`wants_changes` asks for, and says which rooms :attr:`wants_overwrites` watches.
    Every extension of a server that names one names the same."""
    wants_changes = False
    """True if :attr:`PendingUpdate.changes` must be recorded (it costs a deep observation
    of each room's document); only with a :attr:`domain`."""
    wants_overwrites = False
    """True if :attr:`PendingUpdate.found` must be filled (it costs an index of each room's
    map items and a decode of each update's items); only with a :attr:`domain`."""

    async def on_load(self, room: RoomView) -> None:
        """A room was loaded from the store (before any connection joins it)."""

    async def on_prepare(self, room: RoomView, batch: CommitBatch) -> None:
        """``batch`` (no seqs yet) is about to be committed: read what :meth:`on_commit`
        will need and cannot know yet (it runs without awaiting). Called only by extensions
        that override it; keep it cheap, the commit waits for it (and goes ahead if it
        raises)."""

    def on_commit(self, room: RoomView, batch: CommitBatch) -> Sequence[NewEvent | FeatureRow]:
        """``batch`` (no seqs yet) is about to be committed: return rows to write in the same
        store transaction (so they are durable exactly when the updates are): events, and
        rows of the extension's own tables (a row whose key exists is left out). Keep it
        free of side effects: when it raises, it is called again with a batch of each
        update alone to find the updates it fails on, which commit without its rows."""
        return ()

    def events_step(self, events: Sequence[NewEvent]) -> Tx[Any] | None:
        """The step (a gateway transaction, :mod:`crdt_server.storage.gateway`) that stores
        a commit's ``events`` in the updates' own transaction: overridden by the one
        extension that keeps the wedding events (the events feature). Without one, a
        commit's events are not stored."""
        return None

    def on_stored(self, room: RoomView, batch: CommitBatch) -> None:
        """``batch`` is committed (with its seqs and the events stored with it) and
        broadcast to the room's connections."""

    def on_change(self, room: RoomView, batch: CommitBatch) -> None:
        """Committed content changed the room's document: ``batch`` is the one
        :meth:`on_stored` was just given, or a :attr:`~CommitBatch.remote` batch (content
        another process committed, or a catch-up from the store)."""

    def on_remote_changes(self, room: RoomView, changes: Sequence[ChangeRecord]) -> None:
        """Content another process committed changed these entries, as this process
        integrated it (before :meth:`on_change`); only with :attr:`wants_changes`. A
        document rebuilt from the store (a new ``room.doc``) reports nothing here."""

    def on_overwritten(self, room: RoomView, found: Sequence[Found]) -> None:
        """Content another process committed made writes vanish, found here as it integrated
        (both processes may find one race: see :attr:`Overwrite.id`). Only with
        :attr:`wants_overwrites`."""

    def on_connect(self, room: RoomView, conn: ConnectionView) -> None:
        """A connection joined the room (it is in ``room.connections``)."""

    def on_disconnect(self, room: RoomView, conn: ConnectionView) -> None:
        """A connection left the room (it is no longer in ``room.connections``)."""

    def on_awareness(
        self, room: RoomView, conn: ConnectionView, entries: Sequence[AwarenessEntry]
    ) -> None:
        """A connection of this process said something new of its presence: ``entries``
        are the awareness states the room accepted from it (a newer clock; a renewal of an
        unchanged state is one too, compare ``state`` to tell), validated and at most
        ``CRDT_SERVER_MAX_AWARENESS_STATE_BYTES`` each. Removals come as entries whose
        :attr:`~AwarenessEntry.removed` is true; a connection that leaves comes through
        :meth:`on_disconnect`. Keep it cheap: it runs for every accepted presence
        message."""

    def on_bus_event(self, event: dict[str, Any]) -> None:
        """Another process published ``event`` on the bus: a JSON object with its ``type``
        and the sender's ``origin``; read a message of yours with
        :func:`crdt_server.cluster.messages.from_event` (unknown fields ignored)."""

    def on_opened_elsewhere(self, topic: str) -> None:
        """Another process began watching ``topic`` (see :meth:`Bus.watch
        <crdt_server.cluster.bus.Bus.watch>`): a feature that publishes for a topic's
        watchers only may have just not told it of something."""

    async def on_guest_erased(self, wedding: str, guest_id: str) -> None:
        """A guest was removed from the wedding's documents by an erasure: forget every
        copy of them the feature keeps (restore points, delivery payloads, findings).
        Raising fails the erasure, which is then retried whole."""

    async def on_member_erased(self, wedding: str, sub: str) -> bool:
        """A member of the wedding is erased: forget what the feature keeps of them, in
        its own tables; whether it knew them (their entry, messages they wrote, their
        inbox: the erasure answers 404 when no feature did). Raising fails the erasure,
        which may be made again (what went is gone; what is left still counts)."""
        return False

    async def on_revoke(self, sub: str, wedding: str | None) -> None:
        """``sub`` is being revoked (in ``wedding``, or everywhere), in this process: stop
        what they set up (durably: the revocation is forgotten once no token could outlive
        it, a disabled webhook is not). Runs once, where the revocation is made."""

    def on_revoked(self, sub: str, wedding: str | None) -> None:
        """``sub`` was revoked (here or, told on the bus, in another process): drop what
        they may no longer see or do."""

    async def derived_rooms(self, wedding_id: str) -> Sequence[str]:
        """The rooms this extension writes from the wedding's documents (projections),
        once each holds what its source has committed: erasing a person rewrites their
        logs after the documents' (awaited before erasure folds the logs)."""
        return ()

    async def start(self, core: Core) -> None:
        """The server is starting: start the extension's background work (a loop, a
        sweep). Its tables are installed and what it uses was given to its constructor,
        before this. Raising aborts the start."""

    async def close(self) -> None:
        """The server is stopping: finish or flush what is in flight."""


def _one_by_one(
    ext: Extension,
    room: RoomView,
    batch: CommitBatch,
    failed: Callable[[str, PendingUpdate, BaseException], NewEvent],
) -> list[NewEvent | FeatureRow]:
    """``ext``'s rows for each update of ``batch`` alone; ``failed``'s row for an update it
    raises on."""
    rows: list[NewEvent | FeatureRow] = []
    for update in batch.updates:
        try:
            rows.extend(ext.on_commit(room, batch.one(update)))
        except Exception as exc:
            rows.append(failed(f"on_commit:{ext.name}", update, exc))
    return rows


class Hooks:
    """The extensions of one server, called in order. Cheap when a hook has no users."""

    def __init__(self, extensions: Sequence[Extension] = ()) -> None:
        self._loaded_early: list[RoomView] | None = None
        """While the extensions start: the rooms loaded so far (see :meth:`start`)."""
        self._started: set[int] = set()
        """While the extensions start: those started (their ids)."""
        self._index(tuple(extensions))

    def add(self, extensions: Sequence[Extension]) -> None:
        """Add ``extensions`` after those there are: the server builds the registry (which
        calls these hooks) first, then the extensions, which are given the registry."""
        self._index((*self.extensions, *extensions))

    def _index(self, extensions: tuple[Extension, ...]) -> None:
        self.extensions = extensions
        base = Extension

        def users(name: str) -> tuple[Extension, ...]:
            return tuple(
                e for e in self.extensions if getattr(type(e), name) is not getattr(base, name)
            )

        self._load = users("on_load")
        self._prepare = users("on_prepare")
        self._commit = users("on_commit")
        self._events_step = users("events_step")
        self._stored = users("on_stored")
        self._change = users("on_change")
        self._overwritten = users("on_overwritten")
        self._remote_changes = users("on_remote_changes")
        self._connect = users("on_connect")
        self._disconnect = users("on_disconnect")
        self._awareness = users("on_awareness")
        self._bus = users("on_bus_event")
        self._opened_elsewhere = users("on_opened_elsewhere")
        self._derived = users("derived_rooms")
        domains = {id(e.domain): e.domain for e in self.extensions if e.domain is not None}
        if len(domains) > 1:
            raise ValueError("the extensions of one server name different domains")
        self.domain: Domain | None = next(iter(domains.values()), None)
        """The domain the extensions name (``None``: none does, nothing is recorded)."""
        wanted = self.domain is not None
        self.wants_changes = wanted and any(e.wants_changes for e in self.extensions)
        self.wants_overwrites = wanted and any(e.wants_overwrites for e in self.extensions)
        self.wants_remote_changes = self.wants_changes and bool(self._remote_changes)
        self._found: dict[type, object] = {}

    def first(self, kind: type[_T]) -> _T | None:
        """The first extension that is a ``kind`` (a class or a runtime-checkable protocol),
        or ``None``; remembered, since ``isinstance`` against a protocol inspects each of
        its members every time (the gate asks for every connection)."""
        if kind in self._found:
            return cast("_T | None", self._found[kind])
        found = next((e for e in self.extensions if isinstance(e, kind)), None)
        self._found[kind] = found
        return found

    async def load(self, room: RoomView) -> None:
        early = self._loaded_early
        if early is not None:  # an extension's start reads rooms before the others started
            early.append(room)
        for ext in self._load:
            if early is None or id(ext) in self._started:
                await self._load_one(ext, room)

    async def _load_one(self, ext: Extension, room: RoomView) -> None:
        try:
            await ext.on_load(room)
        except Exception:
            log.exception("extension %s failed on load of %s", ext.name, room.name)

    async def prepare(self, room: RoomView, batch: CommitBatch) -> None:
        for ext in self._prepare:
            try:
                await ext.on_prepare(room, batch)
            except Exception:
                log.exception("extension %s failed preparing a commit of %s", ext.name, room.name)

    def commit(
        self,
        room: RoomView,
        batch: CommitBatch,
        failed: Callable[[str, PendingUpdate, BaseException], NewEvent],
    ) -> tuple[list[NewEvent], list[FeatureRow]]:
        """Every extension's rows for ``batch``: events, and rows of their own tables. Where
        one raises, it is asked again update by update; for each update it still raises on,
        ``failed(step, update, exc)`` gives the event that stands in for its rows (``step``
        is ``on_commit:<extension>``)."""
        rows: list[NewEvent | FeatureRow] = []
        for ext in self._commit:
            try:
                rows.extend(ext.on_commit(room, batch))
            except Exception:
                rows.extend(_one_by_one(ext, room, batch, failed))
        events = [row for row in rows if isinstance(row, NewEvent)]
        if len(events) == len(rows):
            return events, []
        return events, [row for row in rows if isinstance(row, FeatureRow)]

    def events_steps(self, events: Sequence[NewEvent]) -> list[Tx[Any]]:
        """The steps that store a commit's ``events`` in its transaction (the first
        extension that keeps the wedding events: :meth:`Extension.events_step`)."""
        if not events:
            return []
        for ext in self._events_step:
            step = ext.events_step(events)
            if step is not None:
                return [step]
        return []

    def overwritten(self, room: RoomView, found: Sequence[Found]) -> None:
        for ext in self._overwritten:
            try:
                ext.on_overwritten(room, found)
            except Exception:
                log.exception("extension %s failed on overwrites in %s", ext.name, room.name)

    def remote_changes(self, room: RoomView, changes: Sequence[ChangeRecord]) -> None:
        for ext in self._remote_changes:
            try:
                ext.on_remote_changes(room, changes)
            except Exception:
                log.exception("extension %s failed on remote changes of %s", ext.name, room.name)

    def stored(self, room: RoomView, batch: CommitBatch) -> None:
        for ext in self._stored:
            try:
                ext.on_stored(room, batch)
            except Exception:
                log.exception("extension %s failed after a commit of %s", ext.name, room.name)

    def change(self, room: RoomView, batch: CommitBatch) -> None:
        for ext in self._change:
            try:
                ext.on_change(room, batch)
            except Exception:
                log.exception("extension %s failed on a change of %s", ext.name, room.name)

    def connect(self, room: RoomView, conn: ConnectionView) -> None:
        for ext in self._connect:
            try:
                ext.on_connect(room, conn)
            except Exception:
                log.exception("extension %s failed on a connect to %s", ext.name, room.name)

    def disconnect(self, room: RoomView, conn: ConnectionView) -> None:
        for ext in self._disconnect:
            try:
                ext.on_disconnect(room, conn)
            except Exception:
                log.exception("extension %s failed on a disconnect from %s", ext.name, room.name)

    def awareness(
        self, room: RoomView, conn: ConnectionView, entries: Sequence[AwarenessEntry]
    ) -> None:
        for ext in self._awareness:
            try:
                ext.on_awareness(room, conn, entries)
            except Exception:
                log.exception("extension %s failed on presence in %s", ext.name, room.name)

    def bus_event(self, event: dict[str, Any]) -> None:
        for ext in self._bus:
            try:
                ext.on_bus_event(event)
            except Exception:
                log.exception("extension %s failed on a bus event", ext.name)

    def opened_elsewhere(self, topic: str) -> None:
        for ext in self._opened_elsewhere:
            try:
                ext.on_opened_elsewhere(topic)
            except Exception:
                log.exception("extension %s failed on a topic opened elsewhere", ext.name)

    async def guest_erased(self, wedding: str, guest_id: str) -> None:
        """Every extension forgets the guest (an exception fails the erasure)."""
        for ext in self.extensions:
            await ext.on_guest_erased(wedding, guest_id)

    async def member_erased(self, wedding: str, sub: str) -> bool:
        """Every extension forgets the member (an exception fails the erasure); whether
        any of them knew the member."""
        known = False
        for ext in self.extensions:
            known |= await ext.on_member_erased(wedding, sub)
        return known

    async def revoke(self, sub: str, wedding: str | None) -> None:
        """Every extension stops what ``sub`` set up (an exception fails the revocation,
        which is stored already and may be made again)."""
        for ext in self.extensions:
            await ext.on_revoke(sub, wedding)

    def revoked(self, sub: str, wedding: str | None) -> None:
        for ext in self.extensions:
            try:
                ext.on_revoked(sub, wedding)
            except Exception:
                log.exception("extension %s failed on a revocation", ext.name)

    async def derived_rooms(self, wedding_id: str) -> list[str]:
        """Every extension's :meth:`Extension.derived_rooms` of the wedding (a failure
        raises: an erasure must not skip a copy it cannot bring up to date)."""
        names: list[str] = []
        for ext in self._derived:
            names.extend(await ext.derived_rooms(wedding_id))
        return names

    async def start(self, core: Core) -> None:
        """Start the extensions in order. A room loaded meanwhile (an extension's start
        reads rooms) reaches each extension's ``on_load`` once it has started, never
        before."""
        self._loaded_early = []
        try:
            for ext in self.extensions:
                await ext.start(core)
                self._started.add(id(ext))
                if ext in self._load:
                    for room in list(self._loaded_early):
                        await self._load_one(ext, room)
        finally:
            self._loaded_early = None
            self._started.clear()

    async def close(self) -> None:
        for ext in reversed(self.extensions):
            try:
                await ext.close()
            except Exception:
                log.exception("extension %s failed to close", ext.name)
