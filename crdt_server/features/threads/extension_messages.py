"""Messages of a thread: listed, posted idempotently under the client's id, edited or
deleted by their author, reacted to, and read up to a point (with the notifications about
them)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Collection
from typing import Any

from crdt_server.errors import Conflict, Forbidden, Impossible, NotFound
from crdt_server.features.notifications import extension as inbox
from crdt_server.features.threads.domain import (
    MESSAGE_COLUMNS,
    RANK,
    Viewer,
    mentions_in,
    message_json,
    recipients,
    unnotified_mentions,
    who_sees,
)
from crdt_server.features.threads.extension_access import ThreadAccess
from crdt_server.features.threads.tables import Events, Sql, Tx

__all__ = ["ThreadMessages"]


class ThreadMessages(ThreadAccess):
    """The message rules of the threads feature (see
    :mod:`crdt_server.features.threads.extension`)."""

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
