"""The SQLite store's file: its tables, schema versions and migrations, the write
connection's settings and one transaction on it (see :mod:`storage.sqlite`)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .base import StoreError

_LOG = logging.getLogger("crdt_server.storage.sqlite")
_T = TypeVar("_T")

Body = Callable[[sqlite3.Connection], _T]
"""A transaction's work, run on the write connection (on the writer thread, or on the
event loop's for a shared transaction where the disk is fast: :mod:`storage.sqlite`)."""

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS updates ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL, data BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS updates_doc_seq ON updates (doc, seq)",
    "CREATE TABLE IF NOT EXISTS history (seq INTEGER PRIMARY KEY, doc TEXT NOT NULL,"
    " origin TEXT NOT NULL, created_at REAL NOT NULL, size INTEGER NOT NULL,"
    " sub TEXT NOT NULL DEFAULT '', role TEXT NOT NULL DEFAULT '', client_id INTEGER)",
    "CREATE INDEX IF NOT EXISTS history_doc_seq ON history (doc, seq)",
    # (events, event_counters, idempotency and tickets, made here by the releases before
    # schema version 2, are the events feature's tables: crdt_server/features/events)
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
# Columns added after the first release, for files created before them (the events table,
# the events feature's since version 2, only where a release before that made it).
ADDED_COLUMNS = {
    "history": (
        ("sub", "TEXT NOT NULL DEFAULT ''"),
        ("role", "TEXT NOT NULL DEFAULT ''"),
        ("client_id", "INTEGER"),
    ),
    "events": (("audience", "TEXT"),),
}
VERSIONS = (
    "CREATE TABLE IF NOT EXISTS schema_versions (name TEXT PRIMARY KEY,"
    " version INTEGER NOT NULL, wedding_tables TEXT NOT NULL DEFAULT '') WITHOUT ROWID"
)
"""The version of each schema a store holds: ``store`` (the tables above) and each
installed feature's (:class:`storage.base.Schema`), with the feature's wedding tables
(comma-separated): erasing a wedding empties them even while the feature is left out."""


def tombstone_trigger(table: str) -> str:
    """Rows for a tombstoned wedding are dropped, whoever inserts them (as for updates)."""
    return (
        f"CREATE TRIGGER IF NOT EXISTS {table}_tombstoned BEFORE INSERT ON {table}"
        " WHEN EXISTS (SELECT 1 FROM tombstones WHERE wedding = NEW.wedding)"
        " BEGIN SELECT RAISE(IGNORE); END"
    )


# The same rule AUTOINCREMENT applies (one past the largest seq ever used, even if that row
# was since deleted), computed up front so a whole batch can go in with one executemany
# and every caller learns its seqs. Safe because BEGIN IMMEDIATE holds the write lock.
LAST_SEQ = (
    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'updates'), 0),"
    " COALESCE((SELECT MAX(seq) FROM updates), 0))"
)


def connect_writer(
    path: Path, busy_timeout: float, synchronous: str, setup: Body[None]
) -> sqlite3.Connection:
    """On the writer thread: open the write connection, switch to WAL, create the schema
    (``setup``, in a transaction; a database error in it raised as it is).
    The connection is used by one thread at a time, the writer's or the event loop's (a
    transaction that commits on the loop, see :mod:`storage.sqlite`): the writer's queue
    runs one job at a time."""
    db = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout, check_same_thread=False)
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
        # erased wedding is not left readable in the file (see checkpoint for the WAL).
        db.executescript(
            f"PRAGMA busy_timeout = {int(busy_timeout * 1000)};"
            f" PRAGMA synchronous = {level}; PRAGMA fullfsync = ON; PRAGMA secure_delete = ON;"
        )
        try:
            run_transaction(db, setup, path)
        except StoreError as exc:  # a statement's error, as a gateway driver gives it
            if isinstance(exc.__cause__, sqlite3.Error):
                raise exc.__cause__ from None
            raise
    except BaseException:
        db.close()
        raise
    return db


class Busy(Exception):
    """Another connection holds the write lock: nothing was done (:func:`try_transaction`)."""


def try_transaction(db: sqlite3.Connection, body: Body[_T], path: Path, busy_timeout: float) -> _T:
    """On the event loop's thread: :func:`run_transaction`, but if another connection (a
    second worker's, a command-line tool's) holds the write lock, raise :class:`Busy`
    having done nothing, at once: waiting for it here would stop the loop."""
    db.execute("PRAGMA busy_timeout = 0")
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            raise Busy(str(exc)) from exc
        raise
    finally:
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    return _run_begun(db, body, path)


def run_transaction(db: sqlite3.Connection, body: Body[_T], path: Path) -> _T:
    """On the write connection: ``BEGIN IMMEDIATE`` (waiting for the write lock up to the
    busy timeout), ``body``, ``COMMIT``; roll back on error."""
    db.execute("BEGIN IMMEDIATE")
    return _run_begun(db, body, path)


def _run_begun(db: sqlite3.Connection, body: Body[_T], path: Path) -> _T:
    """``body`` and ``COMMIT`` in the transaction just begun; roll back on error."""
    try:
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


def commits_on_loop(commits: str) -> bool:
    """Whether the shared transactions run on the event loop's thread: only where
    ``commits`` is ``loop``. ``auto`` (the default) and ``thread`` hand them to the writer
    thread, a leader's at once (:mod:`._group_commit`): the loop never waits for an fsync,
    except that ``auto`` commits on the loop past saturation (:mod:`._sqlite_writes`).
    (Until issue 76, ``auto`` chose the loop where an fsync took at most 1 ms: each commit
    then stopped every room of the process for its fsync, 47 % of the loop's time at 500
    updates a second in the product scenario.)"""
    return commits == "loop"


def checkpoint(db: sqlite3.Connection, busy_timeout: float) -> bool:
    """On the writer thread: copy every frame of the write-ahead log into the database file
    and truncate the log to zero bytes. The log still holds the frames that wrote rows
    since deleted; secure_delete zeroed them in the newer frames this copies. Waits at most
    a tenth of a second for readers (the write connection serves every commit)."""
    db.execute("PRAGMA busy_timeout = 100")
    try:
        busy, frames, copied = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    return bool(busy == 0 and frames == copied)


def scalar(db: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> int:
    return int(db.execute(sql, params).fetchone()[0])
