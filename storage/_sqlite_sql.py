"""What the SQLite store runs on its writer connection besides appends: feature rows of a
commit, documents moved in whole, gateway transactions and held ones. See
:mod:`storage.sqlite`."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from crdt_server import clock

from ._sqlite_schema import ADDED_COLUMNS, LAST_SEQ, Body, scalar
from .base import (
    FeatureRow,
    MovedDocument,
    NewUpdate,
    StoreError,
    dropped_feature_row,
)
from .gateway import Sql, Tx, dialect_sql, dialected, insert_sql

_T = TypeVar("_T")


def append_rows(
    db: sqlite3.Connection,
    rows: Sequence[NewUpdate],
    steps: Sequence[Tx[Any]],
    features: Sequence[FeatureRow],
    path: Path,
) -> list[int]:
    """On the write connection, in the caller's transaction: an append batch's feature steps,
    feature rows and updates (with their history); the updates' seqs."""
    created_at = clock.now()
    run_steps(db, steps, path)
    insert_features(db, features)
    if not rows:
        return []
    last = scalar(db, LAST_SEQ)
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


def insert_features(db: sqlite3.Connection, features: Sequence[FeatureRow]) -> None:
    """Insert a commit's feature rows; a row that fails is dropped (rolled back to its own
    savepoint, logged with its table only) and the updates commit all the same: the domain
    observes, it never gates (see :func:`crdt_server.storage.base.dropped_feature_row`)."""
    if not features:
        return
    db.execute("SAVEPOINT feature_rows")
    try:
        for feature in features:
            db.execute(feature_sql(feature), [value for _, value in feature.values])
    except sqlite3.Error:
        db.execute("ROLLBACK TO feature_rows")
        for feature in features:  # again, one by one: keep every row that goes in
            db.execute("SAVEPOINT feature_row")
            try:
                db.execute(feature_sql(feature), [value for _, value in feature.values])
            except sqlite3.Error as exc:
                db.execute("ROLLBACK TO feature_row")
                dropped_feature_row(feature, exc)
            db.execute("RELEASE feature_row")
    db.execute("RELEASE feature_rows")


def feature_sql(feature: FeatureRow) -> str:
    return dialect_sql(insert_sql(feature), "sqlite")


class Held:
    """A writer job that holds a transaction open while its owner sends statements."""

    def __init__(self, run: Callable[[sqlite3.Connection], Awaitable[Any]]) -> None:
        self.run = run

    def __call__(self, db: sqlite3.Connection) -> Any:
        raise TypeError("a held transaction runs on the writer task, not its thread")


class Outside:
    """A writer job run outside any transaction (a checkpoint), in the writer's queue."""

    def __init__(self, call: Callable[[sqlite3.Connection], Any]) -> None:
        self.call = call

    def __call__(self, db: sqlite3.Connection) -> Any:
        return self.call(db)


def _sqlite_sql(text: str) -> str:
    return dialect_sql(text, "sqlite")


def run_steps(db: sqlite3.Connection, steps: Sequence[Tx[Any]], path: Path) -> None:
    """Run features' gateway steps (``?``/``{t}`` SQL) in the caller's transaction, in
    order; a database error one does not catch fails the transaction."""
    for step in steps:
        driver(dialected(step, _sqlite_sql), path)(db)


def driver(tx: Tx[_T], path: Path) -> Body[_T]:
    """The work of a gateway transaction (its statements in SQLite's dialect already), to
    run on the write connection: each statement's rows (or count) sent back into ``tx``, a
    database error thrown into it as :class:`StoreError`."""

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
                cursor = db.execute(step.text, step.params)
                reply = cursor.rowcount if step.count else list(map(tuple, cursor))
            except sqlite3.Error as exc:
                error = StoreError(f"writing {path} failed: {exc}")
                error.__cause__ = exc

    return body


def moving(moved: Sequence[MovedDocument], origin: str) -> Tx[list[int]]:
    """The history and updates of :meth:`storage.base.Store.put_documents` (checked
    already), a row at a time; the updates' seqs."""
    written: list[int] = []
    [(seq,)] = yield Sql(LAST_SEQ)
    now = clock.now()
    history = "INSERT INTO history (seq, doc, origin, created_at, size) VALUES (?, ?, ?, ?, ?)"
    for document in moved:
        for entry in document.history:
            seq += 1
            yield Sql(history, (seq, document.doc, entry.origin, entry.created_at, entry.size))
        for data in document.updates:
            seq += 1
            # Each document ends with an update row, so the updates table's largest
            # seq (what LAST_SEQ reads) stays above every history seq written here.
            yield Sql(
                "INSERT INTO updates (seq, doc, data) VALUES (?, ?, ?)", (seq, document.doc, data)
            )
            yield Sql(history, (seq, document.doc, origin, now, len(data)))
            written.append(seq)
    return written


def appending(
    updates: list[NewUpdate], steps: list[Tx[Any]], rows: list[FeatureRow], path: Path
) -> Callable[[sqlite3.Connection], list[int]]:
    """The body of a transaction that appends ``updates`` with their steps and rows."""
    return lambda db: append_rows(db, updates, steps, rows, path)


def adding_columns() -> Tx[None]:
    """Add the columns a file made by a release before them lacks (part of version 1)."""
    for table, columns in ADDED_COLUMNS.items():
        rows = yield Sql(f"PRAGMA table_info({table})")
        have = {row[1] for row in rows}
        if not have:
            continue  # not made here (the events table of a new file)
        for name, spec in columns:
            if name not in have:
                yield Sql(f"ALTER TABLE {table} ADD COLUMN {name} {spec}", count=True)
