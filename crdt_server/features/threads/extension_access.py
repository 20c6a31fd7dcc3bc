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
from typing import Any

from crdt_server.core.hooks import Core, Extension
from crdt_server.errors import NotFound
from crdt_server.features.db import FeatureDb
from crdt_server.features.events.extension import EventLog
from crdt_server.features.notifications.extension import Notifications, ThreadQuote
from crdt_server.features.people.extension import People
from crdt_server.features.threads.domain import (
    THREAD_COLUMNS,
    Viewer,
    thread_json,
)
from crdt_server.features.threads.tables import SCHEMA, Sql, Tx
from crdt_server.storage import NewEvent, audience_of

__all__ = ["ThreadAccess", "optimize_search"]

log = logging.getLogger("crdt_server.threads")

MERGE_CHECK_SECONDS = 2.0
"""How often the SQLite search index looks for newly erased weddings."""


class ThreadAccess(Extension):
    """The threads extension's store and who may see a thread; :class:`Threads
    <crdt_server.features.threads.extension.Threads>` is the feature."""

    def __init__(self, events: EventLog, people: People, notifications: Notifications) -> None:
        self._events = events
        self._people = people
        self._inbox = notifications
        notifications.describe_threads(self)
        self._db: FeatureDb | None = None
        self._core: Core | None = None
        self._merger: asyncio.Task[None] | None = None

    # -- hooks --------------------------------------------------------------------------

    async def start(self, core: Core) -> None:
        self._core = core
        self._db = FeatureDb(core.store)
        await core.store.install(SCHEMA)
        if self._db.dialect == "sqlite":
            self._merger = asyncio.create_task(self._merge_after_erasures(), name="thread-fts")

    async def close(self) -> None:
        if self._merger is not None:
            self._merger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._merger
        if self._db is not None:
            await self._db.drain()

    async def _merge_after_erasures(self) -> None:
        """SQLite's FTS5 (before 3.44's secure-delete) keeps a deleted row's words in its
        older index segments until they merge: after a wedding is erased (here or by
        another process), merge them and scrub the file, so its messages' words go too."""
        assert self._core is not None
        store = self._core.store
        known: set[str] | None = None
        while True:
            try:
                erased = set(await store.tombstones())
                if known is None or erased - known:
                    await self.db.write(optimize_search())
                    await store.scrub()
                known = erased
            except Exception:
                log.exception("merging the thread search index failed; retrying")
            await asyncio.sleep(MERGE_CHECK_SECONDS)

    @property
    def db(self) -> FeatureDb:
        if self._db is None:
            raise RuntimeError("the threads extension has not been started")
        return self._db

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

    async def _visible_row(self, wedding: str, tid: str, viewer: Viewer) -> tuple[Any, ...]:
        """The thread's row and participants if the viewer may see it, else 404."""
        rows = await self.db.read(
            f"SELECT {THREAD_COLUMNS}, docs FROM {{t}}threads WHERE wedding = ? AND id = ?",
            wedding,
            tid,
        )
        if not rows:
            raise NotFound("no such thread")
        row = rows[0]
        participants = [
            r[0]
            for r in await self.db.read(
                "SELECT sub FROM {t}thread_participants WHERE wedding = ? AND thread = ?"
                " ORDER BY sub",
                wedding,
                tid,
            )
        ]
        docs = [d for d in str(row[11]).split(",") if d]
        if any(d not in viewer.docs for d in docs) or (
            not viewer.lead and viewer.actor.sub not in participants
        ):
            raise NotFound("no such thread")
        return (*row[:11], participants)

    async def thread(self, wedding: str, tid: str, viewer: Viewer) -> dict[str, Any]:
        row = await self._visible_row(wedding, tid, viewer)
        unread = await self._unread(wedding, [tid], viewer.actor.sub)
        return await self._thread_json(wedding, row, unread.get(tid, 0))

    async def _thread_json(
        self,
        wedding: str,
        row: Sequence[Any],
        unread: int,
        roles: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        if roles is None:
            roles = {m.sub: m.role for m in await self._people.members(wedding)}
        return {**thread_json(row, row[11], roles), "unread": unread}

    async def _unread(self, wedding: str, tids: Sequence[str], sub: str) -> dict[str, int]:
        if not tids:
            return {}
        marks = ",".join("?" * len(tids))
        rows = await self.db.read(
            "SELECT m.thread, COUNT(*) FROM {t}thread_messages m LEFT JOIN {t}thread_reads r"
            " ON r.wedding = m.wedding AND r.thread = m.thread AND r.sub = ?"
            f" WHERE m.wedding = ? AND m.thread IN ({marks}) AND m.author <> ? AND m.deleted = 0"
            " AND m.seq > COALESCE(r.up_to, 0) GROUP BY m.thread",
            sub,
            wedding,
            *tids,
            sub,
        )
        return {str(r[0]): int(r[1]) for r in rows}

    # -- what notifications say of threads (ThreadNotices) ------------------------------------

    async def subjects(self, wedding: str, threads: Collection[str]) -> dict[str, str]:
        """The subjects of those of ``threads`` that exist, by id."""
        ordered = sorted(threads)
        found: dict[str, str] = {}
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = await self.db.read(
                f"SELECT id, subject FROM {{t}}threads WHERE wedding = ? AND id IN ({marks})",
                wedding,
                *chunk,
            )
            found.update((str(r[0]), str(r[1])) for r in rows)
        return found

    async def quote(self, wedding: str, thread: str, message: str) -> ThreadQuote | None:
        """The message a notification is about, as an email says it (``None``: gone)."""
        found = await self.db.read(
            "SELECT t.subject, m.author, m.body, m.deleted FROM {t}threads t JOIN"
            " {t}thread_messages m ON m.wedding = t.wedding AND m.thread = t.id"
            " WHERE t.wedding = ? AND t.id = ? AND m.id = ?",
            wedding,
            thread,
            message,
        )
        if not found:
            return None
        subject, author, body, deleted = found[0]
        return ThreadQuote(str(subject), str(author), str(body), bool(deleted))


def optimize_search() -> Tx[None]:
    yield Sql("INSERT INTO thread_search (thread_search) VALUES ('optimize')")
