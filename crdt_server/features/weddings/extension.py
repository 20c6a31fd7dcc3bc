"""Weddings the server creates, and what may go out on a wedding's behalf.

The creation record (``weddings_created``) says who created a wedding (a digest of their
email) and whether a sign-in link has verified that email since: nothing goes out on the
wedding's behalf (invitation emails) until it has, for a wedding created through open
signup. The invitation emails a wedding may send are counted per day
(``CRDT_SERVER_INVITATION_EMAILS_PER_DAY``): :meth:`Weddings.take_invitation_email` is the
one check the invitations feature calls before queueing one.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from crdt_server.core.hooks import Core, Extension
from crdt_server.core.limits import RateLimiter
from crdt_server.errors import TooMany
from crdt_server.features.db import FeatureDb
from crdt_server.features.weddings import tables
from crdt_server.features.weddings.domain import person_key
from crdt_server.features.weddings.settings import WeddingSettings
from crdt_server.features.weddings.tables import SCHEMA
from crdt_server.storage import DocumentStore

__all__ = ["INVITATION", "Weddings", "queue_first_sign_in_link"]

INVITATION = "invitation"
"""The kind of email :meth:`Weddings.take_invitation_email` counts."""
_HOUR = 3600.0


async def queue_first_sign_in_link(
    store: DocumentStore, wedding: str, sub: str, email: str
) -> bool:
    """What the offline command (``crdt-server wedding create``) can do about the couple's
    first sign-in link: nothing (``False``). A link's code is made and kept by the server
    that accepts it (the people feature's sign-in codes); the route sends it at once
    (``send_sign_in_link``), and after the command the couple asks for it with their email
    on the app's sign-in page, which sends it since the address is a member's."""
    del store, wedding, sub, email
    return False


class Weddings(Extension):
    """Creation limits and the creation record (see the module docstring)."""

    name = "weddings"

    def __init__(self, settings: WeddingSettings) -> None:
        self.settings = settings
        self._db: FeatureDb | None = None
        self._store: DocumentStore | None = None
        # Open signup's limits, per process (a wedding's writes have one owner process, a
        # stranger's requests do not: the per-person cap is the durable one).
        self._by_address = RateLimiter(
            settings.signups_per_address_per_hour / _HOUR,
            float(settings.signups_per_address_per_hour),
        )
        self._overall = RateLimiter(
            settings.signups_per_hour / _HOUR, float(settings.signups_per_hour)
        )

    async def start(self, core: Core) -> None:
        self._store = core.store
        self._db = FeatureDb(core.store)
        await core.store.install(SCHEMA)

    async def close(self) -> None:
        if self._db is not None:
            await self._db.drain()

    @property
    def db(self) -> FeatureDb:
        if self._db is None:
            raise RuntimeError("the weddings extension has not been started")
        return self._db

    @property
    def store(self) -> DocumentStore:
        if self._store is None:
            raise RuntimeError("the weddings extension has not been started")
        return self._store

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
        return await self.db.write(tables.verified(wedding, person_key(email)))

    async def take_invitation_email(self, wedding: str, *, now: float | None = None) -> bool:
        """Whether one more invitation email may go out for ``wedding`` now, counting it if
        so: its creator's email is verified (:meth:`may_send_for`) and fewer than
        ``CRDT_SERVER_INVITATION_EMAILS_PER_DAY`` went today (UTC)."""
        if not await self.may_send_for(wedding):
            return False
        day = datetime.fromtimestamp(time.time() if now is None else now, UTC).date().isoformat()
        limit = self.settings.invitation_emails_per_day
        return await self.db.write(tables.take_mail(wedding, day, INVITATION, limit))
