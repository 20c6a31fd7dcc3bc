"""The member directory's table: ``members``. Until schema version 2 it was named
``thread_members`` (the threads feature kept it then); its columns and meaning are
unchanged. Version 1 below is the table as those releases made it: a store they wrote
is renamed when the people feature is installed (``renamed``)."""

from __future__ import annotations

import msgspec

from crdt_server.features.people.domain import Member
from crdt_server.storage import Gateway, Migration, Table, schema_of
from crdt_server.storage.gateway import renamed

__all__ = [
    "MEMBERS",
    "last_seen_of",
    "MEMBER_COLUMNS",
    "SCHEMA",
    "MemberRow",
    "emailed_at",
    "member",
    "members",
    "unsubscribe_key",
]

_COLUMNS = (
    "(wedding {text} NOT NULL, sub {text} NOT NULL, role {text} NOT NULL, name {text} NOT NULL,"
    " email {text}, participation {text} NOT NULL DEFAULT 'all',"
    " email_on INTEGER NOT NULL DEFAULT 1, unsubscribe {text} NOT NULL,"
    " emailed_at {real} NOT NULL DEFAULT 0, updated_at {real} NOT NULL,"
    " PRIMARY KEY (wedding, sub))"
)
_THREAD_MEMBERS = Table("thread_members", _COLUMNS)
"""Version 1."""
MEMBERS = Table("members", _COLUMNS)

_LAST_SEEN = Migration(
    3,
    ("ALTER TABLE members ADD COLUMN last_seen REAL",),
    ("ALTER TABLE {s}.members ADD COLUMN last_seen DOUBLE PRECISION",),
)
"""Version 3: when each member was last seen connected (the presence feature writes it
when they go offline; ``NULL``: not since this version)."""

_GUEST_FIELDS = Migration(
    4,
    (
        "ALTER TABLE members ADD COLUMN guest_fields TEXT",
        "UPDATE members SET guest_fields = 'names_meals' WHERE role = 'vendor'",
    ),
    (
        "ALTER TABLE {s}.members ADD COLUMN guest_fields TEXT",
        "UPDATE {s}.members SET guest_fields = 'names_meals' WHERE role = 'vendor'",
    ),
)
"""Version 4: what each vendor member reads of the guest list (one of
:data:`~crdt_server.auth.permissions.GUEST_FIELD_SETS`; ``NULL``: what the role reads). The
vendors who were members at the upgrade keep what they read before: ``names_meals``."""

SCHEMA = schema_of(
    "people",
    _THREAD_MEMBERS,
    migrations=[renamed(2, (_THREAD_MEMBERS, MEMBERS)), _LAST_SEEN, _GUEST_FIELDS],
)
"""Each wedding's members: their role, name and address, what they are notified of, their
unsubscribe key, when they were last emailed and last seen, what a vendor reads of the guest
list; erased with their wedding. On a
store written before the directory was a feature of its own, the table is there already
(the threads schema created it): installing this schema adds its version row and renames
it."""

MEMBER_COLUMNS = "sub, role, name, email, participation, email_on, guest_fields"
"""The columns of a :class:`MemberRow`, in its order."""


class MemberRow(msgspec.Struct, frozen=True):
    """A member as :data:`MEMBER_COLUMNS` holds it (``email_on``: 0 or 1)."""

    sub: str
    role: str
    name: str
    email: str | None
    participation: str
    email_on: int
    guest_fields: str | None = None

    def member(self) -> Member:
        return Member(
            self.sub,
            self.role,
            self.name,
            self.email,
            self.participation,
            bool(self.email_on),
            self.guest_fields,
        )


class _Unsubscribe(msgspec.Struct, frozen=True):
    unsubscribe: str


class _Emailed(msgspec.Struct, frozen=True):
    emailed_at: float


async def member(db: Gateway, wedding: str, sub: str) -> Member | None:
    found = await db.fetch_one_as(
        MemberRow,
        f"SELECT {MEMBER_COLUMNS} FROM {{t}}members WHERE wedding = ? AND sub = ?",
        wedding,
        sub,
    )
    return None if found is None else found.member()


async def members(db: Gateway, wedding: str) -> list[Member]:
    """The wedding's members, by sub."""
    rows = await db.fetch_as(
        MemberRow,
        f"SELECT {MEMBER_COLUMNS} FROM {{t}}members WHERE wedding = ? ORDER BY sub",
        wedding,
    )
    return [r.member() for r in rows]


async def unsubscribe_key(db: Gateway, wedding: str, sub: str) -> str | None:
    found = await db.fetch_one_as(
        _Unsubscribe,
        "SELECT unsubscribe FROM {t}members WHERE wedding = ? AND sub = ?",
        wedding,
        sub,
    )
    return None if found is None else found.unsubscribe


async def emailed_at(db: Gateway, wedding: str, sub: str) -> float | None:
    found = await db.fetch_one_as(
        _Emailed,
        "SELECT emailed_at FROM {t}members WHERE wedding = ? AND sub = ?",
        wedding,
        sub,
    )
    return None if found is None else float(found.emailed_at)


class _LastSeen(msgspec.Struct, frozen=True):
    sub: str
    last_seen: float


async def last_seen_of(db: Gateway, wedding: str) -> dict[str, float]:
    """When each member of the wedding who was ever seen leaving was last seen."""
    rows = await db.fetch_as(
        _LastSeen,
        "SELECT sub, last_seen FROM {t}members WHERE wedding = ? AND last_seen IS NOT NULL",
        wedding,
    )
    return {row.sub: float(row.last_seen) for row in rows}
