"""Open edit sessions of collaborative text: a feature table beside the update logs.

A session is one person's run of edits in one text (an entry's ``notes``): who, which
entry, an excerpt of the text before their first edit and that edit's seq. A row lives
while the session is open; closing it stores one event and deletes the row, so rows left at
a crash are the sessions to close at the next start. A new table (``CREATE TABLE IF NOT
EXISTS``): stores written by an earlier release gain it and change nothing else.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .base import DocumentStore, Schema, StoreError
from .postgres import PostgresStore
from .sqlite import SqliteStore

__all__ = ["NOTE_SESSIONS", "NoteSession", "NoteSessionStore"]

NOTE_SESSIONS = Schema(
    "note_sessions",
    sqlite=(
        "CREATE TABLE IF NOT EXISTS note_sessions (id TEXT PRIMARY KEY, wedding TEXT NOT NULL,"
        " doc TEXT NOT NULL, root TEXT NOT NULL, entry TEXT NOT NULL, field TEXT NOT NULL,"
        " sub TEXT NOT NULL, role TEXT NOT NULL, before TEXT NOT NULL,"
        " first_seq INTEGER NOT NULL, started REAL NOT NULL)",
    ),
    postgres=(
        'CREATE TABLE IF NOT EXISTS {s}.note_sessions (id text COLLATE "C" PRIMARY KEY,'
        ' wedding text COLLATE "C" NOT NULL, doc text COLLATE "C" NOT NULL,'
        " root text NOT NULL, entry text NOT NULL, field text NOT NULL, sub text NOT NULL,"
        " role text NOT NULL, before text NOT NULL, first_seq bigint NOT NULL,"
        " started double precision NOT NULL)",
    ),
    wedding_tables=("note_sessions",),
)

_COLUMNS = "id, wedding, doc, root, entry, field, sub, role, before, first_seq, started"


@dataclass(frozen=True, slots=True)
class NoteSession:
    """An open session: ``doc`` is the room name (``w1/guests``), ``root``/``entry``/
    ``field`` the text (``guests``/``g1``/``notes``), ``before`` an excerpt of the text
    before the first edit, ``first_seq`` that edit's seq, ``started`` Unix seconds."""

    id: str
    wedding: str
    doc: str
    root: str
    entry: str
    field: str
    sub: str
    role: str
    before: str
    first_seq: int
    started: float


class NoteSessionStore:
    """Open sessions on a :class:`SqliteStore` or a :class:`PostgresStore`."""

    def __init__(self, store: DocumentStore) -> None:
        if not isinstance(store, SqliteStore | PostgresStore):
            raise StoreError(f"edit sessions need SQLite or PostgreSQL, not {type(store)}")
        self._store = store

    async def install(self) -> None:
        await self._store.install(NOTE_SESSIONS)

    async def open(self, session: NoteSession) -> None:
        """Store an open session (its own transaction; the same id again stores nothing)."""
        row = (
            session.id,
            session.wedding,
            session.doc,
            session.root,
            session.entry,
            session.field,
            session.sub,
            session.role,
            session.before,
            session.first_seq,
            session.started,
        )
        store = self._store
        if isinstance(store, SqliteStore):

            def body(db: sqlite3.Connection) -> None:
                db.execute(
                    f"INSERT OR IGNORE INTO note_sessions ({_COLUMNS}) VALUES"
                    " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )

            await store.write(body)
            return
        assert isinstance(store, PostgresStore)
        sql = (
            f"INSERT INTO {store.schema}.note_sessions ({_COLUMNS}) VALUES"
            " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING"
        )

        async def pg_body(conn: Any) -> None:
            await conn.execute(sql, *row)

        await store.write(pg_body)

    async def all(self) -> list[NoteSession]:
        """Every open session (what a crash left open, at start)."""
        store = self._store
        if isinstance(store, SqliteStore):
            rows: Sequence[Any] = await store.read(
                f"SELECT {_COLUMNS} FROM note_sessions ORDER BY started"
            )
        else:
            rows = await store.fetch(
                f"SELECT {_COLUMNS} FROM {store.schema}.note_sessions ORDER BY started"
            )
        return [
            NoteSession(
                str(r[0]),
                str(r[1]),
                str(r[2]),
                str(r[3]),
                str(r[4]),
                str(r[5]),
                str(r[6]),
                str(r[7]),
                str(r[8]),
                int(r[9]),
                float(r[10]),
            )
            for r in rows
        ]

    async def close(self, session_id: str) -> None:
        """Forget a session whose event is stored."""
        store = self._store
        if isinstance(store, SqliteStore):

            def body(db: sqlite3.Connection) -> None:
                db.execute("DELETE FROM note_sessions WHERE id = ?", (session_id,))

            await store.write(body)
            return
        assert isinstance(store, PostgresStore)
        sql = f"DELETE FROM {store.schema}.note_sessions WHERE id = $1"

        async def pg_body(conn: Any) -> None:
            await conn.execute(sql, session_id)

        await store.write(pg_body)

    async def erase_entry(self, wedding: str, root: str, entry: str) -> None:
        """Forget the sessions of one entry (per-person erasure: their excerpts go)."""
        store = self._store
        key = (wedding, root, entry)
        if isinstance(store, SqliteStore):

            def body(db: sqlite3.Connection) -> None:
                db.execute(
                    "DELETE FROM note_sessions WHERE wedding = ? AND root = ? AND entry = ?", key
                )

            await store.write(body)
            return
        assert isinstance(store, PostgresStore)
        sql = (
            f"DELETE FROM {store.schema}.note_sessions"
            " WHERE wedding = $1 AND root = $2 AND entry = $3"
        )

        async def pg_body(conn: Any) -> None:
            await conn.execute(sql, *key)

        await store.write(pg_body)
