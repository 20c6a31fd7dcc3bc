"""Device sessions and sign-in links: how a person gets in without an operator's token.

A sign-in link (``POST /api/sign-in``) carries a one-time code, of which the store keeps
the SHA-256 only: the newest per address (a newer one replaces it), usable once within
:data:`CODE_SECONDS`. Completing it makes (or finds) the person of that address and links
them to every member whose address it is, in each wedding where exactly one member holds
it (several: none of them, the answer says which weddings), then starts a **device
session**: a 256-bit secret in the browser's cookie (SHA-256 stored), from which short
access tokens per wedding are minted (:meth:`DeviceSessions.mint`, carrying ``sid``).

A device session ends when signed out, revoked from the devices list, or unused for
``CRDT_SERVER_DEVICE_SESSION_IDLE_DAYS``; then every process refuses its tokens
(:meth:`Revocations.end_session <crdt_server.auth.principals.Revocations.end_session>`)
and stream tickets, closes its sockets with 4401 and ends its event streams (``event:
end``) (the ``people.session_ended`` bus message, and a sweep that re-reads the ended
sessions, so a lost message is caught up within a minute).

Emails go through the notifications feature's outbox, if the server runs it
(:class:`MailQueue`, given by that feature): one mailer for every email.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

from crdt_server import clock
from crdt_server.auth.digests import secret_digest
from crdt_server.auth.principals import Revocations
from crdt_server.auth.tokens import TokenCodec
from crdt_server.cluster.messages import from_event, to_event
from crdt_server.core.hooks import Core, Extension
from crdt_server.core.limits import RateLimiter
from crdt_server.errors import CloseCode
from crdt_server.features.signin.domain import (
    ACCESS_TOKEN_SECONDS,
    CODE_SECONDS,
    SESSION_ENDED,
    Forgotten,
    MailQueue,
    Proof,
    Refreshed,
    Refused,
    SessionEnded,
    SignedIn,
    Verified,
    claim_email,
    new_device_email,
    sign_in_email,
)
from crdt_server.features.signin.service import (
    _MEMBERSHIPS,
    _erase_membership,
    _erase_person,
    claim_code,
    complete_sign_in,
    end_devices,
    new_person,
    refresh_device,
    sign_in_code,
)
from crdt_server.features.signin.settings import SignInSettings
from crdt_server.features.signin.tables import (
    DEVICE_COLUMNS,
    Count,
    DeviceRow,
    EmailRow,
    HolderRow,
    IdRow,
    MembershipRow,
    PersonRow,
    new_device,
    normal_email,
    statement,
)
from crdt_server.storage import Gateway, StoreError

__all__ = [
    "ACCESS_TOKEN_SECONDS",
    "CODE_SECONDS",
    "SESSION_ENDED",
    "DeviceSessions",
    "MailQueue",
    "Refreshed",
    "SessionEnded",
    "SignedIn",
    "Verified",
    "sign_in_code",
    "sign_in_email",
]

log = logging.getLogger("crdt_server.people.sessions")

SWEEP_SECONDS = 30.0
"""How often idle device sessions are ended and ended ones re-read from the store."""
_MAX_BACKGROUND = 64
"""Sign-in requests worked on at once in the background; more are dropped (still 202)."""


class DeviceSessions(Extension):
    """People, device sessions and sign-in codes (see the module docstring)."""

    name = "device-sessions"

    def __init__(self, core: Core, revocations: Revocations) -> None:
        self._revocations = revocations
        self.db = Gateway.of(core.store)
        self._core = core
        self.settings = core.settings.fragment(SignInSettings)
        self._sweep: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[bool]] = set()
        self.post: MailQueue | None = None
        """Where emails go (set by the notifications feature); ``None``: none are sent."""
        per_hour = self.settings.sign_in_per_address_per_hour
        self.address_limiter = RateLimiter(per_hour / 3600.0, float(per_hour))
        """Sign-in requests per client address (``sign_in_per_address_per_hour``)."""
        self.verified_listeners: list[Verified] = []
        """Told whenever a sign-in link verified an address (another feature's interest:
        the weddings feature lets a wedding made through open signup send email once its
        creator's address is verified)."""
        self.ended_listeners: list[Callable[[str], None]] = []
        """Told (in every process, with its id) of each device session that ended: signed
        out, revoked, idle, its person erased (the push feature drops its subscriptions,
        the event log ends the event streams its tokens and tickets opened)."""
        self.forgotten_listeners: list[Forgotten] = []
        """Told of each address an erasure left held by nobody (the weddings feature's
        record of who created a wedding keeps a digest of the creator's address)."""

    # -- hooks --------------------------------------------------------------------------

    async def start(self, core: Core) -> None:
        await self._catch_up(clock.now() - self._revocations.keep_seconds)
        self._sweep = asyncio.create_task(self._sweep_loop(), name="device-sessions")

    async def close(self) -> None:
        tasks = [t for t in (self._sweep, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def on_bus_event(self, event: dict[str, Any]) -> None:
        if (ended := from_event(event, SessionEnded)) is not None:
            self._ended_here(ended.sid)

    async def on_member_erased(self, wedding: str, sub: str) -> bool:
        """The member's membership and verified address go. If that was their person's
        last membership, everything about the person goes too: their device sessions
        (ended first, as a revocation ends them: refused in every process, sockets closed
        with 4401), their "add your email" claim, the person; and every address the member
        or the person had (the directory's, the verified one, the one given at an
        invitation, the person's, the claimed one) loses its sign-in code, claims and
        waiting emails, unless someone still holds it (another member, another person).

        Runs before the directory's and the invitations' hooks (the feature lists this
        extension first), which still hold the member's addresses."""
        erased = await self.db.run(_erase_membership(wedding, sub))
        await self._end(list(erased.devices))
        await self.db.run(_erase_person(erased, wedding, sub))
        for address in sorted(erased.addresses - erased.held):
            if self.post is not None:
                await self.post.forget_address(address)
            for told in self.forgotten_listeners:
                await told(address)
        return False  # the directory's entry says whether they were a member

    async def on_revoke(self, sub: str, wedding: str | None) -> None:
        if wedding is not None:
            return  # their tokens of that wedding are refused by sub; the device goes on
        # Revoked everywhere: every device session of the people who are that member.
        ids = await self.db.fetch_as(
            IdRow,
            "SELECT d.id FROM {t}device_sessions d JOIN {t}memberships m ON m.person = d.person"
            " WHERE m.sub = ? AND d.ended_at IS NULL",
            sub,
        )
        await self._end([i.id for i in ids])

    # -- sign-in links ------------------------------------------------------------------

    def request_link_later(self, email: str, base: str, challenge: str | None = None) -> None:
        """:meth:`request_link` in the background: the caller answers before anything that
        depends on the address is looked at (the same answer, in the same time, for every
        address). Dropped when too many are in flight (the answer is the same)."""
        if len(self._background) >= _MAX_BACKGROUND:
            log.warning("sign-in requests are arriving faster than they are handled: dropped")
            return
        task = asyncio.create_task(
            self.request_link(email, base, challenge=challenge), name="sign-in link"
        )
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[bool]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a sign-in link could not be made: %s", type(task.exception()).__name__)

    async def request_link(
        self, email: str, base: str, *, known: bool = False, challenge: str | None = None
    ) -> bool:
        """Email a sign-in link to ``email`` if it is a person's or a member's address (or
        ``known``: the caller vouches for it, e.g. a new wedding's couple) and it was sent
        fewer than ``sign_in_per_email_per_hour`` this hour. ``base``: the server's public
        URL; ``challenge``: a native app's PKCE S256 challenge (the link is then the one
        the app claims, and its code signs in only with the verifier). Whether a link was
        queued."""
        address = normal_email(email)
        if not known and not await self._known(address):
            return False
        code = secrets.token_urlsafe(32)
        limit = self.settings.sign_in_per_email_per_hour
        if not await self.db.run(sign_in_code(address, code, clock.now(), limit, challenge)):
            return False
        await self._mail(address, *sign_in_email(code, base, app=challenge is not None))
        return True

    async def _known(self, address: str) -> bool:
        found = await self.db.fetch_as(
            Count,
            "SELECT COUNT(*) FROM {t}persons WHERE email = ?",
            address,
        )
        if found and found[0].count:
            return True
        held = await self.db.fetch_as(
            Count,
            "SELECT COUNT(*) FROM {t}members WHERE LOWER(email) = ?",
            address,
        )
        return bool(held and held[0].count)

    async def request_claim(self, person: str, email: str, base: str) -> bool:
        """Email a link that verifies ``email`` for ``person`` (signed in on a device with
        no verified address: joined by invitation without one), at most
        ``sign_in_per_email_per_hour`` an hour per person; only the newest works. Whether
        one was queued."""
        address = normal_email(email)
        code = secrets.token_urlsafe(32)
        now = clock.now()
        limit = self.settings.sign_in_per_email_per_hour

        if not await self.db.run(claim_code(person, address, code, now, limit)):
            return False
        await self._mail(address, *claim_email(code, base))
        return True

    async def complete(
        self, code: str, label: str, proof: Proof | None = None
    ) -> SignedIn | Refused:
        """Use a sign-in code once: the person (made on their first sign-in), linked to the
        members their address identifies, with a new device session; else the field at
        fault: ``code`` for a code that is unknown, used, replaced or expired,
        ``code_verifier`` for a PKCE proof that fails (``proof``: a native app's; see
        :func:`~crdt_server.features.signin.service.complete_sign_in`).

        An "add your email" code (:meth:`request_claim`) verifies its address for the
        person who asked: it becomes their address (or, if another person has it, they
        become that person: their memberships and devices move to it), they are linked to
        the members it identifies, and their memberships whose member has no address get
        it (unless another member of that wedding holds it)."""
        now = clock.now()
        person_id = "p_" + secrets.token_urlsafe(12)
        device = "d_" + secrets.token_urlsafe(12)
        secret = secrets.token_urlsafe(32)
        spent = "used:" + secrets.token_urlsafe(24)

        done = await self.db.run(
            complete_sign_in(code, label, now, person_id, device, secret, spent, proof or Proof())
        )
        if isinstance(done, str):
            return done
        signed_in, first, linked = done
        for told in self.verified_listeners:
            await told(signed_in.email, linked)
        if not first:
            await self._tellnew_device(signed_in.email, label, now)
        return signed_in

    async def person_email(self, person: str) -> str | None:
        """The person's verified address (``None``: they have none)."""
        found = await self.db.fetch_one_as(
            PersonRow, "SELECT id, email FROM {t}persons WHERE id = ?", person
        )
        return None if found is None else found.email

    # -- device sessions ----------------------------------------------------------------

    async def start_session(self, person: str, label: str) -> tuple[str, str]:
        """Start a device session for ``person`` (signed in some other way, e.g. an
        accepted invitation): (device id, cookie secret). The person must exist
        (:meth:`person`)."""
        device = "d_" + secrets.token_urlsafe(12)
        secret = secrets.token_urlsafe(32)
        await self.db.run(new_device(device, person, secret, label, clock.now()))
        return device, secret

    async def person(self, email: str | None = None) -> str:
        """A new person (``p_...``), with ``email`` as their verified address if given
        (the existing person of that address instead, if there is one)."""
        address = normal_email(email) if email is not None else None
        pid = "p_" + secrets.token_urlsafe(12)

        return await self.db.run(new_person(pid, address))

    async def add_membership(
        self, person: str, wedding: str, sub: str, docs: dict[str, str] | None = None
    ) -> None:
        """Make ``person`` the member ``sub`` of ``wedding`` (whose directory entry says the
        role), with an optional document narrowing."""
        text = json.dumps(docs, sort_keys=True) if docs else None
        await self.db.run(
            statement(
                "INSERT INTO {t}memberships (wedding, sub, person, docs, used_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (wedding, sub) DO UPDATE SET"
                " person = excluded.person, docs = excluded.docs",
                (wedding, sub, person, text, clock.now()),
            )
        )

    async def use(self, secret: str, *, rotate: bool = True) -> Refreshed | None:
        """The live device session whose cookie (or native app) holds ``secret``, marked
        used now (its secret rotated once a day, if ``rotate``); ``None`` if there is none,
        or it ended or went idle (then it ends now)."""
        now = clock.now()
        idle = self.settings.device_session_idle_days * 86400
        hashed = secret_digest(secret)
        fresh = secrets.token_urlsafe(32)

        used, idled = await self.db.run(refresh_device(hashed, fresh, now, idle, rotate))
        if idled is not None:
            self._ended(idled)
        return used

    async def memberships(self, person: str) -> list[MembershipRow]:
        """The person's weddings (most recently used first) with their current roles."""
        return await self.db.fetch_as(MembershipRow, _MEMBERSHIPS, person)

    async def verified_email(self, wedding: str, sub: str) -> str | None:
        """The member's address if it is verified (an operator set it, or a sign-in link to
        it was used), lower case; ``None`` otherwise. An address given at an invitation is
        not, until a link verifies it."""
        found = await self.db.fetch_one_as(
            EmailRow,
            "SELECT v.email FROM {t}verified_emails v JOIN {t}members b ON b.wedding ="
            " v.wedding AND b.sub = v.sub AND LOWER(b.email) = v.email"
            " WHERE v.wedding = ? AND v.sub = ?",
            wedding,
            sub,
        )
        return None if found is None else found.email

    async def verified_subs(self, wedding: str) -> set[str]:
        """The members of ``wedding`` whose address is verified (:meth:`verified_email`)."""
        found = await self.db.fetch_as(
            HolderRow,
            "SELECT v.wedding, v.sub FROM {t}verified_emails v JOIN {t}members b ON b.wedding ="
            " v.wedding AND b.sub = v.sub AND LOWER(b.email) = v.email WHERE v.wedding = ?",
            wedding,
        )
        return {row.sub for row in found}

    async def used_wedding(self, person: str, wedding: str) -> None:
        await self.db.run(
            statement(
                "UPDATE {t}memberships SET used_at = ? WHERE person = ? AND wedding = ?",
                (clock.now(), person, wedding),
            )
        )

    async def mint(self, codec: TokenCodec, membership: MembershipRow, sid: str, ttl: float) -> str:
        """An access token for one wedding of the person: the membership's role and field
        set of the guest list (the directory's), its document narrowing, ``sid``; at most
        :data:`ACCESS_TOKEN_SECONDS`."""
        # Revoked this very second (a role change): a token's ``iat`` is whole seconds, and
        # one of this second would be refused as issued before the revocation. Wait into
        # the next second by the server's clock, checked again: a timer may wake early.
        for _ in range(3):
            now = clock.now()
            if not self._revocations.revoked_since(
                membership.sub, membership.wedding, float(int(now))
            ):
                break
            await clock.sleep(int(now) + 1 - now + 0.01)
        docs = json.loads(membership.docs) if membership.docs else None
        return codec.mint(
            sub=membership.sub,
            name=membership.name,
            role=membership.role,
            wedding=membership.wedding,
            ttl=min(ttl, ACCESS_TOKEN_SECONDS, codec.max_lifetime),
            docs=docs,
            sid=sid,
            guest_fields=membership.guest_fields,
        )

    async def devices(self, person: str) -> list[DeviceRow]:
        """The person's live device sessions, the most recently used first."""
        return await self.db.fetch_as(
            DeviceRow,
            f"SELECT {DEVICE_COLUMNS} FROM {{t}}device_sessions WHERE person = ?"
            " AND ended_at IS NULL ORDER BY last_used DESC, id",
            person,
        )

    async def rename(self, person: str, device: str, label: str) -> DeviceRow | None:
        """Give one of the person's live device sessions a new label; the device as it is
        now (``None``: no such live device of theirs)."""
        await self.db.run(
            statement(
                "UPDATE {t}device_sessions SET label = ? WHERE id = ? AND person = ?"
                " AND ended_at IS NULL",
                (label, device, person),
            )
        )
        return next((d for d in await self.devices(person) if d.id == device), None)

    async def end(self, person: str, device: str | None = None) -> int:
        """End one of the person's device sessions (``device``) or all of them; how many."""
        rows = await self.devices(person)
        ids = [d.id for d in rows if device is None or d.id == device]
        await self._end(ids)
        return len(ids)

    async def _end(self, ids: list[str]) -> None:
        if not ids:
            return
        now = clock.now()
        await self.db.run(end_devices(ids, now))
        for sid in ids:
            self._ended(sid)

    def _ended(self, sid: str) -> None:
        """A device session ended (stored): here and in every other process."""
        self._ended_here(sid)
        self._core.registry.bus.publish_event(to_event(SessionEnded(sid)))

    def _ended_here(self, sid: str) -> None:
        self._revocations.end_session(sid)
        for told in self.ended_listeners:
            told(sid)
        for room in list(self._core.registry.rooms.values()):
            for conn in list(room.connections):
                if conn.principal.session_id == sid:
                    conn.request_close(CloseCode.TOKEN_EXPIRED, "device session ended")

    # -- emails ---------------------------------------------------------------------------

    async def _mail(self, address: str, subject: str, body: str) -> None:
        if self.post is None:
            log.warning("an email could not be queued: this server runs no notifications")
            return
        await self.post.queue_email(address, subject, body)

    async def _tellnew_device(self, address: str, label: str, at: float) -> None:
        await self._mail(address, *new_device_email(label, at))

    # -- keeping up ---------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        while True:
            await clock.sleep(SWEEP_SECONDS)
            try:
                await self.sweep()
            except StoreError as exc:  # a full disk, a lost database: one line, not a trace
                log.warning("sweeping device sessions paused, the store failed: %s; retrying", exc)
            except Exception:
                log.exception("sweeping device sessions failed; retrying")

    async def sweep(self) -> None:
        """End device sessions unused for the idle limit; catch up with those ended
        elsewhere (a bus message lost)."""
        now = clock.now()
        idle = await self.db.fetch_as(
            IdRow,
            "SELECT id FROM {t}device_sessions WHERE ended_at IS NULL AND last_used < ?",
            now - self.settings.device_session_idle_days * 86400,
        )
        await self._end([i.id for i in idle])
        await self._catch_up(now - 4 * SWEEP_SECONDS)

    async def _catch_up(self, since: float) -> None:
        ended = await self.db.fetch_as(
            IdRow, "SELECT id FROM {t}device_sessions WHERE ended_at >= ?", since
        )
        for row in ended:
            if not self._revocations.session_ended(row.id):
                self._ended_here(row.id)
