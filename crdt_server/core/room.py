"""A room: one document in memory, its connections, and the record-before-distribute path.

An accepted update is applied to the room's pycrdt ``Doc`` at once (so later messages see
it), queued as uncommitted, and appended to the store by the room's flusher. Only after
the store has committed it is it broadcast, to every connection including its sender
(the echo is the sender's proof of durability) and to other processes. Updates that arrive
while a commit is in flight share the next commit and, where a client integrating the merge
ends where the room did, one merged broadcast frame (:meth:`RoomDocument.frames`).

A joiner's sync step 2 is computed at once but sent only after everything it contains is
committed, so no client ever sees an update the store could still lose.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NoReturn

from pycrdt import Doc

from crdt_server.cluster.bus import Bus
from crdt_server.codec.awareness import (
    AwarenessEntry,
    decode_awareness,
    encode_awareness_entries,
)
from crdt_server.codec.items import read_delete_set, read_items
from crdt_server.codec.protocol import (
    encode_awareness,
    encode_sync_step1,
    encode_sync_step2,
    encode_update,
)
from crdt_server.codec.shapes import ShapeError
from crdt_server.codec.updates import (
    UpdateError,
    UpdateSummary,
    decode_state_vector,
    inspect_update,
)
from crdt_server.core.connection import Connection, newest_serial
from crdt_server.core.crdt import (
    Applied,
    CrdtFailure,
    IntegrationFailed,
    RoomDocument,
    Undecodable,
    crdt_call,
    fold_updates,
    replay,
)
from crdt_server.core.domain import ChangeRecord, Recorder
from crdt_server.core.hooks import (
    DERIVATION_FAILED,
    Hooks,
    PendingUpdate,
    Sender,
    StoredBatch,
)
from crdt_server.core.metrics import Metrics, StoreHealth
from crdt_server.core.overwrites import Found, OverwriteIndex
from crdt_server.core.presence import AwarenessRegistry, PresenceRelay
from crdt_server.core.quarantine import ApplySlot, Quarantine
from crdt_server.errors import (
    CloseCode,
    DocumentTooLarge,
    Overloaded,
    PeerError,
    ProtocolError,
    Quarantined,
)
from crdt_server.settings import Settings
from crdt_server.storage import (
    DocumentStore,
    FeatureRow,
    NewEvent,
    NewUpdate,
    StoredLog,
    StoreError,
)

__all__ = ["Room", "RoomFailed"]

log = logging.getLogger("crdt_server.core.room")


class RoomFailed(Exception):
    """The room could not commit; it is closed and must be loaded again from the store."""


@dataclass(slots=True)
class _Uncommitted:
    data: bytes
    summary: UpdateSummary
    sender: Sender
    client_id: int | None
    index: int
    applied_at: float
    changes: list[tuple[Sender, Sequence[ChangeRecord]]]
    found: list[tuple[Sender, Found]]
    held: bool = False
    """Held (waits on content the room lacks): echoed to its sender only, never relayed."""
    released: list[tuple[bytes, UpdateSummary]] | None = None
    """Held updates this one released: relayed right behind it."""
    rows: Sequence[FeatureRow] = ()
    """Rows its maker wants committed with it (an HTTP operation's idempotency key)."""


class Room:
    """One loaded document. Create with :meth:`load`; all methods run on the event loop."""

    def __init__(
        self,
        name: str,
        store: DocumentStore,
        settings: Settings,
        bus: Bus,
        on_failure: Callable[[Room], None],
        *,
        hooks: Hooks | None = None,
        metrics: Metrics | None = None,
        health: StoreHealth | None = None,
        quarantine: Quarantine | None = None,
        slot: ApplySlot | None = None,
    ) -> None:
        self.name = name
        self._quarantine = quarantine
        self._slot = slot
        self.wedding_id, _, self.kind = name.partition("/")
        self._hooks = hooks or Hooks()
        self._store = store
        self._settings = settings
        self._bus = bus
        self._on_failure = on_failure
        self._metrics = metrics or Metrics()
        self._health = health or StoreHealth()
        self._size = 0
        """Bytes of the stored log (an upper bound of the document's encoded size)."""
        self.connections: set[Connection] = set()
        self.awareness = AwarenessRegistry()
        self._presence = PresenceRelay(self._send_presence, settings.presence_batch_seconds)
        self.document = RoomDocument()
        self._uncommitted: list[_Uncommitted] = []
        self._inflight: list[_Uncommitted] = []
        self._uncommitted_bytes = 0
        self._applied = 0
        """How many updates were applied (monotonic); each has an index."""
        self._committed = 0
        """Updates with index < this are committed."""
        self._commit_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._log_rows = 0
        self.last_seq = 0
        self.failed: BaseException | None = None
        self.closed = False
        self._background: set[asyncio.Task[None]] = set()
        self._recorder: Recorder | None = None
        """Records what each integration changed, while an extension wants to know."""
        self._applying: Sender | None = None
        self._held_senders: dict[bytes, Sender] = {}
        """Who sent each held update (credited with its changes once it integrates)."""
        self._credited: list[tuple[Sender, Sequence[ChangeRecord]]] = []
        domain = self._hooks.domain
        self._document_kind = domain is not None and self.kind in domain.kinds
        """The room holds a document of the extensions' domain (whose changes are
        recorded and races looked for, if an extension wants them)."""
        self._detect = self._hooks.wants_overwrites and self._document_kind
        """Whether writes that vanish in a race are looked for (an extension wants them)."""
        self._overwrites: OverwriteIndex | None = None
        self._index_tried = False
        """The index is built at most once per document (per load or rebuild)."""
        self._found: list[tuple[Sender, Found]] = []
        self._remote_changes: list[ChangeRecord] = []
        """Entries changed by content other processes committed (if an extension wants
        them), told to the hooks once integrated."""
        self._remote_found: list[Found] = []
        """Races found in content other processes committed, told to the hooks once
        integrated."""

    @classmethod
    async def load(
        cls,
        name: str,
        store: DocumentStore,
        settings: Settings,
        bus: Bus,
        on_failure: Callable[[Room], None],
        *,
        hooks: Hooks | None = None,
        metrics: Metrics | None = None,
        health: StoreHealth | None = None,
        quarantine: Quarantine | None = None,
        slot: ApplySlot | None = None,
    ) -> Room:
        room = cls(
            name,
            store,
            settings,
            bus,
            on_failure,
            hooks=hooks,
            metrics=metrics,
            health=health,
            quarantine=quarantine,
            slot=slot,
        )
        stored = await store.load(name)
        if stored is not None:
            room._replay(stored)
        else:
            room._watch(room.document)
        await room._hooks.load(room)
        return room

    # -- the document -------------------------------------------------------------------

    @property
    def doc(self) -> Doc[Any]:
        """The document as integrated so far (see :class:`RoomDocument`)."""
        return self.document.doc

    def _replay(self, stored: StoredLog, extra: Sequence[bytes] = ()) -> None:
        """Rebuild the document from stored rows plus whatever is not committed yet."""
        updates = stored.updates + [u.data for u in self._inflight + self._uncommitted]
        updates += extra
        self.document, unreadable = replay(updates)
        self._watch(self.document)
        if unreadable:
            log.error("room %s: %d stored rows could not be applied", self.name, unreadable)
        if self.document.misfits:
            # Stored before the codec refused such content: served as deleted content, so
            # no reader iterates it. Ids only: the content may be anyone's.
            ids = ", ".join(f"{m.id[0]}#{m.id[1]}" for m in self.document.misfits[:20])
            log.warning(
                "room %s: %d stored items hold content that does not fit their parent"
                " (items %s); served as deleted; `crdt-server repair --wedding %s`"
                " deletes them",
                self.name,
                len(self.document.misfits),
                ids,
                self.wedding_id,
            )
        self.last_seq = max(self.last_seq, stored.last_seq)
        self._log_rows = len(stored.updates)
        self._size = sum(len(u) for u in updates)

    def _watch(self, document: RoomDocument) -> None:
        """Record the changes of ``document`` (which replaces the previous one) from now on,
        if an extension wants them."""
        if self._recorder is not None:
            self._recorder.close()
            self._recorder = None
        document.integrated = None
        self._overwrites, self._index_tried = None, False
        # An observer that raised, or a change the recorder could not read: the update is
        # kept (what the recorder could read is credited as usual); counted and logged.
        failed = self._metrics.derivation_failed
        document.observer_failed = partial(failed, self.name, "observer")
        domain = self._hooks.domain
        if self._hooks.wants_changes and self._document_kind and domain is not None:
            self._recorder = domain.recorder(
                document.doc, self.kind, partial(failed, self.name, "changes")
            )
            document.integrated = self._integrated
        if self._detect:
            document.keep_deletes()
            document.integrated = self._integrated

    def _index_ready(self) -> None:
        """Build the index of map items from the document as it is, once (see
        :mod:`crdt_server.core.overwrites`), before an integration needs it."""
        if not self._detect or self._index_tried:
            return
        self._index_tried = True
        try:
            index = OverwriteIndex()
            index.build(read_items(crdt_call(self.doc.get_update)))
        except (UpdateError, CrdtFailure) as exc:
            self._metrics.derivation_failed(self.name, "overwrites", exc)
            return
        self._overwrites = index

    def _integrated(self, update: bytes) -> None:
        """``update`` was just integrated: credit what it changed, and the writes it made
        vanish or that vanished in it, to whoever sent it (a held update's own sender, not
        the update that released it)."""
        sender = self._held_senders.pop(update, None) or self._applying
        index = self._overwrites
        if index is not None:
            try:
                decoded = self.document.last_decoded  # decoded once, for the shape rule
                found = index.integrate(
                    decoded if decoded is not None else read_items(update),
                    read_delete_set(self.document.last_deletes),
                )
            except Exception as exc:  # the domain observes, never gates: counted, logged
                self._metrics.derivation_failed(self.name, "overwrites", exc)
                self._overwrites = None  # not trusted any more: none until the next load
            else:
                if sender is not None:
                    self._found.append((sender, found))
                elif found.overwrites:
                    self._remote_found.append(found)
        recorder = self._recorder
        if recorder is None:
            return
        if sender is None:  # content another process committed: it reports its own events
            if self._hooks.wants_remote_changes:
                self._remote_changes += recorder.take()
            else:
                recorder.discard()
            return
        changes = recorder.take()
        if changes:
            self._credited.append((sender, changes))

    def has_pending_content(self) -> bool:
        """True if some accepted update still waits on a missing dependency."""
        return bool(self.document.held)

    def has_unknown_structs(self, summary: UpdateSummary) -> bool:
        """True if the update has structs past this document's state vector."""
        return self.document.has_unknown_structs(summary)

    async def apply(
        self,
        update: bytes,
        summary: UpdateSummary,
        sender: Sender,
        *,
        rows: Sequence[FeatureRow] = (),
    ) -> int | None:
        """Apply a structurally valid update; queue it for commit if it changed anything,
        with ``rows`` (of installed feature tables) in its commit transaction.

        Returns the update's index (see :meth:`wait_committed`), or ``None`` if it was a
        no-op (everything in it was already known; ``rows`` are then not written). Raises
        :class:`ProtocolError` if pycrdt rejects it; after a pycrdt panic the document is
        rebuilt from the store so a rejected update leaves no trace.
        """
        if self.failed is not None:
            raise RoomFailed(str(self.failed))
        if summary.is_empty:
            return None
        if self._quarantine is not None:
            try:
                self._quarantine.check(self.name, summary.structs.keys())
            except Quarantined:
                self._metrics.updates_rejected.labels("quarantined").inc()
                raise
        limit = self._settings.max_document_bytes
        if self._size + len(update) > limit:
            raise DocumentTooLarge(f"the document would grow past {limit} bytes")
        document = self.document
        if document.would_hold(summary):
            # Held content costs memory and a check on every later update: bounded. 1013,
            # not 1008: an honest client that reconnects sends its whole state in step 2,
            # which carries what this update waits on, so it is not held again.
            count, size = self._settings.max_held_updates, self._settings.max_held_bytes
            if len(document.held) >= count or document.held_bytes + len(update) > size:
                raise Overloaded(
                    f"this room already holds {len(document.held)} updates waiting on"
                    f" content it lacks (limits: {count} updates, {size} bytes)"
                )
        released: list[tuple[bytes, UpdateSummary]] = []
        self._index_ready()
        self._applying, self._credited, self._found = sender, [], []
        slot = self._slot
        if slot is not None:
            # Who is being applied, for the next start if this apply never returns (see
            # crdt_server.core.quarantine); cleared below however the apply ends.
            slot.arm(self.name, sender.actor.sub, summary.structs.keys())
        try:
            try:
                applied = document.apply(update, summary)
            finally:
                if slot is not None:
                    slot.clear()
            released = document.released
        except IntegrationFailed as exc:
            if exc.update == update:
                await self._refused(exc)
            # A held update failed once this one released it: the held one is at fault.
            # Rebuild without it (replay leaves it out) and take this one, applied last:
            # what it released is the replay's last release, in the order integrated.
            log.warning("room %s: a held update failed once released (%s)", self.name, str(exc))
            await self._reload(extra=[update])
            if self.document.would_hold(summary) or update in self.document.refused:
                raise ProtocolError(f"update rejected: {exc}") from exc
            released = list(self.document.released)
            applied = Applied.CHANGED
        except Undecodable as exc:  # nothing was applied: nothing to rebuild
            raise ProtocolError(f"update rejected: {exc}") from exc
        except UpdateError as exc:  # content that does not fit: refused before pycrdt
            raise ProtocolError(f"malformed update: {exc}") from exc
        except CrdtFailure as exc:
            await self._refused(exc)
        finally:
            self._applying = None
        if applied is Applied.UNCHANGED:
            return None  # nothing new: a duplicate (e.g. a reconnecting client's step 2)
        if applied is Applied.HELD and document.integrated is not None:
            self._held_senders[update] = sender
        index = self._applied
        self._applied += 1
        clients = summary.structs.keys()
        client_id = next(iter(clients)) if len(clients) == 1 else None
        self._uncommitted.append(
            _Uncommitted(
                update,
                summary,
                sender,
                client_id,
                index,
                time.perf_counter(),
                self._credited,
                self._found,
                held=applied is Applied.HELD,
                released=released or None,
                rows=rows,
            )
        )
        self._credited, self._found = [], []
        self._uncommitted_bytes += len(update)
        self._size += len(update)
        self._metrics.updates_accepted += 1
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop(), name=f"flush-{self.name}")
        return index

    async def reload(self) -> None:
        """Rebuild the document from the store (after the store's log was rewritten)."""
        await self._reload()

    async def _refused(self, exc: CrdtFailure) -> NoReturn:
        """pycrdt failed on an update: rebuild the document and refuse the update (1007)."""
        # pycrdt may have changed the document before failing (a panic always may):
        # rebuild it from what is committed, so a rejected update leaves no trace.
        # The message, not the exception: a kept log record would keep its traceback,
        # and with it the document this reload replaces.
        log.warning("room %s: pycrdt refused an update (%s); reloading", self.name, str(exc))
        await self._reload()
        raise ProtocolError(f"update rejected: {exc}") from exc

    async def _reload(self, extra: Sequence[bytes] = ()) -> None:
        """Rebuild the document from the store plus what is not committed yet (and
        ``extra``, applied last)."""
        while True:
            committed = self._committed
            stored = await self._store.load(self.name)
            # A batch committed while we read may be in neither what we read nor in
            # flight any more: read again.
            if self._committed == committed:
                break
        self._replay(stored or StoredLog(updates=[], last_seq=0, first_seq=0), extra)

    @property
    def uncommitted_bytes(self) -> int:
        return self._uncommitted_bytes

    # -- committing ---------------------------------------------------------------------

    def wait_committed(self, index: int | None = None) -> asyncio.Future[None]:
        """A future that is done once every update up to ``index`` (default: all applied
        so far) is committed; it fails with :class:`RoomFailed` if the store failed."""
        target = self._applied if index is None else index + 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.failed is not None:
            future.set_exception(RoomFailed(str(self.failed)))
        elif self._committed >= target:
            future.set_result(None)
        else:
            self._commit_waiters.append((target, future))
        return future

    async def _flush_loop(self) -> None:
        try:
            while self._uncommitted:
                batch = self._inflight = self._uncommitted
                self._uncommitted = []
                self._uncommitted_bytes = 0
                pending = [
                    PendingUpdate(self.name, u.data, u.sender, u.client_id, u.changes, u.found)
                    for u in batch
                ]
                rows = [
                    NewUpdate(
                        self.name,
                        u.data,
                        u.sender.origin,
                        sub=u.sender.actor.sub,
                        role=u.sender.actor.role,
                        client_id=u.client_id,
                    )
                    for u in batch
                ]
                started = time.perf_counter()
                await self._hooks.prepare(self, pending)
                events, extra = self._hooks.commit(self, pending, self._commit_hook_failed)
                extra += [row for u in batch for row in u.rows]
                try:
                    seqs = await self._store.append(rows, events, rows=extra)
                except StoreError as exc:
                    self._metrics.store_errors.labels("append").inc()
                    self._health.failed(exc)
                    self._fail(exc)
                    return
                finally:
                    self._inflight = []
                done = time.perf_counter()
                self._health.succeeded()
                self._metrics.commit_seconds.observe(done - started)
                self._metrics.commit_batch.observe(len(batch))
                self._committed = batch[-1].index + 1
                self.last_seq = seqs[-1]
                self._log_rows += len(batch)
                updates = [u.data for u in batch]
                self._broadcast_batch(batch)
                self._metrics.broadcast_seconds.observe(time.perf_counter() - batch[0].applied_at)
                self._release_waiters()
                self._bus.publish_updates(self.name, seqs, updates)
                self._hooks.stored(self, StoredBatch(pending, seqs, events))
                self._hooks.change(self)
                if not self._uncommitted:
                    await self._maybe_compact()
        finally:
            self._flusher = None

    def _commit_hook_failed(self, step: str, update: PendingUpdate, exc: BaseException) -> NewEvent:
        """An extension's ``on_commit`` raised for ``update``: it contributes no rows for it,
        and the update commits anyway with this event in its place (no content: which step
        failed, on which document, for whom)."""
        self._metrics.derivation_failed(self.name, step, exc)
        data = {"step": step, "doc": self.kind, "error": type(exc).__name__}
        return NewEvent(
            self.wedding_id,
            DERIVATION_FAILED,
            json.dumps(data, separators=(",", ":")),
            self.kind if self._document_kind else None,
            sub=update.sender.actor.sub,
            role=update.sender.actor.role,
        )

    def _broadcast_batch(self, batch: list[_Uncommitted]) -> None:
        """Relay a committed batch: what integrated here, with what it released. A held
        update goes back to its sender alone (its echo, the proof it is stored): any other
        client would have to keep it pending, in code hostile bytes can crash."""
        relay: list[tuple[bytes, UpdateSummary]] = []
        for u in batch:
            if u.held:
                for conn in self.connections:
                    if conn.id == u.sender.origin:
                        conn.send(encode_update(u.data))
                continue
            relay.append((u.data, u.summary))
            if u.released:
                relay += u.released
        if relay:
            self._broadcast_updates(relay)
        for conn in self.connections:  # the batch's frames, one write each, now
            conn.flush()

    def _broadcast_updates(self, updates: list[tuple[bytes, UpdateSummary]]) -> None:
        """Relay updates integrated here one by one, in order: merged where that is safe
        (see :meth:`RoomDocument.frames`), else one frame each."""
        for update in self.document.frames(updates):
            self.broadcast(encode_update(update))

    def _release_waiters(self) -> None:
        if not self._commit_waiters:
            return
        still: list[tuple[int, asyncio.Future[None]]] = []
        for target, future in self._commit_waiters:
            if self._committed >= target:
                if not future.done():
                    future.set_result(None)
            else:
                still.append((target, future))
        self._commit_waiters = still

    async def _maybe_compact(self) -> None:
        """Fold the stored log into one snapshot once it is long enough.

        In one process (a bus that is not shared) the store holds, up to ``last_seq``,
        exactly the updates this room integrated, in that order; with nothing uncommitted,
        in flight or held, its own document is the snapshot. In a cluster another process
        may have committed rows this one has not integrated yet, and a snapshot must never
        drop them: it is folded from the store's rows (on a worker thread, so the event loop
        goes on), and a lease on the bus makes sure only one process compacts a room.
        """
        if self._log_rows < self._settings.compact_after_updates:
            return
        if self.document.misfits:
            return  # a snapshot would drop them unannounced: `crdt-server repair` does
        try:
            if not self._bus.shared:
                if self._uncommitted or self._inflight or self.document.held:
                    return
                folded, upto = self._log_rows, self.last_seq
                snapshot: bytes | None = crdt_call(self.doc.get_update)
            else:
                if not await self._bus.try_lease(f"compact:{self.name}", 60):
                    return
                stored = await self._store.load(self.name)
                if stored is None or len(stored.updates) < 2:
                    return
                folded, upto = len(stored.updates), stored.last_seq
                snapshot = await asyncio.to_thread(fold_updates, stored.updates)
            if snapshot is None:
                return  # some content still waits on a dependency: a snapshot would lose it
            await self._store.compact(self.name, upto, snapshot)
        except StoreError as exc:
            self._metrics.store_errors.labels("compact").inc()
            log.error("room %s: compaction failed, the log stays as it is: %s", self.name, exc)
            return
        except CrdtFailure as exc:
            log.error("room %s: cannot fold the stored log (%s); not compacting", self.name, exc)
            return
        log.info("room %s: compacted %d rows up to seq %d", self.name, folded, upto)
        self._log_rows = max(1, self._log_rows - folded + 1)

    def _fail(self, exc: BaseException) -> None:
        """The store lost an uncommitted batch: nobody may see it, so end the room."""
        log.error("room %s: commit failed, closing its connections: %s", self.name, exc)
        self.failed = exc
        self._uncommitted = []
        self._uncommitted_bytes = 0
        for _, future in self._commit_waiters:
            if not future.done():
                future.set_exception(RoomFailed(str(exc)))
        self._commit_waiters = []
        for conn in list(self.connections):
            conn.request_close(CloseCode.INTERNAL_ERROR, "storage failure, reconnect")
        self._on_failure(self)

    async def flush(self) -> None:
        """Wait until everything applied so far is committed (or the room failed)."""
        if self._applied > self._committed and self.failed is None:
            try:
                await self.wait_committed()
            except RoomFailed:
                return

    # -- other processes ----------------------------------------------------------------

    def apply_remote(self, seqs: Sequence[int], updates: Sequence[bytes]) -> None:
        """Updates another process committed: integrate them and tell local clients."""
        if self.failed is not None or not updates:
            return
        before = self.doc.get_state()
        relay: list[tuple[bytes, UpdateSummary]] = []
        self._index_ready()
        for update in updates:
            integrated = self._integrate_committed(update)
            if integrated is None:
                # The document must be rebuilt from the store, which holds this update and
                # the rest of the batch: the reload integrates them all, then relays what
                # changed since ``before`` (integrated content only).
                task = asyncio.create_task(
                    self._reload_and_relay(before), name=f"reload-{self.name}"
                )
                self._background.add(task)
                task.add_done_callback(self._background.discard)
                break
            relay += integrated
        self._tell_remote_found()
        self._tell_remote_changes()
        self.last_seq = max(self.last_seq, *seqs)
        self._log_rows += len(updates)
        self._size += sum(len(u) for u in updates)
        if relay:
            self._broadcast_updates(relay)
        self._hooks.change(self)

    def _tell_remote_changes(self) -> None:
        if self._remote_changes:
            changes, self._remote_changes = self._remote_changes, []
            self._hooks.remote_changes(self, changes)

    def _tell_remote_found(self) -> None:
        if self._remote_found:
            found, self._remote_found = self._remote_found, []
            self._hooks.overwritten(self, found)

    async def catch_up(self) -> None:
        """Integrate everything the store has (this process may have missed something)."""
        stored = await self._store.load(self.name)
        if stored is None or self.failed is not None:
            return
        before = self.doc.get_state()
        changed = False
        self._index_ready()
        for update in stored.updates:  # in order, as they were first applied
            result = self._integrate_committed(update)
            if result is None:
                await self._reload()
                changed = True
                break
            changed |= bool(result)
        self._tell_remote_found()
        self._tell_remote_changes()
        if changed:
            self.broadcast(encode_update(self.doc.get_update(before)))
            self._hooks.change(self)
        self.last_seq = max(self.last_seq, stored.last_seq)
        self._log_rows = len(stored.updates) + len(self._uncommitted)

    async def _reload_and_relay(self, before: bytes) -> None:
        await self._reload()
        self.broadcast(encode_update(crdt_call(self.doc.get_update, before)))

    def _integrate_committed(self, update: bytes) -> list[tuple[bytes, UpdateSummary]] | None:
        """Integrate an update some process committed already; what local clients may be
        sent of it (nothing if it was held or known, else it and what it released), or
        ``None`` if pycrdt failed on it and the document must be reloaded from the store
        (whose replay leaves such an update out)."""
        try:
            summary = inspect_update(update)
            applied = self.document.apply(update, summary)
        except ShapeError:
            # Committed by a release that took it: the reload serves it as deleted content.
            return None
        except UpdateError as exc:
            log.error("room %s: a committed update is malformed: %s", self.name, exc)
            return []
        except CrdtFailure as exc:
            log.error("room %s: a committed update failed (%s); reloading", self.name, str(exc))
            return None
        if applied is Applied.CHANGED:
            return [(update, summary), *self.document.released]
        return []

    def apply_remote_awareness(self, origin: str, payload: bytes) -> None:
        """Presence another process accepted (validated and stamped there)."""
        try:
            entries = decode_awareness(
                payload,
                max_state_bytes=self._settings.max_awareness_state_bytes,
                max_entries=self._settings.max_awareness_entries,
            )
        except PeerError as exc:
            log.error("room %s: bad presence from process %s: %s", self.name, origin, exc)
            return
        accepted = self.awareness.apply(("remote", origin), f"process:{origin}", entries)
        if accepted:
            self._presence.relay(accepted)

    # -- connections --------------------------------------------------------------------

    def join(self, conn: Connection) -> None:
        """Add a connection and greet it: our state vector, then everyone's presence."""
        self.connections.add(conn)
        self._hooks.connect(self, conn)
        conn.send(encode_sync_step1(self.doc.get_state()))
        states = self.awareness.states()
        if states:
            conn.send(encode_awareness(encode_awareness_entries(states)))

    def leave(self, conn: Connection) -> None:
        """Remove a connection and broadcast the removal of every presence it spoke for."""
        if conn in self.connections:
            self.connections.discard(conn)
            self._hooks.disconnect(self, conn)
        # Any connection made so far may still echo what it was told of ``conn``'s clients.
        removals = self.awareness.remove_owner(conn, newest=newest_serial())
        if removals:
            self._presence.relay(removals)
            self._bus.publish_awareness(self.name, encode_awareness_entries(removals))

    async def answer_step1(self, conn: Connection, state_vector: bytes) -> None:
        """Send ``conn`` what it is missing, once all of that is committed.

        Only integrated content: what is held reaches the joiner once what it waits on
        arrives, relayed behind the update that released it (see :meth:`_broadcast_batch`).
        """
        try:
            decode_state_vector(state_vector)  # counts checked before pycrdt sees them
            diff = crdt_call(self.doc.get_update, state_vector)
        except (CrdtFailure, UpdateError) as exc:
            raise ProtocolError(f"bad state vector: {exc}") from exc
        await self.wait_committed()
        conn.send(encode_sync_step2(diff))

    def apply_awareness(self, conn: Connection, entries: list[AwarenessEntry]) -> None:
        accepted = self.awareness.apply(conn, conn.principal.key, entries, serial=conn.serial)
        if accepted:
            self._presence.relay(accepted, exclude=conn)
            self._bus.publish_awareness(self.name, encode_awareness_entries(accepted))

    def expire_presence(self, older_than: float, owned: Callable[[Hashable], bool]) -> None:
        """Forget the presence of the owners ``owned`` picks that was last heard before
        ``older_than`` (monotonic), relayed as removals like any other presence change."""
        removals = self.awareness.expire(older_than, owned)
        if removals:
            self._presence.relay(removals)

    def awareness_frame(self) -> bytes:
        return encode_awareness(encode_awareness_entries(self.awareness.states()))

    def broadcast(self, frame: bytes, exclude: object = None) -> None:
        for conn in self.connections:
            if conn is not exclude:
                conn.send(frame)

    @property
    def presence_folding(self) -> bool:
        """Presence is folded in this room, to be relayed when its window ends."""
        return self._presence.folding

    def _send_presence(self, entries: Iterable[AwarenessEntry], exclude: object) -> None:
        self.broadcast(encode_awareness(encode_awareness_entries(entries)), exclude=exclude)

    def close(self) -> None:
        """The registry unloaded this room: it serves nobody from now on, and nothing of
        its own (the presence relay's timer) keeps it alive."""
        self.closed = True
        self._presence.close()

    def close_all(self, code: int, reason: str) -> None:
        for conn in list(self.connections):
            conn.request_close(code, reason)
