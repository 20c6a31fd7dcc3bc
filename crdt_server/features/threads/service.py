"""Conversations: the member directory, threads, messages, read marks and notifications.

Threads and messages are server-owned rows (not Yjs documents): the server decides who
wrote a message (always the authenticated caller) and who sees a thread (its participants,
plus the couple and the planner; never a role that may not read a document it is anchored
to). Every change is one transaction holding its rows, its wedding events (with the
thread's participants as their audience, so the event stream filters them) and the
notifications and email outbox rows it causes (written by the notifications feature's
steps, composed into the transaction): acknowledged means all of it is stored.

Messages carry a client id and are created idempotently: the same id again answers the
stored message, another body under it is a conflict. The server numbers each thread's
messages (``seq``) in commit order; read marks and unread counts use that number.

Threads build on two features: the member directory (:class:`People`, who may take part,
who is mentioned) and notifications (:class:`Notifications`, each person's inbox and the
email outbox), which they tell what a thread notification is about (:meth:`subjects`,
:meth:`quote`). Erasing a member is one transaction of each owner's step.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from crdt_server.actor import Actor
from crdt_server.core.hooks import Core, Extension
from crdt_server.errors import Conflict, Forbidden, Impossible, NotFound
from crdt_server.features.db import FeatureDb
from crdt_server.features.events.log import EventLog
from crdt_server.features.notifications import inbox
from crdt_server.features.notifications.inbox import Notifications, ThreadQuote
from crdt_server.features.people.directory import People
from crdt_server.features.people.model import member_json
from crdt_server.features.threads.db import SCHEMA, Events, Sql, Tx
from crdt_server.features.threads.model import (
    MAX_BODY_BYTES,
    MESSAGE_COLUMNS,
    RANK,
    THREAD_COLUMNS,
    Viewer,
    contains_pattern,
    hidden_docs,
    mentions_in,
    message_json,
    recipients,
    thread_json,
    unnotified_mentions,
    who_sees,
)
from crdt_server.storage import NewEvent, audience_of

__all__ = ["MAX_BODY_BYTES", "Threads", "Viewer", "member_json"]

log = logging.getLogger("crdt_server.threads")

MERGE_CHECK_SECONDS = 2.0
"""How often the SQLite search index looks for newly erased weddings."""
IDEMPOTENCY_SECONDS = 24 * 3600.0
"""How long an ``Idempotency-Key`` of ``POST .../threads`` is kept (API.md)."""


class Threads(Extension):
    """The conversations feature (see the module docstring)."""

    name = "threads"

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
                    await self.db.write(_optimize())
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

    # -- threads ------------------------------------------------------------------------

    async def create_thread(
        self,
        wedding: str,
        viewer: Viewer,
        *,
        subject: str,
        kind: str,
        priority: str,
        anchors: list[dict[str, str]],
        participants: list[str],
        once: tuple[str, str] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Start a thread; (thread, created). ``once`` is an ``Idempotency-Key`` and the
        request's fingerprint: the same key again answers the thread it made (kept 24 h),
        with another fingerprint a 409."""
        for anchor in anchors:
            if anchor["doc"] not in viewer.docs:
                raise Forbidden(f"{anchor['doc']!r} is not open to you", field="anchors")
        subs = sorted({viewer.actor.sub, *participants})
        known = {m.sub: m for m in await self._people.members(wedding)}
        unknown = [s for s in subs if s not in known and s != viewer.actor.sub]
        if unknown:
            raise Impossible(f"not a member of this wedding: {unknown[0]!r}", field="participants")
        tid = "t_" + secrets.token_hex(8)
        now = time.time()
        docs = "," + ",".join(sorted({a["doc"] for a in anchors})) + ","
        data = {"thread": tid, "subject": subject, "kind": kind, "priority": priority}
        event = self._event(wedding, "thread.created", data, viewer, subs, anchors, priority)

        def tx() -> Tx[str | None]:
            if once is not None:
                yield Sql(
                    "DELETE FROM {t}thread_requests WHERE wedding = ? AND expires_at <= ?",
                    (wedding, now),
                )
                found = yield Sql(
                    "SELECT fingerprint, thread FROM {t}thread_requests WHERE wedding = ?"
                    " AND sub = ? AND key = ? AND expires_at > ?",
                    (wedding, viewer.actor.sub, once[0], now),
                )
                if found:
                    if found[0][0] != once[1]:
                        raise Conflict(
                            "this Idempotency-Key was used with another body",
                            field="Idempotency-Key",
                        )
                    return str(found[0][1])
                yield Sql(
                    "INSERT INTO {t}thread_requests (wedding, sub, key, fingerprint, thread,"
                    " expires_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (wedding, sub, key)"
                    " DO UPDATE SET fingerprint = excluded.fingerprint,"
                    " thread = excluded.thread, expires_at = excluded.expires_at",
                    (wedding, viewer.actor.sub, once[0], once[1], tid, now + IDEMPOTENCY_SECONDS),
                )
            yield Sql(
                "INSERT INTO {t}threads (wedding, id, subject, kind, status, priority, anchors,"
                " docs, creator, creator_role, created_at, activity)"
                " VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?)",
                (
                    wedding,
                    tid,
                    subject,
                    kind,
                    priority,
                    json.dumps(anchors),
                    docs,
                    viewer.actor.sub,
                    viewer.actor.role,
                    now,
                    now,
                ),
            )
            for sub in subs:
                yield Sql(
                    "INSERT INTO {t}thread_participants (wedding, thread, sub) VALUES (?, ?, ?)",
                    (wedding, tid, sub),
                )
            yield Events([event])
            return None

        earlier = await self.db.write(tx())
        if earlier is not None:
            return await self.thread(wedding, earlier, viewer), False
        self._events.announce(wedding)
        return await self.thread(wedding, tid, viewer), True

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

    async def list_threads(
        self,
        wedding: str,
        viewer: Viewer,
        *,
        status: str | None,
        kind: str | None,
        priority: str | None,
        anchor: tuple[str, str] | None,
        participant: str | None,
        q: str | None,
        after: tuple[float, str] | None,
        limit: int,
    ) -> tuple[list[dict[str, Any]], tuple[float, str] | None]:
        sql = f"SELECT {THREAD_COLUMNS} FROM {{t}}threads t WHERE t.wedding = ?"
        params: list[Any] = [wedding]
        for doc in hidden_docs(viewer):
            sql += " AND t.docs NOT LIKE ?"
            params.append(f"%,{doc},%")
        if not viewer.lead:
            sql += (
                " AND EXISTS (SELECT 1 FROM {t}thread_participants p WHERE p.wedding = t.wedding"
                " AND p.thread = t.id AND p.sub = ?)"
            )
            params.append(viewer.actor.sub)
        for column, value in (("status", status), ("kind", kind), ("priority", priority)):
            if value is not None:
                sql += f" AND t.{column} = ?"
                params.append(value)
        if anchor is not None:
            needle = json.dumps({"doc": anchor[0], "id": anchor[1]})
            sql += " AND t.anchors LIKE ? ESCAPE '!'"
            params.append(contains_pattern(needle))
        if participant is not None:
            sql += (
                " AND EXISTS (SELECT 1 FROM {t}thread_participants p2 WHERE"
                " p2.wedding = t.wedding AND p2.thread = t.id AND p2.sub = ?)"
            )
            params.append(participant)
        if q is not None:
            words = re.findall(r"\w+", q)
            if not words:
                return [], None
            if self.db.dialect == "sqlite":
                sql += (
                    " AND t.id IN (SELECT thread FROM {t}thread_search WHERE thread_search"
                    " MATCH ? AND wedding = ?)"
                )
                params += [" ".join(f'"{w}"' for w in words), wedding]
            else:
                sql += (
                    " AND (t.search @@ plainto_tsquery('simple', ?) OR EXISTS (SELECT 1 FROM"
                    " {t}thread_messages m WHERE m.wedding = t.wedding AND m.thread = t.id"
                    " AND m.search @@ plainto_tsquery('simple', ?)))"
                )
                params += [" ".join(words), " ".join(words)]
        if after is not None:
            sql += " AND (t.activity < ? OR (t.activity = ? AND t.id < ?))"
            params += [after[0], after[0], after[1]]
        sql += " ORDER BY t.activity DESC, t.id DESC LIMIT ?"
        params.append(limit)
        rows = await self.db.read(sql, *params)
        tids = [str(r[0]) for r in rows]
        unread = await self._unread(wedding, tids, viewer.actor.sub)
        roles = {m.sub: m.role for m in await self._people.members(wedding)}
        members: dict[str, list[str]] = {tid: [] for tid in tids}
        if tids:
            # One query for the page's participants (not one per thread).
            found = await self.db.read(
                "SELECT thread, sub FROM {t}thread_participants WHERE wedding = ?"
                f" AND thread IN ({','.join('?' * len(tids))}) ORDER BY thread, sub",
                wedding,
                *tids,
            )
            for thread, sub in found:
                members[str(thread)].append(str(sub))
        items = [
            await self._thread_json(wedding, (*row, members[row[0]]), unread.get(row[0], 0), roles)
            for row in rows
        ]
        following = (float(rows[-1][9]), str(rows[-1][0])) if len(rows) == limit else None
        return items, following

    async def update_thread(
        self, wedding: str, tid: str, viewer: Viewer, changes: dict[str, Any]
    ) -> dict[str, Any]:
        row = await self._visible_row(wedding, tid, viewer)
        anchors = json.loads(row[5])
        before: list[str] = row[11]
        manager = viewer.lead or viewer.moderator or viewer.actor.sub == row[6]
        if set(changes) - {"status"} and not manager:
            raise Forbidden("only its creator, the couple or the planner may change this thread")
        participants = before
        if "participants" in changes:
            participants = sorted({str(row[6]), *changes["participants"]})
            known = {m.sub for m in await self._people.members(wedding)}
            unknown = [s for s in participants if s not in known and s not in before]
            if unknown:
                raise Impossible(
                    f"not a member of this wedding: {unknown[0]!r}", field="participants"
                )
        events: list[NewEvent] = []
        audience = sorted(set(before) | set(participants))
        status = changes.get("status")
        if status is not None and status != row[3]:
            kind = {"resolved": "thread.resolved", "archived": "thread.archived"}.get(
                status, "thread.reopened"
            )
            events.append(
                self._event(
                    wedding, kind, {"thread": tid, "status": status}, viewer, audience, anchors
                )
            )
        rest = {k: v for k, v in changes.items() if k != "status"}
        if rest:
            shown = {k: v for k, v in rest.items() if k != "participants"}
            if "participants" in rest:
                shown["participants"] = participants
            events.append(
                self._event(
                    wedding, "thread.updated", {"thread": tid, **shown}, viewer, audience, anchors
                )
            )
        now = time.time()

        def tx() -> Tx[None]:
            for column in ("subject", "status", "priority"):
                if column in changes:
                    yield Sql(
                        f"UPDATE {{t}}threads SET {column} = ?, activity = ? WHERE wedding = ?"
                        " AND id = ?",
                        (changes[column], now, wedding, tid),
                    )
            if "participants" in changes:
                yield Sql(
                    "DELETE FROM {t}thread_participants WHERE wedding = ? AND thread = ?",
                    (wedding, tid),
                )
                for sub in participants:
                    yield Sql(
                        "INSERT INTO {t}thread_participants (wedding, thread, sub)"
                        " VALUES (?, ?, ?)",
                        (wedding, tid, sub),
                    )
            if events:
                yield Events(events)

        await self.db.write(tx())
        if events:
            self._events.announce(wedding)
        return await self.thread(
            wedding,
            tid,
            viewer
            if viewer.lead or viewer.actor.sub in participants
            else Viewer(Actor(viewer.actor.sub, "planner"), viewer.docs),
        )

    # -- messages -----------------------------------------------------------------------

    async def messages(
        self, wedding: str, tid: str, viewer: Viewer, *, after: int, limit: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        await self._visible_row(wedding, tid, viewer)
        rows = await self.db.read(
            f"SELECT {MESSAGE_COLUMNS} FROM {{t}}thread_messages WHERE wedding = ? AND thread = ?"
            " AND seq > ? ORDER BY seq LIMIT ?",
            wedding,
            tid,
            after,
            limit,
        )
        items = [message_json(r, tid) for r in rows]
        return items, (items[-1]["seq"] if len(items) == limit else None)

    async def put_message(
        self,
        wedding: str,
        tid: str,
        mid: str,
        viewer: Viewer,
        *,
        body: str,
        reply_to: str | None,
        priority: str | None,
        reads: Callable[[str], Collection[str]] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Create a message once; (message, created). 409 if ``mid`` holds another one.

        Only who can see the thread is notified (``reads``: role -> the documents it may
        read, for threads anchored to documents; see :func:`who_sees`). The message's
        ``unnotified_mentions`` lists the mentioned members who cannot see it, as of this
        answer (a mention never widens a thread: its creator or a lead adds participants)."""
        row = await self._visible_row(wedding, tid, viewer)
        participants: list[str] = row[11]
        anchors = json.loads(row[5])
        if row[3] == "archived":
            raise Conflict("this thread is archived")
        fingerprint = hashlib.sha256(
            json.dumps([viewer.actor.sub, body, reply_to, priority]).encode()
        ).hexdigest()
        level = max(priority or "normal", row[4], key=RANK.__getitem__)
        members = {m.sub: m for m in await self._people.members(wedding)}
        mentions = mentions_in(body, members)
        can_see = who_sees(participants, members, {a["doc"] for a in anchors}, reads)
        now = time.time()
        email = self._inbox.emails
        queued = False

        def tx() -> Tx[tuple[list[Any], bool]]:
            nonlocal queued
            found = yield Sql(
                f"SELECT {MESSAGE_COLUMNS} FROM {{t}}thread_messages WHERE wedding = ?"
                " AND thread = ? AND id = ?",
                (wedding, tid, mid),
            )
            if found:
                if found[0][12] != fingerprint:
                    raise Conflict("this message id holds another message", field="id")
                return list(found[0]), False
            parent_author = None
            if reply_to is not None:
                parent = yield Sql(
                    "SELECT author FROM {t}thread_messages WHERE wedding = ? AND thread = ?"
                    " AND id = ?",
                    (wedding, tid, reply_to),
                )
                if not parent:
                    raise Impossible("no such message in this thread", field="reply_to")
                parent_author = str(parent[0][0])
            counter = yield Sql(
                "UPDATE {t}threads SET last_seq = last_seq + 1, activity = ? WHERE wedding = ?"
                " AND id = ? RETURNING last_seq",
                (now, wedding, tid),
            )
            if not counter:
                raise NotFound("no such thread")
            seq = int(counter[0][0])
            stored = (
                mid, seq, viewer.actor.sub, viewer.actor.role, body, reply_to, now, None, 0, "{}",
                json.dumps(mentions), level, fingerprint,
            )  # fmt: skip
            yield Sql(
                "INSERT INTO {t}thread_messages (wedding, thread, id, seq, author, author_role,"
                " body, reply_to, mentions, priority, created_at, fingerprint)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    wedding, tid, mid, seq, viewer.actor.sub, viewer.actor.role, body, reply_to,
                    json.dumps(mentions), level, now, fingerprint,
                ),
            )  # fmt: skip
            yield Sql(
                "INSERT INTO {t}thread_reads (wedding, thread, sub, up_to) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (wedding, thread, sub) DO UPDATE SET up_to = excluded.up_to",
                (wedding, tid, viewer.actor.sub, seq),
            )
            data = {
                "thread": tid,
                "message": mid,
                "seq": seq,
                "body": body,
                "reply_to": reply_to,
                "mentions": mentions,
                "unnotified_mentions": unnotified_mentions(
                    viewer.actor.sub, mentions, members, can_see
                ),
            }
            yield Events(
                [
                    self._event(
                        wedding, "thread.message_posted", data, viewer, participants, anchors, level
                    )
                ]
            )
            for sub, reason in recipients(
                viewer.actor, participants, members, mentions, parent_author, level, can_see
            ).items():
                member = members.get(sub)
                mailed = (
                    email
                    and member is not None
                    and bool(member.email)
                    and member.email_on
                    and (reason in ("mention", "urgent") or level != "normal")
                )
                queued = queued or mailed
                yield from inbox.notify(
                    wedding, sub, reason, tid, mid, viewer.actor, level, now, email=mailed
                )
            return list(stored), True

        stored, created = await self.db.write(tx())
        if created:
            self._events.announce(wedding)
        if queued:
            self._inbox.queued(wedding)
        missed = unnotified_mentions(viewer.actor.sub, json.loads(stored[10]), members, can_see)
        return {**message_json(stored, tid), "unnotified_mentions": missed}, created

    async def _own_message(
        self, wedding: str, tid: str, mid: str, viewer: Viewer
    ) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        row = await self._visible_row(wedding, tid, viewer)
        found = await self.db.read(
            f"SELECT {MESSAGE_COLUMNS} FROM {{t}}thread_messages WHERE wedding = ?"
            " AND thread = ? AND id = ?",
            wedding,
            tid,
            mid,
        )
        if not found:
            raise NotFound("no such message")
        return row, found[0]

    async def edit_message(
        self, wedding: str, tid: str, mid: str, viewer: Viewer, body: str | None
    ) -> dict[str, Any]:
        """Edit (``body``) or delete (``None``) a message: its author, or a moderator."""
        row, message = await self._own_message(wedding, tid, mid, viewer)
        if message[2] != viewer.actor.sub and not viewer.moderator:
            raise Forbidden("only its author or a moderator may change a message")
        if message[8]:
            raise Conflict("this message was deleted")
        members = {m.sub: m for m in await self._people.members(wedding)}
        now = time.time()
        kind = "thread.message_deleted" if body is None else "thread.message_edited"
        data: dict[str, Any] = {"thread": tid, "message": mid, "seq": int(message[1])}
        if body is not None:
            data["body"] = body
        event = self._event(wedding, kind, data, viewer, row[11], json.loads(row[5]))

        def tx() -> Tx[None]:
            if body is None:
                yield Sql(
                    "UPDATE {t}thread_messages SET body = '', deleted = 1, edited_at = ?,"
                    " reactions = '{}', mentions = '[]'"
                    " WHERE wedding = ? AND thread = ? AND id = ?",
                    (now, wedding, tid, mid),
                )
            else:
                yield Sql(
                    "UPDATE {t}thread_messages SET body = ?, edited_at = ?, mentions = ?"
                    " WHERE wedding = ? AND thread = ? AND id = ?",
                    (body, now, json.dumps(mentions_in(body, members)), wedding, tid, mid),
                )
            yield Events([event])

        await self.db.write(tx())
        self._events.announce(wedding)
        _, message = await self._own_message(wedding, tid, mid, viewer)
        return message_json(message, tid)

    async def react(
        self, wedding: str, tid: str, mid: str, viewer: Viewer, emoji: str, on: bool
    ) -> dict[str, Any]:
        row, message = await self._own_message(wedding, tid, mid, viewer)
        if message[8]:
            raise Conflict("this message was deleted")

        def tx() -> Tx[bool]:
            current = yield Sql(
                "SELECT reactions FROM {t}thread_messages WHERE wedding = ? AND thread = ?"
                " AND id = ?",
                (wedding, tid, mid),
            )
            reactions: dict[str, list[str]] = json.loads(current[0][0])
            subs = set(reactions.get(emoji, []))
            if (viewer.actor.sub in subs) == on:
                return False
            subs = subs | {viewer.actor.sub} if on else subs - {viewer.actor.sub}
            if subs:
                reactions[emoji] = sorted(subs)
            else:
                reactions.pop(emoji, None)
            yield Sql(
                "UPDATE {t}thread_messages SET reactions = ? WHERE wedding = ? AND thread = ?"
                " AND id = ?",
                (json.dumps(reactions, ensure_ascii=False), wedding, tid, mid),
            )
            data = {"thread": tid, "message": mid, "emoji": emoji, "on": on}
            yield Events(
                [self._event(wedding, "thread.reaction", data, viewer, row[11], json.loads(row[5]))]
            )
            return True

        if await self.db.write(tx()):
            self._events.announce(wedding)
        _, message = await self._own_message(wedding, tid, mid, viewer)
        return message_json(message, tid)

    async def mark_read(self, wedding: str, tid: str, viewer: Viewer, up_to: str) -> dict[str, Any]:
        await self._visible_row(wedding, tid, viewer)
        found = await self.db.read(
            "SELECT seq FROM {t}thread_messages WHERE wedding = ? AND thread = ? AND id = ?",
            wedding,
            tid,
            up_to,
        )
        if not found:
            raise Impossible("no such message in this thread", field="up_to")
        seq = int(found[0][0])

        def tx() -> Tx[None]:
            # Read marks only move forward (two devices may report out of order).
            yield Sql(
                "INSERT INTO {t}thread_reads (wedding, thread, sub, up_to) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (wedding, thread, sub) DO UPDATE SET up_to ="
                " CASE WHEN excluded.up_to > {t}thread_reads.up_to THEN excluded.up_to"
                " ELSE {t}thread_reads.up_to END",
                (wedding, tid, viewer.actor.sub, seq),
            )
            # The person's notifications of the messages up to there are read too.
            unread = yield from inbox.unread_about(wedding, viewer.actor.sub, tid)
            upto = yield from _messages_up_to(wedding, tid, seq, {m for _, m in unread})
            yield from inbox.mark_read(
                wedding, viewer.actor.sub, [i for i, m in unread if m in upto]
            )

        await self.db.write(tx())
        return await self.thread(wedding, tid, viewer)

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

    # -- erasure ---------------------------------------------------------------

    async def on_member_erased(self, wedding: str, sub: str) -> bool:
        """Per-person erasure, the threads' part: their messages become placeholders
        without author or body, their reactions, participations and read marks go, and so
        do the thread events they caused (their entry and inbox are the people and
        notifications features'); whether they wrote a message."""

        def tx() -> Tx[bool]:
            wrote = yield Sql(
                "SELECT 1 FROM {t}thread_messages WHERE wedding = ? AND author = ? LIMIT 1",
                (wedding, sub),
            )
            yield Sql(
                "UPDATE {t}thread_messages SET author = '', body = '', deleted = 1,"
                " mentions = '[]', fingerprint = '' WHERE wedding = ? AND author = ?",
                (wedding, sub),
            )
            rows = yield Sql(
                "SELECT thread, id, reactions FROM {t}thread_messages WHERE wedding = ?"
                " AND reactions LIKE ? ESCAPE '!'",
                (wedding, contains_pattern(json.dumps(sub))),
            )
            for thread, mid, raw in rows:
                reactions = {
                    e: [s for s in subs if s != sub] for e, subs in json.loads(raw).items()
                }
                reactions = {e: subs for e, subs in reactions.items() if subs}
                yield Sql(
                    "UPDATE {t}thread_messages SET reactions = ? WHERE wedding = ? AND thread = ?"
                    " AND id = ?",
                    (json.dumps(reactions, ensure_ascii=False), wedding, thread, mid),
                )
            for table in ("thread_participants", "thread_reads"):
                yield Sql(f"DELETE FROM {{t}}{table} WHERE wedding = ? AND sub = ?", (wedding, sub))
            yield Sql(
                "DELETE FROM {t}events WHERE wedding = ? AND sub = ? AND type LIKE 'thread.%'",
                (wedding, sub),
            )
            return bool(wrote)

        found = await self.db.write(tx())
        if self.db.dialect == "sqlite":
            # Merge the search index's segments so erased text is not left in old ones
            # (the erasure scrubs the files once every feature is done).
            await self.db.write(_optimize())
        return found


def _optimize() -> Tx[None]:
    yield Sql("INSERT INTO thread_search (thread_search) VALUES ('optimize')")


def _messages_up_to(wedding: str, tid: str, seq: int, mids: set[str]) -> Tx[set[str]]:
    """Those of ``mids`` that are messages of the thread numbered ``seq`` or less."""
    found: set[str] = set()
    ordered = sorted(mids)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = yield Sql(
            "SELECT id FROM {t}thread_messages WHERE wedding = ? AND thread = ? AND seq <= ?"
            f" AND id IN ({marks})",
            (wedding, tid, seq, *chunk),
        )
        found.update(str(r[0]) for r in rows)
    return found
