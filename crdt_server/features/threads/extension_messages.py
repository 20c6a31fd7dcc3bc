"""Messages of a thread: listed, posted idempotently under the client's id, edited or
deleted by their author, reacted to, and read up to a point (with the notifications about
them)."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from typing import Any

from crdt_server import clock
from crdt_server.actor import Actor
from crdt_server.errors import Conflict, Forbidden, Impossible, NotFound
from crdt_server.features import notifications as inbox
from crdt_server.features.events import store_events
from crdt_server.features.people import Member
from crdt_server.features.threads import tables_messages as messages
from crdt_server.features.threads.domain import (
    RANK,
    Viewer,
    mentions_in,
    message_fingerprint,
    message_json,
    read_mentions,
    recipients,
    unnotified_mentions,
    who_sees,
)
from crdt_server.features.threads.extension_access import ThreadAccess, VisibleThread
from crdt_server.features.threads.tables import Tx
from crdt_server.features.threads.tables_messages import MessageRow
from crdt_server.names import at_least

__all__ = ["ThreadMessages"]


class ThreadMessages(ThreadAccess):
    """The message rules of the threads feature (see
    :mod:`crdt_server.features.threads.extension`)."""

    # -- messages -----------------------------------------------------------------------

    async def messages(
        self, wedding: str, tid: str, viewer: Viewer, *, after: int, limit: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        await self._visible_row(wedding, tid, viewer)
        page = await messages.messages_after(self.db, wedding, tid, after, limit)
        items = [message_json(m, tid) for m in page]
        return items, (int(page[-1].seq) if len(page) == limit else None)

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
        reads: Callable[[Member], Collection[str]] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Create a message once; (message, created). 409 if ``mid`` holds another one.

        Only who can see the thread is notified (``reads``: role -> the documents it may
        read, for threads anchored to documents; see :func:`who_sees`). The message's
        ``unnotified_mentions`` lists the mentioned members who cannot see it, as of this
        answer (a mention never widens a thread: its creator or a lead adds participants)."""
        row, participants = await self._visible_row(wedding, tid, viewer)
        anchors = json.loads(row.anchors)
        if row.status == "archived":
            raise Conflict("this thread is archived")
        fingerprint = message_fingerprint(viewer.actor.sub, body, reply_to, priority)
        level = max(priority or "normal", row.priority, key=RANK.__getitem__)
        members = {m.sub: m for m in await self._people.members(wedding)}
        mentions, unresolved = read_mentions(body, members)
        can_see = who_sees(participants, members, {a["doc"] for a in anchors}, reads)
        unnotified = unnotified_mentions(viewer.actor.sub, mentions, members, can_see) + unresolved
        now = clock.now()
        email = self._inbox.emails
        queued = False

        def tx() -> Tx[tuple[MessageRow, bool]]:
            nonlocal queued
            found = yield from messages.message_in_tx(wedding, tid, mid)
            if found is not None:
                if found.fingerprint != fingerprint:
                    raise Conflict("this message id holds another message", field="id")
                return found, False
            parent_author = yield from _parent_author(wedding, tid, reply_to)
            seq = yield from messages.next_seq(wedding, tid, now)
            if seq is None:
                raise NotFound("no such thread")
            stored = MessageRow(
                mid, seq, viewer.actor.sub, viewer.actor.role, body, reply_to, now, None, 0, "{}",
                json.dumps(mentions), level, fingerprint,
            )  # fmt: skip
            yield from messages.insert_message(wedding, tid, stored)
            yield from messages.set_read_mark(wedding, tid, viewer.actor.sub, seq)
            data = {
                "thread": tid,
                "message": mid,
                "seq": seq,
                "body": body,
                "reply_to": reply_to,
                "mentions": mentions,
                "unnotified_mentions": unnotified,
            }
            posted = "thread.message_posted"
            event = self._event(wedding, posted, data, viewer, participants, anchors, level)
            yield from store_events([event])
            told = recipients(
                viewer.actor, participants, members, mentions, parent_author, level, can_see
            )
            queued = yield from _notify(
                wedding, tid, mid, viewer.actor, told, members, level, now, email
            )
            return stored, True

        stored, created = await self.db.run(tx())
        if created:
            self._events.announce(wedding)
        if queued:
            self._inbox.queued(wedding)
        missed = (
            unnotified_mentions(viewer.actor.sub, json.loads(stored.mentions), members, can_see)
            + read_mentions(stored.body, members)[1]
        )
        return {**message_json(stored, tid), "unnotified_mentions": missed}, created

    async def _own_message(
        self, wedding: str, tid: str, mid: str, viewer: Viewer
    ) -> tuple[VisibleThread, MessageRow]:
        thread = await self._visible_row(wedding, tid, viewer)
        found = await messages.message(self.db, wedding, tid, mid)
        if found is None:
            raise NotFound("no such message")
        return thread, found

    async def edit_message(
        self, wedding: str, tid: str, mid: str, viewer: Viewer, body: str | None
    ) -> dict[str, Any]:
        """Edit (``body``) or delete (``None``) a message: its author, or a moderator."""
        thread, message = await self._own_message(wedding, tid, mid, viewer)
        if message.author != viewer.actor.sub and not viewer.moderator:
            raise Forbidden("only its author or a moderator may change a message")
        if message.deleted:
            raise Conflict("this message was deleted")
        members = {m.sub: m for m in await self._people.members(wedding)}
        now = clock.now()
        kind = "thread.message_deleted" if body is None else "thread.message_edited"
        data: dict[str, Any] = {"thread": tid, "message": mid, "seq": int(message.seq)}
        if body is not None:
            data["body"] = body
        anchors = json.loads(thread.row.anchors)
        event = self._event(wedding, kind, data, viewer, thread.participants, anchors)

        def tx() -> Tx[None]:
            if body is None:
                yield from messages.delete_message(wedding, tid, mid, now)
            else:
                mentions = json.dumps(mentions_in(body, members))
                yield from messages.edit_message(wedding, tid, mid, body, mentions, now)
            yield from store_events([event])

        await self.db.run(tx())
        self._events.announce(wedding)
        _, message = await self._own_message(wedding, tid, mid, viewer)
        return message_json(message, tid)

    async def react(
        self, wedding: str, tid: str, mid: str, viewer: Viewer, emoji: str, on: bool
    ) -> dict[str, Any]:
        thread, message = await self._own_message(wedding, tid, mid, viewer)
        if message.deleted:
            raise Conflict("this message was deleted")
        anchors = json.loads(thread.row.anchors)

        def tx() -> Tx[bool]:
            current = yield from messages.reactions_of(wedding, tid, mid)
            if current is None:
                raise NotFound("no such message")
            reactions: dict[str, list[str]] = json.loads(current)
            subs = set(reactions.get(emoji, []))
            if (viewer.actor.sub in subs) == on:
                return False
            subs = subs | {viewer.actor.sub} if on else subs - {viewer.actor.sub}
            if subs:
                reactions[emoji] = sorted(subs)
            else:
                reactions.pop(emoji, None)
            yield from messages.set_reactions(
                wedding, tid, mid, json.dumps(reactions, ensure_ascii=False)
            )
            data = {"thread": tid, "message": mid, "emoji": emoji, "on": on}
            yield from store_events(
                [
                    self._event(
                        wedding, "thread.reaction", data, viewer, thread.participants, anchors
                    )
                ]
            )
            return True

        if await self.db.run(tx()):
            self._events.announce(wedding)
        _, message = await self._own_message(wedding, tid, mid, viewer)
        return message_json(message, tid)

    async def mark_read(self, wedding: str, tid: str, viewer: Viewer, up_to: str) -> dict[str, Any]:
        await self._visible_row(wedding, tid, viewer)
        seq = await messages.seq_of(self.db, wedding, tid, up_to)
        if seq is None:
            raise Impossible("no such message in this thread", field="up_to")

        def tx() -> Tx[None]:
            # Read marks only move forward (two devices may report out of order).
            yield from messages.raise_read_mark(wedding, tid, viewer.actor.sub, seq)
            # The person's notifications of the messages up to there are read too.
            unread = yield from inbox.unread_about(wedding, viewer.actor.sub, tid)
            mids = {notice.message for notice in unread}
            upto = yield from messages.messages_up_to(wedding, tid, seq, mids)
            yield from inbox.mark_read(
                wedding, viewer.actor.sub, [n.id for n in unread if n.message in upto]
            )

        await self.db.run(tx())
        return await self.thread(wedding, tid, viewer)


def _parent_author(wedding: str, tid: str, reply_to: str | None) -> Tx[str | None]:
    """The step that finds who wrote the message replied to (``None`` for no reply);
    refused when the thread has no such message."""
    if reply_to is None:
        return None
    author = yield from messages.author_of(wedding, tid, reply_to)
    if author is None:
        raise Impossible("no such message in this thread", field="reply_to")
    return author


def _notify(
    wedding: str,
    tid: str,
    mid: str,
    author: Actor,
    told: Mapping[str, str],
    members: Mapping[str, Member],
    level: str,
    now: float,
    email: bool,
) -> Tx[bool]:
    """The step that notifies each of ``told`` (sub -> why) of message ``mid`` of thread
    ``tid``, by email too (with ``email`` on) where the member takes email and the reason is
    a mention or urgency; whether an email was queued."""
    queued = False
    for sub, reason in told.items():
        member = members.get(sub)
        mailed = (
            email
            and member is not None
            and member.takes_email
            and (reason in ("mention", "urgent") or at_least(level, "urgent"))
        )
        queued = queued or mailed
        yield from inbox.notify(wedding, sub, reason, tid, mid, author, level, now, email=mailed)
    return queued
