"""Open edit sessions of collaborative text: a feature table beside the update logs.

A session is one person's run of edits in one text (an entry's ``notes``): who, which
entry, an excerpt of the text before their first edit and that edit's seq. A row lives
while the session is open; closing it stores one event and deletes the row in one
transaction, so rows left at a crash are the sessions to close at the next start. A new
table (``CREATE TABLE IF NOT EXISTS``): stores written by an earlier release gain it and
change nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crdt_server.features.events import store_events
from crdt_server.storage.base import DocumentStore, NewEvent, StoredEvent
from crdt_server.storage.gateway import Gateway, Sql, Table, Tx, rows_as, schema_of, statements

__all__ = ["NOTE_SESSIONS", "NoteSession", "NoteSessionStore"]

SESSIONS = Table(
    "note_sessions",
    "(id {ctext} PRIMARY KEY, wedding {ctext} NOT NULL, doc {ctext} NOT NULL,"
    " root {text} NOT NULL, entry {text} NOT NULL, field {text} NOT NULL, sub {text} NOT NULL,"
    " role {text} NOT NULL, before {text} NOT NULL, first_seq {int} NOT NULL,"
    " started {real} NOT NULL)",
)
NOTE_SESSIONS = schema_of("note_sessions", SESSIONS)

_CHUNK = 500
"""Ids per ``IN (...)`` list (well under every backend's limit on parameters)."""
_OPENED = 250
"""Sessions' rows written per transaction (as many as the extension closes in one)."""

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


@dataclass(frozen=True, slots=True)
class _Id:
    id: str


class NoteSessionStore:
    """Open sessions in a store's SQL tables (:class:`Gateway`)."""

    def __init__(self, store: DocumentStore) -> None:
        self._sql = Gateway.of(store)

    async def open(self, sessions: Sequence[NoteSession]) -> None:
        """Store open sessions (an id already stored is left as it is), in transactions of
        at most :data:`_OPENED` one after the other: one update may open thousands at once,
        and each transaction holds the store's one writer (on SQLite, maybe the event
        loop) while it runs."""
        insert = (
            f"INSERT INTO {{t}}note_sessions ({_COLUMNS}) VALUES"  # noqa: S608
            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
        )
        for at in range(0, len(sessions), _OPENED):
            some = sessions[at : at + _OPENED]
            await self._sql.run(statements([(insert, _values(session)) for session in some]))

    async def all(self) -> list[NoteSession]:
        """Every open session (what a crash left open, at start)."""
        return await self._sql.fetch_as(
            NoteSession,
            f"SELECT {_COLUMNS} FROM {{t}}note_sessions ORDER BY started",  # noqa: S608
        )

    async def close(
        self, closing: Sequence[tuple[NoteSession, NewEvent, bool]]
    ) -> list[StoredEvent]:
        """Close sessions in one transaction: store each one's event and forget its row
        (so a crash leaves both or neither), for ``(session, event, written)`` where the
        session's row is still there, or was never ``written`` (its open write failed).
        A session another process closed already (its row went with its event) stores
        nothing: each session's event is stored once. The events as stored."""
        if not closing:
            return []
        ids = [session.id for session, _, _ in closing]

        def tx() -> Tx[list[StoredEvent]]:
            present: set[str] = set()
            for at in range(0, len(ids), _CHUNK):
                chunk = ids[at : at + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                found = yield from rows_as(
                    _Id,
                    f"SELECT id FROM {{t}}note_sessions WHERE id IN ({marks})",  # noqa: S608
                    *chunk,
                )
                present.update(f.id for f in found)
            events = [
                event for session, event, written in closing if session.id in present or not written
            ]
            stored = (yield from store_events(events)) if events else []
            for gone in present:
                yield Sql("DELETE FROM {t}note_sessions WHERE id = ?", (gone,))
            return stored

        return await self._sql.run(tx())

    async def erase_entry(self, wedding: str, root: str, entry: str) -> None:
        """Forget the sessions of one entry (per-person erasure: their excerpts go)."""
        await self._sql.run(
            statements(
                [
                    (
                        "DELETE FROM {t}note_sessions WHERE wedding = ? AND root = ? AND entry = ?",
                        (wedding, root, entry),
                    )
                ]
            )
        )


def _values(session: NoteSession) -> tuple[object, ...]:
    return (
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
