"""The device sessions' transactions: the steps that erase a member's sign-in records, make
sign-in and "add your email" codes, complete a sign-in, make a person, refresh and end
device sessions, each run in one store transaction by
:class:`~crdt_server.features.signin.extension.DeviceSessions`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import msgspec

from crdt_server import clock
from crdt_server.auth.digests import secret_digest
from crdt_server.features.signin.domain import (
    CODE_SECONDS,
    Proof,
    Refreshed,
    Refused,
    SignedIn,
)
from crdt_server.features.signin.tables import (
    ChallengeRow,
    ClaimRow,
    CodeRow,
    Count,
    EmailRow,
    HolderRow,
    IdRow,
    LiveRow,
    PersonRow,
    WindowRow,
    link,
    new_device,
    normal_email,
)
from crdt_server.storage.gateway import Sql, Tx, row_as, rows_as

__all__ = [
    "PREVIOUS_SECRET_SECONDS",
    "ROTATE_SECONDS",
    "claim_code",
    "complete_sign_in",
    "end_devices",
    "new_person",
    "refresh_device",
    "sign_in_code",
]

ROTATE_SECONDS = 86400.0
"""A device session's secret is replaced at the first refresh a day after the last."""
PREVIOUS_SECRET_SECONDS = 60.0
"""The secret before a rotation still works this long (two tabs refreshing at once)."""
_MAX_HOLDERS = 1000
"""Members read per address at a sign-in (a bound on hostile directories)."""

_MEMBERSHIPS = (
    "SELECT m.wedding, m.sub, b.role, b.name, m.docs, m.used_at, b.guest_fields"
    " FROM {t}memberships m"
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
        for table in ("sign_in_codes", "code_challenges", "email_claims"):
            yield Sql(f"DELETE FROM {{t}}{table} WHERE email = ?", (address,))


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


def sign_in_code(
    address: str, code: str, now: float, limit: int, challenge: str | None = None
) -> Tx[bool]:
    """The step that makes ``code`` the newest sign-in code of ``address`` (lower case), if
    fewer than ``limit`` were made for it this hour, with a native app's PKCE
    ``challenge`` (the code then signs in only with its verifier); whether it did."""
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
        (address, secret_digest(code), now + CODE_SECONDS, start, sent),
    )
    if challenge is None:
        yield Sql("DELETE FROM {t}code_challenges WHERE email = ?", (address,))
    else:
        yield Sql(
            "INSERT INTO {t}code_challenges (email, code_hash, challenge) VALUES (?, ?, ?)"
            " ON CONFLICT (email) DO UPDATE SET code_hash = excluded.code_hash,"
            " challenge = excluded.challenge",
            (address, secret_digest(code), challenge),
        )
    return True


def claim_code(person: str, address: str, code: str, now: float, limit: int) -> Tx[bool]:
    """The step that makes ``code`` the newest "add your email" code of ``person``, for
    ``address`` (lower case), if fewer than ``limit`` were made for them this hour; whether
    it did."""
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
        (person, address, secret_digest(code), now + CODE_SECONDS, start, sent),
    )
    return True


def complete_sign_in(
    code: str,
    label: str,
    now: float,
    person_id: str,
    device: str,
    secret: str,
    spent: str,
    proof: Proof,
) -> Tx[tuple[SignedIn, bool, list[str]] | Refused]:
    """The step that uses a sign-in or "add your email" code once (marked ``spent``) and
    signs its person in on a new device session (``person_id``: the person made if there is
    none; ``device``, ``secret``: the new session's): the sign-in, whether it is the
    person's first device, and the weddings where the address now identifies their member.
    Refused, naming the field at fault: ``code`` for a code that is unknown, used, replaced
    or expired; ``code_verifier`` for a code whose link a native app asked for with a PKCE
    challenge, used without the matching verifier, and for a native app (``proof.app``)
    using a code asked for without one (a code read from someone's mailbox signs no app
    in). Either way the code is used up (see :meth:`DeviceSessions.complete
    <crdt_server.features.signin.extension.DeviceSessions.complete>`)."""
    used = yield from _use_code(code, now, spent, proof)
    if isinstance(used, str):
        return used
    address, claimer = used
    pid = yield from _person_of(address, claimer, person_id, now)
    linked, ambiguous = yield from _link_members(pid, address, claimer, now)
    devices = yield from row_as(
        Count, "SELECT COUNT(*) FROM {t}device_sessions WHERE person = ?", pid
    )
    yield from new_device(device, pid, secret, label, now)
    first = devices is None or devices.count == 0
    return SignedIn(pid, address, device, secret, ambiguous), first, linked


def _use_code(
    code: str, now: float, spent: str, proof: Proof
) -> Tx[tuple[str, str | None] | Refused]:
    """The step that uses ``code`` up (a sign-in code, or an "add your email" code of the
    person it names): the address it was sent to and, for an "add your email" code, the
    person who asked; or the field at fault."""
    hashed = secret_digest(code)
    # Used up at once, whatever follows: the row stays for the hourly count.
    used = yield from row_as(
        CodeRow,
        "UPDATE {t}sign_in_codes SET code_hash = ?, expires_at = 0"
        " WHERE code_hash = ? AND expires_at >= ? RETURNING email",
        spent,
        hashed,
        now,
    )
    if used is not None:
        challenged = yield from row_as(
            ChallengeRow,
            "SELECT challenge FROM {t}code_challenges WHERE email = ? AND code_hash = ?",
            used.email,
            hashed,
        )
        yield Sql("DELETE FROM {t}code_challenges WHERE email = ?", (used.email,))
        if not proof.answers(challenged.challenge if challenged else None):
            return "code_verifier"
        return used.email, None
    claim = yield from row_as(
        ClaimRow,
        "UPDATE {t}email_claims SET code_hash = ?, expires_at = 0"
        " WHERE code_hash = ? AND expires_at >= ? RETURNING person, email",
        spent,
        hashed,
        now,
    )
    if claim is None:
        return "code"
    if not proof.answers(None):
        return "code_verifier"
    asking = yield from row_as(
        PersonRow, "SELECT id, email FROM {t}persons WHERE id = ?", claim.person
    )
    if asking is None:
        return "code"  # erased since it asked
    return claim.email, claim.person


def _person_of(address: str, claimer: str | None, person_id: str, now: float) -> Tx[str]:
    """The step that finds the person ``address`` identifies: its holder (who takes over
    the ``claimer``'s memberships and devices, if another), the ``claimer`` given the
    address, or a new person ``person_id``; their id."""
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
        return claimer
    if person is not None:
        return person.id
    yield Sql(
        "INSERT INTO {t}persons (id, email, created_at) VALUES (?, ?, ?)",
        (person_id, address, now),
    )
    return person_id


def _link_members(
    pid: str, address: str, claimer: str | None, now: float
) -> Tx[tuple[list[str], tuple[str, ...]]]:
    """The step that links person ``pid`` to the members ``address`` identifies (one per
    wedding; and, for an "add your email" code, the person's members with no address
    yet, given it): the weddings linked, and those where several members have it."""
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
    ambiguous = tuple(sorted(w for w, n in per_wedding.items() if n > 1))
    return linked, ambiguous


def new_person(pid: str, address: str | None) -> Tx[str]:
    """The step that makes the person ``pid`` with ``address`` (lower case) as their
    verified address, unless a person has that address already; the person's id."""
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


def refresh_device(
    hashed: str, fresh: str, now: float, idle: float, rotate: bool = True
) -> Tx[tuple[Refreshed | None, str | None]]:
    """The step that marks used now the live device session whose secret's digest is
    ``hashed`` (its secret becomes ``fresh`` once a day, if ``rotate``): the session, or
    ``None`` and, if it went idle (then it ends now), its id."""
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
        yield Sql("UPDATE {t}device_sessions SET ended_at = ? WHERE id = ?", (now, found.id))
        return None, found.id
    rotate = rotate and found.secret_hash == hashed and found.rotated_at < now - ROTATE_SECONDS
    if rotate:
        yield Sql(
            "UPDATE {t}device_sessions SET last_used = ?, rotated_at = ?,"
            " previous_hash = secret_hash, secret_hash = ? WHERE id = ?",
            (now, now, secret_digest(fresh), found.id),
        )
    else:
        yield Sql("UPDATE {t}device_sessions SET last_used = ? WHERE id = ?", (now, found.id))
    return Refreshed(found.id, found.person, fresh if rotate else None), None


def end_devices(ids: list[str], now: float) -> Tx[None]:
    """The step that ends the device sessions ``ids`` (those not ended yet) at ``now``."""
    for sid in ids:
        yield Sql(
            "UPDATE {t}device_sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL",
            (now, sid),
        )
