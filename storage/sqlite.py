"""SQLite implementation of :class:`storage.base.DocumentStore`, with group commit.

One writer task owns every write transaction: concurrent :meth:`SqliteStore.append` calls
are queued and committed together, so many small Yjs updates cost one fsync per batch
rather than one each. Each transaction runs whole, ``BEGIN IMMEDIATE`` to ``COMMIT``, as
one call on a writer thread that owns the write connection: one hop from the event loop per
commit, where a statement-at-a-time driver takes one per statement. Reads go through
aiosqlite on a connection of their own; in WAL mode they see committed rows only.

Erasure: the write connection runs with ``secure_delete`` on, so deleted rows and freed
pages are overwritten with zeros; after an erasure a ``TRUNCATE`` checkpoint copies the
zeroed pages into the database file and empties the write-ahead log, which still holds the
frames that wrote the deleted rows. A reader of another process can keep that checkpoint
from finishing (it may still need the old frames): then :attr:`Erasure.scrubbed` is false
and :meth:`SqliteStore.scrub` tries again. Tombstoned weddings are enforced by triggers, so
no code path (nor another process's store) can store a row for one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiosqlite

from ._group_commit import GroupCommitter
from .base import (
    AddedEvents,
    Erasure,
    EventFilter,
    FeatureRow,
    HistoryEntry,
    Migration,
    MovedDocument,
    NewEvent,
    NewUpdate,
    Once,
    Revocation,
    Schema,
    StoredEvent,
    StoredLog,
    StoreError,
    audience_needle,
    check_feature_rows,
    dropped_feature_row,
    recorded_tables,
    recorded_version,
    wedding_of_prefix,
)
from .gateway import Dialect, Events, Tx, dialect_sql, insert_sql

__all__ = [
    "SqliteStore",
    "insert_events",
]

_LOG = logging.getLogger(__name__)
_T = TypeVar("_T")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS updates ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL, data BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS updates_doc_seq ON updates (doc, seq)",
    "CREATE TABLE IF NOT EXISTS history (seq INTEGER PRIMARY KEY, doc TEXT NOT NULL,"
    " origin TEXT NOT NULL, created_at REAL NOT NULL, size INTEGER NOT NULL,"
    " sub TEXT NOT NULL DEFAULT '', role TEXT NOT NULL DEFAULT '', client_id INTEGER)",
    "CREATE INDEX IF NOT EXISTS history_doc_seq ON history (doc, seq)",
    "CREATE TABLE IF NOT EXISTS events (wedding TEXT NOT NULL, seq INTEGER NOT NULL,"
    " type TEXT NOT NULL, doc TEXT, sub TEXT NOT NULL, role TEXT NOT NULL,"
    " priority TEXT NOT NULL, at REAL NOT NULL, data TEXT NOT NULL, audience TEXT,"
    " PRIMARY KEY (wedding, seq)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS events_at ON events (at)",
    "CREATE TABLE IF NOT EXISTS event_counters (wedding TEXT PRIMARY KEY,"
    " last_seq INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS idempotency (scope TEXT NOT NULL, key TEXT NOT NULL,"
    " wedding TEXT NOT NULL, fingerprint TEXT NOT NULL, seqs TEXT NOT NULL,"
    " expires_at REAL NOT NULL, PRIMARY KEY (scope, key)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS tickets (digest TEXT PRIMARY KEY, payload TEXT NOT NULL,"
    " expires_at REAL NOT NULL) WITHOUT ROWID",
    # wedding '' = every wedding of the user (a primary key column cannot be NULL).
    "CREATE TABLE IF NOT EXISTS revocations (sub TEXT NOT NULL, wedding TEXT NOT NULL,"
    " at REAL NOT NULL, PRIMARY KEY (sub, wedding))",
    "CREATE TABLE IF NOT EXISTS tombstones (wedding TEXT PRIMARY KEY, deleted_at REAL NOT NULL)",
    # Rows of a tombstoned wedding are dropped, whoever appends them: a room that another
    # process still had open, a client reconnecting with its whole state. The seqs handed
    # out for such rows are never stored (the wedding's rooms are closing with 4404).
    *(
        f"CREATE TRIGGER IF NOT EXISTS {table}_tombstoned BEFORE INSERT ON {table}"
        " WHEN EXISTS (SELECT 1 FROM tombstones"
        " WHERE wedding = substr(NEW.doc, 1, instr(NEW.doc || '/', '/') - 1))"
        " BEGIN SELECT RAISE(IGNORE); END"
        for table in ("updates", "history")
    ),
)
# Columns added after the first release, for files created before them.
_MIGRATIONS = {
    "history": (
        ("sub", "TEXT NOT NULL DEFAULT ''"),
        ("role", "TEXT NOT NULL DEFAULT ''"),
        ("client_id", "INTEGER"),
    ),
    "events": (("audience", "TEXT"),),
}
_VERSIONS = (
    "CREATE TABLE IF NOT EXISTS schema_versions (name TEXT PRIMARY KEY,"
    " version INTEGER NOT NULL, wedding_tables TEXT NOT NULL DEFAULT '') WITHOUT ROWID"
)
"""The version of each schema a store holds: ``store`` (the tables above) and each
installed feature's (:class:`storage.base.Schema`), with the feature's wedding tables
(comma-separated): erasing a wedding empties them even while the feature is left out."""
STORE_MIGRATIONS: tuple[Migration, ...] = ()
"""The store's own numbered migrations (versions 2, 3...); version 1 is the schema above,
as the releases before schema versions left it."""
_EVENT_COLUMNS = "wedding, seq, type, doc, sub, role, priority, at, data, audience"
_WEDDING_TABLES = ("events", "event_counters", "idempotency")
"""Tables keyed by a ``wedding`` column: erased with the wedding."""


def _tombstone_trigger(table: str) -> str:
    """Rows for a tombstoned wedding are dropped, whoever inserts them (as for updates)."""
    return (
        f"CREATE TRIGGER IF NOT EXISTS {table}_tombstoned BEFORE INSERT ON {table}"
        " WHEN EXISTS (SELECT 1 FROM tombstones WHERE wedding = NEW.wedding)"
        " BEGIN SELECT RAISE(IGNORE); END"
    )


_WEDDING_TRIGGERS = tuple(map(_tombstone_trigger, _WEDDING_TABLES))
# The same rule AUTOINCREMENT applies (one past the largest seq ever used, even if that row
# was since deleted), computed up front so a whole batch can go in with one executemany
# and every caller learns its seqs. Safe because BEGIN IMMEDIATE holds the write lock.
_LAST_SEQ = (
    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'updates'), 0),"
    " COALESCE((SELECT MAX(seq) FROM updates), 0))"
)
# Prefix match without LIKE, whose wildcards (_ %) and ASCII case folding would make
# "w_1/" match "wx1/" or "W_1/". The ``doc >= ?`` term lets SQLite start at the prefix in
# the (doc, seq) index instead of scanning from the first name.
_PREFIX = "doc >= ? AND substr(doc, 1, ?) = ?"
_HAS_ROWS = (
    "SELECT 1 FROM updates WHERE doc = ? UNION ALL SELECT 1 FROM history WHERE doc = ? LIMIT 1"
)
_COUNT_DOCS = (
    f"SELECT COUNT(*) FROM (SELECT doc FROM updates WHERE {_PREFIX}"
    f" UNION SELECT doc FROM history WHERE {_PREFIX})"
)


class SqliteStore:
    """A :class:`~storage.base.DocumentStore` in one SQLite file (WAL, ``synchronous=FULL``
    unless ``synchronous="normal"``).

    ``busy_timeout`` is how many seconds a write waits for another process's lock on the
    file before failing with :class:`StoreError`. Use one instance per file per process,
    from one event loop. Cancelling a waiting :meth:`append`, :meth:`compact` or
    :meth:`delete` does not withdraw it: once queued, it is carried out.

    ``inline=True`` runs every statement on the event loop's own thread, blocking the loop
    meanwhile, instead of on the writer thread and the reading thread: the same
    connections, SQL, transactions and group commit, without a thread hop per call. Only
    for a process whose loop has nothing else to do while the store works and whose file
    is small and local, such as the testing kit's in-process mode (where the hop costs
    more than the statement); a server keeps the default.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 5.0,
        synchronous: Literal["full", "normal"] = "full",
        inline: bool = False,
    ) -> None:
        self._path = Path(path)
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._inline = inline
        self._db: aiosqlite.Connection | None = None
        """The read connection."""
        self._inline_db: sqlite3.Connection | None = None
        """The read connection when ``inline``, used on the loop's thread."""
        self._write_db: sqlite3.Connection | None = None
        """The write connection, used only on the writer thread."""
        self._thread: ThreadPoolExecutor | None = None
        self._writer: GroupCommitter[_Body[Any]] = GroupCommitter(
            str(self._path), self._commit_rows, self._transaction
        )
        self._commits = 0
        self._schemas: set[str] = set()
        self._wedding_tables: tuple[str, ...] = _WEDDING_TABLES

    @property
    def commits(self) -> int:
        """Write transactions this instance has committed (append batches, compactions,
        deletions). Read-only; for tests and metrics, e.g. to see group commit at work."""
        return self._commits

    async def open(self) -> None:
        """Create the file, its directory and the schema if needed; start the writer."""
        if self._db is not None or self._inline_db is not None:
            raise StoreError(f"{self._path} is already open")
        if self._inline:
            self._open_inline()
            return
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            write_db = await asyncio.get_running_loop().run_in_executor(
                thread, _connect_writer, self._path, self._busy_timeout, self._synchronous
            )
        except (OSError, sqlite3.Error) as exc:
            thread.shutdown()
            raise StoreError(f"cannot open {self._path}: {exc}") from exc
        except BaseException:
            thread.shutdown()
            raise
        try:
            db = await aiosqlite.connect(
                self._path, isolation_level=None, timeout=self._busy_timeout
            )
        except BaseException as exc:
            await asyncio.get_running_loop().run_in_executor(thread, write_db.close)
            thread.shutdown()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot open {self._path}: {exc}") from exc
            raise
        self._write_db = write_db
        self._db, self._thread = db, thread
        self._writer.start()
        await self._recorded_wedding_tables()

    def _open_inline(self) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            write_db = _connect_writer(self._path, self._busy_timeout, self._synchronous)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open {self._path}: {exc}") from exc
        try:
            db = sqlite3.connect(self._path, isolation_level=None, timeout=self._busy_timeout)
        except BaseException as exc:
            write_db.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot open {self._path}: {exc}") from exc
            raise
        self._write_db, self._inline_db = write_db, db
        self._writer.start()
        for (tables,) in db.execute("SELECT wedding_tables FROM schema_versions").fetchall():
            self._add_wedding_tables(recorded_tables(str(tables)))

    async def _recorded_wedding_tables(self) -> None:
        """Erase with each wedding the tables of every feature this file ever installed."""
        for (tables,) in await self._read("SELECT wedding_tables FROM schema_versions"):
            self._add_wedding_tables(recorded_tables(str(tables)))

    def _add_wedding_tables(self, tables: Sequence[str]) -> None:
        self._wedding_tables += tuple(t for t in tables if t not in self._wedding_tables)

    async def close(self) -> None:
        """Commit every append already queued, stop the writer and close the file.

        Calls made after close() has started raise :class:`StoreError`.
        """
        await self._writer.stop()
        db, write_db, thread = self._db, self._write_db, self._thread
        inline_db, self._inline_db = self._inline_db, None
        self._db = self._write_db = self._thread = None
        try:
            if inline_db is not None:
                inline_db.close()
                if write_db is not None:
                    write_db.close()
            if write_db is not None and thread is not None:
                await asyncio.get_running_loop().run_in_executor(thread, write_db.close)
            if db is not None:
                await db.close()
        except sqlite3.Error as exc:
            raise StoreError(f"closing {self._path} failed: {exc}") from exc
        finally:
            if thread is not None:
                thread.shutdown(wait=False)

    async def load(self, doc: str) -> StoredLog | None:
        """The document's log in seq order, or ``None`` if it has no rows."""
        rows = await self._read("SELECT seq, data FROM updates WHERE doc = ? ORDER BY seq", doc)
        if not rows:
            return None
        updates = [bytes(data) for _, data in rows]
        return StoredLog(updates=updates, last_seq=rows[-1][0], first_seq=rows[0][0])

    async def append(
        self,
        updates: Sequence[NewUpdate],
        events: Sequence[NewEvent] = (),
        *,
        rows: Sequence[FeatureRow] = (),
    ) -> list[int]:
        """Durably append ``updates``, the ``events`` they caused and feature ``rows`` in
        one transaction, shared with concurrent callers.

        Returns the updates' seqs in order, once committed and fsynced. If the shared
        transaction fails, every caller in it gets :class:`StoreError` and none of it is
        stored.
        """
        batch = list(updates)
        if not batch and not events and not rows:
            return []
        for update in batch:
            _check(update.data, update.doc, update.origin, update.sub, update.role)
        for event in events:
            _check_event(event)
        check_feature_rows(rows, self._wedding_tables)
        return await self._writer.append(batch, events, rows)

    async def add_events(
        self, events: Sequence[NewEvent], *, once: Once | None = None
    ) -> AddedEvents:
        """Store ``events`` in a transaction of their own (see the protocol)."""
        for event in events:
            _check_event(event)
        if once is not None:
            _check(b"", once.scope, once.key, once.fingerprint)
        batch = list(events)

        def body(db: sqlite3.Connection) -> AddedEvents:
            if once is not None:
                row = db.execute(
                    "SELECT fingerprint, wedding, seqs FROM idempotency"
                    " WHERE scope = ? AND key = ? AND expires_at > ?",
                    (once.scope, once.key, time.time()),
                ).fetchone()
                if row is not None:
                    seqs = json.loads(row[2])
                    marks = ",".join("?" * len(seqs))
                    found = db.execute(
                        f"SELECT {_EVENT_COLUMNS} FROM events WHERE wedding = ?"
                        f" AND seq IN ({marks}) ORDER BY seq",
                        (row[1], *seqs),
                    ).fetchall()
                    return AddedEvents([StoredEvent(*r) for r in found], False, row[0])
            stored = insert_events(db, batch, time.time())
            if once is not None:
                wedding = batch[0].wedding if batch else ""
                db.execute(
                    "INSERT OR REPLACE INTO idempotency"
                    " (scope, key, wedding, fingerprint, seqs, expires_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        once.scope,
                        once.key,
                        wedding,
                        once.fingerprint,
                        json.dumps([e.seq for e in stored]),
                        once.expires_at,
                    ),
                )
            return AddedEvents(stored, True)

        added: AddedEvents = await self._writer.write(body)
        return added

    async def events(
        self, wedding: str, *, after: int = 0, limit: int = 50, where: EventFilter | None = None
    ) -> list[StoredEvent]:
        """The wedding's events after ``after`` that match ``where``, oldest first."""
        if limit <= 0:
            return []
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE wedding = ? AND seq > ?"
        params: list[Any] = [wedding, after]
        where = where or EventFilter()
        if where.types:
            terms = []
            for pattern in where.types:
                if pattern.endswith(".*"):
                    prefix = pattern[:-1]
                    terms.append("substr(type, 1, ?) = ?")
                    params += [len(prefix), prefix]
                else:
                    terms.append("type = ?")
                    params.append(pattern)
            sql += f" AND ({' OR '.join(terms)})"
        if where.docs is not None:
            docs = sorted(where.docs)
            sql += f" AND (doc IS NULL OR doc IN ({','.join('?' * len(docs))}))"
            params += docs
        if where.viewer is not None:
            sql += " AND (audience IS NULL OR instr(audience, ?) > 0)"
            params.append(audience_needle(where.viewer))
        rows = await self._read(f"{sql} ORDER BY seq LIMIT ?", *params, limit)
        return [StoredEvent(*row) for row in rows]

    async def erase_entity_events(
        self, wedding: str, entity_id: str, paths: Sequence[str] = ()
    ) -> int:
        needles = _entity_needles(entity_id, paths)
        found = " OR ".join("instr(data, ?) > 0" for _ in needles)

        def body(db: sqlite3.Connection) -> int:
            return int(
                db.execute(
                    f"DELETE FROM events WHERE wedding = ? AND ({found})", (wedding, *needles)
                ).rowcount
            )

        erased: int = await self._writer.write(body)
        return erased

    async def last_event_seq(self, wedding: str) -> int:
        rows = await self._read("SELECT last_seq FROM event_counters WHERE wedding = ?", wedding)
        return int(rows[0][0]) if rows else 0

    async def purge_events(self, before: float) -> int:
        def body(db: sqlite3.Connection) -> int:
            gone = db.execute("DELETE FROM events WHERE at < ?", (before,)).rowcount
            db.execute("DELETE FROM idempotency WHERE expires_at < ?", (time.time(),))
            db.execute("DELETE FROM tickets WHERE expires_at < ?", (time.time(),))
            return int(gone)

        purged: int = await self._writer.write(body)
        return purged

    async def put_ticket(self, digest: str, payload: str, expires_at: float) -> None:
        _check(b"", digest, payload)

        def body(db: sqlite3.Connection) -> int:
            db.execute(
                "INSERT INTO tickets (digest, payload, expires_at) VALUES (?, ?, ?)",
                (digest, payload, expires_at),
            )
            return 0

        await self._writer.write(body)

    async def take_ticket(self, digest: str, now: float) -> str | None:
        def body(db: sqlite3.Connection) -> str | None:
            row = db.execute(
                "DELETE FROM tickets WHERE digest = ? RETURNING payload, expires_at", (digest,)
            ).fetchone()
            return str(row[0]) if row is not None and row[1] > now else None

        payload: str | None = await self._writer.write(body)
        return payload

    async def compact(self, doc: str, upto_seq: int, snapshot: bytes) -> None:
        """Replace the rows of ``doc`` up to ``upto_seq`` by ``snapshot``, keeping that seq.

        ``snapshot`` must hold the content of all those rows; history is left untouched.
        Raises :class:`StoreError`, changing nothing, unless ``doc`` has a row ``upto_seq``.
        """
        _check(snapshot, doc)

        def body(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "UPDATE updates SET data = ? WHERE doc = ? AND seq = ?", (snapshot, doc, upto_seq)
            )
            if cursor.rowcount != 1:
                raise StoreError(f"{doc!r} has no row with seq {upto_seq}")
            db.execute("DELETE FROM updates WHERE doc = ? AND seq < ?", (doc, upto_seq))
            return 0

        await self._writer.write(body)

    async def delete(self, prefix: str) -> int:
        """Delete every document whose name starts with ``prefix`` (``""``: all of them)
        together with its history. Returns how many documents were deleted."""
        params = (prefix, len(prefix), prefix)

        wedding = wedding_of_prefix(prefix)

        def body(db: sqlite3.Connection) -> int:
            count = _scalar(db, _COUNT_DOCS, params * 2)
            db.execute(f"DELETE FROM updates WHERE {_PREFIX}", params)
            db.execute(f"DELETE FROM history WHERE {_PREFIX}", params)
            if wedding is not None:
                for table in self._wedding_tables:
                    db.execute(f"DELETE FROM {table} WHERE wedding = ?", (wedding,))
            return count

        deleted: int = await self._writer.write(body)
        return deleted

    async def erase_wedding(self, wedding_id: str) -> Erasure:
        """Delete every row of the wedding (``{wedding_id}/...`` documents and their
        history), tombstone it, then checkpoint so no copy of those rows stays readable.

        Tables installed by features (:meth:`install`) are emptied of the wedding too.
        """
        prefix = f"{wedding_id}/"
        params = (prefix, len(prefix), prefix)

        def body(db: sqlite3.Connection) -> int:
            count = _scalar(db, _COUNT_DOCS, params * 2)
            db.execute(f"DELETE FROM updates WHERE {_PREFIX}", params)
            db.execute(f"DELETE FROM history WHERE {_PREFIX}", params)
            for table in self._wedding_tables:
                db.execute(f"DELETE FROM {table} WHERE wedding = ?", (wedding_id,))
            db.execute(
                "INSERT OR REPLACE INTO tombstones (wedding, deleted_at) VALUES (?, ?)",
                (wedding_id, time.time()),
            )
            return count

        documents = await self._writer.write(body)
        return Erasure(documents=documents, scrubbed=await self.scrub())

    async def scrub(self) -> bool:
        """Checkpoint the write-ahead log into the database file and truncate it; whether
        that finished (it cannot while another process reads an older snapshot)."""
        db, thread = self._write_db, self._thread
        if db is None or (thread is None and not self._inline):
            raise StoreError(f"{self._path} is not open")
        try:
            if thread is None:
                return _checkpoint(db, self._busy_timeout)
            return await asyncio.get_running_loop().run_in_executor(
                thread, _checkpoint, db, self._busy_timeout
            )
        except sqlite3.Error as exc:
            raise StoreError(f"checkpointing {self._path} failed: {exc}") from exc

    async def tombstones(self) -> dict[str, float]:
        """Every erased wedding id and when it was erased."""
        rows = await self._read("SELECT wedding, deleted_at FROM tombstones")
        return {str(wedding): float(at) for wedding, at in rows}

    async def lift_tombstone(self, wedding_id: str) -> bool:
        """Let the wedding id be used again; whether it was tombstoned."""

        def body(db: sqlite3.Connection) -> int:
            return db.execute("DELETE FROM tombstones WHERE wedding = ?", (wedding_id,)).rowcount

        lifted: int = await self._writer.write(body)
        return lifted > 0

    async def revoke(self, revocation: Revocation, *, forget_before: float) -> None:
        """Record the revocation durably; forget those made before ``forget_before``."""
        _check(b"", revocation.sub, revocation.wedding or "")

        def body(db: sqlite3.Connection) -> int:
            db.execute(
                "INSERT INTO revocations (sub, wedding, at) VALUES (?, ?, ?)"
                " ON CONFLICT (sub, wedding) DO UPDATE SET at = max(at, excluded.at)",
                (revocation.sub, revocation.wedding or "", revocation.at),
            )
            db.execute("DELETE FROM revocations WHERE at < ?", (forget_before,))
            return 0

        await self._writer.write(body)

    async def revocations(self) -> list[Revocation]:
        """Every revocation recorded and not forgotten."""
        rows = await self._read("SELECT sub, wedding, at FROM revocations ORDER BY at")
        return [Revocation(str(sub), str(w) or None, float(at)) for sub, w, at in rows]

    async def history(
        self, doc: str, limit: int = 100, *, before: int | None = None, after: int = 0
    ) -> list[HistoryEntry]:
        """The newest ``limit`` entries of ``doc`` with ``after < seq < before`` (none if
        ``limit <= 0``), newest first."""
        if limit <= 0:
            return []  # SQLite would read a negative LIMIT as "no limit"
        sql = (
            "SELECT seq, doc, origin, created_at, size, sub, role, client_id FROM history"
            " WHERE doc = ? AND seq > ? AND seq < ?"
        )
        upper = before if before is not None else 2**63 - 1
        rows = await self._read(f"{sql} ORDER BY seq DESC LIMIT ?", doc, after, upper, limit)
        return [HistoryEntry(*row) for row in rows]  # columns in field order

    async def last_seq(self) -> int:
        """The newest seq ever committed (0 for an empty store)."""
        rows = await self._read("SELECT COALESCE(MAX(seq), 0) FROM history")
        return int(rows[0][0])

    async def last_seqs(self, docs: Sequence[str]) -> dict[str, int]:
        """The seq of each document's newest row; documents with no rows are absent."""
        sql = "SELECT doc, MAX(seq) FROM updates WHERE doc IN ({marks}) GROUP BY doc"
        return {str(doc): int(seq) for doc, seq in await self._read_in(sql, sorted(set(docs)))}

    async def docs_of(self, seqs: Sequence[int]) -> dict[int, str]:
        """Which document each of ``seqs`` went to; seqs never used (or deleted) are absent."""
        sql = "SELECT seq, doc FROM history WHERE seq IN ({marks})"
        return {int(seq): str(doc) for seq, doc in await self._read_in(sql, sorted(set(seqs)))}

    async def put_documents(
        self,
        documents: Sequence[MovedDocument],
        origin: str,
        events: Sequence[NewEvent] = (),
        rows: Sequence[FeatureRow] = (),
    ) -> list[int]:
        """Write documents this store has never seen, in one transaction (see
        :meth:`storage.base.DocumentStore.put_documents`)."""
        moved = _moved(documents, origin)
        for event in events:
            _check_event(event)
        check_feature_rows(rows, self._wedding_tables)

        written: list[int] = []

        def body(db: sqlite3.Connection) -> int:
            for document in moved:
                if db.execute(_HAS_ROWS, (document.doc, document.doc)).fetchone() is not None:
                    raise StoreError(f"{document.doc!r} already has rows in {self._path}")
            seq = _scalar(db, _LAST_SEQ)
            now = time.time()
            for document in moved:
                for entry in document.history:
                    seq += 1
                    db.execute(
                        "INSERT INTO history (seq, doc, origin, created_at, size)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (seq, document.doc, entry.origin, entry.created_at, entry.size),
                    )
                for data in document.updates:
                    seq += 1
                    # Each document ends with an update row, so the updates table's largest
                    # seq (what _LAST_SEQ reads) stays above every history seq written here.
                    db.execute(
                        "INSERT INTO updates (seq, doc, data) VALUES (?, ?, ?)",
                        (seq, document.doc, data),
                    )
                    db.execute(
                        "INSERT INTO history (seq, doc, origin, created_at, size)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (seq, document.doc, origin, now, len(data)),
                    )
                    written.append(seq)
            insert_events(db, events, now)
            for row in rows:
                columns = ", ".join(column for column, _ in row.values)
                marks = ", ".join("?" * len(row.values))
                try:
                    db.execute(
                        f"INSERT INTO {row.table} ({columns}) VALUES ({marks})",  # noqa: S608
                        tuple(value for _, value in row.values),
                    )
                except sqlite3.Error as exc:
                    raise StoreError(f"a row for {row.table} cannot be stored: {exc}") from exc
            return 0

        await self._writer.write(body)
        return written

    # -- for features (storage.base.Schema) -------------------------------------------

    async def install(self, schema: Schema) -> None:
        if schema.name in self._schemas:
            return
        first = (*schema.sqlite, *map(_tombstone_trigger, schema.wedding_tables))

        def body(db: sqlite3.Connection) -> None:
            migrations = [(m.version, m.sqlite) for m in schema.migrations]
            _upgrade(db, schema.name, first, migrations, schema.wedding_tables)

        await self._writer.write(body)
        self._schemas.add(schema.name)
        self._add_wedding_tables(schema.wedding_tables)

    async def read(self, sql: str, *params: Any) -> list[Any]:
        """Rows of one query on the reading connection (committed data only)."""
        return await self._read(sql, *params)

    async def write(self, body: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``body`` on the writer thread in one committed transaction, in turn with the
        update commits; a :class:`sqlite3.Error` in it rolls everything back and becomes a
        :class:`StoreError`."""
        result: _T = await self._writer.write(body)
        return result

    def sql_backend(self) -> _SqliteSql:
        """What :class:`storage.gateway.Gateway` runs its SQL through."""
        return _SqliteSql(self)

    @asynccontextmanager
    async def held_transaction(self) -> AsyncIterator[_SqliteTx]:
        """A write transaction whose statements the caller sends one at a time, on the
        writer thread and connection, in its turn in the writer's queue (the update
        commits wait for it): see :meth:`storage.gateway.Gateway.transaction`."""
        loop = asyncio.get_running_loop()
        entered: asyncio.Future[_SqliteTx] = loop.create_future()
        leave: asyncio.Future[bool] = loop.create_future()

        async def hold(db: sqlite3.Connection) -> None:
            await self._on_writer(db.execute, "BEGIN IMMEDIATE")
            try:
                entered.set_result(_SqliteTx(self, db))
                commit = await leave
            except BaseException:
                commit = False
                raise
            finally:
                if not commit and db.in_transaction:
                    await self._on_writer(db.rollback)
            await self._on_writer(db.execute, "COMMIT")

        job = asyncio.ensure_future(self._writer.write(_Held(hold)))
        await asyncio.wait({entered, job}, return_when=asyncio.FIRST_COMPLETED)
        if not entered.done():
            entered.cancel()
            await job  # raises what kept the transaction from starting
        try:
            yield entered.result()
        except BaseException:
            leave.set_result(False)
            with suppress(Exception):
                await asyncio.shield(job)
            raise
        leave.set_result(True)
        await job

    async def _on_writer(self, call: Callable[..., _T], *args: Any) -> _T:
        """``call(*args)`` on the writer thread (inline: here)."""
        thread = self._thread
        if thread is None:
            await asyncio.sleep(0)
            return call(*args)
        return await asyncio.get_running_loop().run_in_executor(thread, call, *args)

    # -- internals ---------------------------------------------------------------------

    async def _read_in(self, sql: str, values: Sequence[Any]) -> list[Any]:
        """The rows of ``sql``, whose ``{marks}`` is an ``IN`` list, for ``values``: 500 at
        a time, as SQLite caps bound parameters."""
        rows: list[Any] = []
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            rows += await self._read(sql.format(marks=",".join("?" * len(chunk))), *chunk)
        return rows

    async def _read(self, sql: str, *params: Any) -> list[Any]:
        inline_db, db = self._inline_db, self._db
        if inline_db is None and db is None:
            raise StoreError(f"{self._path} is not open")
        try:
            if inline_db is not None:
                await asyncio.sleep(0)  # a suspension point, as every other store call
                return inline_db.execute(sql, params).fetchall()
            assert db is not None
            return list(await db.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise StoreError(f"reading {self._path} failed: {exc}") from exc

    async def _commit_rows(
        self, rows: list[NewUpdate], events: list[NewEvent], features: list[FeatureRow]
    ) -> list[int]:
        def body(db: sqlite3.Connection) -> list[int]:
            created_at = time.time()
            if events:
                insert_events(db, events, created_at)
            _insert_features(db, features)
            if not rows:
                return []
            last = _scalar(db, _LAST_SEQ)
            db.executemany(
                "INSERT INTO updates (seq, doc, data) VALUES (?, ?, ?)",
                [(last + i, u.doc, u.data) for i, u in enumerate(rows, 1)],
            )
            db.executemany(
                "INSERT INTO history (seq, doc, origin, created_at, size, sub, role, client_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (last + i, u.doc, u.origin, created_at, len(u.data), u.sub, u.role, u.client_id)
                    for i, u in enumerate(rows, 1)
                ],
            )
            return list(range(last + 1, last + 1 + len(rows)))

        return await self._transaction(body)

    async def _transaction(self, body: _Body[_T]) -> _T:
        """Run ``body`` in one committed transaction, in one call on the writer thread."""
        db, thread = self._write_db, self._thread
        assert db is not None, "the writer runs only while open"
        try:
            if isinstance(body, _Held):
                held: _T = await body.run(db)
                self._commits += 1
                return held
            if thread is None:  # inline; still a suspension point, as with the thread
                await asyncio.sleep(0)
                result = _run_transaction(db, body, self._path)
            else:
                result = await asyncio.get_running_loop().run_in_executor(
                    thread, _run_transaction, db, body, self._path
                )
        except sqlite3.Error as exc:
            raise StoreError(f"writing {self._path} failed: {exc}") from exc
        self._commits += 1
        return result

    # Last in the class on purpose: below this def, the name ``list`` in annotations means
    # this method, not the builtin.
    async def list(self, prefix: str = "") -> list[str]:
        """Names of stored documents starting with ``prefix``, sorted by code point."""
        sql = f"SELECT DISTINCT doc FROM updates WHERE {_PREFIX} ORDER BY doc"
        return [str(row[0]) for row in await self._read(sql, prefix, len(prefix), prefix)]


def _insert_features(db: sqlite3.Connection, features: Sequence[FeatureRow]) -> None:
    """Insert a commit's feature rows; a row that fails is dropped (rolled back to its own
    savepoint, logged with its table only) and the updates commit all the same: the domain
    observes, it never gates (see :func:`crdt_server.storage.base.dropped_feature_row`)."""
    if not features:
        return
    db.execute("SAVEPOINT feature_rows")
    try:
        for feature in features:
            db.execute(_feature_sql(feature), [value for _, value in feature.values])
    except sqlite3.Error:
        db.execute("ROLLBACK TO feature_rows")
        for feature in features:  # again, one by one: keep every row that goes in
            db.execute("SAVEPOINT feature_row")
            try:
                db.execute(_feature_sql(feature), [value for _, value in feature.values])
            except sqlite3.Error as exc:
                db.execute("ROLLBACK TO feature_row")
                dropped_feature_row(feature, exc)
            db.execute("RELEASE feature_row")
    db.execute("RELEASE feature_rows")


def _feature_sql(feature: FeatureRow) -> str:
    return dialect_sql(insert_sql(feature), "sqlite")


_Body = Callable[[sqlite3.Connection], _T]
"""A transaction's work, run on the writer thread."""


class _Held:
    """A writer job that holds a transaction open while its owner sends statements."""

    def __init__(self, run: Callable[[sqlite3.Connection], Awaitable[Any]]) -> None:
        self.run = run

    def __call__(self, db: sqlite3.Connection) -> Any:
        raise TypeError("a held transaction runs on the writer task, not its thread")


class _SqliteTx:
    """Statements of a held transaction (SQLite dialect already)."""

    def __init__(self, store: SqliteStore, db: sqlite3.Connection) -> None:
        self._store = store
        self._db = db

    async def _run(self, call: Callable[..., _T], *args: Any) -> _T:
        try:
            return await self._store._on_writer(call, *args)
        except sqlite3.Error as exc:
            raise StoreError(f"writing {self._store._path} failed: {exc}") from exc

    async def fetch(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        db = self._db
        return await self._run(lambda: [tuple(r) for r in db.execute(sql, params).fetchall()])

    async def execute(self, sql: str, *params: object) -> int:
        db = self._db
        return await self._run(lambda: int(db.execute(sql, params).rowcount))

    async def executemany(self, sql: str, params: Sequence[Sequence[object]]) -> None:
        await self._run(self._db.executemany, sql, params)

    async def add_events(self, events: Sequence[NewEvent]) -> list[StoredEvent]:
        for event in events:
            _check_event(event)
        batch = list(events)
        return await self._run(insert_events, self._db, batch, time.time())


class _SqliteSql:
    """The SQLite side of :class:`storage.gateway.Gateway`."""

    dialect: Dialect = "sqlite"
    prefix = ""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def fetch(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await self._store.read(sql, *params)]

    def transaction(self) -> Any:
        return self._store.held_transaction()

    async def run(self, tx: Tx[_T], sql: Callable[[str], str]) -> _T:
        path = self._store._path

        def body(db: sqlite3.Connection) -> _T:
            reply: Any = None
            error: StoreError | None = None
            while True:
                try:
                    step = tx.send(reply) if error is None else tx.throw(error)
                except StopIteration as done:
                    result: _T = done.value
                    return result
                error = None
                try:
                    if isinstance(step, Events):
                        for event in step.events:
                            _check_event(event)
                        reply = insert_events(db, list(step.events), time.time())
                    else:
                        cursor = db.execute(sql(step.text), step.params)
                        reply = cursor.rowcount if step.count else list(map(tuple, cursor))
                except sqlite3.Error as exc:
                    error = StoreError(f"writing {path} failed: {exc}")
                    error.__cause__ = exc

        return await self._store.write(body)


def _connect_writer(path: Path, busy_timeout: float, synchronous: str) -> sqlite3.Connection:
    """On the writer thread: open the write connection, switch to WAL, create the schema."""
    db = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout)
    try:
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"SQLite refused WAL mode ({mode})")
        # synchronous=FULL fsyncs the WAL on every commit, so an acknowledged append
        # survives power loss, not just a crash; fullfsync does the same on macOS, where
        # plain fsync leaves data in the drive's cache. NORMAL (in WAL mode) writes the
        # WAL on every commit but fsyncs it only at checkpoints: a killed process loses
        # nothing, a power loss may lose the last commits, and the file stays whole.
        level = {"full": "FULL", "normal": "NORMAL"}[synchronous]
        # secure_delete: deleted rows and freed pages are overwritten with zeros, so an
        # erased wedding is not left readable in the file (see _checkpoint for the WAL).
        db.executescript(
            f"PRAGMA busy_timeout = {int(busy_timeout * 1000)};"
            f" PRAGMA synchronous = {level}; PRAGMA fullfsync = ON; PRAGMA secure_delete = ON;"
        )
        migrations = [(m.version, m.sqlite) for m in STORE_MIGRATIONS]
        _run_transaction(
            db, lambda db: _upgrade(db, "store", _SCHEMA + _WEDDING_TRIGGERS, migrations), path
        )
    except BaseException:
        db.close()
        raise
    return db


def _run_transaction(db: sqlite3.Connection, body: _Body[_T], path: Path) -> _T:
    """On the writer thread: ``BEGIN IMMEDIATE``, ``body``, ``COMMIT``; roll back on error."""
    try:
        db.execute("BEGIN IMMEDIATE")
        result = body(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            try:
                db.rollback()
            except sqlite3.Error:
                # The next transaction's BEGIN fails and rolls back again, so the connection
                # heals; the caller still gets the original error.
                _LOG.exception("rollback on %s failed", path)
        raise
    return result


def _upgrade(
    db: sqlite3.Connection,
    name: str,
    first: Sequence[str],
    migrations: Sequence[tuple[int, Sequence[str]]],
    wedding_tables: Sequence[str] = (),
) -> None:
    """In the caller's transaction: bring schema ``name`` to its newest version. With no
    version recorded, ``first`` (version 1, ``IF NOT EXISTS``: what a release before
    versions made is kept as it is) runs and version 1 is recorded; then each migration
    above the recorded version runs and is recorded. A version newer than this code knows
    is refused (a newer release wrote the file)."""
    db.execute(_VERSIONS)
    row = db.execute("SELECT version FROM schema_versions WHERE name = ?", (name,)).fetchone()
    newest = max((v for v, _ in migrations), default=1)
    if row is None:
        for statement in first:
            db.execute(statement)
        if name == "store":
            _add_columns(db)
        version = 1
        db.execute("INSERT INTO schema_versions (name, version) VALUES (?, 1)", (name,))
    else:
        version = recorded_version(name, row[0], newest)
    for number, statements in migrations:
        if number > version:
            for statement in statements:
                db.execute(statement)
            db.execute("UPDATE schema_versions SET version = ? WHERE name = ?", (number, name))
            version = number
    if wedding_tables:
        db.execute(
            "UPDATE schema_versions SET wedding_tables = ? WHERE name = ?",
            (",".join(wedding_tables), name),
        )


def _add_columns(db: sqlite3.Connection) -> None:
    """Add the columns a file made by a release before them lacks (part of version 1)."""
    for table, columns in _MIGRATIONS.items():
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for name, spec in columns:
            if name not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {spec}")


def insert_events(
    db: sqlite3.Connection, events: Sequence[NewEvent], now: float
) -> list[StoredEvent]:
    """Number ``events`` per wedding from its counter row and insert them (in the caller's
    transaction, which holds the write lock: seqs follow commit order, without gaps). Events
    of a tombstoned wedding are left out of the answer (and the triggers drop their rows)."""
    counters: dict[str, int] = {}
    stored: list[StoredEvent] = []
    for event in events:
        if (
            event.wedding not in counters
            and db.execute(
                "SELECT 1 FROM tombstones WHERE wedding = ?", (event.wedding,)
            ).fetchone()
        ):
            continue  # erased: the triggers would drop its rows anyway
        if event.wedding not in counters:
            row = db.execute(
                "SELECT last_seq FROM event_counters WHERE wedding = ?", (event.wedding,)
            ).fetchone()
            counters[event.wedding] = int(row[0]) if row else 0
        counters[event.wedding] += 1
        stored.append(
            StoredEvent(
                event.wedding,
                counters[event.wedding],
                event.type,
                event.doc,
                event.sub,
                event.role,
                event.priority,
                event.at or now,
                event.data,
                event.audience,
            )
        )
    db.executemany(
        f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (e.wedding, e.seq, e.type, e.doc, e.sub, e.role, e.priority, e.at, e.data, e.audience)
            for e in stored
        ],
    )
    db.executemany(
        "INSERT INTO event_counters (wedding, last_seq) VALUES (?, ?)"
        " ON CONFLICT (wedding) DO UPDATE SET last_seq = excluded.last_seq",
        list(counters.items()),
    )
    return stored


def _entity_needles(entity_id: str, paths: Sequence[str] = ()) -> tuple[str, ...]:
    """How an entry's id appears in stored event data (compact JSON), and its paths (a
    finding's ``"guests/guests/g1"``, or a path under it: ``"guests/guests/g1/contact"``)."""
    quoted = json.dumps(entity_id)
    named = tuple(n for p in paths for n in (json.dumps(p), json.dumps(p)[:-1] + "/"))
    return f'"id":{quoted}', f'"guest_id":{quoted}', *named


def _check_event(event: NewEvent) -> None:
    _check(b"", event.wedding, event.type, event.data, event.sub, event.role, event.priority)
    if event.doc is not None:
        _check(b"", event.doc)


def _checkpoint(db: sqlite3.Connection, busy_timeout: float) -> bool:
    """On the writer thread: copy every frame of the write-ahead log into the database file
    and truncate the log to zero bytes. The log still holds the frames that wrote rows
    since deleted; secure_delete zeroed them in the newer frames this copies. Waits at most
    a tenth of a second for readers (the writer thread serves every commit)."""
    db.execute("PRAGMA busy_timeout = 100")
    try:
        busy, frames, copied = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    return bool(busy == 0 and frames == copied)


def _scalar(db: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> int:
    return int(db.execute(sql, params).fetchone()[0])


def _moved(documents: Sequence[MovedDocument], origin: str) -> list[MovedDocument]:
    """Check what :meth:`SqliteStore.put_documents` is given before it opens a transaction."""
    moved = list(documents)
    if len({d.doc for d in moved}) != len(moved):
        raise StoreError("a document is listed twice")
    for document in moved:
        if not document.updates:
            raise StoreError(f"{document.doc!r} has no update to store")
        for data in document.updates:
            _check(data, document.doc, origin)
        for entry in document.history:
            _check(b"", entry.origin)
            if not isinstance(entry.created_at, float | int) or not isinstance(entry.size, int):
                raise TypeError("history times must be numbers and sizes integers")
    return moved


def _check(data: bytes, *names: str) -> None:
    # Rejected before queueing: a value SQLite cannot bind would fail the whole shared
    # batch, i.e. other callers' updates too.
    if not isinstance(data, bytes) or not all(isinstance(name, str) for name in names):
        raise TypeError("update data must be bytes, document names and origins str")
    for name in names:
        try:
            name.encode()
        except UnicodeEncodeError as exc:
            raise StoreError(f"{name!r} is not valid UTF-8 text") from exc
