"""Restore points of documents: a feature table beside the update logs.

A restore point is a document's whole state (one Yjs update) as of one of its seqs, with
when it was taken and who had changed the document since the previous point. Points live
in their own ``versions`` table, so compacting a document's log does not touch them; they
are erased with their wedding. :class:`VersionStore` also reads a document's log up to a
seq (the exact state at that seq, while the log still holds it).

Which points to keep as they age (hourly for a week, then daily) is :func:`to_thin`, a
pure function.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .base import DocumentStore, Schema, StoreError
from .postgres import PostgresStore
from .sqlite import SqliteStore

__all__ = ["VERSIONS", "VersionPoint", "VersionStore", "to_thin"]

VERSIONS = Schema(
    "versions",
    sqlite=(
        "CREATE TABLE IF NOT EXISTS versions (doc TEXT NOT NULL, seq INTEGER NOT NULL,"
        " wedding TEXT NOT NULL, at REAL NOT NULL, actors TEXT NOT NULL, state BLOB NOT NULL,"
        " PRIMARY KEY (doc, seq))",
        "CREATE INDEX IF NOT EXISTS versions_at ON versions (at)",
    ),
    postgres=(
        'CREATE TABLE IF NOT EXISTS {s}.versions (doc text COLLATE "C" NOT NULL,'
        ' seq bigint NOT NULL, wedding text COLLATE "C" NOT NULL,'
        " at double precision NOT NULL, actors text NOT NULL, state bytea NOT NULL,"
        " PRIMARY KEY (doc, seq))",
        "CREATE INDEX IF NOT EXISTS versions_at ON {s}.versions (at)",
    ),
    wedding_tables=("versions",),
)


@dataclass(frozen=True, slots=True)
class VersionPoint:
    """A restore point (without its state): the document's seq it is the state as of,
    when it was taken (Unix seconds) and who changed the document since the previous
    point, as ``(sub, role)`` pairs."""

    doc: str
    seq: int
    at: float
    actors: tuple[tuple[str, str], ...]


def to_thin(
    points: Sequence[VersionPoint], now: float, *, hourly_for: float, keep_for: float
) -> list[VersionPoint]:
    """The points to delete: every point older than ``keep_for`` seconds, and of those
    older than ``hourly_for`` all but the first of each document's UTC day."""
    doomed: list[VersionPoint] = []
    kept_days: set[tuple[str, str]] = set()
    for point in sorted(points, key=lambda p: (p.doc, p.seq)):
        age = now - point.at
        if age > keep_for:
            doomed.append(point)
        elif age > hourly_for:
            day = (point.doc, datetime.fromtimestamp(point.at, UTC).date().isoformat())
            if day in kept_days:
                doomed.append(point)
            else:
                kept_days.add(day)
    return doomed


class VersionStore:
    """Restore points on a :class:`SqliteStore` or a :class:`PostgresStore`."""

    def __init__(self, store: DocumentStore) -> None:
        if not isinstance(store, SqliteStore | PostgresStore):
            raise StoreError(f"restore points need SQLite or PostgreSQL, not {type(store)}")
        self._store = store

    async def install(self) -> None:
        await self._store.install(VERSIONS)

    async def _rows(self, sqlite_sql: str, pg_sql: str, *params: Any) -> list[Any]:
        store = self._store
        if isinstance(store, SqliteStore):
            return await store.read(sqlite_sql, *params)
        return list(await store.fetch(pg_sql.format(s=store.schema), *params))

    async def add(self, wedding: str, point: VersionPoint, state: bytes) -> bool:
        """Store a point (a second point at the same seq stores nothing); whether stored."""
        actors = json.dumps([list(a) for a in point.actors])
        store = self._store
        row = (point.doc, point.seq, wedding, point.at, actors, state)
        if isinstance(store, SqliteStore):

            def body(db: sqlite3.Connection) -> bool:
                cursor = db.execute("INSERT OR IGNORE INTO versions VALUES (?, ?, ?, ?, ?, ?)", row)
                return cursor.rowcount == 1

            return await store.write(body)
        assert isinstance(store, PostgresStore)
        sql = (
            f"INSERT INTO {store.schema}.versions VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT DO NOTHING"
        )

        async def pg_body(conn: Any) -> bool:
            status = await conn.execute(sql, *row)
            return str(status).endswith(" 1")

        return await store.write(pg_body)

    async def points(
        self, doc: str, *, before: int | None = None, limit: int = 50
    ) -> list[VersionPoint]:
        """The document's points with ``seq < before``, newest first."""
        bound = before if before is not None else 2**62
        rows = await self._rows(
            "SELECT doc, seq, at, actors FROM versions WHERE doc = ? AND seq < ?"
            " ORDER BY seq DESC LIMIT ?",
            "SELECT doc, seq, at, actors FROM {s}.versions WHERE doc = $1 AND seq < $2"
            " ORDER BY seq DESC LIMIT $3",
            doc,
            bound,
            limit,
        )
        return [_point(r) for r in rows]

    async def state(self, doc: str, at_most: int) -> tuple[int, bytes] | None:
        """The newest point with ``seq <= at_most``: its seq and state."""
        rows = await self._rows(
            "SELECT seq, state FROM versions WHERE doc = ? AND seq <= ? ORDER BY seq DESC LIMIT 1",
            "SELECT seq, state FROM {s}.versions WHERE doc = $1 AND seq <= $2"
            " ORDER BY seq DESC LIMIT 1",
            doc,
            at_most,
        )
        return (int(rows[0][0]), bytes(rows[0][1])) if rows else None

    async def log_upto(self, doc: str, at_most: int) -> list[tuple[int, bytes]]:
        """The document's log rows with ``seq <= at_most``, oldest first (the first may be
        a compaction snapshot); empty when the log no longer reaches back that far."""
        rows = await self._rows(
            "SELECT seq, data FROM updates WHERE doc = ? AND seq <= ? ORDER BY seq",
            "SELECT seq, data FROM {s}.updates WHERE doc = $1 AND seq <= $2 ORDER BY seq",
            doc,
            at_most,
        )
        return [(int(r[0]), bytes(r[1])) for r in rows]

    async def actors_between(self, doc: str, after: int, upto: int) -> list[tuple[str, str]]:
        """Who changed the document with ``after < seq <= upto`` (from its history)."""
        rows = await self._rows(
            "SELECT DISTINCT sub, role FROM history WHERE doc = ? AND seq > ? AND seq <= ?"
            " ORDER BY sub, role",
            "SELECT DISTINCT sub, role FROM {s}.history WHERE doc = $1 AND seq > $2"
            " AND seq <= $3 ORDER BY sub, role",
            doc,
            after,
            upto,
        )
        return [(str(r[0]), str(r[1])) for r in rows if r[0]]

    async def older_than(self, at: float) -> list[VersionPoint]:
        """Every point taken before ``at`` (what thinning looks at)."""
        rows = await self._rows(
            "SELECT doc, seq, at, actors FROM versions WHERE at < ?",
            "SELECT doc, seq, at, actors FROM {s}.versions WHERE at < $1",
            at,
        )
        return [_point(r) for r in rows]

    async def states(self, doc: str) -> list[tuple[int, bytes]]:
        """Every point of the document with its state (to rewrite them), oldest first."""
        rows = await self._rows(
            "SELECT seq, state FROM versions WHERE doc = ? ORDER BY seq",
            "SELECT seq, state FROM {s}.versions WHERE doc = $1 ORDER BY seq",
            doc,
        )
        return [(int(r[0]), bytes(r[1])) for r in rows]

    async def replace_states(self, doc: str, states: Sequence[tuple[int, bytes]]) -> None:
        """Overwrite the state of points of the document (per-person erasure)."""
        rows = [(state, doc, seq) for seq, state in states]
        if not rows:
            return
        store = self._store
        if isinstance(store, SqliteStore):

            def body(db: sqlite3.Connection) -> None:
                db.executemany("UPDATE versions SET state = ? WHERE doc = ? AND seq = ?", rows)

            await store.write(body)
            return
        assert isinstance(store, PostgresStore)
        sql = f"UPDATE {store.schema}.versions SET state = $1 WHERE doc = $2 AND seq = $3"

        async def pg_body(conn: Any) -> None:
            await conn.executemany(sql, rows)

        await store.write(pg_body)

    async def delete(self, points: Sequence[VersionPoint]) -> None:
        keys = [(p.doc, p.seq) for p in points]
        if not keys:
            return
        store = self._store
        if isinstance(store, SqliteStore):

            def body(db: sqlite3.Connection) -> None:
                db.executemany("DELETE FROM versions WHERE doc = ? AND seq = ?", keys)

            await store.write(body)
            return
        assert isinstance(store, PostgresStore)
        sql = f"DELETE FROM {store.schema}.versions WHERE doc = $1 AND seq = $2"

        async def pg_body(conn: Any) -> None:
            await conn.executemany(sql, keys)

        await store.write(pg_body)


def _point(row: Any) -> VersionPoint:
    actors = json.loads(row[3])
    return VersionPoint(
        str(row[0]),
        int(row[1]),
        float(row[2]),
        tuple((str(a[0]), str(a[1])) for a in actors),
    )
