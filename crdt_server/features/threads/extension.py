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

The rules of threads are here; those of messages are in
:mod:`crdt_server.features.threads.extension_messages`, and what both stand on (the
store, a thread as a viewer may see it) in
:mod:`crdt_server.features.threads.extension_access`.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

from crdt_server.actor import Actor
from crdt_server.errors import Conflict, Forbidden, Impossible
from crdt_server.features.people.domain import member_json
from crdt_server.features.threads.domain import (
    MAX_BODY_BYTES,
    THREAD_COLUMNS,
    Viewer,
    contains_pattern,
    hidden_docs,
)
from crdt_server.features.threads.extension_access import optimize_search
from crdt_server.features.threads.extension_messages import ThreadMessages
from crdt_server.features.threads.tables import Events, Sql, Tx
from crdt_server.storage import NewEvent

__all__ = ["MAX_BODY_BYTES", "Threads", "Viewer", "member_json"]

IDEMPOTENCY_SECONDS = 24 * 3600.0
"""How long an ``Idempotency-Key`` of ``POST .../threads`` is kept (API.md)."""


class Threads(ThreadMessages):
    """The conversations feature (see the module docstring)."""

    name = "threads"

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
            await self.db.write(optimize_search())
        return found
