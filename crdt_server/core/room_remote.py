"""A room's content that other processes committed: their updates as the bus brings them,
a catch-up from the store when the bus missed some, and what those release of this room's
own held updates.

An update of a writer here that builds on content the room lacks (a guest another process
added, its commit not heard of yet) is committed when it comes and held
(:mod:`crdt_server.core.crdt`); it changes nothing yet, so nothing is derived from it then.
When content another process committed releases it, what it changed is credited to its
own writer (:meth:`RoomContent._integrated <crdt_server.core.room_content.RoomContent>`)
and committed by the room's flusher in a transaction of its own, with the events and rows
the extensions derive from it (:meth:`RoomRemote._commit_late`): the answer whose
``guest.rsvp_changed`` the fault campaign found missing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import abstractmethod
from collections.abc import Sequence

from crdt_server.codec.protocol import encode_update
from crdt_server.codec.shapes import ShapeError
from crdt_server.codec.updates import UpdateError, UpdateSummary, inspect_update
from crdt_server.core.connection import Connection
from crdt_server.core.crdt import Applied, CrdtFailure, crdt_call
from crdt_server.core.eager import start_now
from crdt_server.core.members import RoomMembers
from crdt_server.core.payloads import CommitBatch, PendingUpdate
from crdt_server.core.room_content import RoomContent
from crdt_server.storage import NewEvent, StoreError

__all__ = ["RoomRemote"]

log = logging.getLogger("crdt_server.core.room")

TURN_EVERY = 0.02
"""Seconds a catch-up integrates stored rows before the event loop turns."""


class RoomRemote(RoomContent):
    """What other processes committed, integrated into a room
    (:class:`~crdt_server.core.room.Room`, which adds its commit path and members)."""

    members: RoomMembers

    @property
    @abstractmethod
    def connections(self) -> set[Connection]:
        """The connections in the room now."""

    @abstractmethod
    def wait_committed(self, index: int | None = None) -> asyncio.Future[None]:
        """A future done once every update up to ``index`` is committed."""

    @abstractmethod
    def _broadcast_updates(self, updates: list[tuple[bytes, UpdateSummary]]) -> None:
        """Send integrated updates to the room's connections."""

    @abstractmethod
    def _commit_hook_failed(self, step: str, update: PendingUpdate, exc: BaseException) -> NewEvent:
        """The event stored in place of what an extension failed to derive."""

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
        self._flush_late()
        self.last_seq = max(self.last_seq, *seqs)
        self._log_rows += len(updates)
        self._size += sum(len(u) for u in updates)
        self._usage.set(self.name, self._size)
        if relay:
            self._broadcast_updates(relay)
        self._hooks.change(self, CommitBatch((), seqs, remote=True))

    def _tell_remote_changes(self) -> None:
        if self._remote_changes:
            changes, self._remote_changes = self._remote_changes, []
            self._hooks.remote_changes(self, changes)

    def _tell_remote_found(self) -> None:
        if self._remote_found:
            found, self._remote_found = self._remote_found, []
            self._hooks.overwritten(self, found)

    async def catch_up(self) -> None:
        """Integrate everything the store has (this process may have missed something).

        A log of thousands of rows is read a slice at a time: the loop turns every
        :data:`TURN_EVERY` seconds (other rooms' clients wait no longer than that), and
        what each row brought is relayed as itself, so nothing a local writer applied
        meanwhile (not committed yet) goes out with it."""
        stored = await self._store.load(self.name)
        if stored is None or self.failed is not None:
            return
        before = self.doc.get_state()
        relay: list[tuple[bytes, UpdateSummary]] = []
        reloaded = False
        self._index_ready()
        turned = time.monotonic()
        for update in stored.updates:  # in order, as they were first applied
            if time.monotonic() - turned > TURN_EVERY:
                await asyncio.sleep(0)
                turned = time.monotonic()
                if self.failed is not None:
                    return
            result = self._integrate_committed(update)
            if result is None:  # rebuilt from the store; what changed since ``before`` goes
                relay, reloaded = [], True
                await self._reload_and_relay(before)
                break
            relay += result
        self._tell_remote_found()
        self._tell_remote_changes()
        self._flush_late()
        if relay:
            self._broadcast_updates(relay)
        if relay or reloaded:
            self._hooks.change(self, CommitBatch((), remote=True))
        self.last_seq = max(self.last_seq, stored.last_seq)
        self._log_rows = len(stored.updates) + len(self._uncommitted)

    async def _reload_and_relay(self, before: bytes) -> None:
        await self._reload()
        self.members.broadcast(encode_update(crdt_call(self.doc.get_update, before)))

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

    def _start_flushing(self) -> None:
        """Start the flusher unless it runs (or is being started)."""
        if self._flusher is None and not self._starting:
            name = f"flush-{self.name}"
            if self._backlog.ahead(self.name):
                # A quiet wedding's commit under overload: begun in this turn, not the next
                # (crdt_server.core.eager); a commit that needs no wait is done at once.
                self._starting = True
                try:
                    self._flusher = start_now(self._flush_loop(), name)
                finally:
                    self._starting = False
            else:
                self._flusher = asyncio.create_task(self._flush_loop(), name=name)

    def _flush_late(self) -> None:
        if self._late:
            self._start_flushing()

    async def _commit_late(self) -> None:
        """Commit what held updates of this room's writers changed once another process's
        content released them: the extensions' events and rows, in a transaction of their
        own (the updates themselves were committed when they came). A store that fails it
        loses only what was derived: logged and counted, as a derivation that failed."""
        late, self._late = self._late, []
        pending = CommitBatch(late)
        await self._hooks.prepare(self, pending)
        events, rows = self._hooks.commit(self, pending, self._commit_hook_failed)
        try:
            await self._store.append([], rows=rows, steps=self._hooks.events_steps(events))
        except StoreError as exc:
            self._metrics.store_errors.labels("append").inc()
            self._metrics.derivation_failed(self.name, "released", exc)
            return
        stored = pending.stored((), events)
        self._hooks.stored(self, stored)
        self._hooks.change(self, stored)
