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
and closes its sockets with 4401 (the ``people.session_ended`` bus message, and a sweep
that re-reads the ended sessions, so a lost message is caught up within a minute).

Emails go through the notifications feature's outbox, if the server runs it
(:class:`MailQueue`, given by that feature): one mailer for every email.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from crdt_server import clock
from crdt_server.auth.principals import Revocations
from crdt_server.auth.tokens import TokenCodec
from crdt_server.cluster.messages import BusMessage, from_event, to_event
from crdt_server.core.hooks import Core, Extension
from crdt_server.core.limits import RateLimiter
from crdt_server.errors import CloseCode
from crdt_server.features.db import FeatureDb, Sql, Tx, row_as, rows_as
from crdt_server.features.people.settings import PeopleSettings
from crdt_server.features.people.tables_sessions import (
    CLAIMS_SCHEMA,
    DEVICE_COLUMNS,
    SESSIONS_SCHEMA,
    ClaimRow,
    CodeRow,
    Count,
    DeviceRow,
    EmailRow,
    HolderRow,
    IdRow,
    LiveRow,
    MembershipRow,
    PersonRow,
    WindowRow,
    digest,
    link,
    new_device,
    normal_email,
    statement,
)

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

ACCESS_TOKEN_SECONDS = 900
"""An access token minted from a device session lives at most this long."""
CODE_SECONDS = 900
"""A sign-in link works this long."""
ROTATE_SECONDS = 86400.0
"""A device session's secret is replaced at the first refresh a day after the last."""
PREVIOUS_SECRET_SECONDS = 60.0
"""The secret before a rotation still works this long (two tabs refreshing at once)."""
SWEEP_SECONDS = 30.0
"""How often idle device sessions are ended and ended ones re-read from the store."""
_MAX_HOLDERS = 1000
"""Members read per address at a sign-in (a bound on hostile directories)."""
_MAX_BACKGROUND = 64
"""Sign-in requests worked on at once in the background; more are dropped (still 202)."""

SESSION_ENDED = "people.session_ended"


class SessionEnded(BusMessage, frozen=True, tag=SESSION_ENDED):
    """A device session ended: refuse its tokens, close its sockets with 4401."""

    sid: str


class MailQueue(Protocol):
    """Where the feature's emails go: the notifications feature's outbox."""

    emails: bool
    """Whether this server sends email at all (an SMTP server is set)."""

    async def queue_email(self, address: str, subject: str, body: str) -> None:
        """Queue one email to a bare address (durably: the mailer sends it, with retries)."""
        ...

    async def forget_address(self, address: str) -> None:
        """Drop the emails still waiting for ``address`` (lower case): its person was
        erased."""
        ...


Forgotten = Callable[[str], Awaitable[object]]
"""Told that an erasure left an address (lower case) held by nobody: what another feature
keeps of it goes."""

Verified = Callable[[str, Sequence[str]], Awaitable[object]]
"""Told that a sign-in link verified an address (lower case), with the weddings where it
now identifies the person's member."""


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A completed sign-in: the person, their new device session and its cookie secret."""

    person: str
    email: str
    device: str
    secret: str
    ambiguous: tuple[str, ...]
    """Weddings where several members hold the address (the person became none of them)."""


@dataclass(frozen=True, slots=True)
class Refreshed:
    """A device session that was used: its person, and the new secret if it rotated."""

    device: str
    person: str
    secret: str | None


_MEMBERSHIPS = (
    "SELECT m.wedding, m.sub, b.role, b.name, m.docs, m.used_at FROM {t}memberships m"
    " JOIN {t}members b ON b.wedding = m.wedding AND b.sub = m.sub WHERE m.person = ?"
    " ORDER BY m.used_at DESC, m.wedding"
)


@dataclass(slots=True)
class _Erased:
    """What a member's erasure found: their person, if that was the person's last
    membership (``None`` otherwise), its live device sessions, and the addresses the
    member and the person had (lower case)."""

    person: str | None
    devices: tuple[str, ...]
    addresses: set[str]
    held: set[str]
    """Of ``addresses``, those someone else still holds (filled by :func:`_erase_person`)."""


def _erase_membership(wedding: str, sub: str) -> Tx[_Erased]:
    """The step that removes a member's membership and verified address, and finds what
    else goes with them (:class:`_Erased`)."""
    given = yield from rows_as(
        EmailRow,
        "SELECT LOWER(email) AS email FROM {t}members WHERE wedding = ? AND sub = ?"
        " AND email IS NOT NULL"
        " UNION SELECT email FROM {t}verified_emails WHERE wedding = ? AND sub = ?"
        " UNION SELECT LOWER(email) AS email FROM {t}invitation_members"
        " WHERE wedding = ? AND sub = ? AND email IS NOT NULL",
        wedding,
        sub,
        wedding,
        sub,
        wedding,
        sub,
    )
    addresses = {normal_email(g.email) for g in given}
    owner = yield from row_as(
        _PersonOf, "SELECT person FROM {t}memberships WHERE wedding = ? AND sub = ?", wedding, sub
    )
    yield Sql("DELETE FROM {t}memberships WHERE wedding = ? AND sub = ?", (wedding, sub))
    yield Sql("DELETE FROM {t}verified_emails WHERE wedding = ? AND sub = ?", (wedding, sub))
    if owner is None:
        return _Erased(None, (), addresses, set())
    left = yield from row_as(
        Count, "SELECT COUNT(*) AS count FROM {t}memberships WHERE person = ?", owner.person
    )
    if left is not None and left.count:
        return _Erased(None, (), addresses, set())
    own = yield from rows_as(
        EmailRow,
        "SELECT email FROM {t}persons WHERE id = ? AND email IS NOT NULL"
        " UNION SELECT email FROM {t}email_claims WHERE person = ?",
        owner.person,
        owner.person,
    )
    addresses |= {normal_email(e.email) for e in own}
    live = yield from rows_as(
        IdRow,
        "SELECT id FROM {t}device_sessions WHERE person = ? AND ended_at IS NULL",
        owner.person,
    )
    return _Erased(owner.person, tuple(d.id for d in live), addresses, set())


def _erase_person(erased: _Erased, wedding: str, sub: str) -> Tx[None]:
    """The step that removes the person (if the erased membership was their last) and the
    codes and claims of the addresses nobody else holds; fills ``erased.held``."""
    if erased.person is not None:
        for table, key in (("device_sessions", "person"), ("email_claims", "person")):
            yield Sql(f"DELETE FROM {{t}}{table} WHERE {key} = ?", (erased.person,))
        yield Sql("DELETE FROM {t}persons WHERE id = ?", (erased.person,))
    for address in sorted(erased.addresses):
        holders = yield from row_as(
            Count,
            "SELECT COUNT(*) AS count FROM (SELECT 1 AS one FROM {t}persons WHERE email = ?"
            " UNION ALL SELECT 1 AS one FROM {t}verified_emails WHERE email = ?"
            " UNION ALL SELECT 1 AS one FROM {t}members WHERE LOWER(email) = ?"
            " AND NOT (wedding = ? AND sub = ?)) AS held",
            address,
            address,
            address,
            wedding,
            sub,
        )
        if holders is not None and holders.count:
            erased.held.add(address)
            continue
        yield Sql("DELETE FROM {t}sign_in_codes WHERE email = ?", (address,))
        yield Sql("DELETE FROM {t}email_claims WHERE email = ?", (address,))


class _PersonOf(msgspec.Struct, frozen=True):
    person: str


def _hourly(window: WindowRow | None, now: float, limit: int) -> tuple[float, int] | None:
    """The (window start, count) an hourly limit records for one more code made at ``now``
    after ``window`` (a new window once the last is an hour old); ``None`` past ``limit``."""
    if window is None or window.window_start <= now - 3600:
        return now, 1
    if window.sent >= limit:
        return None
    return window.window_start, window.sent + 1


def sign_in_code(address: str, code: str, now: float, limit: int) -> Tx[bool]:
    """The step that makes ``code`` the newest sign-in code of ``address`` (lower case), if
    fewer than ``limit`` were made for it this hour; whether it did."""
    window = yield from row_as(
        WindowRow,
        "SELECT window_start, sent FROM {t}sign_in_codes WHERE email = ?",
        address,
    )
    counted = _hourly(window, now, limit)
    if counted is None:
        return False
    start, sent = counted
    yield Sql(
        "INSERT INTO {t}sign_in_codes (email, code_hash, expires_at, window_start, sent)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (email) DO UPDATE SET"
        " code_hash = excluded.code_hash, expires_at = excluded.expires_at,"
        " window_start = excluded.window_start, sent = excluded.sent",
        (address, digest(code), now + CODE_SECONDS, start, sent),
    )
    return True


def sign_in_email(code: str, base: str) -> tuple[str, str]:
    """A sign-in link's email (subject, body); ``base``: the server's public URL."""
    link = f"{base.rstrip('/')}/app/sign-in#code={code}"
    minutes = CODE_SECONDS // 60
    return (
        "Your sign-in link",
        f"Open this link to sign in to your wedding planning:\n\n{link}\n\n"
        f"It works once, for {minutes} minutes; a newer link replaces it. If you did"
        " not ask for it, ignore this email: nobody can sign in without it.\n",
    )


class DeviceSessions(Extension):
    """People, device sessions and sign-in codes (see the module docstring)."""

    name = "device-sessions"

    def __init__(self, revocations: Revocations) -> None:
        self._revocations = revocations
        self._db: FeatureDb | None = None
        self._core: Core | None = None
        self._sweep: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[bool]] = set()
        self.post: MailQueue | None = None
        """Where emails go (set by the notifications feature); ``None``: none are sent."""
        self.address_limiter = RateLimiter(1.0, 1.0)
        """Sign-in requests per client address (``sign_in_per_address_per_hour``)."""
        self.verified_listeners: list[Verified] = []
        """Told whenever a sign-in link verified an address (another feature's interest:
        the weddings feature lets a wedding made through open signup send email once its
        creator's address is verified)."""
        self.ended_listeners: list[Callable[[str], None]] = []
        """Told (in every process, with its id) of each device session that ended: signed
        out, revoked, idle, its person erased (the push feature drops its subscriptions)."""
        self.forgotten_listeners: list[Forgotten] = []
        """Told of each address an erasure left held by nobody (the weddings feature's
        record of who created a wedding keeps a digest of the creator's address)."""

    # -- hooks --------------------------------------------------------------------------

    async def start(self, core: Core) -> None:
        self._core = core
        self._db = FeatureDb(core.store)
        per_hour = self.settings.sign_in_per_address_per_hour
        self.address_limiter = RateLimiter(per_hour / 3600.0, float(per_hour))
        await core.store.install(SESSIONS_SCHEMA)
        await core.store.install(CLAIMS_SCHEMA)
        await self._catch_up(clock.now() - self._revocations.keep_seconds)
        self._sweep = asyncio.create_task(self._sweep_loop(), name="device-sessions")

    async def close(self) -> None:
        tasks = [t for t in (self._sweep, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._db is not None:
            await self._db.drain()

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
        erased = await self.db.write(_erase_membership(wedding, sub))
        await self._end(list(erased.devices))
        await self.db.write(_erase_person(erased, wedding, sub))
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
        ids = await self.db.read_as(
            IdRow,
            "SELECT d.id FROM {t}device_sessions d JOIN {t}memberships m ON m.person = d.person"
            " WHERE m.sub = ? AND d.ended_at IS NULL",
            sub,
        )
        await self._end([i.id for i in ids])

    @property
    def db(self) -> FeatureDb:
        if self._db is None:
            raise RuntimeError("the device sessions extension has not been started")
        return self._db

    @property
    def settings(self) -> PeopleSettings:
        assert self._core is not None
        return self._core.settings.fragment(PeopleSettings)

    # -- sign-in links ------------------------------------------------------------------

    def request_link_later(self, email: str, base: str) -> None:
        """:meth:`request_link` in the background: the caller answers before anything that
        depends on the address is looked at (the same answer, in the same time, for every
        address). Dropped when too many are in flight (the answer is the same)."""
        if len(self._background) >= _MAX_BACKGROUND:
            log.warning("sign-in requests are arriving faster than they are handled: dropped")
            return
        task = asyncio.create_task(self.request_link(email, base), name="sign-in link")
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[bool]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a sign-in link could not be made: %s", type(task.exception()).__name__)

    async def request_link(self, email: str, base: str, *, known: bool = False) -> bool:
        """Email a sign-in link to ``email`` if it is a person's or a member's address (or
        ``known``: the caller vouches for it, e.g. a new wedding's couple) and it was sent
        fewer than ``sign_in_per_email_per_hour`` this hour. ``base``: the server's public
        URL. Whether a link was queued."""
        address = normal_email(email)
        if not known and not await self._known(address):
            return False
        code = secrets.token_urlsafe(32)
        limit = self.settings.sign_in_per_email_per_hour
        if not await self.db.write(sign_in_code(address, code, clock.now(), limit)):
            return False
        await self._mail(address, *sign_in_email(code, base))
        return True

    async def _known(self, address: str) -> bool:
        found = await self.db.read_as(
            Count,
            "SELECT COUNT(*) FROM {t}persons WHERE email = ?",
            address,
        )
        if found and found[0].count:
            return True
        held = await self.db.read_as(
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

        def tx() -> Tx[bool]:
            window = yield from row_as(
                WindowRow,
                "SELECT window_start, sent FROM {t}email_claims WHERE person = ?",
                person,
            )
            counted = _hourly(window, now, limit)
            if counted is None:
                return False
            start, sent = counted
            yield Sql(
                "INSERT INTO {t}email_claims (person, email, code_hash, expires_at,"
                " window_start, sent) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (person) DO UPDATE"
                " SET email = excluded.email, code_hash = excluded.code_hash,"
                " expires_at = excluded.expires_at, window_start = excluded.window_start,"
                " sent = excluded.sent",
                (person, address, digest(code), now + CODE_SECONDS, start, sent),
            )
            return True

        if not await self.db.write(tx()):
            return False
        link = f"{base.rstrip('/')}/app/sign-in#code={code}"
        minutes = CODE_SECONDS // 60
        await self._mail(
            address,
            "Confirm your email address",
            "Someone signed in to a wedding's planning asked to add this address to their"
            f" sign-in. Open this link to confirm it and sign in:\n\n{link}\n\n"
            f"It works once, for {minutes} minutes; a newer link replaces it. If you did"
            " not ask for it, ignore this email: nothing changes without it.\n",
        )
        return True

    async def complete(self, code: str, label: str) -> SignedIn | None:
        """Use a sign-in code once: the person (made on their first sign-in), linked to the
        members their address identifies, with a new device session; ``None`` for a code
        that is unknown, used, replaced or expired.

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

        def tx() -> Tx[tuple[SignedIn, bool, list[str]] | None]:
            # Used up at once, whatever follows: the row stays for the hourly count.
            used = yield from row_as(
                CodeRow,
                "UPDATE {t}sign_in_codes SET code_hash = ?, expires_at = 0"
                " WHERE code_hash = ? AND expires_at >= ? RETURNING email",
                spent,
                digest(code),
                now,
            )
            claimer: str | None = None
            if used is None:
                claim = yield from row_as(
                    ClaimRow,
                    "UPDATE {t}email_claims SET code_hash = ?, expires_at = 0"
                    " WHERE code_hash = ? AND expires_at >= ? RETURNING person, email",
                    spent,
                    digest(code),
                    now,
                )
                if claim is None:
                    return None
                claimer, address = claim.person, claim.email
                asking = yield from row_as(
                    PersonRow, "SELECT id, email FROM {t}persons WHERE id = ?", claimer
                )
                if asking is None:
                    return None  # erased since it asked
            else:
                address = used.email
            person = yield from row_as(
                PersonRow, "SELECT id, email FROM {t}persons WHERE email = ?", address
            )
            if claimer is not None and person is not None and person.id != claimer:
                # The address is another sign-in's: whoever holds it is that person.
                for table in ("memberships", "device_sessions"):
                    yield Sql(
                        f"UPDATE {{t}}{table} SET person = ? WHERE person = ?",
                        (person.id, claimer),
                    )
                yield Sql("DELETE FROM {t}email_claims WHERE person = ?", (claimer,))
                yield Sql("DELETE FROM {t}persons WHERE id = ?", (claimer,))
            elif claimer is not None:
                yield Sql("UPDATE {t}persons SET email = ? WHERE id = ?", (address, claimer))
                person = PersonRow(claimer, address)
            pid = person_id if person is None else person.id
            if person is None:
                yield Sql(
                    "INSERT INTO {t}persons (id, email, created_at) VALUES (?, ?, ?)",
                    (pid, address, now),
                )
            holders = yield from rows_as(
                HolderRow,
                "SELECT wedding, sub FROM {t}members WHERE LOWER(email) = ? LIMIT ?",
                address,
                _MAX_HOLDERS,
            )
            per_wedding = Counter(h.wedding for h in holders)
            linked = []
            for holder in holders:
                if per_wedding[holder.wedding] != 1:
                    continue
                linked.append(holder.wedding)
                yield from link(pid, holder.wedding, holder.sub, address, now)
            if claimer is not None:
                bare = yield from rows_as(
                    HolderRow,
                    "SELECT m.wedding, m.sub FROM {t}memberships m JOIN {t}members b"
                    " ON b.wedding = m.wedding AND b.sub = m.sub"
                    " WHERE m.person = ? AND b.email IS NULL LIMIT ?",
                    pid,
                    _MAX_HOLDERS,
                )
                for member in bare:
                    if per_wedding[member.wedding]:
                        continue  # another member has it there: it identifies neither
                    yield Sql(
                        "UPDATE {t}members SET email = ? WHERE wedding = ? AND sub = ?",
                        (address, member.wedding, member.sub),
                    )
                    linked.append(member.wedding)
                    yield from link(pid, member.wedding, member.sub, address, now)
            devices = yield from row_as(
                Count, "SELECT COUNT(*) FROM {t}device_sessions WHERE person = ?", pid
            )
            yield from new_device(device, pid, secret, label, now)
            ambiguous = tuple(sorted(w for w, n in per_wedding.items() if n > 1))
            first = devices is None or devices.count == 0
            return SignedIn(pid, address, device, secret, ambiguous), first, linked

        done = await self.db.write(tx())
        if done is None:
            return None
        signed_in, first, linked = done
        for told in self.verified_listeners:
            await told(signed_in.email, linked)
        if not first:
            await self._tellnew_device(signed_in.email, label, now)
        return signed_in

    async def person_email(self, person: str) -> str | None:
        """The person's verified address (``None``: they have none)."""
        found = await self.db.read_one_as(
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
        await self.db.write(new_device(device, person, secret, label, clock.now()))
        return device, secret

    async def person(self, email: str | None = None) -> str:
        """A new person (``p_...``), with ``email`` as their verified address if given
        (the existing person of that address instead, if there is one)."""
        address = normal_email(email) if email is not None else None
        pid = "p_" + secrets.token_urlsafe(12)

        def tx() -> Tx[str]:
            if address is not None:
                found = yield from row_as(
                    PersonRow, "SELECT id, email FROM {t}persons WHERE email = ?", address
                )
                if found is not None:
                    return found.id
            yield Sql(
                "INSERT INTO {t}persons (id, email, created_at) VALUES (?, ?, ?)",
                (pid, address, clock.now()),
            )
            return pid

        return await self.db.write(tx())

    async def add_membership(
        self, person: str, wedding: str, sub: str, docs: dict[str, str] | None = None
    ) -> None:
        """Make ``person`` the member ``sub`` of ``wedding`` (whose directory entry says the
        role), with an optional document narrowing."""
        text = json.dumps(docs, sort_keys=True) if docs else None
        await self.db.write(
            statement(
                "INSERT INTO {t}memberships (wedding, sub, person, docs, used_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (wedding, sub) DO UPDATE SET"
                " person = excluded.person, docs = excluded.docs",
                (wedding, sub, person, text, clock.now()),
            )
        )

    async def use(self, secret: str) -> Refreshed | None:
        """The live device session whose cookie holds ``secret``, marked used now (its
        secret rotated once a day); ``None`` if there is none, or it ended or went idle
        (then it ends now)."""
        now = clock.now()
        idle = self.settings.device_session_idle_days * 86400
        hashed = digest(secret)
        fresh = secrets.token_urlsafe(32)

        def tx() -> Tx[tuple[Refreshed | None, str | None]]:
            found = yield from row_as(
                LiveRow,
                "SELECT id, person, secret_hash, rotated_at, last_used, ended_at"
                " FROM {t}device_sessions WHERE secret_hash = ? OR (previous_hash = ?"
                " AND rotated_at > ?)",
                hashed,
                hashed,
                now - PREVIOUS_SECRET_SECONDS,
            )
            if found is None or found.ended_at is not None:
                return None, None
            if found.last_used < now - idle:
                yield Sql(
                    "UPDATE {t}device_sessions SET ended_at = ? WHERE id = ?", (now, found.id)
                )
                return None, found.id
            rotate = found.secret_hash == hashed and found.rotated_at < now - ROTATE_SECONDS
            if rotate:
                yield Sql(
                    "UPDATE {t}device_sessions SET last_used = ?, rotated_at = ?,"
                    " previous_hash = secret_hash, secret_hash = ? WHERE id = ?",
                    (now, now, digest(fresh), found.id),
                )
            else:
                yield Sql(
                    "UPDATE {t}device_sessions SET last_used = ? WHERE id = ?", (now, found.id)
                )
            return Refreshed(found.id, found.person, fresh if rotate else None), None

        used, idled = await self.db.write(tx())
        if idled is not None:
            self._ended(idled)
        return used

    async def memberships(self, person: str) -> list[MembershipRow]:
        """The person's weddings (most recently used first) with their current roles."""
        return await self.db.read_as(MembershipRow, _MEMBERSHIPS, person)

    async def verified_email(self, wedding: str, sub: str) -> str | None:
        """The member's address if it is verified (an operator set it, or a sign-in link to
        it was used), lower case; ``None`` otherwise. An address given at an invitation is
        not, until a link verifies it."""
        found = await self.db.read_one_as(
            EmailRow,
            "SELECT v.email FROM {t}verified_emails v JOIN {t}members b ON b.wedding ="
            " v.wedding AND b.sub = v.sub AND LOWER(b.email) = v.email"
            " WHERE v.wedding = ? AND v.sub = ?",
            wedding,
            sub,
        )
        return None if found is None else found.email

    async def used_wedding(self, person: str, wedding: str) -> None:
        await self.db.write(
            statement(
                "UPDATE {t}memberships SET used_at = ? WHERE person = ? AND wedding = ?",
                (clock.now(), person, wedding),
            )
        )

    async def mint(self, codec: TokenCodec, membership: MembershipRow, sid: str, ttl: float) -> str:
        """An access token for one wedding of the person: the membership's role (the
        directory's), its document narrowing, ``sid``; at most
        :data:`ACCESS_TOKEN_SECONDS`."""
        now = clock.now()
        if self._revocations.revoked_since(membership.sub, membership.wedding, float(int(now))):
            # Revoked this very second (a role change): a token's ``iat`` is whole seconds,
            # and one of this second would be refused as issued before the revocation.
            await asyncio.sleep(int(now) + 1 - now)
        docs = json.loads(membership.docs) if membership.docs else None
        return codec.mint(
            sub=membership.sub,
            name=membership.name,
            role=membership.role,
            wedding=membership.wedding,
            ttl=min(ttl, ACCESS_TOKEN_SECONDS, codec.max_lifetime),
            docs=docs,
            sid=sid,
        )

    async def devices(self, person: str) -> list[DeviceRow]:
        """The person's live device sessions, the most recently used first."""
        return await self.db.read_as(
            DeviceRow,
            f"SELECT {DEVICE_COLUMNS} FROM {{t}}device_sessions WHERE person = ?"
            " AND ended_at IS NULL ORDER BY last_used DESC, id",
            person,
        )

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

        def tx() -> Tx[None]:
            for sid in ids:
                yield Sql(
                    "UPDATE {t}device_sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL",
                    (now, sid),
                )

        await self.db.write(tx())
        for sid in ids:
            self._ended(sid)

    def _ended(self, sid: str) -> None:
        """A device session ended (stored): here and in every other process."""
        self._ended_here(sid)
        assert self._core is not None
        self._core.registry.bus.publish_event(to_event(SessionEnded(sid)))

    def _ended_here(self, sid: str) -> None:
        self._revocations.end_session(sid)
        for told in self.ended_listeners:
            told(sid)
        if self._core is None:
            return
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
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))
        await self._mail(
            address,
            "A new device signed in",
            f"A new device signed in to your wedding planning at {when}:\n\n  {label}\n\n"
            "If it was not you, sign out that device from the devices list of the app.\n",
        )

    # -- keeping up ---------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        while True:
            await clock.sleep(SWEEP_SECONDS)
            try:
                await self.sweep()
            except Exception:
                log.exception("sweeping device sessions failed; retrying")

    async def sweep(self) -> None:
        """End device sessions unused for the idle limit; catch up with those ended
        elsewhere (a bus message lost)."""
        now = clock.now()
        idle = await self.db.read_as(
            IdRow,
            "SELECT id FROM {t}device_sessions WHERE ended_at IS NULL AND last_used < ?",
            now - self.settings.device_session_idle_days * 86400,
        )
        await self._end([i.id for i in idle])
        await self._catch_up(now - 4 * SWEEP_SECONDS)

    async def _catch_up(self, since: float) -> None:
        ended = await self.db.read_as(
            IdRow, "SELECT id FROM {t}device_sessions WHERE ended_at >= ?", since
        )
        for row in ended:
            if not self._revocations.session_ended(row.id):
                self._ended_here(row.id)
