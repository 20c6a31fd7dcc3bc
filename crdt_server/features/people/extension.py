"""The member directory of each wedding: filled from tokens as people connect or call the
API, edited through it; each person's notification settings and unsubscribe key.

Other features read it (threads: who may be a participant, who is mentioned;
notifications: whom to email, the unsubscribe link) and compose its steps into their own
transactions (:func:`erase`, :func:`emailed`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import Callable
from typing import Any

from crdt_server import clock
from crdt_server.auth.permissions import DEFAULT_GUEST_FIELDS
from crdt_server.core.hooks import ConnectionView, Core, Extension, RoomView
from crdt_server.features.events import EventLog, store_events
from crdt_server.features.people import tables
from crdt_server.features.people.domain import Member, member_json
from crdt_server.features.people.tables import MEMBER_COLUMNS, MEMBERS, MemberRow
from crdt_server.features.signin import verified
from crdt_server.storage import FeatureRow, Gateway, NewEvent
from crdt_server.storage.gateway import Sql, Tx, row_as

__all__ = ["People", "emailed", "erase", "member_row"]

log = logging.getLogger("crdt_server.people")


def erase(wedding: str, sub: str) -> Tx[bool]:
    """The step that removes a member's entry; whether there was one."""
    gone = yield Sql(
        "DELETE FROM {t}members WHERE wedding = ? AND sub = ?", (wedding, sub), count=True
    )
    return bool(gone)


def emailed(wedding: str, sub: str, at: float) -> Tx[None]:
    """The step that records when a member was last emailed (their digest window)."""
    yield Sql(
        "UPDATE {t}members SET emailed_at = ? WHERE wedding = ? AND sub = ?",
        (at, wedding, sub),
    )


def member_row(
    wedding: str,
    sub: str,
    *,
    role: str,
    name: str,
    email: str | None,
    participation: str,
    email_on: bool,
    unsubscribe: str,
    updated_at: float,
    guest_fields: str | None = None,
) -> FeatureRow:
    """A member's row, written with an imported wedding's documents (the threads' export
    section reads them back in)."""
    values = {
        "wedding": wedding,
        "sub": sub,
        "role": role,
        "name": name,
        "email": email,
        "participation": participation,
        "email_on": int(email_on),
        "unsubscribe": unsubscribe,
        "updated_at": updated_at,
    }
    if guest_fields is not None:
        values["guest_fields"] = guest_fields
    return FeatureRow(MEMBERS.name, tuple(values.items()))


class People(Extension):
    """Members of every wedding (see the module docstring)."""

    name = "people"

    def __init__(self, core: Core, events: EventLog | None = None) -> None:
        """``events``: the event log whose readers are woken when a member's removal is
        stored (without it, the event is stored all the same; readers see it at their
        next heartbeat)."""
        self._events = events
        self.db = Gateway.of(core.store)
        self._seen: dict[tuple[str, str], tuple[str, str, str | None]] = {}
        """The directory entries this process last wrote, to skip writing them again."""
        self._registered: set[tuple[str, str]] = set()
        """Entries this process knows the directory has (:meth:`register`)."""

    # -- hooks --------------------------------------------------------------------------

    def on_connect(self, room: RoomView, conn: ConnectionView) -> None:
        p = conn.principal
        if not p.authenticated or not p.member:
            return
        if self.known(room.wedding_id, p.user_id, p.role, p.name, p.email):
            return
        task = asyncio.ensure_future(self.see(room.wedding_id, p.user_id, p.role, p.name, p.email))
        task.add_done_callback(_log_failure)

    async def on_member_erased(self, wedding: str, sub: str) -> bool:
        """The member's entry goes (whether there was one)."""
        found = await self.db.run(erase(wedding, sub))
        self.forget(wedding, sub)
        return found

    async def remove(self, wedding: str, sub: str, event: NewEvent) -> bool:
        """The member's directory entry goes, with ``member.removed`` in the same
        transaction; whether there was one."""

        def tx() -> Tx[bool]:
            gone = yield from erase(wedding, sub)
            if gone:
                yield from store_events([event])
            return gone

        removed = await self.db.run(tx())
        if removed and self._events is not None:
            self._events.announce(wedding)
        return removed

    # -- the directory ------------------------------------------------------------------

    def known(self, wedding: str, sub: str, role: str, name: str, email: str | None) -> bool:
        """Whether the directory already has this person as given (as far as this process
        knows)."""
        return self._seen.get((wedding, sub)) == (role, name, email)

    def forget(self, wedding: str, sub: str) -> None:
        """The entry changed elsewhere: write it again when next seen."""
        self._seen.pop((wedding, sub), None)
        self._registered.discard((wedding, sub))

    def registered(self, wedding: str, sub: str) -> bool:
        """Whether this process knows the directory has an entry for ``sub``."""
        return (wedding, sub) in self._registered or (wedding, sub) in self._seen

    async def register(
        self, wedding: str, sub: str, role: str, name: str, email: str | None
    ) -> None:
        """Record a caller the directory does not have (every authenticated call, through
        the edge's ``MemberDirectory``); an entry it has is left as it is: a token's claims
        never overwrite a member's role or email set through the API."""
        if self.registered(wedding, sub):
            return

        def tx() -> Tx[None]:
            yield Sql(
                "INSERT INTO {t}members (wedding, sub, role, name, email, unsubscribe,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (wedding, sub) DO NOTHING",
                (wedding, sub, role, name, email, secrets.token_urlsafe(24), clock.now()),
            )

        await self.db.run(tx())
        self._registered.add((wedding, sub))

    async def see(self, wedding: str, sub: str, role: str, name: str, email: str | None) -> None:
        """Record a member the directory does not know yet, as a token seen at a connection
        or request says (an operator or the app's backend signed it: its email is an
        operator's, so it identifies the member at a sign-in). A known member is left as
        the directory has them: their role and address are changed through it, never by a
        token's claims."""
        key = (wedding, sub)
        if self.known(wedding, sub, role, name, email):
            return
        now = clock.now()

        def tx() -> Tx[None]:
            added = yield Sql(
                "INSERT INTO {t}members (wedding, sub, role, name, email, unsubscribe,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (wedding, sub) DO NOTHING",
                (wedding, sub, role, name, email, secrets.token_urlsafe(24), now),
                count=True,
            )
            if added and email is not None:
                yield from verified(wedding, sub, email, now)

        await self.db.run(tx())
        self._seen[key] = (role, name, email)

    async def put_member(
        self,
        wedding: str,
        sub: str,
        role: str,
        name: str,
        email: str | None,
        *,
        by_operator: bool = False,
    ) -> tuple[dict[str, Any], Member | None]:
        """Create or replace a member; (member, the entry it replaced or ``None``). An
        address an operator (``by_operator``) sets identifies the member at a sign-in; one
        set otherwise does once a sign-in link to it is used."""
        now = clock.now()

        def tx() -> Tx[Member | None]:
            before = yield from row_as(
                MemberRow,
                f"SELECT {MEMBER_COLUMNS} FROM {{t}}members WHERE wedding = ? AND sub = ?",
                wedding,
                sub,
            )
            old = None if before is None else before.member()
            if email is None or (old is not None and old.email != email and not by_operator):
                yield Sql(
                    "DELETE FROM {t}verified_emails WHERE wedding = ? AND sub = ?",
                    (wedding, sub),
                )
            if email is not None and by_operator:
                yield from verified(wedding, sub, email, now)
            # A vendor reads the guest list's counts until the couple chooses more
            # (PATCH .../members/{sub}); one who stays a vendor keeps their choice, and
            # another role reads what it reads (no field set).
            fields = None if role != "vendor" else (old.guest_fields if old else None)
            if role == "vendor" and (old is None or old.role != "vendor"):
                fields = DEFAULT_GUEST_FIELDS
            yield Sql(
                "INSERT INTO {t}members (wedding, sub, role, name, email, unsubscribe,"
                " updated_at, guest_fields) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (wedding, sub) DO UPDATE"
                " SET role = excluded.role, name = excluded.name, email = excluded.email,"
                " updated_at = excluded.updated_at, guest_fields = excluded.guest_fields",
                (wedding, sub, role, name, email, secrets.token_urlsafe(24), now, fields),
            )
            return old

        replaced = await self.db.run(tx())
        self._seen.pop((wedding, sub), None)
        member = await self.member(wedding, sub)
        assert member is not None
        return member_json(member, with_email=True), replaced

    async def set_guest_fields(
        self, wedding: str, sub: str, fields: str, event: Callable[[Member], NewEvent]
    ) -> tuple[Member, Member] | None:
        """Record what vendor ``sub`` reads of the guest list, with the event ``event``
        makes of their entry as it was, in one transaction: (before, after), or ``None``
        if the wedding has no such member. The caller checked ``fields`` and the role."""

        def tx() -> Tx[Member | None]:
            before = yield from row_as(
                MemberRow,
                f"SELECT {MEMBER_COLUMNS} FROM {{t}}members WHERE wedding = ? AND sub = ?",
                wedding,
                sub,
            )
            if before is None:
                return None
            old = before.member()
            if old.guest_fields != fields:
                yield Sql(
                    "UPDATE {t}members SET guest_fields = ?, updated_at = ?"
                    " WHERE wedding = ? AND sub = ?",
                    (fields, clock.now(), wedding, sub),
                )
                yield from store_events([event(old)])
            return old

        old = await self.db.run(tx())
        if old is None:
            return None
        if old.guest_fields != fields and self._events is not None:
            self._events.announce(wedding)
        return old, dataclasses.replace(old, guest_fields=fields)

    async def member(self, wedding: str, sub: str) -> Member | None:
        return await tables.member(self.db, wedding, sub)

    async def role_of(self, wedding: str, sub: str) -> str | None:
        """The role of member ``sub`` (the edge's ``MemberDirectory``: who may own a task)."""
        found = await self.member(wedding, sub)
        return None if found is None else found.role

    async def members(self, wedding: str) -> list[Member]:
        return await tables.members(self.db, wedding)

    async def set_preferences(
        self, wedding: str, sub: str, participation: str | None, email_on: bool | None
    ) -> Member:
        def tx() -> Tx[None]:
            if participation is not None:
                yield Sql(
                    "UPDATE {t}members SET participation = ? WHERE wedding = ? AND sub = ?",
                    (participation, wedding, sub),
                )
            if email_on is not None:
                yield Sql(
                    "UPDATE {t}members SET email_on = ? WHERE wedding = ? AND sub = ?",
                    (int(email_on), wedding, sub),
                )

        await self.db.run(tx())
        member = await self.member(wedding, sub)
        assert member is not None
        return member

    async def unsubscribe(self, wedding: str, sub: str, key: str) -> bool:
        stored = await tables.unsubscribe_key(self.db, wedding, sub)
        if stored is None or not secrets.compare_digest(stored.encode(), key.encode()):
            return False
        await self.set_preferences(wedding, sub, None, False)
        return True

    async def unsubscribe_key(self, wedding: str, sub: str) -> str | None:
        return await tables.unsubscribe_key(self.db, wedding, sub)

    async def seen_leaving(self, wedding: str, sub: str, at: float) -> None:
        """Member ``sub`` went offline at ``at``: their ``last_seen`` (nothing for someone
        not in the directory)."""

        def tx() -> Tx[None]:
            yield Sql(
                "UPDATE {t}members SET last_seen = ? WHERE wedding = ? AND sub = ?",
                (at, wedding, sub),
            )

        await self.db.run(tx())

    async def last_seen(self, wedding: str) -> dict[str, float]:
        """When each member who went offline was last seen (by sub)."""
        return await tables.last_seen_of(self.db, wedding)

    async def emailed_at(self, wedding: str, sub: str) -> float:
        """When the member was last emailed (0: never, or not a member)."""
        return await tables.emailed_at(self.db, wedding, sub) or 0.0


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("keeping the member directory failed: %s", task.exception())
