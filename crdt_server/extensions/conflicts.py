"""The conflicts keeper: each wedding's read-only ``{wedding_id}/conflicts`` room, kept up
to date, and ``conflict.detected`` / ``conflict.resolved`` events when findings come and go."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

from pycrdt import Doc, Map

from crdt_server.core.hooks import Actor, Core, Extension
from crdt_server.core.room import Room
from crdt_server.core.weddings import WeddingService
from crdt_server.names import CONFLICTS
from documents import Conflict, check
from storage import NewEvent

if TYPE_CHECKING:
    from crdt_server.extensions.events import EventLog

__all__ = ["ConflictsKeeper", "conflict_id"]

log = logging.getLogger("crdt_server.conflicts")

_ACTOR = Actor("server", "server", "server:conflicts")
_MOST_PRIVATE_FIRST = ("budget", "guests", "seating", "timeline")


def conflict_id(conflict: Conflict) -> str:
    """A finding's stable id: the same code on the same entries is the same conflict."""
    digest = hashlib.sha1("\x00".join((conflict.code, *conflict.paths)).encode()).hexdigest()
    return f"{conflict.code}:{digest[:12]}"


class ConflictsKeeper(Extension):
    """Keeps each wedding's read-only ``{wedding_id}/conflicts`` room up to date.

    Whenever one of the four documents changes (here or in another process), the findings
    of :func:`documents.check` are recomputed (debounced) and written into the conflicts
    document's ``conflicts`` map: one entry per finding, keyed by :func:`conflict_id`, each
    ``{"code", "paths", "message"}``. Editors show conflicts live by joining that room.
    A finding that appears or goes is recorded as a ``conflict.detected`` or
    ``conflict.resolved`` event when an :class:`EventLog` is given.
    """

    name = "conflicts"

    def __init__(self, *, debounce: float = 0.25, events: EventLog | None = None) -> None:
        self._debounce = debounce
        self._events = events
        self._service: WeddingService | None = None
        self._scheduled: dict[str, asyncio.TimerHandle] = {}
        self._running: set[asyncio.Task[None]] = set()

    async def start(self, core: Core) -> None:
        self._service = core.weddings

    def on_change(self, room: Room) -> None:
        wedding_id, kind = room.wedding_id, room.kind
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
        service = self._service
        if service is None:
            raise RuntimeError("the conflicts keeper has not been started")
        findings = check(await service.documents(wedding_id))
        wanted = {conflict_id(c): c for c in findings}
        came: list[str] = []
        went: list[tuple[str, dict[str, Any]]] = []

        def write(doc: Doc[Any]) -> None:
            entries = doc.get(CONFLICTS, type=Map)
            came.clear()
            went.clear()
            with doc.transaction(origin="conflicts"):
                for key in [k for k in entries.keys() if k not in wanted]:
                    old = entries[key]
                    went.append((key, old if isinstance(old, dict) else {}))
                    del entries[key]
                for key, conflict in wanted.items():
                    value = {
                        "code": conflict.code,
                        "paths": list(conflict.paths),
                        "message": conflict.message,
                    }
                    if key not in entries:
                        came.append(key)
                    if entries.get(key) != value:
                        entries[key] = value

        await service.edit(f"{wedding_id}/{CONFLICTS}", write, _ACTOR)
        if self._events is not None and (came or went):
            events = [
                _event(wedding_id, "conflict.detected", key, wanted[key].code, wanted[key].paths)
                for key in came
            ] + [
                _event(wedding_id, "conflict.resolved", key, old.get("code"), old.get("paths"))
                for key, old in went
            ]
            await self._events.record(events)

    async def close(self) -> None:
        for timer in self._scheduled.values():
            timer.cancel()
        self._scheduled.clear()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)


def _event(wedding_id: str, kind: str, key: str, code: Any, paths: Any) -> NewEvent:
    paths = [str(p) for p in paths] if isinstance(paths, list | tuple) else []
    docs = {p.split("/")[0] for p in paths}
    # An event belongs to one document (readers see the events of documents they may
    # read). A conflict between documents is filed under the one fewest roles may read in
    # the default matrix, so it reaches no one who could not see all of its entries.
    doc = next((d for d in _MOST_PRIVATE_FIRST if d in docs), None)
    data = {"id": key, "code": code, "paths": paths, "docs": sorted(docs)}
    return NewEvent(wedding_id, kind, json.dumps(data), doc, sub=_ACTOR.sub, role=_ACTOR.role)
