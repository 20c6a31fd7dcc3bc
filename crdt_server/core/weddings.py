"""Wedding-level operations for clients that are not live editors (the HTTP API's core).

Everything here goes through the same rooms as the WebSocket clients, so an edit made over
HTTP is validated, committed and broadcast exactly like one made in an editor, and the
answer comes only after the commit.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from pycrdt import Doc, Map, TransactionEvent

from crdt_server.codec.updates import UpdateError, decode_state_vector, inspect_update
from crdt_server.core.crdt import CrdtFailure, crdt_call, replay
from crdt_server.core.registry import RoomRegistry
from crdt_server.core.room import Room
from crdt_server.errors import CloseCode, ProtocolError
from crdt_server.names import CONFLICTS, ROOM_KINDS
from documents import DOCUMENT_KINDS, Conflict, apply_operation, check, to_json
from storage import DocumentStore

__all__ = ["ConflictsKeeper", "PresenceEntry", "WeddingService"]

T = TypeVar("T")
log = logging.getLogger("crdt_server.core.weddings")


@dataclass(frozen=True, slots=True)
class PresenceEntry:
    doc: str
    user_id: str
    name: str
    role: str
    connections: int
    last_activity: float


class WeddingService:
    def __init__(self, registry: RoomRegistry, store: DocumentStore) -> None:
        self._registry = registry
        self._store = store
        self._edit_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        # One client id for the edits this process makes itself (HTTP operations), so a
        # wedding's state vector grows by one entry per process, not one per operation.
        self._client_id = random.getrandbits(52)

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

    async def read_json(self, wedding_id: str, kind: str) -> dict[str, Any]:
        async with self.room(f"{wedding_id}/{kind}") as room:
            if kind == CONFLICTS:
                found = room.doc.get(CONFLICTS, type=Map).to_py() or {}
                data = {"kind": CONFLICTS, "conflicts": [found[k] for k in sorted(found)]}
            else:
                data = to_json(room.doc, kind)
            await room.wait_committed()
            return data

    async def apply_update(self, name: str, update: bytes, origin: str) -> bool:
        """Apply a client's update; returns whether it changed anything, once committed."""
        try:
            summary = inspect_update(update)
        except UpdateError as exc:
            raise ProtocolError(f"malformed update: {exc}") from exc
        async with self.room(name) as room:
            index = await room.apply(update, summary, origin)
            await room.wait_committed(index)
            return index is not None

    async def sync(self, name: str, state_vector: bytes, update: bytes, origin: str) -> bytes:
        """Mobile sync: apply the client's pending update, return what it is missing."""
        if update:
            await self.apply_update(name, update, origin)
        async with self.room(name) as room:
            try:
                decode_state_vector(state_vector)  # counts checked before pycrdt sees them
                diff = crdt_call(room.doc.get_update, state_vector)
            except (CrdtFailure, UpdateError) as exc:
                raise ProtocolError(f"bad state vector: {exc}") from exc
            await room.wait_committed()
            return diff

    async def operate(
        self, wedding_id: str, kind: str, op: dict[str, Any], origin: str
    ) -> dict[str, Any]:
        """Run a domain operation as one Yjs transaction; answered once committed.

        Raises :class:`documents.OperationError` (nothing changed) for an invalid operation.
        """
        return await self.edit(
            f"{wedding_id}/{kind}",
            lambda doc: apply_operation(doc, kind, op, origin=origin),
            origin,
        )

    async def edit(self, name: str, change: Callable[[Doc[Any]], T], origin: str) -> T:
        """Make a server-side change to a room's document; returns once it is committed.

        ``change`` runs on a private copy, so a change refused half way leaves no trace;
        its update then enters the room like any client's (validated, committed, broadcast).
        """
        lock = self._edit_locks.get(name)
        if lock is None:
            lock = self._edit_locks[name] = asyncio.Lock()
        async with lock, self.room(name) as room:
            scratch: Doc[Any] = Doc(client_id=self._client_id)
            scratch.apply_update(room.doc.get_update())
            updates: list[bytes] = []

            def capture(event: TransactionEvent) -> None:
                updates.append(event.update)

            # pycrdt's observer holds the Doc from Rust, where the garbage collector cannot
            # see it: without the unobserve every edit would leak its scratch copy.
            subscription = scratch.observe(capture)
            try:
                result = change(scratch)
            finally:
                scratch.unobserve(subscription)
            for update in updates:
                index = await room.apply(update, inspect_update(update), origin)
                await room.wait_committed(index)
            return result

    async def documents(self, wedding_id: str) -> dict[str, Doc[Any]]:
        """The wedding's four documents as they are now (loaded rooms, else the store)."""
        loaded: dict[str, Doc[Any]] = {}
        for kind in DOCUMENT_KINDS:
            room = self._registry.rooms.get(f"{wedding_id}/{kind}")
            if room is not None:
                loaded[kind] = room.doc
                continue
            stored = await self._store.load(f"{wedding_id}/{kind}")
            if stored is not None:
                loaded[kind] = replay(stored.updates)[0].doc
        return loaded

    async def state_vector(self, name: str) -> bytes:
        async with self.room(name) as room:
            return room.doc.get_state()

    def presence(self, wedding_id: str, docs: set[str]) -> list[PresenceEntry]:
        """Who is connected to which of ``docs`` of the wedding, one entry per user."""
        entries: list[PresenceEntry] = []
        for kind in DOCUMENT_KINDS:
            room = self._registry.rooms.get(f"{wedding_id}/{kind}")
            if room is None or kind not in docs:
                continue
            users: dict[str, PresenceEntry] = {}
            for conn in room.connections:
                p = conn.principal
                seen = users.get(p.user_id)
                users[p.user_id] = PresenceEntry(
                    doc=kind,
                    user_id=p.user_id,
                    name=p.name,
                    role=p.role,
                    connections=(seen.connections if seen else 0) + 1,
                    last_activity=max(conn.last_activity, seen.last_activity if seen else 0.0),
                )
            entries += sorted(users.values(), key=lambda e: e.user_id)
        return entries

    async def conflicts(self, wedding_id: str, docs: set[str]) -> list[Conflict]:
        """The invariant findings of the wedding, limited to what the caller may read."""
        loaded = await self.documents(wedding_id)
        return [c for c in check(loaded) if all(p.split("/")[0] in docs for p in c.paths)]

    def close_rooms(self, wedding_id: str) -> list[Room]:
        """Close the wedding's rooms in this process with 4404 and unload them (deleting a
        wedding is :meth:`crdt_server.core.erasure.ErasureService.erase_wedding`)."""
        closed: list[Room] = []
        for kind in ROOM_KINDS:
            room = self._registry.rooms.get(f"{wedding_id}/{kind}")
            if room is not None:
                room.close_all(CloseCode.DOCUMENT_DELETED, "this wedding was deleted")
                self._registry.forget(room)
                closed.append(room)
        return closed


class ConflictsKeeper:
    """Keeps each wedding's read-only ``{wedding_id}/conflicts`` room up to date.

    Whenever one of the four documents changes (here or in another process), the findings
    of :func:`documents.check` are recomputed (debounced) and written into the conflicts
    document's ``conflicts`` map: one entry per finding, keyed by its code and paths, each
    ``{"code", "paths", "message"}``. Editors show conflicts live by joining that room.
    """

    def __init__(self, service: WeddingService, debounce: float = 0.25) -> None:
        self._service = service
        self._debounce = debounce
        self._scheduled: dict[str, asyncio.TimerHandle] = {}
        self._running: set[asyncio.Task[None]] = set()

    def changed(self, room: Room) -> None:
        wedding_id, _, kind = room.name.partition("/")
        if kind == CONFLICTS or wedding_id in self._scheduled:
            return
        loop = asyncio.get_running_loop()
        self._scheduled[wedding_id] = loop.call_later(self._debounce, self._start, wedding_id)

    def _start(self, wedding_id: str) -> None:
        self._scheduled.pop(wedding_id, None)
        task = asyncio.create_task(self._refresh(wedding_id), name=f"conflicts-{wedding_id}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _refresh(self, wedding_id: str) -> None:
        try:
            await self.refresh(wedding_id)
        except Exception:
            log.exception("could not refresh the conflicts of wedding %s", wedding_id)

    async def refresh(self, wedding_id: str) -> None:
        findings = check(await self._service.documents(wedding_id))
        wanted = {_conflict_key(c): c for c in findings}

        def write(doc: Doc[Any]) -> None:
            entries = doc.get(CONFLICTS, type=Map)
            with doc.transaction(origin="conflicts"):
                for key in [k for k in entries.keys() if k not in wanted]:
                    del entries[key]
                for key, conflict in wanted.items():
                    value = {
                        "code": conflict.code,
                        "paths": list(conflict.paths),
                        "message": conflict.message,
                    }
                    if entries.get(key) != value:
                        entries[key] = value

        await self._service.edit(f"{wedding_id}/{CONFLICTS}", write, "server:conflicts")

    async def close(self) -> None:
        for timer in self._scheduled.values():
            timer.cancel()
        self._scheduled.clear()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)


def _conflict_key(conflict: Conflict) -> str:
    digest = hashlib.sha1("\x00".join((conflict.code, *conflict.paths)).encode()).hexdigest()
    return f"{conflict.code}:{digest[:12]}"
