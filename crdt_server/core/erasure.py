"""Deletion that is erasure, and revocations that outlive a restart.

A deleted wedding is tombstoned in the store (see :meth:`storage.Store.erase_wedding`):
its rows are gone, every HTTP request and upgrade for it is refused with 410, open sockets
close with 4404, and nothing re-creates it until an admin lifts the tombstone. Whether its
bytes are gone from the store's files is tracked per wedding (``done`` / ``pending``); a
background task retries what another process's reader kept from finishing.

Erasing one guest removes them from the wedding's documents as an ordinary server edit
(every client receives it like any change), then folds each of the wedding's logs into a
snapshot of its document: a Yjs snapshot with garbage collection keeps deleted items' ids
and lengths, never their content, so the name and contact are then nowhere in the store.

Revocations are written to the store before they take effect, loaded on start and
re-read every few seconds (a process that missed the bus event still learns of them).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from crdt_server import clock
from crdt_server.actor import Actor
from crdt_server.auth.principals import Revocations
from crdt_server.cluster.messages import Delete, Lift, Revoke, to_event
from crdt_server.core.crdt import crdt_call
from crdt_server.core.hooks import Sender
from crdt_server.core.registry import RoomRegistry
from crdt_server.core.weddings import WeddingService
from crdt_server.errors import CloseCode
from crdt_server.storage import Revocation, Store, StoreError

__all__ = ["ErasureService"]

log = logging.getLogger("crdt_server.core.erasure")

REFRESH_SECONDS = 5.0
"""How often tombstones and revocations are re-read from the store (the bus may drop an
event; the store never forgets one)."""
SCRUB_RETRY_SECONDS = 0.2
"""How often an erasure whose bytes are not gone yet is retried."""


class ErasureService:
    """Tombstones, erasure status and durable revocations of one process."""

    def __init__(
        self,
        registry: RoomRegistry,
        store: Store,
        weddings: WeddingService,
        revocations: Revocations,
        *,
        keep_revocations: float,
    ) -> None:
        self._registry = registry
        self._store = store
        self._weddings = weddings
        self._revocations = revocations
        self._keep = keep_revocations
        self._tombstones: set[str] = set()
        self._erasing: set[str] = set()
        """Being erased by this process: refused already, whatever a refresh reads."""
        self._pending: set[str] = set()
        """Erased weddings whose bytes may still be readable in the store's files."""
        self._tasks: list[asyncio.Task[None]] = []
        self._scrub_wanted = asyncio.Event()

    async def start(self) -> None:
        """Load tombstones and revocations; start re-reading them and retrying scrubs."""
        await self.refresh()
        self._tasks = [
            asyncio.create_task(self._refresh_loop(), name="erasure-refresh"),
            asyncio.create_task(self._scrub_loop(), name="erasure-scrub"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def gone(self, wedding_id: str) -> bool:
        """Whether the wedding was erased (and not restored): refuse it with 410."""
        return wedding_id in self._tombstones or wedding_id in self._erasing

    def status(self, wedding_id: str) -> str | None:
        """``done`` once the erased wedding's bytes are gone from the store's files,
        ``pending`` until then; ``None`` if the wedding is not erased."""
        if wedding_id not in self._tombstones:
            return None
        return "pending" if wedding_id in self._pending else "done"

    # -- weddings ----------------------------------------------------------------------

    async def erase_wedding(self, wedding_id: str) -> tuple[int, bool]:
        """Erase a wedding everywhere; returns (documents deleted, bytes gone already)."""
        self._erasing.add(wedding_id)  # from now on, no upgrade or request gets in
        try:
            self._weddings.close_rooms(wedding_id)
            erased = await self._store.erase_wedding(wedding_id)
            self._tombstones.add(wedding_id)
        finally:
            self._erasing.discard(wedding_id)
        self._registry.bus.publish_event(to_event(Delete(wedding_id)))
        if not erased.scrubbed:
            self._pending.add(wedding_id)
            self._scrub_wanted.set()
        return erased.documents, erased.scrubbed

    def on_deleted(self, wedding_id: str) -> None:
        """Another process erased the wedding: refuse it here too, close its rooms."""
        self._tombstones.add(wedding_id)
        self._weddings.close_rooms(wedding_id)

    async def lift(self, wedding_id: str) -> bool:
        """Let an erased wedding's id be used again; whether it was erased."""
        lifted = await self._store.lift_tombstone(wedding_id)
        self._tombstones.discard(wedding_id)
        self._pending.discard(wedding_id)
        self._registry.bus.publish_event(to_event(Lift(wedding_id)))
        return lifted

    def on_lifted(self, wedding_id: str) -> None:
        self._tombstones.discard(wedding_id)
        self._pending.discard(wedding_id)

    # -- one person ---------------------------------------------------------------------

    async def erase_guest(self, wedding_id: str, guest_id: str) -> bool:
        """Remove a guest (entry and seat) and rewrite the wedding's stored logs so their
        content is nowhere in the store; whether the guest was there."""

        domain, origin = self._weddings.domain, Sender(Actor("admin", "admin"), "server:erasure")
        found = False
        for kind in domain.kinds:
            forget = functools.partial(domain.forget, kind=kind, person=guest_id)
            found |= await self._weddings.edit(f"{wedding_id}/{kind}", forget, origin)
        # Restore points, delivery payloads, findings quoting their name and their events
        # (the events feature's: guest.added carries the name) go.
        await self._registry.hooks.guest_erased(wedding_id, guest_id)
        # Copies the server derives from the documents (a vendor's projection of the
        # guests) drop the guest first, then are rewritten after the documents. Every room
        # the wedding has stored is rewritten (the documents, the findings, rooms of kinds
        # the domain does not know), whatever quoted the guest.
        derived = await self._registry.hooks.derived_rooms(wedding_id)
        stored = [n for n in await self._store.list(f"{wedding_id}/") if n not in derived]
        for name in [*stored, *derived]:
            await self._rewrite(name)
        if not await self._store.scrub():
            self._scrub_wanted.set()
        return found

    async def erase_member(self, wedding_id: str, sub: str) -> bool:
        """A member's erasure: every feature forgets them (their entry, their messages,
        their inbox, what they set up), then the store's files are scrubbed; whether any
        feature knew them."""
        known = await self._registry.hooks.member_erased(wedding_id, sub)
        if not await self._store.scrub():
            self._scrub_wanted.set()
        return known

    async def _rewrite(self, name: str) -> None:
        """Fold the document's whole stored log into one snapshot of what it holds now
        (deleted content garbage collected; content still waiting on a dependency is
        dropped: it may name the person), then reload the room from that snapshot."""
        async with self._weddings.room(name) as room:
            await room.flush()
            if room.last_seq == 0:
                return
            snapshot = crdt_call(room.doc.get_update)
            await self._store.compact(name, room.last_seq, snapshot)
            await room.reload()

    # -- revocations --------------------------------------------------------------------

    async def revoke(
        self, sub: str, wedding: str | None, *, cascade: bool = True
    ) -> tuple[float, int]:
        """Refuse ``sub``'s tokens issued until now (stored first), close their sessions
        here and in every other process; returns (when, sessions closed here). Without
        ``cascade`` (a member's role changed: they stay a member) what they set up goes on
        (no :meth:`Extension.on_revoke`)."""
        at = clock.now()
        await self._store.revoke(Revocation(sub, wedding, at), forget_before=at - self._keep)
        self._revocations.revoke(sub, wedding, at)
        # What they set up stops too, durably: a revocation is forgotten once no token
        # could outlive it, a disabled webhook or a deleted feed is not.
        if cascade:
            await self._registry.hooks.revoke(sub, wedding)
        closed = self._registry.close_sessions(
            sub, wedding, CloseCode.TOKEN_EXPIRED, "session revoked"
        )
        self._registry.hooks.revoked(sub, wedding)
        self._registry.bus.publish_event(to_event(Revoke(sub, wedding, at)))
        return at, closed

    # -- keeping up ---------------------------------------------------------------------

    async def refresh(self) -> None:
        """Re-read tombstones and revocations from the store."""
        tombstones = await self._store.tombstones()
        for wedding_id in set(tombstones) - self._tombstones:
            self.on_deleted(wedding_id)
        self._tombstones = set(tombstones)
        for r in await self._store.revocations():
            self._revocations.revoke(r.sub, r.wedding, r.at)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.refresh()
            except StoreError as exc:
                log.warning("cannot re-read tombstones and revocations: %s", exc)

    async def _scrub_loop(self) -> None:
        while True:
            await self._scrub_wanted.wait()
            try:
                done = await self._store.scrub()
            except StoreError as exc:
                log.warning("scrubbing erased data failed, retrying: %s", exc)
                done = False
            if done:
                self._pending.clear()
                self._scrub_wanted.clear()
            else:
                await asyncio.sleep(SCRUB_RETRY_SECONDS)
