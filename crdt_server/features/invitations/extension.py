"""Invitations: who was invited and who joined (``member.invited``, ``member.joined``,
read by every member), and :func:`member_event`, which makes every ``member.*`` event
(the people feature's role changes and removals too).

A member's revocation (their removal, an admin's revoke) revokes the invitations they
made that are still open (:meth:`Invitations.on_revoke`); their erasure forgets the
address they gave when they joined.
"""

from __future__ import annotations

import json
import secrets
from typing import Literal, Protocol

from crdt_server import clock
from crdt_server.core.hooks import Core, Extension
from crdt_server.core.limits import RateLimiter
from crdt_server.features.events import EventLog, forget_events_of
from crdt_server.features.invitations import tables
from crdt_server.features.invitations.settings import InvitationSettings
from crdt_server.features.invitations.tables import InvitationRow, Joined
from crdt_server.features.signin import MailQueue
from crdt_server.storage import Gateway, NewEvent
from crdt_server.storage.gateway import Sql, Tx
from crdt_server.times import rfc3339

__all__ = ["InvitationMail", "InvitationSender", "Invitations", "member_event"]

InvitationMail = Literal["queued", "daily_limit", "unverified_creator", "email_off"]
"""What became of an invitation's email: queued, or not sent because the wedding sent its
``CRDT_SERVER_INVITATION_EMAILS_PER_DAY`` today, because its creator (open signup) has
not verified their email yet, or because this server sends no email."""


class InvitationSender(Protocol):
    """What decides whether an invitation email may go out on a wedding's behalf (the
    weddings feature: its creator verified, its daily count)."""

    async def invitation_email_refusal(self, wedding: str) -> InvitationMail | None:
        """``None`` (and the email counted) if one more may go now; else why not."""
        ...


def member_event(
    wedding: str, kind: str, data: dict[str, object], *, sub: str, role: str
) -> NewEvent:
    """A ``member.<kind>`` event credited to ``sub`` acting as ``role`` (no audience:
    every member reads it; never an email address in it)."""
    return NewEvent(
        wedding,
        f"member.{kind}",
        json.dumps(data, separators=(",", ":")),
        sub=sub,
        role=role,
    )


class Invitations(Extension):
    """The invitations of every wedding and the members' events (see the module
    docstring)."""

    name = "invitations"

    def __init__(self, core: Core, events: EventLog | None = None) -> None:
        """``events``: the event log whose readers are woken when a member event is
        stored (without it, events are stored all the same; readers see them at their
        next heartbeat)."""
        self._events = events
        self.db = Gateway.of(core.store)
        self.settings = core.settings.fragment(InvitationSettings)
        per_minute = self.settings.invitation_attempts_per_minute
        self._attempts = RateLimiter(per_minute / 60.0, float(per_minute))
        self.post: MailQueue | None = None
        """Where invitation emails go (set by the notifications feature)."""
        self.sender: InvitationSender | None = None
        """What caps them per wedding (set by the weddings feature); without it none go."""

    def attempt(self, address: str) -> bool:
        """Count one try of a code from ``address``; false when over its budget
        (``CRDT_SERVER_INVITATION_ATTEMPTS_PER_MINUTE``)."""
        return self._attempts.allow(address)

    def _announce(self, wedding: str) -> None:
        if self._events is not None:
            self._events.announce(wedding)

    # -- invitations --------------------------------------------------------------------

    async def create(self, row: InvitationRow) -> None:
        event = member_event(
            row.wedding,
            "invited",
            {
                "invitation": row.id,
                "role": row.role,
                "uses": row.uses,
                "expires_at": rfc3339(row.expires_at),
            },
            sub=row.inviter,
            role=row.inviter_role,
        )
        await self.db.run(tables.create(row, event))
        self._announce(row.wedding)

    async def email(self, wedding: str, address: str, subject: str, body: str) -> InvitationMail:
        """Queue an invitation's email to ``address`` if the wedding may send one now
        (:class:`InvitationSender`: counted per wedding per day, and only once an open
        signup's creator verified their email); what became of it."""
        if self.post is None or not self.post.emails or self.sender is None:
            return "email_off"
        refused = await self.sender.invitation_email_refusal(wedding)
        if refused is not None:
            return refused
        await self.post.queue_email(address, subject, body)
        return "queued"

    async def of(
        self, wedding: str, *, limit: int, before: tuple[float, str] | None = None
    ) -> list[InvitationRow]:
        """The wedding's invitations, newest first."""
        return await tables.invitations(self.db, wedding, limit=limit, before=before)

    async def one(self, wedding: str, invitation: str) -> InvitationRow | None:
        return await tables.invitation(self.db, wedding, invitation)

    async def open_count(self, wedding: str) -> int:
        return await tables.open_count(self.db, wedding, clock.now())

    async def revoke(self, wedding: str, invitation: str) -> bool:
        return await self.db.run(tables.revoke(wedding, invitation, clock.now()))

    async def redeem(
        self, invitation: str, secret: str, *, sub: str, name: str, email: str | None
    ) -> Joined:
        joined = await self.db.run(
            tables.redeem(
                invitation,
                secret,
                sub=sub,
                name=name,
                email=email,
                unsubscribe=secrets.token_urlsafe(24),
            )
        )
        if joined.outcome == "joined" and joined.invitation is not None:
            self._announce(joined.invitation.wedding)
        return joined

    async def unconfirmed(self, wedding: str) -> set[str]:
        """The members of ``wedding`` whose address, given when they joined, is not
        confirmed yet (:func:`.tables.unconfirmed`)."""
        return await tables.unconfirmed(self.db, wedding)

    async def weddings_of(self, sub: str) -> list[str]:
        """The weddings that know ``sub`` as a member."""
        return await tables.weddings_of(self.db, sub)

    # -- revocation and erasure ---------------------------------------------------------

    async def on_revoke(self, sub: str, wedding: str | None) -> None:
        """What a revoked member set up stops: their open invitations are revoked."""
        where = "" if wedding is None else " AND wedding = ?"
        params: tuple[object, ...] = (clock.now(), sub) + (() if wedding is None else (wedding,))

        def tx() -> Tx[None]:
            yield Sql(
                "UPDATE {t}invitations SET revoked_at = ? WHERE inviter = ? AND revoked_at = 0"
                + where,
                params,
            )

        await self.db.run(tx())

    async def on_member_erased(self, wedding: str, sub: str) -> bool:
        """Their open invitations are revoked; the ``member.*`` and ``session.*`` events
        they caused go (``member.joined`` carries their name, ``session.*`` their devices);
        the record of how they joined (with the address they gave) goes, and the
        invitation they joined by forgets the address and name it was made out to (a
        single-use one was theirs alone; one for several people keeps its name, which is
        the group's)."""
        await self.on_revoke(sub, wedding)

        def tx() -> Tx[bool]:
            yield Sql(
                "UPDATE {t}invitations SET email = NULL,"
                " name = CASE WHEN uses = 1 THEN NULL ELSE name END"
                " WHERE wedding = ? AND id IN (SELECT invitation FROM {t}invitation_members"
                " WHERE wedding = ? AND sub = ?)",
                (wedding, wedding, sub),
            )
            for kinds in ("member.", "session."):
                yield from forget_events_of(wedding, sub, kinds)
            gone = yield Sql(
                "DELETE FROM {t}invitation_members WHERE wedding = ? AND sub = ?",
                (wedding, sub),
                count=True,
            )
            return bool(gone)

        return await self.db.run(tx())
