"""A room: one document in memory, its connections, and the record-before-distribute path.

An accepted update is applied to the room's pycrdt ``Doc`` at once (so later messages see
it), queued as uncommitted, and appended to the store by the room's flusher. Only after
the store has committed it is it broadcast, to every connection including its sender
(the echo is the sender's proof of durability) and to other processes. Updates that arrive
while a commit is in flight share the next commit and, where a client integrating the merge
ends where the room did, one merged broadcast frame (:meth:`RoomDocument.frames`).

A joiner's sync step 2 is computed at once but sent only after everything it contains is
committed, so no client ever sees an update the store could still lose.

A room is two cooperating halves. Its document and commit path: what it holds (its
document, its uncommitted updates, who is credited with what) and how a peer's update is
applied are :mod:`crdt_server.core.room_content`'s, and this module adds the commit path
and what other processes committed. Its members (:class:`~crdt_server.core.members.RoomMembers`,
``room.members``): its connections and their presence; the room greets a joiner through
them and sends them what it commits. The room's methods for connections (``join``,
``leave``, ``apply_awareness``...) hand over to its members.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Hashable, Sequence

from crdt_server.codec.awareness import (
    AwarenessEntry,
)
from crdt_server.codec.protocol import (
    encode_sync_step1,
    encode_sync_step2,
    encode_update,
)
from crdt_server.codec.slices import Sliced, slice_update
from crdt_server.codec.updates import (
    UpdateError,
    UpdateSummary,
    decode_state_vector,
    inspect_update,
)
from crdt_server.core.adoption import split
from crdt_server.core.client_ids import Relayed, owner_of
from crdt_server.core.connection import Connection
from crdt_server.core.crdt import (
    CrdtFailure,
    crdt_call,
    fold_updates,
    inspect_off_loop,
)
from crdt_server.core.loading import replay_indexed
from crdt_server.core.members import RoomMembers
from crdt_server.core.payloads import DERIVATION_FAILED, CommitBatch, PendingUpdate, Sender
from crdt_server.core.presence import AwarenessRegistry
from crdt_server.core.room_content import RoomFailed, Uncommitted
from crdt_server.core.room_remote import RoomRemote
from crdt_server.core.services import RoomServices
from crdt_server.errors import (
    ClientIdTaken,
    CloseCode,
    PeerError,
    ProtocolError,
)
from crdt_server.storage import (
    FeatureRow,
    NewEvent,
    NewUpdate,
    StoreError,
)

__all__ = ["Room", "RoomFailed", "RoomServices"]

log = logging.getLogger("crdt_server.core.room")


class Room(RoomRemote):
    """One loaded document. Create with :meth:`load`; all methods run on the event loop.

    What it holds, and how a peer's update is applied, is :class:`RoomContent`'s; here
    are the commit path and other processes; its connections and presence are
    :attr:`members`'."""

    def __init__(
        self, name: str, services: RoomServices, on_failure: Callable[[Room], None]
    ) -> None:
        super().__init__(name, services)
        self._on_failure = on_failure
        self.members = RoomMembers(self, services.bus, services.settings, services.hooks)
        """Its connections and their presence (the room's other half)."""

    @classmethod
    async def load(
        cls, name: str, services: RoomServices, on_failure: Callable[[Room], None]
    ) -> Room:
        """Load the room ``name`` from the store; ``on_failure`` is told if the store later
        fails a commit (the room is then closed)."""
        room = cls(name, services, on_failure)
        await services.usage.count(services.store, room.wedding_id)
        stored = await services.store.load(name)
        if stored is not None:
            # Rebuilt, checked and indexed on a worker thread (nobody holds the room yet):
            # a 20,000-guest list is seconds of Python that every other room would wait on.
            document, unreadable, index = await asyncio.to_thread(
                replay_indexed, stored.updates, room._client_id, room._detect
            )
            room._replay(stored, done=(document, unreadable))
            if index is not None:
                room._overwrites, room._index_tried = index, True
        else:
            room._watch(room.document)
            services.usage.set(name, 0)
        await room._hooks.load(room)
        return room

    async def apply(
        self,
        update: bytes,
        summary: UpdateSummary,
        sender: Sender,
        *,
        rows: Sequence[FeatureRow] = (),
        frames: int = 1,
        server: bool = False,
        whole: bool = False,
    ) -> int | None:
        """:meth:`RoomContent.apply`, and while an adoption window is open an update that
        re-sends items of ids other people own is taken in split by owner, each part
        credited to its owner (:mod:`crdt_server.core.adoption`). An update of more
        structs than ``CRDT_SERVER_UPDATE_SLICE_STRUCTS`` is taken in as slices
        (:meth:`_apply_slices`) unless ``whole``; so is one deleting more entries than
        that (a restore, or a client's one message removing thousands of guests)."""
        limit = self._settings.update_slice_structs
        if (
            not whole
            and frames == 1
            and not rows
            and (summary.struct_count > limit or summary.deleted > limit)
        ):
            return await self._apply_slices(update, summary, sender, server=server)
        try:
            return await super().apply(
                update, summary, sender, rows=rows, frames=frames, server=server
            )
        except Relayed as relayed:
            if rows or frames != 1 or server:
                raise  # a merged run is applied again one by one; the server relays nothing
            adopted = relayed
        adoptions = self._clients.adoptions
        for client, owner in adopted.owners.items():
            if await adoptions.is_back(adopted.window, self.name, owner):
                raise ClientIdTaken(client)  # its owner is back: a squat again
        index: int | None = None
        for whose, part in split(update, adopted.owners):
            credited = (
                sender
                if whose is None
                else await adoptions.credited(self.wedding_id, whose, sender)
            )
            done = await super().apply(part, inspect_update(part), credited)
            index = done if done is not None else index
        return index

    async def apply_run(
        self, updates: Sequence[tuple[bytes, UpdateSummary]], sender: Sender
    ) -> int:
        """Take in the first of one writer's updates that arrived together
        (:meth:`take_run`): as many as the room may still take
        (:meth:`~crdt_server.core.backlog.Backlog.left`), counted once the run's new client
        ids are owned: claiming an id waits for the store, and other writers' runs are
        taken in meanwhile (counted before, two writers' runs together took a room to
        twice its bound). How many it took; the caller sends the rest once the room is
        under its bound."""
        owner = owner_of(sender)
        for owned, (update, summary) in enumerate(updates):
            try:
                await self._clients.own(self.wedding_id, summary, self.document, owner, update)
            except PeerError:  # taken alone next, and refused as its apply refuses it
                updates = updates[: max(owned, 1)]
                break
        run = updates[: self._backlog.left(self.name)]
        await self.take_run(run, sender)
        return len(run)

    async def _apply_slices(
        self, update: bytes, summary: UpdateSummary, sender: Sender, *, server: bool
    ) -> int | None:
        """One large update as slices of at most ``update_slice_structs`` structs
        (:mod:`crdt_server.codec.slices`, cut on a worker thread: a pure read of the
        bytes), each applied and committed before the next, so that what one message
        costs the loop (its items read by the recorder, the overwrite index, the events'
        derivation) comes in pieces with every other room served between them. Each
        slice is an update of its own for everything after the apply (the log, events,
        the broadcast); a slice refused leaves those before it applied and committed (their
        items are well formed, the sender's own). The last slice's index."""
        # Over the document's limit or the wedding's quota, it is refused whole (as the
        # whole update would be), not after the slices that fit.
        self._check_growth(len(update))
        # Deletions are cut by the entries they cover (the overwrite index's map items,
        # copied for the worker thread: what the recorder and the index read per deletion;
        # a deleted text of any length is one); with no index, where the recorder reads
        # them or for the server's own edits, by clocks (at least the items). Each part is
        # committed and sent before the next: a writer confirms a deleted range by the
        # union of the ranges echoed (the web app's pending edits); a part deleting only
        # what was deleted already is sent to nobody (the server's step 2 confirms it).
        most = self._settings.update_slice_structs
        self._index_ready()
        known = self._overwrites
        items = None if known is None else known.starts(summary.deletes)
        counted = items is not None or server or self._recorder is not None
        cut_at = most if counted else None
        sliced = await asyncio.to_thread(_cut, update, most, cut_at, items)
        if sliced is None:  # nothing to cut
            return await self.apply(update, summary, sender, server=server, whole=True)
        # The delete set goes with the last slice that brings content the room lacks: that
        # one changes the document and is sent to everyone, so the writer sees its
        # deletions echoed (the app confirms an edit by them). A slice of known content
        # only changes nothing and is sent to nobody.
        cut, summaries = sliced
        new = [i for i, found in enumerate(summaries) if self.has_unknown_structs(found)]
        at = new[-1] if new else len(summaries) - 1
        index: int | None = None
        # The slice given the delete set is read again (a step 2's may be most of it),
        # within the limit the whole update passed, as are the delete set's other parts.
        limit = self._settings.max_update_items
        for i, part in enumerate(cut.parts(at)):
            told = (
                summaries[i]
                if i < len(summaries) and i != at
                else await inspect_off_loop(part, limit)
            )
            done = await self.apply(part, told, sender, server=server, whole=True)
            if done is not None:
                index = done
                await self.wait_committed(done)
        return index

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
            while self._uncommitted or self._late:
                if self._late:
                    await self._commit_late()
                    continue
                batch = self._inflight = self._uncommitted
                self._uncommitted = []
                self._uncommitted_bytes = 0
                pending = CommitBatch(
                    [
                        PendingUpdate(self.name, u.data, u.sender, u.client_id, u.changes, u.found)
                        for u in batch
                    ]
                )
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
                    steps = self._hooks.events_steps(events)
                    # A quiet wedding's commit goes ahead of the busy ones' (under overload
                    # it would wait for a shared transaction of hundreds of updates).
                    first = self._backlog.ahead(self.name)
                    seqs = await self._store.append(rows, rows=extra, steps=steps, first=first)
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
                frames = sum(u.frames for u in batch)  # the writers' updates it holds
                self._metrics.commit_batch.observe(frames)
                self._committed = batch[-1].index + 1
                self.last_seq = seqs[-1]
                self._log_rows += len(batch)
                updates = [u.data for u in batch]
                self._broadcast_batch(batch)
                self._metrics.broadcast_seconds.observe(time.perf_counter() - batch[0].applied_at)
                self._release_waiters()
                # After the echo: a writer let in again sees its last update acknowledged.
                self._backlog.removed(self.name, frames)
                self._bus.publish_updates(self.name, seqs, updates)
                stored = pending.stored(seqs, events)
                self._hooks.stored(self, stored)
                self._hooks.change(self, stored)
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

    def _broadcast_batch(self, batch: list[Uncommitted]) -> None:
        """Relay a committed batch: what integrated here, with what it released. A held
        update goes back to its sender alone (its echo, the proof it is stored): any other
        client would have to keep it pending, in code hostile bytes can crash."""
        relay: list[tuple[bytes, UpdateSummary]] = []
        for u in batch:
            if u.held:
                self.members.send_to(u.sender.origin, encode_update(u.data))
                continue
            relay.append((u.data, u.summary))
            if u.released:
                relay += u.released
        if relay:
            self._broadcast_updates(relay)
        self.members.flush()  # the batch's frames, one write each, now

    def _broadcast_updates(self, updates: list[tuple[bytes, UpdateSummary]]) -> None:
        """Relay updates integrated here one by one, in order: merged where that is safe
        (see :meth:`RoomDocument.frames`), else one frame each."""
        for update in self.document.frames(updates):
            self.members.broadcast(encode_update(update))

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
        self._backlog.removed(self.name, self._backlog.of(self.name))
        self._uncommitted = []
        self._uncommitted_bytes = 0
        for _, future in self._commit_waiters:
            if not future.done():
                future.set_exception(RoomFailed(str(exc)))
        self._commit_waiters = []
        self.members.close_all(CloseCode.INTERNAL_ERROR, "storage failure, reconnect")
        self._on_failure(self)

    async def flush(self) -> None:
        """Wait until everything applied so far is committed (or the room failed)."""
        if self._applied > self._committed and self.failed is None:
            try:
                await self.wait_committed()
            except RoomFailed:
                return

    def apply_remote_awareness(self, origin: str, payload: bytes) -> None:
        """Presence another process accepted (validated and stamped there)."""
        self.members.apply_remote_awareness(origin, payload)

    # -- connections and presence (the room's members) ------------------------------------

    @property
    def backlog_over(self) -> bool:
        """Whether this room is over its backlog bound: its writers wait (see
        :mod:`crdt_server.core.backlog`)."""
        return self._backlog.over(self.name)

    @property
    def backlog_quiet(self) -> bool:
        """Whether this room's wedding accepts updates at a low rate (its updates go ahead of
        the busy rooms' under overload: :mod:`crdt_server.core.pacing`,
        :meth:`~crdt_server.core.backlog.Backlog.quiet`)."""
        return self._backlog.quiet(self.name)

    @property
    def backlog_left(self) -> int:
        """How many more of its writers' updates this room may take in before it is at its
        bound (at least one)."""
        return self._backlog.left(self.name)

    async def backlog_pause(self) -> bool:
        """Wait while this room is over its backlog bound (at most the pause limit);
        ``False``: it still is."""
        return await self._backlog.pause(self.name)

    def backlog_under(self) -> asyncio.Future[None]:
        """A future done once this room is no longer over its backlog bound."""
        return self._backlog.under(self.name)

    @property
    def connections(self) -> set[Connection]:
        """The connections in the room now (its :attr:`members`')."""
        return self.members.connections

    @property
    def awareness(self) -> AwarenessRegistry:
        return self.members.awareness

    def join(self, conn: Connection) -> None:
        """Add a connection and greet it: our state vector, then everyone's presence."""
        self.members.join(conn, encode_sync_step1(self.doc.get_state()))

    def leave(self, conn: Connection) -> None:
        """Remove a connection and broadcast the removal of every presence it spoke for."""
        self.members.leave(conn)

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
        self.members.apply_awareness(conn, entries)

    def expire_presence(self, older_than: float, owned: Callable[[Hashable], bool]) -> None:
        """Forget the presence of the owners ``owned`` picks that was last heard before
        ``older_than`` (monotonic), relayed as removals like any other presence change."""
        self.members.expire_presence(older_than, owned)

    def awareness_frame(self) -> bytes:
        return self.members.awareness_frame()

    @property
    def presence_folding(self) -> bool:
        """Presence is folded in this room, to be relayed when its window ends."""
        return self.members.presence_folding

    def close(self) -> None:
        """The registry unloaded this room: it serves nobody from now on, and nothing of
        its own (the presence relay's timer) keeps it alive."""
        self.closed = True
        self.members.close()

    def close_all(self, code: int, reason: str) -> None:
        self.members.close_all(code, reason)


def _cut(
    update: bytes, structs: int, deleted: int | None, items: dict[int, list[int]] | None
) -> tuple[Sliced, list[UpdateSummary]] | None:
    """``update``'s slices and their summaries (on a worker thread), or ``None``."""
    sliced = slice_update(update, structs, deleted, items)
    if sliced is None:
        return None
    return sliced, [inspect_update(part) for part in sliced.slices]
