"""Wedding-level operations for clients that are not live editors (the HTTP API's core).

Everything here goes through the same rooms as the WebSocket clients, so an edit made over
HTTP is validated, committed and broadcast exactly like one made in an editor, and the
answer comes only after the commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

from pycrdt import Doc, TransactionEvent

from crdt_server.codec.updates import (
    OverItemLimit,
    UpdateError,
    decode_state_vector,
    inspect_update,
)
from crdt_server.core.crdt import CrdtFailure, copy_of, crdt_call, inspect_off_loop, replay
from crdt_server.core.domain import Domain
from crdt_server.core.hooks import Sender
from crdt_server.core.operation_keys import OperationKeys
from crdt_server.core.registry import RoomRegistry
from crdt_server.core.room import Room
from crdt_server.errors import CloseCode, ProtocolError, TooManyItems
from crdt_server.storage import DocumentStore, FeatureRow

__all__ = ["StoredCopies", "WeddingService"]

JSON_OFF_LOOP_BYTES = 64 * 1024
"""A document whose encoded state is this large or larger (500 to 800 guests) is turned into
its JSON view on a worker thread, from a copy: on the loop, 20,000 guests held every other
room 1.3 s on a quiet 2-core machine and about 3 s on a loaded one."""

T = TypeVar("T")
log = logging.getLogger("crdt_server.core.weddings")


class StoredCopies:
    """Documents no room holds, replayed from the store, kept for the next read.

    A copy serves only while the store's newest seq for its document is still the one it
    was loaded at (seqs are never reused, compaction keeps the newest row's seq). Copies
    hold personal data, so they do not linger: each goes ``ttl`` seconds after its last
    use, at once when its wedding is erased, its document edited here or loaded into a
    room, and the least recently used first past ``max_bytes`` of stored log.
    """

    def __init__(self, *, max_bytes: int = 32 * 1024 * 1024, ttl: float = 30.0) -> None:
        self._max_bytes = max_bytes
        self._ttl = ttl
        self._copies: OrderedDict[str, tuple[int, int, float, Doc[Any]]] = OrderedDict()
        """name -> (seq loaded at, bytes of stored log, last used (monotonic), document)"""
        self._bytes = 0
        self._expiry: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._copies)

    def get(self, name: str, seq: int) -> Doc[Any] | None:
        """The copy of ``name`` if it was loaded at ``seq``; an older one is dropped."""
        entry = self._copies.get(name)
        if entry is None:
            return None
        if entry[0] != seq:
            self.drop(name)
            return None
        self._copies[name] = (entry[0], entry[1], time.monotonic(), entry[3])
        self._copies.move_to_end(name)
        return entry[3]

    def put(self, name: str, seq: int, size: int, doc: Doc[Any]) -> None:
        self.drop(name)
        if size > self._max_bytes:
            return
        self._copies[name] = (seq, size, time.monotonic(), doc)
        self._bytes += size
        while self._bytes > self._max_bytes:
            self.drop(next(iter(self._copies)))
        if self._expiry is None:
            self._expiry = asyncio.get_running_loop().call_later(self._ttl, self._expire)

    def drop(self, name: str) -> None:
        entry = self._copies.pop(name, None)
        if entry is not None:
            self._bytes -= entry[1]

    def drop_wedding(self, wedding_id: str) -> None:
        for name in [n for n in self._copies if n.partition("/")[0] == wedding_id]:
            self.drop(name)

    def _expire(self) -> None:
        self._expiry = None
        stale = time.monotonic() - self._ttl
        for name in [n for n, entry in self._copies.items() if entry[2] <= stale]:
            self.drop(name)
        if self._copies:
            oldest = min(entry[2] for entry in self._copies.values())
            delay = max(oldest + self._ttl - time.monotonic(), 0.0)
            self._expiry = asyncio.get_running_loop().call_later(delay, self._expire)


class WeddingService:
    """Reads and edits of a wedding's documents for the HTTP API and the features; what a
    document of ``domain`` is (its kinds, its JSON view, its operations) is the domain's."""

    def __init__(self, registry: RoomRegistry, store: DocumentStore, domain: Domain) -> None:
        self._registry = registry
        self._store = store
        self.domain = domain
        self._edit_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._copies = StoredCopies()
        self.keys = OperationKeys(store)
        """The idempotency keys of HTTP operations (installed by the app at start)."""

    @asynccontextmanager
    async def room(self, name: str) -> AsyncIterator[Room]:
        room = await self._registry.acquire(name)
        try:
            yield room
        finally:
            self._registry.release(room)

    async def snapshot(self, name: str) -> bytes:
        """The document as one Yjs update, with nothing uncommitted in it."""
        async with self.room(name) as room:
            update = room.doc.get_update()
            await room.wait_committed()
            return update

    async def read_json(self, wedding_id: str, kind: str, *, rich: bool = False) -> dict[str, Any]:
        data, _ = await self.read_json_at(wedding_id, kind, rich=rich)
        return data

    async def read_json_at(
        self,
        wedding_id: str,
        kind: str,
        *,
        rich: bool = False,
        room: str | None = None,
        related: Collection[str] = (),
    ) -> tuple[dict[str, Any], bytes]:
        """:meth:`read_json` of a wedding document with the state vector it shows (an
        index into one of its texts is only meaningful with it); ``room``: read it from
        that room instead (a projection of the document); ``related``: the other kinds the
        view may read (of those the domain's ``context`` names; the caller checked who
        may read them)."""
        others = await self._copies_of(wedding_id, related)
        async with self.room(room or f"{wedding_id}/{kind}") as found:
            snapshot = crdt_call(found.doc.get_update)
            if len(snapshot) < JSON_OFF_LOOP_BYTES:
                data = self.domain.to_json(found.doc, kind, rich=rich, related=others or None)
                state = found.doc.get_state()
            else:
                # A large document (thousands of guests) is read on a copy on a worker
                # thread: its view is seconds of Python every other room would wait on.
                data, state = await asyncio.to_thread(
                    self._json_of, snapshot, kind, rich, others or None
                )
            await found.wait_committed()
            return data, state

    def _json_of(
        self, snapshot: bytes, kind: str, rich: bool, related: dict[str, Doc[Any]] | None
    ) -> tuple[dict[str, Any], bytes]:
        """The JSON view of a document made of ``snapshot``, and its state vector (on a
        worker thread: the copy, and ``related``'s private copies, are its alone)."""
        copy: Doc[Any] = Doc()
        copy.apply_update(snapshot)
        return self.domain.to_json(copy, kind, rich=rich, related=related), copy.get_state()

    async def _copies_of(self, wedding_id: str, kinds: Collection[str]) -> dict[str, Doc[Any]]:
        """A private copy of each of the wedding's documents ``kinds`` (read, never
        written: a view or an operation that reads them changes nothing there)."""
        copies: dict[str, Doc[Any]] = {}
        for other in kinds:
            async with self.room(f"{wedding_id}/{other}") as found:
                copies[other] = copy_of(found.doc)
        return copies

    async def apply_update(self, name: str, update: bytes, sender: Sender) -> bool:
        """Apply a client's update; returns whether it changed anything, once committed.
        Raises :class:`~crdt_server.errors.TooManyItems` (nothing read past the count that
        passed it) for one of more structs and delete ranges than ``max_update_items``."""
        limit = self._registry.services.settings.max_update_items
        try:
            summary = await inspect_off_loop(update, limit)
        except OverItemLimit as exc:
            raise TooManyItems(f"update refused: {exc}") from exc
        except UpdateError as exc:
            raise ProtocolError(f"malformed update: {exc}") from exc
        async with self.room(name) as room:
            index = await room.apply(update, summary, sender)
            await room.wait_committed(index)
            return index is not None

    async def sync(self, name: str, state_vector: bytes, update: bytes, sender: Sender) -> bytes:
        """Mobile sync: apply the client's pending update, return what it is missing."""
        if update:
            await self.apply_update(name, update, sender)
        async with self.room(name) as room:
            try:
                decode_state_vector(state_vector)  # counts checked before pycrdt sees them
                diff = crdt_call(room.doc.get_update, state_vector)
            except (CrdtFailure, UpdateError) as exc:
                raise ProtocolError(f"bad state vector: {exc}") from exc
            await room.wait_committed()
            return diff

    async def operate(
        self,
        wedding_id: str,
        kind: str,
        op: dict[str, Any],
        sender: Sender,
        *,
        rows: Callable[[dict[str, Any]], Sequence[FeatureRow]] | None = None,
        reads: Collection[str] | None = None,
    ) -> dict[str, Any]:
        """Run a domain operation as one Yjs transaction; answered once committed.

        Raises the domain's error (:class:`crdt_server.documents.OperationError`; nothing
        changed) for an invalid operation. ``rows``: as for :meth:`edit` (an idempotency
        key with the operation's result, :mod:`crdt_server.core.operation_keys`).
        ``reads``: the other documents the operation is given, of those the domain's
        ``context`` names (the ones the person asking may read; ``None``: all of them).
        """
        operate = self.domain.operate
        if reads is None:
            reads = self.domain.context(kind, op)
        async with AsyncExitStack() as held:
            # The other documents are read where they are (an operation only reads them,
            # and runs at once, on the loop): the rooms, held until it ran, not copies.
            rooms = [
                await held.enter_async_context(self.room(f"{wedding_id}/{other}"))
                for other in reads
            ]

            def change(doc: Doc[Any]) -> dict[str, Any]:
                related = {room.name.rpartition("/")[2]: room.doc for room in rooms}
                return operate(doc, kind, op, origin=sender.origin, related=related or None)

            return await self.edit(f"{wedding_id}/{kind}", change, sender, rows=rows)

    @property
    def client_id(self) -> int:
        """The Yjs client id of the server's own edits (:meth:`edit`), whoever asked."""
        return self._registry.services.client_id

    async def edit(
        self,
        name: str,
        change: Callable[[Doc[Any]], T],
        sender: Sender,
        *,
        rows: Callable[[T], Sequence[FeatureRow]] | None = None,
        copy: bool = False,
    ) -> T:
        """Make a server-side change to a room's document; returns once it is committed.

        ``change`` runs on the room's own document (no copy: :meth:`Room.edit`), and what
        it writes enters the room like a client's update (validated, recorded, committed,
        broadcast). It should check everything before its first write: a change that
        raises after writing, or whose writing is refused, leaves no trace, but at the
        cost of rebuilding the room's document from the store. ``copy``: for a change
        that cannot check first (several operations in one, each checked against what the
        ones before it wrote), run it on a private copy of the document instead, whose
        update then enters the room like a client's: a refusal half way throws the copy
        away. ``rows`` makes, from the change's result, rows of installed feature tables
        that are committed in the same transaction as the change (on their own if it
        changed nothing).
        """
        async with self._editing(name) as room:
            if copy:
                return await self._edit_copy(room, change, sender, rows)
            result, index = await room.edit(change, sender, rows=rows)
            await room.wait_committed(index)  # nothing written: what it read, committed
            return result

    async def edit_off_loop(self, name: str, change: Callable[[Doc[Any]], T], sender: Sender) -> T:
        """A large server-side change (thousands of entries: a guest import, a restore)
        made without holding the event loop; returns once all of it is committed.

        ``change`` runs on a worker thread, on a private copy of the room's document made
        under the server's client id (it must touch nothing else, and should check
        everything before its first write: raising writes nothing). What it wrote then
        enters the room like a client's update through :meth:`Room.apply`: checked whole
        against the room's limits (the document's size, the wedding's quota), then, if it
        has more structs than ``CRDT_SERVER_UPDATE_SLICE_STRUCTS``, taken in as slices of
        that many, each applied, committed and sent before the next, so every other room
        is served between them. Concurrent edits merge as with any client's. A crash (or
        a store failure) between two slices leaves those before it committed: a part of
        the change, each slice well formed, and re-running the change completes it.
        """
        async with self._editing(name) as room:
            # The copy writes under the room's own server id: nothing else may write under
            # it meanwhile, which the edit lock makes sure of.
            snapshot = crdt_call(room.doc.get_update)
            result, updates = await asyncio.to_thread(
                _change_a_copy, snapshot, room.doc.client_id, change
            )
            for update in updates:
                try:
                    summary = await inspect_off_loop(update, None)
                except UpdateError as exc:
                    raise ProtocolError(f"malformed update: {exc}") from exc
                index = await room.apply(update, summary, sender, server=True)
                await room.wait_committed(index)
            return result

    @asynccontextmanager
    async def _editing(self, name: str) -> AsyncIterator[Room]:
        """The room ``name`` for one server edit at a time (every server edit of a room
        writes under its server id), its stored copy dropped (what the edit is about to
        change: a person erased, say)."""
        lock = self._edit_locks.get(name)
        if lock is None:
            lock = self._edit_locks[name] = asyncio.Lock()
        async with lock, self.room(name) as room:
            self._copies.drop(name)
            yield room

    async def _edit_copy(
        self,
        room: Room,
        change: Callable[[Doc[Any]], T],
        sender: Sender,
        rows: Callable[[T], Sequence[FeatureRow]] | None,
    ) -> T:
        """:meth:`edit` on a private copy of the room's document (``copy=True``)."""
        # Under the room's own client id: no new entry in the state vector per edit.
        result, updates = _change_a_copy(room.doc.get_update(), room.doc.client_id, change)
        extra = rows(result) if rows is not None else ()
        for number, update in enumerate(updates, 1):
            last = number == len(updates)
            index = await room.apply(
                update, inspect_update(update), sender, rows=extra if last else (), server=True
            )
            if last and index is not None:
                extra = ()  # committed with it
            await room.wait_committed(index)
        if extra:
            await self._store.append((), rows=extra)
        return result

    async def documents(
        self, wedding_id: str, kinds: Iterable[str] | None = None
    ) -> dict[str, Doc[Any]]:
        """The wedding's documents of ``kinds`` (default: the domain's) as they are now (loaded
        rooms, else the store); a kind with nothing stored is left out. Read them, never
        change them: they are the rooms' own documents or copies kept for the next call.

        A document no room holds is replayed from the store once and kept while the store
        has nothing newer for it (one query for all of them): the conflicts keeper reads
        all four after every change to one, and replaying the three others each time cost
        more than the edit.
        """
        if kinds is None:
            kinds = self.domain.kinds
        found: dict[str, Doc[Any]] = {}
        stored: list[str] = []
        for kind in kinds:
            name = f"{wedding_id}/{kind}"
            room = self._registry.rooms.get(name)
            if room is None:
                stored.append(kind)
            else:
                found[kind] = room.doc
                self._copies.drop(name)  # the room holds the truth now
        names = [f"{wedding_id}/{kind}" for kind in stored]
        newest = await self._store.last_seqs(names) if names else {}
        for kind in stored:
            name = f"{wedding_id}/{kind}"
            seq = newest.get(name)
            doc = None if seq is None else self._copies.get(name, seq)
            if doc is None and seq is not None:
                rows = await self._store.load(name)
                if rows is not None:
                    # On a worker thread: thousands of rows are seconds of decoding that
                    # every room's clients would wait on (the conflicts keeper's first read
                    # of a wedding after a start).
                    doc = (await asyncio.to_thread(replay, rows.updates))[0].doc
                    self._copies.put(name, rows.last_seq, sum(map(len, rows.updates)), doc)
            if doc is None:
                self._copies.drop(name)
            else:
                found[kind] = doc
        return {kind: found[kind] for kind in kinds if kind in found}

    async def state_vector(self, name: str) -> bytes:
        async with self.room(name) as room:
            return room.doc.get_state()

    def close_rooms(self, wedding_id: str) -> list[Room]:
        """Close the wedding's rooms in this process with 4404 and unload them (deleting a
        wedding is :meth:`crdt_server.core.erasure.ErasureService.erase_wedding`)."""
        self._copies.drop_wedding(wedding_id)
        closed: list[Room] = []
        # Its documents and the rooms derived from them.
        for room in list(self._registry.wedding_rooms(wedding_id)):
            room.close_all(CloseCode.DOCUMENT_DELETED, "this wedding was deleted")
            self._registry.forget(room)
            closed.append(room)
        return closed


def _change_a_copy(
    snapshot: bytes, client_id: int, change: Callable[[Doc[Any]], T]
) -> tuple[T, list[bytes]]:
    """Run ``change`` on a document made of ``snapshot`` (the caller's alone: a worker
    thread may run it); its result and the updates it wrote, in order."""
    scratch: Doc[Any] = Doc(client_id=client_id)
    scratch.apply_update(snapshot)
    updates: list[bytes] = []

    def capture(event: TransactionEvent) -> None:
        updates.append(event.update)

    # pycrdt's observer holds the Doc from Rust, where the garbage collector cannot see
    # it: without the unobserve every edit would leak its copy.
    subscription = scratch.observe(capture)
    try:
        result = change(scratch)
    finally:
        scratch.unobserve(subscription)
    return result, updates
