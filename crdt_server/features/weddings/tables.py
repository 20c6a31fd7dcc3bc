"""The weddings feature's tables: who created each wedding the server made (a digest of
the creator's email, whether a sign-in link has verified it), and the invitation emails a
wedding sent each day. Both are erased with their wedding; an erased creator's digest is
replaced by a random key (:func:`forget`)."""

from __future__ import annotations

import secrets

import msgspec

from crdt_server import clock
from crdt_server.features.people import member_row
from crdt_server.features.weddings.domain import NewWedding, person_key
from crdt_server.storage import FeatureRow, Gateway, Table, schema_of
from crdt_server.storage.gateway import Sql, Tx, row_as

__all__ = [
    "CREATED",
    "MAIL_COUNTS",
    "SCHEMA",
    "Created",
    "created",
    "created_row",
    "forget",
    "take_mail",
    "verified",
    "weddings_of",
]

CREATED = Table(
    "weddings_created",
    "(wedding {text} NOT NULL PRIMARY KEY, person {text} NOT NULL,"
    " verified INTEGER NOT NULL DEFAULT 0, open_signup INTEGER NOT NULL DEFAULT 0,"
    " created_at {real} NOT NULL)",
    indexes=("CREATE INDEX IF NOT EXISTS weddings_created_person ON {t}weddings_created (person)",),
    wedding=True,
)
MAIL_COUNTS = Table(
    "wedding_mail_counts",
    "(wedding {text} NOT NULL, day {text} NOT NULL, kind {text} NOT NULL,"
    " sent INTEGER NOT NULL, PRIMARY KEY (wedding, day, kind))",
    wedding=True,
)
SCHEMA = schema_of("weddings", CREATED, MAIL_COUNTS)
"""Weddings the server created, and emails sent on a wedding's behalf per day."""


class Created(msgspec.Struct, frozen=True):
    """A wedding the server created: its creator (``person``: a digest of the email) and
    whether a sign-in link verified that email."""

    wedding: str
    person: str
    verified: int
    open_signup: int
    created_at: float


class _Count(msgspec.Struct, frozen=True):
    count: int


class _Sent(msgspec.Struct, frozen=True):
    sent: int


def created_row(wedding: str, person: str, *, verified: bool, open_signup: bool) -> FeatureRow:
    """The creation record, committed with the new wedding's profile."""
    values = {
        "wedding": wedding,
        "person": person,
        "verified": int(verified),
        "open_signup": int(open_signup),
        "created_at": clock.now(),
    }
    return FeatureRow(CREATED.name, tuple(values.items()))


def creation_rows(
    wedding: str, sub: str, wanted: NewWedding, *, verified: bool, open_signup: bool
) -> list[FeatureRow]:
    """What a new wedding's commit writes beside its documents: its creation record and
    the couple's member, ``sub``, named and reached as ``wanted`` says."""
    return [
        created_row(wedding, person_key(wanted.email), verified=verified, open_signup=open_signup),
        member_row(
            wedding,
            sub,
            role="couple",
            name=wanted.your_name,
            email=wanted.email,
            participation="all",
            email_on=True,
            unsubscribe=secrets.token_urlsafe(24),
            updated_at=clock.now(),
        ),
    ]


async def created(db: Gateway, wedding: str) -> Created | None:
    return await db.fetch_one_as(
        Created,
        "SELECT wedding, person, verified, open_signup, created_at FROM {t}weddings_created"
        " WHERE wedding = ?",
        wedding,
    )


async def weddings_of(db: Gateway, person: str) -> int:
    """How many weddings the person (:func:`person_key`) created that still exist."""
    found = await db.fetch_one_as(
        _Count, "SELECT COUNT(*) AS count FROM {t}weddings_created WHERE person = ?", person
    )
    return 0 if found is None else int(found.count)


def verified(wedding: str, person: str) -> Tx[bool]:
    """The step that marks the creator's email verified (if ``person`` is the creator)."""
    changed = yield Sql(
        "UPDATE {t}weddings_created SET verified = 1 WHERE wedding = ? AND person = ?",
        (wedding, person),
        count=True,
    )
    return bool(changed)


def forget(person: str, key: str) -> Tx[None]:
    """The step that replaces a creator's digest by ``key`` (an erased person's address:
    nothing derived from it stays)."""
    yield Sql("UPDATE {t}weddings_created SET person = ? WHERE person = ?", (key, person))


def take_mail(wedding: str, day: str, kind: str, limit: int) -> Tx[bool]:
    """The step that counts one email of ``kind`` sent for the wedding on ``day`` (UTC), if
    fewer than ``limit`` were; whether it may go."""
    found = yield from row_as(
        _Sent,
        "SELECT sent FROM {t}wedding_mail_counts WHERE wedding = ? AND day = ? AND kind = ?",
        wedding,
        day,
        kind,
    )
    sent = 0 if found is None else int(found.sent)
    if sent >= limit:
        return False
    yield Sql(
        "INSERT INTO {t}wedding_mail_counts (wedding, day, kind, sent) VALUES (?, ?, ?, 1)"
        " ON CONFLICT (wedding, day, kind) DO UPDATE SET sent = {t}wedding_mail_counts.sent + 1",
        (wedding, day, kind),
    )
    return True
