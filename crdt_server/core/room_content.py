"""What a room holds: its document, loaded from the store, and the updates applied to it
that are not committed yet, each credited with what it changed.

A peer's update is checked, applied to the room's pycrdt ``Doc`` at once (so later messages
see it) and queued as uncommitted; :class:`~crdt_server.core.room.Room` adds the commit
path that stores it before anyone is told and what other processes committed; the room's
connections and presence are its members' (:mod:`crdt_server.core.members`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NoReturn, TypeVar

from pycrdt import Doc

from crdt_server.codec.items import read_delete_set, read_items
from crdt_server.codec.updates import (
    UpdateError,
    UpdateSummary,
    inspect_update,
)
from crdt_server.core.client_ids import SERVER, owner_of
from crdt_server.core.crdt import (
    Applied,
    CrdtFailure,
    IntegrationFailed,
    RoomDocument,
    Undecodable,
    crdt_call,
    merged,
    replay,
)
from crdt_server.core.domain import ChangeRecord, Recorder
from crdt_server.core.hooks import PendingUpdate, Sender
from crdt_server.core.overwrites import Found, OverwriteIndex
from crdt_server.core.services import RoomServices
from crdt_server.errors import (
    DocumentTooLarge,
    PeerError,
    ProtocolError,
)
from crdt_server.storage import (
    FeatureRow,
    StoredLog,
)

__all__ = ["RoomContent", "RoomFailed", "Uncommitted"]

T = TypeVar("T")
Replayed = tuple[RoomDocument, int] | None
Rows = Sequence[bytes]

_Taken = tuple[
    bytes,
    UpdateSummary,
    list[tuple[Sender, Sequence[ChangeRecord]]],
    list[tuple[Sender, Found]],
    list[tuple[bytes, UpdateSummary]],
]
"""A server edit's update, checked and integrated: what :meth:`RoomContent._queue` takes."""

log = logging.getLogger("crdt_server.core.room")


class RoomFailed(Exception):
    """The room could not commit; it is closed and must be loaded again from the store."""


@dataclass(slots=True)
class Uncommitted:
    """An update applied to the document and queued for the next commit."""

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
    frames: int = 1
    """How many of its writer's updates it merges (:meth:`RoomContent.take_run`)."""


class RoomContent(ABC):
    """A room's document and its uncommitted updates; the room itself is
    :class:`~crdt_server.core.room.Room`."""

    def __init__(self, name: str, services: RoomServices) -> None:
        self.name = name
        self._quarantine = services.quarantine
        self._clients = services.clients
        self._slot = services.slot
        self.wedding_id, _, self.kind = name.partition("/")
        self._hooks = services.hooks
        self._store = services.store
        self._settings = services.settings
        self._bus = services.bus
        self._metrics = services.metrics
        self._health = services.health
        self._size = 0
        """Bytes of the stored log (an upper bound of the document's encoded size)."""
        self._usage = services.usage
        self._backlog = services.backlog
        self._client_id = services.client_id
        """The Yjs client id of the server's own edits of this document (:meth:`edit`)."""
        self.document = RoomDocument(self._client_id)
        self._uncommitted: list[Uncommitted] = []
        self._inflight: list[Uncommitted] = []
        self._uncommitted_bytes = 0
        self._applied = 0
        """How many updates were applied (monotonic); each has an index."""
        self._committed = 0
        """Updates with index < this are committed."""
        self._commit_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._starting = False
        """A commit begun in the caller's turn is running (:meth:`_queue`)."""
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
        self._late: list[PendingUpdate] = []
        """Held updates of writers here that another's content released (room_remote)."""
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

    # -- the document -------------------------------------------------------------------

    @property
    def doc(self) -> Doc[Any]:
        """The document as integrated so far (see :class:`RoomDocument`)."""
        return self.document.doc

    def _replay(self, stored: StoredLog, extra: Rows = (), done: Replayed = None) -> None:
        """Rebuild the document from stored rows plus what is not committed yet (``done``:
        that replay, already made of the same rows on a worker thread)."""
        updates = stored.updates + [u.data for u in self._inflight + self._uncommitted]
        updates += extra
        self.document, unreadable = done or replay(updates, client_id=self._client_id)
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
        self._usage.set(self.name, self._size)

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
        held = self._held_senders.pop(update, None)
        sender = held or self._applying
        found_into, credited_into = self._found, self._credited
        if held is not None and self._applying is None:  # released by another's commit
            late = PendingUpdate(self.name, update, held)
            self._late.append(late)
            found_into, credited_into = late.found, late.changes
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
                    found_into.append((sender, found))
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
            credited_into.append((sender, changes))

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
        frames: int = 1,
        server: bool = False,
    ) -> int | None:
        """Apply a structurally valid update; queue it for commit if it changed anything,
        with ``rows`` (of installed feature tables) in its commit transaction. ``frames``:
        how many of the writer's updates it merges (see :meth:`take_run`); ``server``:
        the server wrote it for ``sender`` (its client ids are the server's).

        Returns the update's index (see :meth:`wait_committed`), or ``None`` if it was a
        no-op (everything in it was already known; ``rows`` are then not written). Raises
        :class:`ProtocolError` if pycrdt rejects it; after a pycrdt panic the document is
        rebuilt from the store so a rejected update leaves no trace.
        """
        if summary.is_empty:
            return None
        owner = SERVER if server else owner_of(sender)
        own = await self._clients.own(self.wedding_id, summary, self.document, owner, update)
        if self.failed is not None:  # before, or while the store said who owns a new id
            raise RoomFailed(str(self.failed))
        self._check_quarantine(summary.structs.keys())
        self._check_growth(len(update))
        document = self.document
        if document.would_hold(summary):
            settings = self._settings
            document.check_room_to_hold(
                len(update), settings.max_held_updates, settings.max_held_bytes
            )
        released: list[tuple[bytes, UpdateSummary]] = []
        self._index_ready()
        self._applying, self._credited, self._found = sender, [], []
        slot = self._slot
        if slot is not None:
            # Who is being applied (the sender's own ids only), for the next start if this
            # apply never returns (crdt_server.core.quarantine); cleared however it ends.
            slot.arm(self.name, sender.actor.sub, own)
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
            released, applied = await self._without_held(exc, update, summary), Applied.CHANGED
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
        credited, found = self._credited, self._found
        self._credited, self._found = [], []
        return self._queue(
            update,
            summary,
            sender,
            credited,
            found,
            held=applied is Applied.HELD,
            released=released,
            rows=rows,
            frames=frames,
        )

    async def _without_held(
        self, exc: IntegrationFailed, update: bytes, summary: UpdateSummary
    ) -> list[tuple[bytes, UpdateSummary]]:
        """The room rebuilt without the held update that failed (replay leaves it out) and
        ``update`` applied last; what it released is the replay's last release, in order."""
        log.warning("room %s: a held update failed once released (%s)", self.name, str(exc))
        await self._reload(extra=[update])
        if self.document.would_hold(summary) or update in self.document.refused:
            raise ProtocolError(f"update rejected: {exc}") from exc
        return list(self.document.released)

    async def take_run(
        self, updates: Sequence[tuple[bytes, UpdateSummary]], sender: Sender
    ) -> None:
        """Apply one writer's structurally valid updates that arrived together, in order.

        Under overload a writer's updates wait while its room is over its backlog bound
        (:mod:`crdt_server.core.backlog`); once it is read again, what waited is merged and
        taken in as one update: one apply, one row, one frame to every client, however many
        updates it holds, so the busier the server, the less each update costs. Only where
        that ends where applying them one by one would: runs that
        :meth:`RoomDocument.one_transaction` allows, and not an update the document would
        hold (one held would keep back the others with it). A merge the document refuses
        (:class:`PeerError`) changed nothing, and its updates are applied one by one, so the
        update at fault is the one refused and those before it are taken."""
        start = 0
        while start < len(updates):
            rest = updates[start:]
            count = self.document.one_transaction([summary for _, summary in rest])
            run, start = rest[:count], start + count
            if count > 1:
                try:
                    data = merged([update for update, _ in run])
                    summary = inspect_update(data)
                except (CrdtFailure, UpdateError):
                    pass
                else:
                    if not self.document.would_hold(summary):
                        try:
                            await self.apply(data, summary, sender, frames=count)
                            continue
                        except PeerError:
                            pass
            for update, summary in run:
                await self.apply(update, summary, sender)

    def _check_quarantine(self, clients: Iterable[int]) -> None:
        """Raise :class:`Quarantined` (counted) if this room quarantines any of ``clients``."""
        if self._quarantine is not None:
            self._quarantine.check(self.name, clients)

    def _check_growth(self, size: int) -> None:
        """Raise :class:`DocumentTooLarge` if ``size`` more bytes would take the document
        past its limit or the wedding past its quota."""
        limit = self._settings.max_document_bytes
        if self._size + size > limit:
            raise DocumentTooLarge(f"the document would grow past {limit} bytes")
        quota = self._settings.max_wedding_bytes
        if self._usage.others(self.name) + self._size + size > quota:
            # Refused like the per-document limit (1009, 413): nothing is applied, and a
            # client that reconnects is refused the same until the wedding shrinks.
            raise DocumentTooLarge(
                f"the wedding's documents would grow past its storage quota of {quota} bytes"
            )

    def _queue(
        self,
        update: bytes,
        summary: UpdateSummary,
        sender: Sender,
        credited: list[tuple[Sender, Sequence[ChangeRecord]]],
        found: list[tuple[Sender, Found]],
        *,
        held: bool = False,
        released: list[tuple[bytes, UpdateSummary]],
        rows: Sequence[FeatureRow],
        frames: int = 1,
    ) -> int:
        """Queue an update the document took in (``frames`` of its writer's, merged) for
        the next commit; its index."""
        index = self._applied
        self._applied += 1
        self._backlog.added(self.name, frames)
        clients = summary.structs.keys()
        client_id = next(iter(clients)) if len(clients) == 1 else None
        self._uncommitted.append(
            Uncommitted(
                update,
                summary,
                sender,
                client_id,
                index,
                time.perf_counter(),
                credited,
                found,
                held=held,
                released=released or None,
                rows=rows,
                frames=frames,
            )
        )
        self._uncommitted_bytes += len(update)
        self._size += len(update)
        self._usage.set(self.name, self._size)
        self._metrics.updates_accepted += frames
        self._start_flushing()
        return index

    async def edit(
        self,
        change: Callable[[Doc[Any]], T],
        sender: Sender,
        *,
        rows: Callable[[T], Sequence[FeatureRow]] | None = None,
    ) -> tuple[T, int | None]:
        """Run ``change`` on the room's own document (no copy) as the server's edit for
        ``sender``, and queue what it wrote for commit like a client's update; returns its
        result and the index of its last update (``None``: it wrote nothing).

        What ``change`` writes goes where a received update goes, but for integrating it
        again: the room's limits and the shape rule, the change records and the races
        (credited to ``sender``), the commit with ``rows(result)`` (of installed feature
        tables; written on their own if the change wrote nothing), then the broadcast and
        every commit hook. A change that raises after writing, or whose writing is refused
        (over a limit, content that does not fit), leaves no trace: the document is rebuilt
        from the store and what is not committed yet (:meth:`_roll_back`). So ``change``
        should check before its first write (the domain's operations do:
        ``tests/documents/test_refusals_write_nothing.py``), and the rebuild stays the rare
        case.
        """
        if self.failed is not None:
            raise RoomFailed(str(self.failed))
        clients = (self.doc.client_id,)
        await self._clients.claim(self.wedding_id, clients, SERVER)  # the server's, whoever asks
        self._check_quarantine(clients)
        document = self.document
        self._index_ready()  # from the document as it is, before the change is in it
        written: list[tuple[bytes, bytes]] = []
        taken: list[_Taken] = []
        slot = self._slot
        if slot is not None:
            slot.arm(self.name, sender.actor.sub, clients)  # as for any apply
        try:
            try:
                result = document.local(change, written)
            finally:
                if slot is not None:
                    slot.clear()
            extra = rows(result) if rows is not None else ()
            if written:
                summaries = [inspect_update(update) for update, _ in written]
                self._check_growth(sum(len(update) for update, _ in written))
                for (update, deletes), summary in zip(written, summaries, strict=True):
                    if summary.is_empty:
                        continue  # a transaction that wrote nothing new: nothing to store
                    self._applying, self._credited, self._found = sender, [], []
                    document.integrated_locally(update, summary, deletes)
                    taken.append((update, summary, self._credited, self._found, document.released))
        except BaseException as exc:
            if written:
                await self._roll_back(exc)
            if isinstance(exc, UpdateError):
                raise ProtocolError(f"malformed update: {exc}") from exc
            raise
        finally:
            self._applying = None
            self._credited, self._found = [], []
        if not taken:
            if extra:
                await self._store.append((), rows=extra)
            return result, None
        index = 0
        for number, (update, summary, credited, found, released) in enumerate(taken, 1):
            last = number == len(taken)
            index = self._queue(
                update,
                summary,
                sender,
                credited,
                found,
                released=released,
                rows=extra if last else (),
            )
        return result, index

    async def _roll_back(self, exc: BaseException) -> None:
        """A server edit wrote to the document and was then refused (or its change
        raised): rebuild the document without it, from the store and what is not committed
        yet. The rebuilt document makes later server edits under a new client id, so no id
        the refused edit took is ever taken again for other content, whoever read the
        document while it was rebuilt."""
        log.warning(
            "room %s: a server edit was refused after it wrote (%s); rebuilding the document",
            self.name,
            type(exc).__name__,
        )
        self._metrics.edits_rolled_back.inc()
        self._client_id = random.getrandbits(52)
        await self._reload()

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

    @abstractmethod
    def _start_flushing(self) -> None:
        """Start the flusher unless it runs (or is being started)."""

    @abstractmethod
    async def _flush_loop(self) -> None:
        """Commit what is queued, batch after batch, until nothing is left (the commit
        path, :class:`~crdt_server.core.room.Room`)."""
