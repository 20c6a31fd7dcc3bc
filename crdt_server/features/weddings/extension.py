"""Weddings the server creates, and what may go out on a wedding's behalf.

The creation record (``weddings_created``) says who created a wedding (a digest of their
email) and whether a sign-in link has verified that email since: nothing goes out on the
wedding's behalf (invitation emails) until it has, for a wedding created through open
signup. The invitation emails a wedding may send are counted per day
(``CRDT_SERVER_INVITATION_EMAILS_PER_DAY``): :meth:`Weddings.take_invitation_email` is the
one check the invitations feature calls before queueing one.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from crdt_server import clock
from crdt_server.core.hooks import Extension
from crdt_server.core.limits import RateLimiter
from crdt_server.errors import TooMany
from crdt_server.features.notifications import MAIL_SCHEMA, NotificationSettings, queued_email
from crdt_server.features.signin import (
    SESSIONS_SCHEMA,
    SignInSettings,
    normal_email,
    server_url,
    sign_in_code,
    sign_in_email,
)
from crdt_server.features.weddings import tables
from crdt_server.features.weddings.domain import person_key
from crdt_server.features.weddings.settings import WeddingSettings
from crdt_server.settings import Settings
from crdt_server.storage import DocumentStore, Gateway
from crdt_server.storage.gateway import Tx

__all__ = ["INVITATION", "Weddings", "queue_first_sign_in_link"]

INVITATION = "invitation"
"""The kind of email :meth:`Weddings.take_invitation_email` counts."""
_HOUR = 3600.0


async def queue_first_sign_in_link(store: DocumentStore, settings: Settings, email: str) -> bool:
    """Queue the couple's first sign-in link in ``store``'s outbox, for the server that
    uses that store to send (``crdt-server wedding create``, run beside it): the code is
    kept as the server keeps its own (the newest of the address, 15 minutes, once), the
    email in the outbox its mailer looks at every few seconds; both in one transaction.
    ``False`` (nothing queued) when the server sends no email (``CRDT_SERVER_SMTP_URL``
    unset) or the address was sent its hourly links already."""
    if not settings.fragment(NotificationSettings).smtp_url:
        return False
    await store.install(SESSIONS_SCHEMA)
    await store.install(MAIL_SCHEMA)
    address = normal_email(email)
    code = secrets.token_urlsafe(32)
    subject, body = sign_in_email(code, server_url(settings))
    limit = settings.fragment(SignInSettings).sign_in_per_email_per_hour
    now = clock.now()

    def tx() -> Tx[bool]:
        if not (yield from sign_in_code(address, code, now, limit)):
            return False
        yield from queued_email(address, subject, body, now)
        return True

    return await Gateway.of(store).run(tx())


class Weddings(Extension):
    """Creation limits and the creation record (see the module docstring)."""

    name = "weddings"

    def __init__(self, settings: WeddingSettings, store: DocumentStore) -> None:
        self.settings = settings
        self.db = Gateway.of(store)
        self.store = store
        # Open signup's limits, per process (a wedding's writes have one owner process, a
        # stranger's requests do not: the per-person cap is the durable one).
        self._by_address = RateLimiter(
            settings.signups_per_address_per_hour / _HOUR,
            float(settings.signups_per_address_per_hour),
        )
        self._overall = RateLimiter(
            settings.signups_per_hour / _HOUR, float(settings.signups_per_hour)
        )

    # -- open signup ----------------------------------------------------------------------

    async def admit_signup(self, address: str, email: str) -> None:
        """Count one stranger's creation; :class:`TooMany` (429) past the per-address or
        overall hourly limit, or when the email already created
        ``CRDT_SERVER_MAX_WEDDINGS_PER_PERSON`` weddings."""
        count = await tables.weddings_of(self.db, person_key(email))
        if count >= self.settings.max_weddings_per_person:
            raise TooMany(
                "this email has created as many weddings as one person may",
                field="email",
                retry_after=24 * 3600,
            )
        if not self._by_address.allow(address):
            raise TooMany("too many weddings created from this address", retry_after=3600)
        if not self._overall.allow("all"):
            raise TooMany("too many weddings are being created; try again later", retry_after=600)

    # -- what goes out on a wedding's behalf ----------------------------------------------

    async def may_send_for(self, wedding: str) -> bool:
        """Whether email may go out on the wedding's behalf: always for a wedding the
        server did not create through open signup; for one it did, once a sign-in link
        verified its creator's email (:meth:`creator_verified`)."""
        created = await tables.created(self.db, wedding)
        return created is None or bool(created.verified) or not created.open_signup

    async def creator_verified(self, wedding: str, email: str) -> bool:
        """Record that a sign-in link verified ``email``: if it is the wedding's creator's,
        the wedding may send email from now on. Returns whether it was the creator."""
        return await self.db.run(tables.verified(wedding, person_key(email)))

    async def address_forgotten(self, email: str) -> None:
        """An erasure left ``email`` held by nobody: the weddings it created keep their
        record (and whether it was verified), under a random key instead of its digest."""
        await self.db.run(tables.forget(person_key(email), "erased:" + secrets.token_hex(16)))

    async def address_verified(self, email: str, weddings: Sequence[str]) -> None:
        """A sign-in link verified ``email``, which identifies a member of ``weddings``:
        those it created may send email from now on (:meth:`creator_verified`)."""
        for wedding in weddings:
            await self.creator_verified(wedding, email)

    async def invitation_email_refusal(
        self, wedding: str, *, now: float | None = None
    ) -> Literal["daily_limit", "unverified_creator"] | None:
        """Why one more invitation email may not go out for ``wedding`` now (``None``: it
        may, and it is counted): its creator (open signup) has not verified their email,
        or the day's ``CRDT_SERVER_INVITATION_EMAILS_PER_DAY`` went already."""
        if not await self.may_send_for(wedding):
            return "unverified_creator"
        if not await self.take_invitation_email(wedding, now=now):
            return "daily_limit"
        return None

    async def take_invitation_email(self, wedding: str, *, now: float | None = None) -> bool:
        """Whether one more invitation email may go out for ``wedding`` now, counting it if
        so: its creator's email is verified (:meth:`may_send_for`) and fewer than
        ``CRDT_SERVER_INVITATION_EMAILS_PER_DAY`` went today (UTC)."""
        if not await self.may_send_for(wedding):
            return False
        day = datetime.fromtimestamp(clock.now() if now is None else now, UTC).date().isoformat()
        limit = self.settings.invitation_emails_per_day
        return await self.db.run(tables.take_mail(wedding, day, INVITATION, limit))
