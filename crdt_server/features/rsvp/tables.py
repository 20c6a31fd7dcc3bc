"""The RSVP feature's tables, and the only SQL that touches them.

- ``rsvp_secret``: one row, the key of every link's HMAC (32 random bytes, hex), made by
  the first process that starts with the feature; kept in the store so every host of a
  cluster derives the same codes, whatever token algorithm each is configured with. It is
  not a wedding table: erasing a wedding leaves it.
- ``rsvp_links``: per (wedding, household), the link version. Only the revoke route writes
  it, and only upward (``version + 1``): a version kept in the guests document could be set
  back by any writer of the guest list, or rolled back by a concurrent write. A household
  without a row is at version 0. Erased with its wedding.
"""

from __future__ import annotations

import secrets

import msgspec

from crdt_server import clock
from crdt_server.storage import DocumentStore, Gateway, Table, schema_of
from crdt_server.storage.gateway import Sql, Tx, rows_as, statements

__all__ = ["RSVP_SCHEMA", "RsvpTables"]

SECRET = Table(
    "rsvp_secret",
    "(id {int} NOT NULL PRIMARY KEY, secret {text} NOT NULL, created {real} NOT NULL)",
    wedding=False,
)
LINKS = Table(
    "rsvp_links",
    "(wedding {ctext} NOT NULL, household {ctext} NOT NULL, version {int} NOT NULL,"
    " revoked_at {real} NOT NULL, revoked_by {text} NOT NULL, PRIMARY KEY (wedding, household))",
)
UNSUBSCRIBED = Table(
    "rsvp_unsubscribed",
    "(wedding {ctext} NOT NULL, guest {ctext} NOT NULL, at {real} NOT NULL,"
    " PRIMARY KEY (wedding, guest))",
)
RSVP_SCHEMA = schema_of("rsvp", SECRET, LINKS, UNSUBSCRIBED)


class _Secret(msgspec.Struct, frozen=True):
    secret: str


class _Version(msgspec.Struct, frozen=True):
    version: int


class _Guest(msgspec.Struct, frozen=True):
    guest: str


class _Versioned(msgspec.Struct, frozen=True):
    household: str
    version: int


class RsvpTables:
    """The RSVP secret and link versions of one store."""

    def __init__(self, store: DocumentStore) -> None:
        self._sql = Gateway.of(store)

    async def secret(self) -> bytes:
        """The links' HMAC key: the stored one, made on first use (two processes starting
        at once agree: the second insert does nothing and both read the first)."""
        insert = (
            "INSERT INTO {t}rsvp_secret (id, secret, created) VALUES (1, ?, ?)"
            " ON CONFLICT DO NOTHING"
        )
        await self._sql.run(statements([(insert, (secrets.token_hex(32), clock.now()))]))
        found = await self._sql.fetch_one_as(
            _Secret, "SELECT secret FROM {t}rsvp_secret WHERE id = 1"
        )
        assert found is not None
        return bytes.fromhex(found.secret)

    async def version(self, wedding: str, household: str) -> int:
        """The household's link version (0 until its link is first revoked)."""
        found = await self._sql.fetch_one_as(
            _Version,
            "SELECT version FROM {t}rsvp_links WHERE wedding = ? AND household = ?",
            wedding,
            household,
        )
        return 0 if found is None else found.version

    async def versions(self, wedding: str) -> dict[str, int]:
        """Every household of the wedding whose link was revoked, and its version."""
        rows = await self._sql.fetch_as(
            _Versioned,
            "SELECT household, version FROM {t}rsvp_links WHERE wedding = ?",
            wedding,
        )
        return {row.household: row.version for row in rows}

    async def revoke(self, wedding: str, household: str, by: str) -> int:
        """Raise the household's link version by one (every earlier code stops working);
        the new version."""

        def tx() -> Tx[list[_Version]]:
            yield Sql(
                "INSERT INTO {t}rsvp_links (wedding, household, version, revoked_at, revoked_by)"
                " VALUES (?, ?, 1, ?, ?) ON CONFLICT (wedding, household) DO UPDATE SET"
                " version = {t}rsvp_links.version + 1, revoked_at = excluded.revoked_at,"
                " revoked_by = excluded.revoked_by",
                (wedding, household, clock.now(), by),
            )
            return (
                yield from rows_as(
                    _Version,
                    "SELECT version FROM {t}rsvp_links WHERE wedding = ? AND household = ?",
                    wedding,
                    household,
                )
            )

        found = await self._sql.run(tx())
        return found[0].version

    async def unsubscribe(self, wedding: str, guest: str) -> None:
        """No more RSVP emails to ``guest``."""
        insert = (
            "INSERT INTO {t}rsvp_unsubscribed (wedding, guest, at) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING"
        )
        await self._sql.run(statements([(insert, (wedding, guest, clock.now()))]))

    async def unsubscribed(self, wedding: str) -> set[str]:
        """The wedding's guests who asked for no RSVP email."""
        rows = await self._sql.fetch_as(
            _Guest, "SELECT guest FROM {t}rsvp_unsubscribed WHERE wedding = ?", wedding
        )
        return {row.guest for row in rows}

    async def forget_guest(self, wedding: str, guest: str) -> None:
        delete = "DELETE FROM {t}rsvp_unsubscribed WHERE wedding = ? AND guest = ?"
        await self._sql.run(statements([(delete, (wedding, guest))]))
