"""The invitations' tables (the schema ``invitations``, version 1) and the
only SQL that reads and writes them.

- ``invitations``: one row per invitation: its code's digest (never the code), the role,
  document narrowing and (a vendor's) field set of the guest list it grants, who made it,
  how many uses it has left, when it expires and whether it was revoked.
- ``invitation_members``: who joined through which invitation (the inviter, the document
  narrowing their membership keeps, the address they gave). That address goes into the
  directory only where the act of joining verified it (:func:`redeem`); any other stays
  here, unconfirmed, until a link to it confirms it: in the directory it could make them
  another member at sign-in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from crdt_server import clock
from crdt_server.features.events import store_events
from crdt_server.features.invitations.domain import code_matches
from crdt_server.features.signin import normal_email, verified
from crdt_server.storage import Gateway, Migration, NewEvent, Table, schema_of
from crdt_server.storage.gateway import Sql, Tx, row_as, rows_as

__all__ = [
    "INVITATIONS_SCHEMA",
    "EmailState",
    "InvitationRow",
    "Joined",
    "create",
    "invitation",
    "invitations",
    "joined_count",
    "open_count",
    "proved_by_joining",
    "redeem",
    "revoke",
    "unconfirmed",
    "weddings_of",
]

_INVITATIONS = Table(
    "invitations",
    "(id {ctext} NOT NULL PRIMARY KEY, wedding {ctext} NOT NULL, digest {text} NOT NULL,"
    " role {text} NOT NULL, name {text}, email {text}, documents {text} NOT NULL,"
    " uses {int} NOT NULL, uses_left {int} NOT NULL, expires_at {real} NOT NULL,"
    " created_at {real} NOT NULL, inviter {text} NOT NULL, inviter_role {text} NOT NULL,"
    " revoked_at {real} NOT NULL DEFAULT 0)",
    indexes=(
        "CREATE INDEX IF NOT EXISTS invitations_wedding ON {t}invitations (wedding, created_at)",
    ),
)
_JOINED = Table(
    "invitation_members",
    "(wedding {ctext} NOT NULL, sub {ctext} NOT NULL, invitation {ctext} NOT NULL,"
    " inviter {text} NOT NULL, documents {text} NOT NULL, email {text},"
    " joined_at {real} NOT NULL, PRIMARY KEY (wedding, sub))",
)
_GUEST_FIELDS = Migration(
    2,
    ("ALTER TABLE invitations ADD COLUMN guest_fields TEXT",),
    ("ALTER TABLE {s}.invitations ADD COLUMN guest_fields TEXT",),
)
"""Version 2: what a vendor's invitation lets them read of the guest list (``NULL``: an
invitation of another role, or one made before field sets, whose vendor reads what vendors
read then)."""
INVITATIONS_SCHEMA = schema_of("invitations", _INVITATIONS, _JOINED, migrations=[_GUEST_FIELDS])
"""Version 2 (see above). Both tables are erased with their wedding."""

_COLUMNS = (
    "id, wedding, digest, role, name, email, documents, uses, uses_left, expires_at,"
    " created_at, inviter, inviter_role, revoked_at, guest_fields"
)


class InvitationRow(msgspec.Struct, frozen=True):
    """An invitation as :data:`_COLUMNS` holds it (``documents``: JSON, ``""`` for none)."""

    id: str
    wedding: str
    digest: str
    role: str
    name: str | None
    email: str | None
    documents: str
    uses: int
    uses_left: int
    expires_at: float
    created_at: float
    inviter: str
    inviter_role: str
    revoked_at: float
    guest_fields: str | None = None
    """What a vendor it lets in reads of the guest list (``GUEST_FIELD_SETS``)."""

    @property
    def narrowing(self) -> dict[str, str]:
        loaded: Any = json.loads(self.documents) if self.documents else {}
        return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}

    def state(self, now: float) -> str:
        """``open``, ``revoked``, ``expired`` or ``used``."""
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        return "open" if self.uses_left > 0 else "used"


class _Count(msgspec.Struct, frozen=True):
    n: int


EmailState = Literal["verified", "sign_in_link", "unconfirmed"]
"""What became of the address a person gave when joining: ``verified`` (the act of joining
proved it: a single-use invitation emailed to exactly that address; it is their member's
address now, and a new person's), ``sign_in_link`` (proved, but it is an existing person's:
their member has it, and the membership joins that person once a sign-in link to it is
used), ``unconfirmed`` (any other: kept with how they joined, until a link confirms it)."""


@dataclass(frozen=True, slots=True)
class Joined:
    """What :func:`redeem` did: ``outcome`` is ``joined``, ``unknown`` (no invitation has
    this code) or ``gone`` (revoked, expired or used up); ``invitation`` the row as it was
    (not for ``unknown``); ``email`` what became of the address given (``None``: none)."""

    outcome: str
    invitation: InvitationRow | None = None
    email: EmailState | None = None


def proved_by_joining(row: InvitationRow, given: str | None) -> bool:
    """Whether joining with ``row``'s code proves ``given``: a single-use invitation
    emailed to exactly that address (compared after normalising). A code for several
    people, or one sent elsewhere, proves nothing about an address."""
    return (
        given is not None
        and row.uses == 1
        and row.email is not None
        and normal_email(row.email) == normal_email(given)
    )


async def invitations(
    db: Gateway, wedding: str, *, limit: int, before: tuple[float, str] | None = None
) -> list[InvitationRow]:
    """The wedding's invitations, newest first, after the one ``before`` names (its
    ``created_at`` and id)."""
    if before is None:
        return await db.fetch_as(
            InvitationRow,
            f"SELECT {_COLUMNS} FROM {{t}}invitations WHERE wedding = ?"
            " ORDER BY created_at DESC, id LIMIT ?",
            wedding,
            limit,
        )
    at, last = before
    return await db.fetch_as(
        InvitationRow,
        f"SELECT {_COLUMNS} FROM {{t}}invitations WHERE wedding = ?"
        " AND (created_at < ? OR (created_at = ? AND id > ?))"
        " ORDER BY created_at DESC, id LIMIT ?",
        wedding,
        at,
        at,
        last,
        limit,
    )


async def invitation(db: Gateway, wedding: str, invitation: str) -> InvitationRow | None:
    return await db.fetch_one_as(
        InvitationRow,
        f"SELECT {_COLUMNS} FROM {{t}}invitations WHERE wedding = ? AND id = ?",
        wedding,
        invitation,
    )


async def open_count(db: Gateway, wedding: str, now: float) -> int:
    """How many of the wedding's invitations may still be used."""
    found = await db.fetch_one_as(
        _Count,
        "SELECT count(*) FROM {t}invitations WHERE wedding = ? AND revoked_at = 0"
        " AND uses_left > 0 AND expires_at > ?",
        wedding,
        now,
    )
    return 0 if found is None else int(found.n)


async def joined_count(db: Gateway, wedding: str) -> int:
    found = await db.fetch_one_as(
        _Count, "SELECT count(*) FROM {t}invitation_members WHERE wedding = ?", wedding
    )
    return 0 if found is None else int(found.n)


def create(row: InvitationRow, event: NewEvent) -> Tx[None]:
    """The step that stores an invitation and its ``member.invited`` event."""
    yield Sql(
        f"INSERT INTO {{t}}invitations ({_COLUMNS}) VALUES"
        " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        tuple(msgspec.structs.astuple(row)),
    )
    yield from store_events([event])


def revoke(wedding: str, invitation: str, at: float) -> Tx[bool]:
    """The step that revokes an invitation; whether the wedding had it (revoked or not)."""
    found = yield from row_as(
        _Count, "SELECT 1 FROM {t}invitations WHERE wedding = ? AND id = ?", wedding, invitation
    )
    if found is None:
        return False
    yield Sql(
        "UPDATE {t}invitations SET revoked_at = ? WHERE wedding = ? AND id = ? AND revoked_at = 0",
        (at, wedding, invitation),
    )
    return True


def redeem(
    invitation: str,
    secret: str,
    *,
    sub: str,
    name: str,
    email: str | None,
    unsubscribe: str,
) -> Tx[Joined]:
    """The step that lets one person in with a code: checks the secret in constant time,
    takes one use (atomically: two people racing for the last use cannot both get it),
    makes them a member and records ``member.joined``. The address they gave goes into the
    directory, verified, only where joining proved it (:func:`proved_by_joining`) and no
    other member of the wedding has it (see :data:`EmailState`)."""
    now = clock.now()
    found = yield from rows_as(
        InvitationRow, f"SELECT {_COLUMNS} FROM {{t}}invitations WHERE id = ?", invitation
    )
    row = found[0] if found else None
    if not code_matches(secret, None if row is None else row.digest) or row is None:
        return Joined("unknown")
    if row.state(now) != "open":
        return Joined("gone", row)
    taken = yield Sql(
        "UPDATE {t}invitations SET uses_left = uses_left - 1 WHERE id = ? AND uses_left > 0"
        " AND revoked_at = 0 AND expires_at > ?",
        (invitation, now),
        count=True,
    )
    if not taken:
        return Joined("gone", row)
    state: EmailState | None = None if email is None else "unconfirmed"
    on_file: str | None = None
    if email is not None and proved_by_joining(row, email):
        address = normal_email(email)
        held = yield from rows_as(
            _Count,
            "SELECT count(*) FROM {t}members WHERE wedding = ? AND LOWER(email) = ?",
            row.wedding,
            address,
        )
        # Another member of this wedding has it already: it would identify neither.
        if not held or not held[0].n:
            on_file = address
            person = yield from rows_as(
                _Count, "SELECT count(*) FROM {t}persons WHERE email = ?", address
            )
            state = "sign_in_link" if person and person[0].n else "verified"
    yield Sql(
        "INSERT INTO {t}members (wedding, sub, role, name, email, unsubscribe, updated_at,"
        " guest_fields) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (row.wedding, sub, row.role, name, on_file, unsubscribe, now, row.guest_fields),
    )
    if on_file is not None:
        yield from verified(row.wedding, sub, on_file, now)
    yield Sql(
        "INSERT INTO {t}invitation_members (wedding, sub, invitation, inviter, documents,"
        " email, joined_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (row.wedding, sub, row.id, row.inviter, row.documents, email, now),
    )
    data = {"sub": sub, "name": name, "role": row.role, "invitation": row.id}
    data["inviter"] = row.inviter
    yield from store_events(
        [
            NewEvent(
                row.wedding,
                "member.joined",
                json.dumps(data, separators=(",", ":")),
                sub=sub,
                role=row.role,
            )
        ]
    )
    return Joined("joined", row, state)


class _Wedding(msgspec.Struct, frozen=True):
    wedding: str


class _Sub(msgspec.Struct, frozen=True):
    sub: str


async def unconfirmed(db: Gateway, wedding: str) -> set[str]:
    """The wedding's members who gave an address when joining that is not their member's
    address (yet): the ones whose address is unconfirmed."""
    rows = await db.fetch_as(
        _Sub,
        "SELECT j.sub FROM {t}invitation_members j JOIN {t}members b"
        " ON b.wedding = j.wedding AND b.sub = j.sub"
        " WHERE j.wedding = ? AND j.email IS NOT NULL AND b.email IS NULL",
        wedding,
    )
    return {r.sub for r in rows}


async def weddings_of(db: Gateway, sub: str) -> list[str]:
    """The weddings whose directory, or whose record of who joined, knows ``sub``."""
    rows = await db.fetch_as(
        _Wedding,
        "SELECT wedding FROM {t}members WHERE sub = ?"
        " UNION SELECT wedding FROM {t}invitation_members WHERE sub = ? ORDER BY 1",
        sub,
        sub,
    )
    return [r.wedding for r in rows]
