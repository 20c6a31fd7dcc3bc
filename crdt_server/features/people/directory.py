"""The people side of threads: the member directory (filled from tokens as people connect
or call the API, edited through it), each person's notification settings and unsubscribe
key, and each person's notifications inbox. Threads and the mailer read the directory from
here; the rows are :mod:`crdt_server.features.threads.db`'s."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from crdt_server.actor import Actor
from crdt_server.features.events.log import rfc3339
from crdt_server.features.threads.db import Sql, ThreadDb, Tx
from crdt_server.features.threads.model import Member, member_json, member_of_row
from crdt_server.storage import FeatureRow

__all__ = ["OVERWRITTEN", "ThreadPeople", "notice_rows"]

OVERWRITTEN = "overwritten"
"""A notification that a write of yours was lost in a race; its ``conflict`` is the
finding's id (no thread)."""


def notice_rows(
    wedding: str,
    member: Member | None,
    sub: str,
    reason: str,
    ref: str,
    actor: Actor,
    now: float,
) -> list[FeatureRow]:
    """A notification not about a thread (``reason`` names what, ``ref`` which one), as
    rows to write in the transaction of what caused it: the inbox entry, and the email
    when the person has an address and takes emails."""
    rows = [
        FeatureRow(
            "thread_notifications",
            (
                ("wedding", wedding),
                ("sub", sub),
                ("reason", reason),
                ("thread", ""),
                ("message", ref),
                ("actor", actor.sub),
                ("actor_role", actor.role),
                ("priority", "normal"),
                ("created_at", now),
            ),
        )
    ]
    if member is not None and member.email and member.email_on:
        rows.append(
            FeatureRow(
                "thread_outbox",
                (
                    ("wedding", wedding),
                    ("sub", sub),
                    ("reason", reason),
                    ("thread", ""),
                    ("message", ref),
                    ("priority", "normal"),
                    ("created_at", now),
                ),
            )
        )
    return rows


class ThreadPeople:
    """Members and inboxes of every wedding, over the thread tables (``db`` gives them
    once the feature has started)."""

    def __init__(self, db: Callable[[], ThreadDb]) -> None:
        self._db = db
        self._seen: dict[tuple[str, str], tuple[str, str, str | None]] = {}
        """The directory entries this process last wrote, to skip writing them again."""

    @property
    def db(self) -> ThreadDb:
        return self._db()

    def known(self, wedding: str, sub: str, role: str, name: str, email: str | None) -> bool:
        """Whether the directory already has this person as given (as far as this process
        knows)."""
        return self._seen.get((wedding, sub)) == (role, name, email)

    def forget(self, wedding: str, sub: str) -> None:
        """The entry changed elsewhere: write it again when next seen."""
        self._seen.pop((wedding, sub), None)

    # -- the directory ------------------------------------------------------------------------

    async def see(self, wedding: str, sub: str, role: str, name: str, email: str | None) -> None:
        """Keep the directory up to date with a token seen at a connection or request."""
        key = (wedding, sub)
        if self.known(wedding, sub, role, name, email):
            return

        def tx() -> Tx[None]:
            yield Sql(
                "INSERT INTO {t}thread_members (wedding, sub, role, name, email, unsubscribe,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (wedding, sub) DO UPDATE"
                " SET role = excluded.role, name = excluded.name,"
                " email = COALESCE(excluded.email, {t}thread_members.email),"
                " updated_at = excluded.updated_at",
                (wedding, sub, role, name, email, secrets.token_urlsafe(24), time.time()),
            )

        await self.db.write(tx())
        self._seen[key] = (role, name, email)

    async def put_member(
        self, wedding: str, sub: str, role: str, name: str, email: str | None
    ) -> tuple[dict[str, Any], bool]:
        """Create or replace a member; (member, created)."""

        def tx() -> Tx[bool]:
            rows = yield Sql(
                "SELECT 1 FROM {t}thread_members WHERE wedding = ? AND sub = ?", (wedding, sub)
            )
            yield Sql(
                "INSERT INTO {t}thread_members (wedding, sub, role, name, email, unsubscribe,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (wedding, sub) DO UPDATE"
                " SET role = excluded.role, name = excluded.name, email = excluded.email,"
                " updated_at = excluded.updated_at",
                (wedding, sub, role, name, email, secrets.token_urlsafe(24), time.time()),
            )
            return not rows

        created = await self.db.write(tx())
        self._seen.pop((wedding, sub), None)
        member = await self.member(wedding, sub)
        assert member is not None
        return member_json(member, with_email=True), created

    async def member(self, wedding: str, sub: str) -> Member | None:
        rows = await self.db.read(
            "SELECT sub, role, name, email, participation, email_on FROM {t}thread_members"
            " WHERE wedding = ? AND sub = ?",
            wedding,
            sub,
        )
        return member_of_row(rows[0]) if rows else None

    async def members(self, wedding: str) -> list[Member]:
        rows = await self.db.read(
            "SELECT sub, role, name, email, participation, email_on FROM {t}thread_members"
            " WHERE wedding = ? ORDER BY sub",
            wedding,
        )
        return [member_of_row(r) for r in rows]

    async def set_preferences(
        self, wedding: str, sub: str, participation: str | None, email_on: bool | None
    ) -> Member:
        def tx() -> Tx[None]:
            if participation is not None:
                yield Sql(
                    "UPDATE {t}thread_members SET participation = ? WHERE wedding = ? AND sub = ?",
                    (participation, wedding, sub),
                )
            if email_on is not None:
                yield Sql(
                    "UPDATE {t}thread_members SET email_on = ? WHERE wedding = ? AND sub = ?",
                    (int(email_on), wedding, sub),
                )

        await self.db.write(tx())
        member = await self.member(wedding, sub)
        assert member is not None
        return member

    async def unsubscribe(self, wedding: str, sub: str, key: str) -> bool:
        rows = await self.db.read(
            "SELECT unsubscribe FROM {t}thread_members WHERE wedding = ? AND sub = ?", wedding, sub
        )
        if not rows or not secrets.compare_digest(str(rows[0][0]).encode(), key.encode()):
            return False
        await self.set_preferences(wedding, sub, None, False)
        return True

    async def unsubscribe_key(self, wedding: str, sub: str) -> str | None:
        rows = await self.db.read(
            "SELECT unsubscribe FROM {t}thread_members WHERE wedding = ? AND sub = ?", wedding, sub
        )
        return str(rows[0][0]) if rows else None

    # -- the inbox ------------------------------------------------------------------

    async def notifications(
        self, wedding: str, sub: str, *, unread_only: bool, after: int | None, limit: int
    ) -> tuple[list[dict[str, Any]], int, int | None]:
        sql = (
            "SELECT n.id, n.reason, n.thread, n.message, n.actor, n.actor_role, n.priority,"
            " n.created_at, n.read, t.subject FROM {t}thread_notifications n LEFT JOIN"
            " {t}threads t ON t.wedding = n.wedding AND t.id = n.thread"
            " WHERE n.wedding = ? AND n.sub = ? AND (t.id IS NOT NULL OR n.thread = '')"
        )
        params: list[Any] = [wedding, sub]
        if unread_only:
            sql += " AND n.read = 0"
        if after is not None:
            sql += " AND n.id < ?"
            params.append(after)
        rows = await self.db.read(sql + " ORDER BY n.id DESC LIMIT ?", *params, limit)
        unread = await self.db.read(
            "SELECT COUNT(*) FROM {t}thread_notifications WHERE wedding = ? AND sub = ?"
            " AND read = 0",
            wedding,
            sub,
        )
        items = [
            {
                "id": str(r[0]),
                "reason": r[1],
                "thread": {"id": r[2], "subject": r[9]} if r[2] else None,
                "message": r[3] if r[2] else None,
                **({"conflict": r[3]} if r[1] == OVERWRITTEN else {}),
                "actor": {"sub": r[4], "role": r[5]},
                "priority": r[6],
                "created_at": rfc3339(float(r[7])),
                "read": bool(r[8]),
            }
            for r in rows
        ]
        following = int(rows[-1][0]) if len(rows) == limit else None
        return items, int(unread[0][0]), following

    async def read_notifications(self, wedding: str, sub: str, ids: list[int] | None) -> int:
        def tx() -> Tx[int]:
            if ids is None:
                done = yield Sql(
                    "UPDATE {t}thread_notifications SET read = 1 WHERE wedding = ? AND sub = ?"
                    " AND read = 0 RETURNING id",
                    (wedding, sub),
                )
            else:
                marks = ",".join("?" * len(ids))
                done = yield Sql(
                    "UPDATE {t}thread_notifications SET read = 1 WHERE wedding = ? AND sub = ?"
                    f" AND read = 0 AND id IN ({marks}) RETURNING id",
                    (wedding, sub, *ids),
                )
            return len(done)

        return await self.db.write(tx())
