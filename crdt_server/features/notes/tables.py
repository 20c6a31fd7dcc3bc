"""Open edit sessions of collaborative text: a feature table beside the update logs.

A session is one person's run of edits in one text (an entry's ``notes``): who, which
entry, an excerpt of the text before their first edit and that edit's seq. A row lives
while the session is open; closing it stores one event and deletes the row, so rows left at
a crash are the sessions to close at the next start. A new table (``CREATE TABLE IF NOT
EXISTS``): stores written by an earlier release gain it and change nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from crdt_server.storage.base import DocumentStore
from crdt_server.storage.gateway import Gateway, Sql, Table, Tx, schema_of

__all__ = ["NOTE_SESSIONS", "NoteSession", "NoteSessionStore"]

SESSIONS = Table(
    "note_sessions",
    "(id {ctext} PRIMARY KEY, wedding {ctext} NOT NULL, doc {ctext} NOT NULL,"
    " root {text} NOT NULL, entry {text} NOT NULL, field {text} NOT NULL, sub {text} NOT NULL,"
    " role {text} NOT NULL, before {text} NOT NULL, first_seq {int} NOT NULL,"
    " started {real} NOT NULL)",
)
NOTE_SESSIONS = schema_of("note_sessions", SESSIONS)

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
    """Open sessions in a store's SQL tables (:class:`Gateway`)."""

    def __init__(self, store: DocumentStore) -> None:
        self._store = store
        self._sql = Gateway.of(store)

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
        await self._sql.run(
            _one(
                f"INSERT INTO {{t}}note_sessions ({_COLUMNS}) VALUES"  # noqa: S608
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                row,
            )
        )

    async def all(self) -> list[NoteSession]:
        """Every open session (what a crash left open, at start)."""
        rows = await self._sql.fetch(
            f"SELECT {_COLUMNS} FROM {{t}}note_sessions ORDER BY started"  # noqa: S608
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
        await self._sql.run(_one("DELETE FROM {t}note_sessions WHERE id = ?", (session_id,)))

    async def erase_entry(self, wedding: str, root: str, entry: str) -> None:
        """Forget the sessions of one entry (per-person erasure: their excerpts go)."""
        await self._sql.run(
            _one(
                "DELETE FROM {t}note_sessions WHERE wedding = ? AND root = ? AND entry = ?",
                (wedding, root, entry),
            )
        )


def _one(text: str, params: tuple[object, ...]) -> Tx[None]:
    yield Sql(text, params)
