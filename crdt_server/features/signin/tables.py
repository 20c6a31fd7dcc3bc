"""The ``sessions`` schema: people, their memberships, the emails that
identify a member, device sessions and sign-in codes.

- ``persons``: a person (``p_...``) and their one verified email (unique, lower case);
- ``memberships``: which member (``wedding``, ``sub`` of the ``members`` table, whose role
  is the membership's) a person is, with an optional document narrowing (``docs``, JSON of
  the token's ``docs`` overrides) and when they last used that wedding;
- ``verified_emails``: a member's address as an operator set it or a sign-in link
  verified it (only such an address makes a person that member);
- ``device_sessions``: a signed-in browser: the SHA-256 of its cookie's secret (and of the
  secret before the last rotation, for a minute), its label, when it was made, last used,
  rotated and ended;
- ``sign_in_codes``: the newest sign-in code of each address (its SHA-256), when it
  expires, and how many were sent in the current hour;
- ``code_challenges`` (a schema of its own): a native app's PKCE challenge for the newest
  code of an address.

Secrets and codes are never stored, only their hashes. Memberships and verified emails
are erased with their wedding; people, device sessions and codes belong to no wedding:
they go when a member's erasure removes their person's last membership
(``DeviceSessions.on_member_erased``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from crdt_server.auth.digests import secret_digest
from crdt_server.storage import Table, schema_of
from crdt_server.storage.gateway import Sql, Tx

__all__ = [
    "CHALLENGES_SCHEMA",
    "CLAIMS_SCHEMA",
    "DEVICE_COLUMNS",
    "ChallengeRow",
    "ClaimRow",
    "SESSIONS_SCHEMA",
    "CodeRow",
    "Count",
    "DeviceRow",
    "EmailRow",
    "HolderRow",
    "IdRow",
    "LiveRow",
    "MembershipRow",
    "PersonRow",
    "WindowRow",
    "link",
    "new_device",
    "normal_email",
    "statement",
    "verified",
]

PERSONS = Table(
    "persons",
    "(id {text} PRIMARY KEY, email {text} UNIQUE, created_at {real} NOT NULL)",
    wedding=False,
)
MEMBERSHIPS = Table(
    "memberships",
    "(wedding {text} NOT NULL, sub {text} NOT NULL, person {text} NOT NULL, docs {text},"
    " used_at {real} NOT NULL DEFAULT 0, PRIMARY KEY (wedding, sub))",
    indexes=("CREATE INDEX IF NOT EXISTS memberships_person ON {t}memberships (person)",),
)
VERIFIED_EMAILS = Table(
    "verified_emails",
    "(wedding {text} NOT NULL, sub {text} NOT NULL, email {text} NOT NULL,"
    " verified_at {real} NOT NULL, PRIMARY KEY (wedding, sub))",
)
DEVICE_SESSIONS = Table(
    "device_sessions",
    "(id {text} PRIMARY KEY, person {text} NOT NULL, secret_hash {text} NOT NULL UNIQUE,"
    " previous_hash {text}, label {text} NOT NULL, created_at {real} NOT NULL,"
    " last_used {real} NOT NULL, rotated_at {real} NOT NULL, ended_at {real})",
    indexes=(
        "CREATE INDEX IF NOT EXISTS device_sessions_person ON {t}device_sessions (person)",
        "CREATE INDEX IF NOT EXISTS device_sessions_previous ON {t}device_sessions (previous_hash)",
    ),
    wedding=False,
)
SIGN_IN_CODES = Table(
    "sign_in_codes",
    "(email {text} PRIMARY KEY, code_hash {text} NOT NULL UNIQUE, expires_at {real} NOT NULL,"
    " window_start {real} NOT NULL, sent INTEGER NOT NULL)",
    wedding=False,
)

SESSIONS_SCHEMA = schema_of(
    "sessions", PERSONS, MEMBERSHIPS, VERIFIED_EMAILS, DEVICE_SESSIONS, SIGN_IN_CODES
)
"""Version 1 (see the module docstring)."""

EMAIL_CLAIMS = Table(
    "email_claims",
    "(person {text} PRIMARY KEY, email {text} NOT NULL, code_hash {text} NOT NULL UNIQUE,"
    " expires_at {real} NOT NULL, window_start {real} NOT NULL, sent INTEGER NOT NULL)",
    wedding=False,
)
CLAIMS_SCHEMA = schema_of("email_claims", EMAIL_CLAIMS)
"""Version 1: the newest "add your email" link of each signed-in person (the SHA-256 of
its code, the address it verifies, when it expires, how many went this hour). A schema
of its own, so a store of the ``sessions`` schema's version 1 gains it by installing it."""

CODE_CHALLENGES = Table(
    "code_challenges",
    "(email {text} PRIMARY KEY, code_hash {text} NOT NULL UNIQUE, challenge {text} NOT NULL)",
    wedding=False,
)
CHALLENGES_SCHEMA = schema_of("code_challenges", CODE_CHALLENGES)
"""Version 1: the PKCE ``code_challenge`` (RFC 7636, S256) a native app sent with its
sign-in request, beside the SHA-256 of the code its link carries (the newest of each
address, as ``sign_in_codes`` keeps it): that code signs in only with the verifier. A
schema of its own, so an older store gains it by installing it."""

DEVICE_COLUMNS = "id, person, label, created_at, last_used, rotated_at, ended_at"


class DeviceRow(msgspec.Struct, frozen=True):
    """A device session as :data:`DEVICE_COLUMNS` holds it."""

    id: str
    person: str
    label: str
    created_at: float
    last_used: float
    rotated_at: float
    ended_at: float | None


class MembershipRow(msgspec.Struct, frozen=True):
    """A person's membership with the member's current role and name."""

    wedding: str
    sub: str
    role: str
    name: str
    docs: str | None
    used_at: float
    guest_fields: str | None = None
    """What a vendor member reads of the guest list (the directory's), carried by the
    tokens minted for them (``guest_fields`` claim)."""


class PersonRow(msgspec.Struct, frozen=True):
    id: str
    email: str | None


class Count(msgspec.Struct, frozen=True):
    count: int


class CodeRow(msgspec.Struct, frozen=True):
    email: str


class ChallengeRow(msgspec.Struct, frozen=True):
    challenge: str


class ClaimRow(msgspec.Struct, frozen=True):
    person: str
    email: str


class WindowRow(msgspec.Struct, frozen=True):
    window_start: float
    sent: int


class HolderRow(msgspec.Struct, frozen=True):
    wedding: str
    sub: str


class LiveRow(msgspec.Struct, frozen=True):
    id: str
    person: str
    secret_hash: str
    rotated_at: float
    last_used: float
    ended_at: float | None


class IdRow(msgspec.Struct, frozen=True):
    id: str


class EmailRow(msgspec.Struct, frozen=True):
    email: str


def normal_email(address: str) -> str:
    """An address as people and codes are keyed by it (lower case: one person per mailbox)."""
    return address.strip().lower()


def link(person: str, wedding: str, sub: str, address: str, now: float) -> Tx[None]:
    """The step that makes ``person`` the member ``sub`` and records ``address`` as verified
    for that member: whoever proves they hold the member's address is that member, in that
    wedding only (a person who was it before, under an address the member no longer has,
    loses that membership and keeps their others)."""
    yield Sql(
        "INSERT INTO {t}memberships (wedding, sub, person, docs, used_at)"
        " VALUES (?, ?, ?, NULL, 0) ON CONFLICT (wedding, sub) DO UPDATE"
        " SET person = excluded.person",
        (wedding, sub, person),
    )
    yield from verified(wedding, sub, address, now)


def verified(wedding: str, sub: str, address: str, now: float) -> Tx[None]:
    """The step that records ``address`` as the member's verified address."""
    yield Sql(
        "INSERT INTO {t}verified_emails (wedding, sub, email, verified_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (wedding, sub) DO UPDATE SET email = excluded.email,"
        " verified_at = excluded.verified_at",
        (wedding, sub, normal_email(address), now),
    )


def new_device(device: str, person: str, secret: str, label: str, now: float) -> Tx[None]:
    yield Sql(
        "INSERT INTO {t}device_sessions (id, person, secret_hash, previous_hash, label,"
        " created_at, last_used, rotated_at) VALUES (?, ?, ?, NULL, ?, ?, ?, ?)",
        (device, person, secret_digest(secret), label, now, now, now),
    )


def statement(text: str, params: tuple[Any, ...]) -> Tx[None]:
    yield Sql(text, params)
