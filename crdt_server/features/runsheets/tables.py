"""The run sheet links' table: one row per link, the token stored as its SHA-256 only.

- ``run_sheet_links``: (wedding, id) -> the token's digest, the vendor (its key: a
  directory id, or ``name:`` and the folded free-text name), who made it and when, its
  label, and when it expires (two days after the wedding). Erased with the wedding.
"""

from __future__ import annotations

import msgspec

from crdt_server.storage import Gateway, Table, schema_of
from crdt_server.storage.gateway import statements

__all__ = ["LINKS", "SCHEMA", "RunSheetLink", "RunSheetLinks"]

LINKS = Table(
    "run_sheet_links",
    "(wedding {ctext} NOT NULL, id {ctext} NOT NULL, digest {ctext} NOT NULL UNIQUE,"
    " vendor {text} NOT NULL, label {text} NOT NULL, created_at {real} NOT NULL,"
    " created_by {text} NOT NULL, expires_at {real} NOT NULL, PRIMARY KEY (wedding, id))",
)
SCHEMA = schema_of("day_run_sheets", LINKS)
_COLUMNS = "wedding, id, vendor, label, created_at, created_by, expires_at"


class RunSheetLink(msgspec.Struct, frozen=True):
    wedding: str
    id: str
    vendor: str
    label: str
    created_at: float
    created_by: str
    expires_at: float


class RunSheetLinks:
    """The links in a store (through its SQL gateway)."""

    def __init__(self, sql: Gateway) -> None:
        self._sql = sql

    async def add(self, link: RunSheetLink, digest: str) -> None:
        insert = (
            "INSERT INTO {t}run_sheet_links (wedding, id, digest, vendor, label,"
            " created_at, created_by, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        values = (
            link.wedding,
            link.id,
            digest,
            link.vendor,
            link.label,
            link.created_at,
            link.created_by,
            link.expires_at,
        )
        await self._sql.run(statements([(insert, values)]))

    async def of(self, wedding: str) -> list[RunSheetLink]:
        """The wedding's links, oldest first (expired ones included, until revoked)."""
        return await self._sql.fetch_as(
            RunSheetLink,
            f"SELECT {_COLUMNS} FROM {{t}}run_sheet_links WHERE wedding = ?"
            " ORDER BY created_at, id",
            wedding,
        )

    async def revoke(self, wedding: str, link_id: str) -> bool:
        delete = "DELETE FROM {t}run_sheet_links WHERE wedding = ? AND id = ?"
        [gone] = await self._sql.run(statements([(delete, (wedding, link_id))], count=True))
        return bool(gone == 1)

    async def by_digest(self, digest: str) -> RunSheetLink | None:
        return await self._sql.fetch_one_as(
            RunSheetLink,
            f"SELECT {_COLUMNS} FROM {{t}}run_sheet_links WHERE digest = ?",
            digest,
        )
