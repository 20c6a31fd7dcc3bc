"""Writes lost in a race, and who wrote with which Yjs client: two feature tables.

``yjs_clients`` maps each Yjs client id seen in a wedding to its first authenticated sender,
so a finding can name the author of an old item (the items carry client ids only). Rows are
written in the transaction of the update that first carried the client's structs, never
changed, kept through compaction (the update log is folded, this table is not) and erased
with the wedding.

``concurrent_edits`` keeps each finding as it was seen (both values, both writers, both
times); ``concurrent_edit_closures`` records how one was closed (a later write of the same
key, an acknowledgement, a resolution). Both are written with ``ON CONFLICT DO NOTHING`` by
id (derived from the two items), so two processes that see one race store it once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .base import DocumentStore, FeatureRow, Schema, StoreError
from .postgres import PostgresStore
from .sqlite import SqliteStore

__all__ = [
    "CONCURRENT_EDITS",
    "ConcurrentEditStore",
    "StoredFinding",
    "client_row",
    "closure_row",
    "finding_row",
]

_FINDING_COLUMNS = (
    "id, wedding, doc, path, kind, loser_client, loser_sub, loser_role, loser_value, loser_at,"
    " winner_client, winner_sub, winner_role, winner_value, winner_at, same_actor, detected_at"
)

CONCURRENT_EDITS = Schema(
    "concurrent_edits",
    sqlite=(
        "CREATE TABLE IF NOT EXISTS yjs_clients (wedding TEXT NOT NULL,"
        " client_id INTEGER NOT NULL, sub TEXT NOT NULL, role TEXT NOT NULL,"
        " first_at REAL NOT NULL, PRIMARY KEY (wedding, client_id))",
        "CREATE TABLE IF NOT EXISTS concurrent_edits (id TEXT PRIMARY KEY,"
        " wedding TEXT NOT NULL, doc TEXT NOT NULL, path TEXT NOT NULL, kind TEXT NOT NULL,"
        " loser_client INTEGER NOT NULL, loser_sub TEXT, loser_role TEXT,"
        " loser_value TEXT NOT NULL, loser_at REAL, winner_client INTEGER, winner_sub TEXT,"
        " winner_role TEXT, winner_value TEXT, winner_at REAL, same_actor INTEGER NOT NULL,"
        " detected_at REAL NOT NULL)",
        "CREATE INDEX IF NOT EXISTS concurrent_edits_wedding"
        " ON concurrent_edits (wedding, detected_at)",
        "CREATE TABLE IF NOT EXISTS concurrent_edit_closures (id TEXT PRIMARY KEY,"
        " wedding TEXT NOT NULL, how TEXT NOT NULL, sub TEXT NOT NULL, role TEXT NOT NULL,"
        " at REAL NOT NULL)",
    ),
    postgres=(
        'CREATE TABLE IF NOT EXISTS {s}.yjs_clients (wedding text COLLATE "C" NOT NULL,'
        " client_id bigint NOT NULL, sub text NOT NULL, role text NOT NULL,"
        " first_at double precision NOT NULL, PRIMARY KEY (wedding, client_id))",
        'CREATE TABLE IF NOT EXISTS {s}.concurrent_edits (id text COLLATE "C" PRIMARY KEY,'
        ' wedding text COLLATE "C" NOT NULL, doc text NOT NULL, path text NOT NULL,'
        " kind text NOT NULL, loser_client bigint NOT NULL, loser_sub text, loser_role text,"
        " loser_value text NOT NULL, loser_at double precision, winner_client bigint,"
        " winner_sub text, winner_role text, winner_value text, winner_at double precision,"
        " same_actor integer NOT NULL, detected_at double precision NOT NULL)",
        "CREATE INDEX IF NOT EXISTS concurrent_edits_wedding"
        " ON {s}.concurrent_edits (wedding, detected_at)",
        "CREATE TABLE IF NOT EXISTS {s}.concurrent_edit_closures"
        ' (id text COLLATE "C" PRIMARY KEY, wedding text COLLATE "C" NOT NULL,'
        " how text NOT NULL, sub text NOT NULL, role text NOT NULL,"
        " at double precision NOT NULL)",
    ),
    wedding_tables=("yjs_clients", "concurrent_edits", "concurrent_edit_closures"),
)


@dataclass(frozen=True, slots=True)
class StoredFinding:
    """A finding as stored (values are JSON text; a writer not known is ``None``), and how
    it was closed (``closed`` is ``None`` while it is open)."""

    id: str
    wedding: str
    doc: str
    path: str
    kind: str
    loser_client: int
    loser_sub: str | None
    loser_role: str | None
    loser_value: str
    loser_at: float | None
    winner_client: int | None
    winner_sub: str | None
    winner_role: str | None
    winner_value: str | None
    winner_at: float | None
    same_actor: bool
    detected_at: float
    closed: str | None = None
    closed_by: str | None = None
    closed_at: float | None = None


def client_row(wedding: str, client: int, sub: str, role: str, at: float) -> FeatureRow:
    return FeatureRow(
        "yjs_clients",
        (
            ("wedding", wedding),
            ("client_id", client),
            ("sub", sub),
            ("role", role),
            ("first_at", at),
        ),
    )


def finding_row(finding: StoredFinding) -> FeatureRow:
    names = [name.strip() for name in _FINDING_COLUMNS.split(",")]
    values = [getattr(finding, name) for name in names]
    values[names.index("same_actor")] = int(finding.same_actor)
    return FeatureRow("concurrent_edits", tuple(zip(names, values, strict=True)))


def closure_row(finding: str, wedding: str, how: str, sub: str, role: str, at: float) -> FeatureRow:
    return FeatureRow(
        "concurrent_edit_closures",
        (
            ("id", finding),
            ("wedding", wedding),
            ("how", how),
            ("sub", sub),
            ("role", role),
            ("at", at),
        ),
    )


class ConcurrentEditStore:
    """The two tables on a :class:`SqliteStore` or a :class:`PostgresStore`."""

    def __init__(self, store: DocumentStore) -> None:
        if not isinstance(store, SqliteStore | PostgresStore):
            raise StoreError(f"concurrent edits need SQLite or PostgreSQL, not {type(store)}")
        self._store = store

    async def install(self) -> None:
        await self._store.install(CONCURRENT_EDITS)

    async def _rows(self, sql: str, *params: Any) -> list[Any]:
        """``sql`` with ``?`` marks and ``{s}.`` before table names, on either backend."""
        store = self._store
        if isinstance(store, SqliteStore):
            return await store.read(sql.replace("{s}.", ""), *params)
        parts = sql.replace("{s}.", f"{store.schema}.").split("?")
        numbered = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))
        return list(await store.fetch(numbered, *params))

    async def clients(self, wedding: str) -> dict[int, tuple[str, str]]:
        """The wedding's Yjs client ids and their first senders' ``(sub, role)``."""
        rows = await self._rows(
            "SELECT client_id, sub, role FROM {s}.yjs_clients WHERE wedding = ?", wedding
        )
        return {int(r[0]): (str(r[1]), str(r[2])) for r in rows}

    async def findings(self, wedding: str, *, open_only: bool = True) -> list[StoredFinding]:
        """The wedding's findings, oldest first (only the open ones by default)."""
        rows = await self._rows(
            f"SELECT {', '.join('f.' + c.strip() for c in _FINDING_COLUMNS.split(','))},"
            " c.how, c.sub, c.at FROM {s}.concurrent_edits f"
            " LEFT JOIN {s}.concurrent_edit_closures c ON c.id = f.id"
            " WHERE f.wedding = ?"
            + (" AND c.id IS NULL" if open_only else "")
            + " ORDER BY f.detected_at, f.id",
            wedding,
        )
        out = []
        for r in rows:
            values = list(r)
            values[15] = bool(values[15])
            out.append(StoredFinding(*values))
        return out

    async def _write(self, statements: Sequence[tuple[str, tuple[Any, ...]]]) -> None:
        """Run ``statements`` (``?`` marks, ``{s}.`` before table names) in one transaction."""
        store = self._store
        if isinstance(store, SqliteStore):

            def body(db: sqlite3.Connection) -> None:
                for sql, params in statements:
                    db.execute(sql.replace("{s}.", ""), params)

            await store.write(body)
            return
        assert isinstance(store, PostgresStore)
        schema = store.schema

        def numbered(sql: str) -> str:
            parts = sql.replace("{s}.", f"{schema}.").split("?")
            return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))

        async def pg_body(conn: Any) -> None:
            for sql, params in statements:
                await conn.execute(numbered(sql), *params)

        await store.write(pg_body)

    async def erase_entry(self, wedding: str, prefixes: Sequence[str]) -> None:
        """Delete the findings about entries whose paths (JSON) start with ``prefixes``
        (a guest erased: their values are in the findings), with their closures."""
        where = (
            "wedding = ? AND ("
            + " OR ".join(["substr(path, 1, length(?)) = ?"] * len(prefixes))
            + ")"
        )
        params = (wedding, *(p for prefix in prefixes for p in (prefix, prefix)))
        await self._write(
            [
                (
                    "DELETE FROM {s}.concurrent_edit_closures WHERE id IN"
                    f" (SELECT id FROM {{s}}.concurrent_edits WHERE {where})",
                    params,
                ),
                (f"DELETE FROM {{s}}.concurrent_edits WHERE {where}", params),
            ]
        )

    async def forget_member(self, wedding: str, sub: str) -> None:
        """A member erased: their Yjs clients are forgotten and findings no longer name
        them (``null``: not known, as for a writer the server never knew)."""
        await self._write(
            [
                ("DELETE FROM {s}.yjs_clients WHERE wedding = ? AND sub = ?", (wedding, sub)),
                (
                    "UPDATE {s}.concurrent_edits SET loser_sub = NULL, loser_role = NULL"
                    " WHERE wedding = ? AND loser_sub = ?",
                    (wedding, sub),
                ),
                (
                    "UPDATE {s}.concurrent_edits SET winner_sub = NULL, winner_role = NULL"
                    " WHERE wedding = ? AND winner_sub = ?",
                    (wedding, sub),
                ),
                (
                    "UPDATE {s}.concurrent_edit_closures SET sub = '', role = ''"
                    " WHERE wedding = ? AND sub = ?",
                    (wedding, sub),
                ),
            ]
        )

    async def insert(self, rows: Sequence[FeatureRow]) -> int:
        """Write rows in a transaction of their own (a closure made through the API, a
        finding another process's content revealed), each only if its key is new: how many
        were new."""
        store = self._store
        if isinstance(store, SqliteStore):

            def body(db: sqlite3.Connection) -> int:
                count = 0
                for row in rows:
                    names = ", ".join(c for c, _ in row.values)
                    marks = ", ".join("?" * len(row.values))
                    cursor = db.execute(
                        f"INSERT OR IGNORE INTO {row.table} ({names}) VALUES ({marks})",  # noqa: S608
                        tuple(v for _, v in row.values),
                    )
                    count += cursor.rowcount
                return count

            written: int = await store.write(body)
            return written
        assert isinstance(store, PostgresStore)
        schema = store.schema

        async def pg_body(conn: Any) -> int:
            count = 0
            for row in rows:
                names = ", ".join(c for c, _ in row.values)
                marks = ", ".join(f"${i}" for i in range(1, len(row.values) + 1))
                status = await conn.execute(
                    f"INSERT INTO {schema}.{row.table} ({names}) VALUES ({marks})"  # noqa: S608
                    " ON CONFLICT DO NOTHING",
                    *(v for _, v in row.values),
                )
                count += int(str(status).rsplit(" ", 1)[-1])
            return count

        count: int = await store.write(pg_body)
        return count
