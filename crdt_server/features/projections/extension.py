"""Keeps each projection room current with its source document.

A projection (``w42/guests@names_meals``) is a room like any other (stored, compacted, loaded,
broadcast), except that only this extension writes it, with one Yjs client id per
projection kept in :data:`~crdt_server.features.projections.tables.PROJECTION_CLIENTS`.
Every change of a source document that some role reads through a projection (committed
here, or by another process and heard on the bus: the ``on_change`` hook) marks its
projections that are loaded here stale; one that is not loaded (nobody read it lately) is
brought up to date when it loads, and before every read. One task per projection brings it
up to date from the source as committed: :func:`~.domain.mirror` on a copy of the
projection, and the update that made is applied to the projection room like a client's
(committed, then broadcast). Changes that come while a task runs are folded into its next
round, so a burst of edits costs one round, not one per edit.

Which projections each document has comes from the permission matrix
(:meth:`PermissionMatrix.projections`): one per set of fields some reader may not read (a
role's, whether the matrix or a token's ``docs`` override lets it read the document, and a
vendor member's field set), named by what it holds (``names_meals``, ``names``), not by who
reads it. Rooms an earlier release named by role (``w42/guests@vendor``) are read by nobody:
a wedding's derived rooms drop them (:meth:`Projections.derived_rooms`). With several
processes, a lease on the bus makes one of them the writer of a projection at a time
(``CRDT_SERVER_PROJECTION_LEASE_SECONDS``, renewed as it works); a new writer first
integrates what the store has of it, so two processes never write the same client's
clocks, and takes over within a lease's length of the last writer's death.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Doc, TransactionEvent

from crdt_server.actor import Actor
from crdt_server.auth.permissions import ROLES, PermissionMatrix
from crdt_server.codec.updates import decode_state_vector, inspect_update
from crdt_server.core.hooks import CommitBatch, Core, Extension, RoomView, Sender
from crdt_server.core.views import LiveRoom
from crdt_server.documents.domain import WEDDINGS
from crdt_server.documents.schema import META
from crdt_server.features.projections.domain import mirror
from crdt_server.features.projections.settings import ProjectionSettings
from crdt_server.features.projections.tables import ProjectionClients
from crdt_server.names import projection_name, projection_of

__all__ = ["PROJECTOR", "Projections"]

log = logging.getLogger("crdt_server.projections")

PROJECTOR = Sender(Actor("server", "server"), "server:projection")
"""Who the projections' updates are credited to (the store's audit trail)."""
MAX_WRITERS = 256
"""Projections whose writer copy is kept between rounds (the most recently written)."""
FULL_EVERY = 1000
"""Every so many rounds (of all projections), a round looks at every entry of its
projection even when the change records named the entries that changed: a safety net for a
change the records missed (their failures are counted and logged)."""
LEASE_SLACK = 2.0
"""Seconds past its own count of a lease's end after which a process whose round failed
asks for the lease again: by then the bus's has lapsed, and another process may hold it."""
RETRY_MOST = 30.0
"""The longest pause before a round that failed is tried again (they double from 0.5 s)."""
ENTRIES_PER_TURN = 250
"""Entries a round mirrors per turn of the event loop (a few ms of a guest list's)."""


@dataclass(slots=True)
class _State:
    """One projection's writer in this process."""

    stale: bool = False
    full: bool = False
    """The next round looks at every entry (else only at :attr:`touched`)."""
    touched: set[tuple[str, str]] = field(default_factory=set)
    """``(root, id)`` of the entries local commits changed since the last round."""
    task: asyncio.Task[None] | None = None
    retry: asyncio.TimerHandle | None = None
    failures: int = 0
    """Rounds that failed in a row (each retried after a longer pause)."""
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


class Projections(Extension):
    """Server-written copies of documents without the fields a role may not read."""

    name = "projections"
    domain = WEDDINGS
    wants_changes = True  # which entries each commit touched: a round looks at those only

    def __init__(self, core: Core, permissions: PermissionMatrix | None = None) -> None:
        """``permissions``: the matrix whose projections it keeps (the settings' by
        default)."""
        self._core = core
        if permissions is None:
            text = core.settings.permissions
            permissions = PermissionMatrix.from_json(text) if text else PermissionMatrix()
        self._client_ids: dict[str, int] = {}
        self._states: dict[str, _State] = {}
        self._writers: OrderedDict[str, Doc[Any]] = OrderedDict()
        """Projection -> a copy of its room's document written with its client id, kept
        between rounds while it still equals the room's (only this process writes it)."""
        self._projected = permissions.projections()
        """Document -> its projections (by key) -> the fields each leaves out."""
        self._clients = ProjectionClients(core.store) if self._projected else None
        self._matrix = permissions
        self._readers = frozenset((*ROLES, *permissions.roles))
        """The roles that may read through a projection (the matrix's): the anonymous
        principal of a local demo reads and writes the documents themselves."""
        self._followed: weakref.WeakValueDictionary[str, LiveRoom] = weakref.WeakValueDictionary()
        """Projection -> its loaded room, once a round looked at every entry while it was
        loaded (every change of its source since marked it: no need to look at all)."""
        self._stored: RoomView | None = None
        self._leases: dict[str, float] = {}
        """Projection -> when this process's lease on it lapses at the earliest (monotonic;
        several processes only)."""
        self._lease_seconds = core.settings.fragment(ProjectionSettings).projection_lease_seconds
        self.rounds = 0
        """Rounds that brought a projection up to date (for tests and benchmarks)."""

    # -- what the edge asks -----------------------------------------------------------

    def room_for(
        self, wedding_id: str, doc: str, role: str, fields: str | None = None
    ) -> str | None:
        """The projection room ``role`` with the field set ``fields`` reads ``doc``
        through, or ``None`` if it reads the document itself."""
        if role not in self._readers:
            return None
        key = self._matrix.projection_key(role, doc, fields)
        if key is None or key not in self._projected.get(doc, {}):
            return None
        return projection_name(wedding_id, doc, key)

    def projected_documents(self, role: str, fields: str | None = None) -> list[str]:
        """The documents ``role`` with the field set ``fields`` reads through
        projections, sorted."""
        return sorted(doc for doc in self._projected if self.room_for("w0", doc, role, fields))

    async def current(self, name: str) -> None:
        """Wait until projection ``name`` holds what its source has committed now (built
        if missing). Raises what the round raised (the store failing)."""
        room = self._core.registry.rooms.get(name)
        followed = room is not None and self._followed.get(name) is room
        # Followed since a full round: only what is pending; else a look at every entry.
        state = self._mark(name, set() if followed else None)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        state.waiters.append(future)
        await future

    # -- hooks --------------------------------------------------------------------------

    async def close(self) -> None:
        for state in self._states.values():
            if state.retry is not None:
                state.retry.cancel()
        tasks = [s.task for s in self._states.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def on_load(self, room: RoomView) -> None:
        # A projection loaded: it may be missing, or older than its source (nobody kept it
        # current while it was not loaded): bring it up to date.
        found = projection_of(room.name)
        if found is not None and found[2] in self._projected.get(found[1], {}):
            self._mark(room.name, idle_only=True)

    def on_stored(self, room: RoomView, batch: CommitBatch) -> None:
        # Committed here: the entries each update touched are known (the change records).
        touched: set[tuple[str, str]] = set()
        for update in batch.updates:
            if not update.changes:
                # Nothing recorded: no entry changed, or only roots the records do not
                # observe (meta, which the projection copies; unknown roots, never copied).
                touched.add((META, ""))
            for _, changes in update.changes:
                touched.update((c.root, c.id) for c in changes)
        self._changed(room, touched)
        self._stored = room

    def on_change(self, room: RoomView, batch: CommitBatch) -> None:
        if self._stored is room:  # the commit on_stored just saw
            self._stored = None
            return
        self._changed(room)  # another process's commit, a catch-up: every entry

    async def derived_rooms(self, wedding_id: str) -> Sequence[str]:
        core = self._core
        names = [
            name
            for doc, keys in sorted(self._projected.items())
            for key in sorted(keys)
            if (name := projection_name(wedding_id, doc, key)) is not None
        ]
        # Projections nobody reads any more (named by role before field sets, or by a
        # field set the matrix no longer has) would keep what their source forgets: gone.
        for name in await core.store.list(f"{wedding_id}/"):
            found = projection_of(name)
            if found is not None and found[2] not in self._projected.get(found[1], {}):
                if name not in core.registry.rooms:
                    await core.store.delete(name)
        stored = await core.store.last_seqs(names)
        kept = [n for n in names if n in stored or n in core.registry.rooms]
        for name in kept:
            await self.current(name)
        return kept

    # -- keeping up ---------------------------------------------------------------------

    def _changed(self, room: RoomView, touched: set[tuple[str, str]] | None = None) -> None:
        """A source changed (``touched``: these entries only): its projections loaded here
        follow (one that is not loaded is brought up to date when it loads, from the source
        as it is then)."""
        rooms = self._core.registry.rooms
        for key in self._projected.get(room.kind, {}):
            name = projection_name(room.wedding_id, room.kind, key)
            if name is not None and name in rooms:
                self._mark(name, touched)

    def _mark(
        self, name: str, touched: set[tuple[str, str]] | None = None, *, idle_only: bool = False
    ) -> _State:
        """Mark ``name`` stale (``touched``: in these entries only) and make sure a task
        brings it up to date. ``idle_only``: not if a round runs already (a room it loads
        itself is no news to it)."""
        state = self._states.get(name)
        if state is None:
            state = self._states[name] = _State()
        elif idle_only and state.task is not None:
            return state
        if touched is None:
            state.full = True
        else:
            state.touched |= touched
        state.stale = True
        if state.task is None:
            state.task = asyncio.create_task(self._run(name, state), name=f"project-{name}")
        return state

    async def _run(self, name: str, state: _State) -> None:
        error: BaseException | None = None
        try:
            while state.stale:
                state.stale = False
                full, state.full = state.full or self.rounds % FULL_EVERY == 0, False
                touched, state.touched = state.touched, set()
                waiters, state.waiters = state.waiters, []
                try:
                    await self._round(name, state, None if full else touched)
                    state.failures = 0
                except Exception as exc:
                    error = exc
                    self._core.registry.metrics.derivation_failed(name, "projection", exc)
                    self._writers.pop(name, None)
                    self._followed.pop(name, None)
                    # What the round was to write is not written (the store unreachable, a
                    # room failed): a round of every entry follows after a pause, even if
                    # the source does not change again.
                    state.failures += 1
                    self._retry_later(name, state, min(RETRY_MOST, 2.0**state.failures / 4))
                for future in waiters:
                    if not future.done():
                        if error is None:
                            future.set_result(None)
                        else:
                            future.set_exception(error)
                error = None
        finally:
            state.task = None
            for future in state.waiters:
                if not future.done():
                    future.set_exception(RuntimeError("the projection's writer stopped"))
            state.waiters = []
            if state.retry is None and not state.stale:
                self._states.pop(name, None)

    async def _round(self, name: str, state: _State, touched: set[tuple[str, str]] | None) -> None:
        """Bring projection ``name`` up to date: ``touched`` entries, or all (``None``)."""
        core = self._core
        found = projection_of(name)
        if found is None:
            return
        wedding_id, doc, key = found
        hidden = self._projected.get(doc, {}).get(key)
        if hidden is None:
            return  # a projection nobody reads (named by an earlier release)
        took_over = False
        if core.registry.bus.shared:
            held = await self._lease(name, renew=state.failures == 0)
            if held is None:
                self._retry_later(name, state)
                return
            took_over = held
        weddings = core.weddings
        async with weddings.room(f"{wedding_id}/{doc}") as source, weddings.room(name) as room:
            if took_over:
                await room.catch_up()  # what the previous writer committed, first
            await source.wait_committed()
            writer = self._writers.pop(name, None)
            if writer is None or _state(writer) != _state(room.doc):
                writer = Doc(client_id=await self._client_id(name, wedding_id, room))
                writer.apply_update(room.doc.get_update())
            updates: list[bytes] = []

            def capture(event: TransactionEvent) -> None:
                updates.append(event.update)

            # An update may touch thousands of entries: they are mirrored a slice per turn
            # of the event loop (each slice one update of the projection), not all at once.
            ordered = None if touched is None else sorted(touched)
            for at in range(0, 1 if ordered is None else max(len(ordered), 1), ENTRIES_PER_TURN):
                entries = None if ordered is None else ordered[at : at + ENTRIES_PER_TURN]
                if at:
                    await asyncio.sleep(0)  # the loop turns, whether or not a slice changed
                subscription = writer.observe(capture)
                try:
                    mirror(source.doc, writer, doc, hidden, entries)
                finally:
                    writer.unobserve(subscription)
                for update in updates:
                    index = await room.apply(update, inspect_update(update), PROJECTOR)
                    await room.wait_committed(index)
                updates.clear()
            self.rounds += 1
            if touched is None:
                self._followed[name] = room
            self._writers[name] = writer
            while len(self._writers) > MAX_WRITERS:
                self._writers.popitem(last=False)

    async def _lease(self, name: str, *, renew: bool = True) -> bool | None:
        """Make sure this process is the projection's writer for a round (several
        processes): ``False`` if it was and still is, ``True`` if it just took the lease
        (its own had lapsed, or another process's: it must first integrate what the store
        has of the projection), ``None`` if another process holds it. A round starts only
        while the lease has half its length left; past that it is renewed first (the bus
        renews a lease for the process that holds it), so no round runs on a lease about
        to lapse, and a process that dies holding one leaves it for at most its length.
        Not ``renew``: its last round failed (it cannot reach the store, say), so it lets
        its lease lapse for another process to take, and asks again only once it has.
        When it lapses is counted from before the asking: never later than the bus's."""
        lease = self._lease_seconds
        now = time.monotonic()
        expires = self._leases.get(name, 0.0)
        if now < expires - lease / 2:
            return False
        if not renew and now < expires + LEASE_SLACK:
            return None  # the bus's lease may outlive this count by a round trip
        if not await self._core.registry.bus.try_lease(f"projection:{name}", lease):
            self._leases.pop(name, None)
            return None
        self._leases = {n: t for n, t in self._leases.items() if t > now}
        self._leases[name] = now + lease
        return now >= expires  # held all along: renewed, nothing new to integrate

    def _retry_later(self, name: str, state: _State, delay: float | None = None) -> None:
        """Look again in ``delay`` seconds, with a round of every entry, if the projection
        is still loaded here. By default half a lease: another process writes it now, and
        it may have stopped caring about this wedding (the holder renews its lease while
        it works, and one that died leaves it within a lease)."""
        if state.retry is not None:
            return

        def again() -> None:
            state.retry = None
            if name in self._core.registry.rooms:
                self._mark(name)
            elif state.task is None and not state.stale:
                self._states.pop(name, None)

        pause = self._lease_seconds / 2 if delay is None else delay
        state.retry = asyncio.get_running_loop().call_later(pause, again)

    async def _client_id(self, name: str, wedding_id: str, room: LiveRoom) -> int:
        """The projection's client id: kept in memory while the projection has content
        (an empty one may have been erased with its wedding: asked of the store again)."""
        known = self._client_ids.get(name)
        if known is not None and room.last_seq > 0:
            return known
        clients = self._clients
        if clients is None:
            raise RuntimeError("the projections extension keeps no client ids")
        client_id = await clients.claim(name, wedding_id)
        self._client_ids[name] = client_id
        return client_id


def _state(doc: Doc[Any]) -> dict[int, int]:
    return decode_state_vector(doc.get_state())
