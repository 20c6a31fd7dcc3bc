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
import secrets
from typing import Any

from crdt_server import clock
from crdt_server.actor import Actor
from crdt_server.core.operation_keys import IDEMPOTENCY_SECONDS
from crdt_server.errors import Conflict, Forbidden, Impossible
from crdt_server.features.events import store_events
from crdt_server.features.people import member_json
from crdt_server.features.threads import tables
from crdt_server.features.threads.domain import MAX_BODY_BYTES, Viewer, hidden_docs
from crdt_server.features.threads.extension_messages import ThreadMessages
from crdt_server.features.threads.tables import StoredThread, Tx
from crdt_server.storage import NewEvent

__all__ = ["MAX_BODY_BYTES", "Threads", "Viewer", "member_json"]


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
        now = clock.now()
        docs = "," + ",".join(sorted({a["doc"] for a in anchors})) + ","
        data = {"thread": tid, "subject": subject, "kind": kind, "priority": priority}
        event = self._event(wedding, "thread.created", data, viewer, subs, anchors, priority)

        row = StoredThread(
            tid, subject, kind, "open", priority, json.dumps(anchors), viewer.actor.sub,
            viewer.actor.role, now, now, 0, docs,
        )  # fmt: skip

        def tx() -> Tx[str | None]:
            if once is not None:
                key, fingerprint = once
                yield from tables.forget_requests(wedding, now)
                found = yield from tables.request(wedding, viewer.actor.sub, key, now)
                if found is not None:
                    if found.fingerprint != fingerprint:
                        raise Conflict(
                            "this Idempotency-Key was used with another body",
                            field="Idempotency-Key",
                        )
                    return found.thread
                yield from tables.remember_request(
                    wedding, viewer.actor.sub, key, fingerprint, tid, now + IDEMPOTENCY_SECONDS
                )
            yield from tables.insert_thread(wedding, row)
            yield from tables.insert_participants(wedding, tid, subs, replace=False)
            yield from store_events([event])
            return None

        earlier = await self.db.run(tx())
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
        equal = {
            column: value
            for column, value in (("status", status), ("kind", kind), ("priority", priority))
            if value is not None
        }
        page = await tables.thread_page(
            self.db,
            wedding,
            hidden=hidden_docs(viewer),
            participant_of=None if viewer.lead else viewer.actor.sub,
            equal=equal,
            anchor=None if anchor is None else json.dumps({"doc": anchor[0], "id": anchor[1]}),
            participant=participant,
            q=q,
            after=after,
            limit=limit,
        )
        tids = [row.id for row in page]
        unread = await tables.unread_counts(self.db, wedding, tids, viewer.actor.sub)
        roles = {m.sub: m.role for m in await self._people.members(wedding)}
        members = await tables.participants_of(self.db, wedding, tids)
        items = [
            await self._thread_json(wedding, row, members[row.id], unread.get(row.id, 0), roles)
            for row in page
        ]
        last = page[-1] if len(page) == limit else None
        return items, None if last is None else (float(last.activity), last.id)

    async def update_thread(
        self, wedding: str, tid: str, viewer: Viewer, changes: dict[str, Any]
    ) -> dict[str, Any]:
        row, before = await self._visible_row(wedding, tid, viewer)
        anchors = json.loads(row.anchors)
        manager = viewer.lead or viewer.moderator or viewer.actor.sub == row.creator
        if set(changes) - {"status"} and not manager:
            raise Forbidden("only its creator, the couple or the planner may change this thread")
        participants = before
        if "participants" in changes:
            participants = sorted({row.creator, *changes["participants"]})
            known = {m.sub for m in await self._people.members(wedding)}
            unknown = [s for s in participants if s not in known and s not in before]
            if unknown:
                raise Impossible(
                    f"not a member of this wedding: {unknown[0]!r}", field="participants"
                )
        events: list[NewEvent] = []
        audience = sorted(set(before) | set(participants))
        status = changes.get("status")
        if status is not None and status != row.status:
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
        now = clock.now()

        def tx() -> Tx[None]:
            yield from tables.update_thread(wedding, tid, changes, now)
            if "participants" in changes:
                yield from tables.insert_participants(wedding, tid, participants, replace=True)
            if events:
                yield from store_events(events)

        await self.db.run(tx())
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

        found = await self.db.run(tables.erase_member(wedding, sub))
        # Merge the search index's segments so erased text is not left in old ones (the
        # erasure scrubs the files once every feature is done).
        await tables.merge_search(self.db)
        return found
