"""The threads feature's ground: its extension's life (the store, the SQLite search
index's merges after an erasure), a thread as a viewer may see it (its row, its
participants, its unread count) and what notifications say of threads; the thread and
message rules build on it (:mod:`crdt_server.features.threads.extension`,
:mod:`crdt_server.features.threads.extension_messages`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Collection, Sequence
from typing import Any, NamedTuple

from crdt_server.core.hooks import Core, Extension
from crdt_server.errors import NotFound
from crdt_server.features.events import EventLog
from crdt_server.features.notifications import Notifications, ThreadQuote
from crdt_server.features.people import People
from crdt_server.features.threads import tables
from crdt_server.features.threads.domain import Viewer, plain_mentions, thread_json
from crdt_server.features.threads.tables import ThreadRow
from crdt_server.storage import Gateway, NewEvent, audience_of

__all__ = ["ThreadAccess", "VisibleThread"]


class VisibleThread(NamedTuple):
    """A thread a viewer may see: its row and its participants."""

    row: ThreadRow
    participants: list[str]


log = logging.getLogger("crdt_server.threads")

MERGE_CHECK_SECONDS = 2.0
"""How often the SQLite search index looks for newly erased weddings."""


class ThreadAccess(Extension):
    """The threads extension's store and who may see a thread; :class:`Threads
    <crdt_server.features.threads.extension.Threads>` is the feature."""

    def __init__(
        self, core: Core, events: EventLog, people: People, notifications: Notifications
    ) -> None:
        self._events = events
        self._people = people
        self._inbox = notifications
        notifications.describe_threads(self)
        self.db = Gateway.of(core.store)
        self._store = core.store
        self._merger: asyncio.Task[None] | None = None

    # -- hooks --------------------------------------------------------------------------

    async def start(self, core: Core) -> None:
        if tables.search_needs_merging(self.db):
            self._merger = asyncio.create_task(self._merge_after_erasures(), name="thread-fts")

    async def close(self) -> None:
        if self._merger is not None:
            self._merger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._merger

    async def _merge_after_erasures(self) -> None:
        """SQLite's FTS5 (before 3.44's secure-delete) keeps a deleted row's words in its
        older index segments until they merge: after a wedding is erased (here or by
        another process), merge them and scrub the file, so its messages' words go too."""
        store = self._store
        known: set[str] | None = None
        while True:
            try:
                erased = set(await store.tombstones())
                if known is None or erased - known:
                    await tables.merge_search(self.db)
                    await store.scrub()
                known = erased
            except Exception:
                log.exception("merging the thread search index failed; retrying")
            await asyncio.sleep(MERGE_CHECK_SECONDS)

    # -- a thread as a viewer sees it ---------------------------------------------------

    def _event(
        self,
        wedding: str,
        type_: str,
        data: dict[str, Any],
        viewer: Viewer,
        participants: Sequence[str],
        anchors: Sequence[dict[str, str]],
        priority: str = "normal",
    ) -> NewEvent:
        doc = anchors[0]["doc"] if anchors else None
        return NewEvent(
            wedding,
            type_,
            json.dumps(data, separators=(",", ":")),
            doc,
            sub=viewer.actor.sub,
            role=viewer.actor.role,
            priority=priority,
            audience=audience_of(participants),
        )

    async def _visible_row(self, wedding: str, tid: str, viewer: Viewer) -> VisibleThread:
        """The thread's row and participants if the viewer may see it, else 404."""
        row = await tables.thread_row(self.db, wedding, tid)
        if row is None:
            raise NotFound("no such thread")
        participants = (await tables.participants_of(self.db, wedding, [tid]))[tid]
        if any(d not in viewer.docs for d in row.doc_list()) or (
            not viewer.lead and viewer.actor.sub not in participants
        ):
            raise NotFound("no such thread")
        return VisibleThread(row, participants)

    async def thread(self, wedding: str, tid: str, viewer: Viewer) -> dict[str, Any]:
        row, participants = await self._visible_row(wedding, tid, viewer)
        unread = await tables.unread_counts(self.db, wedding, [tid], viewer.actor.sub)
        return await self._thread_json(wedding, row, participants, unread.get(tid, 0))

    async def _thread_json(
        self,
        wedding: str,
        row: ThreadRow,
        participants: Sequence[str],
        unread: int,
        roles: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        if roles is None:
            roles = {m.sub: m.role for m in await self._people.members(wedding)}
        return {**thread_json(row, participants, roles), "unread": unread}

    # -- what notifications say of threads (ThreadNotices) ------------------------------------

    async def subjects(self, wedding: str, threads: Collection[str]) -> dict[str, str]:
        """The subjects of those of ``threads`` that exist, by id."""
        return await tables.subjects(self.db, wedding, threads)

    async def quote(self, wedding: str, thread: str, message: str) -> ThreadQuote | None:
        """The message a notification is about, as an email says it (``None``: gone)."""
        found = await tables.quote(self.db, wedding, thread, message)
        if found is None:
            return None
        return ThreadQuote(
            found.subject, found.author, plain_mentions(found.body), bool(found.deleted)
        )
