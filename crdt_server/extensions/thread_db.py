"""The thread feature's tables, on SQLite and PostgreSQL alike.

Transactions are written once, as generators that ``yield`` statements (:class:`Sql`, or
:class:`Events` to number and insert wedding events in the same transaction) and receive
their rows; :meth:`ThreadDb.write` drives a generator on the backend's writer (SQLite's
writer thread, PostgreSQL's locked connection), so every check-then-write (an idempotent
message id, a per-thread sequence) runs inside one serialised transaction. Statements use
``?`` placeholders and ``{t}`` before table names (the PostgreSQL schema).

Full-text search: SQLite keeps an FTS5 table fed by triggers on the subject and message
tables (so erasing rows erases their index entries in the same transaction); PostgreSQL a
generated ``tsvector`` column with a GIN index on each.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from crdt_server.storage import (
    DocumentStore,
    NewEvent,
    PostgresStore,
    Schema,
    SqliteStore,
    StoredEvent,
)

__all__ = ["SCHEMA", "Events", "Sql", "ThreadDb", "Tx"]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Sql:
    """One statement; the transaction receives its rows (empty for most writes)."""

    text: str
    params: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Events:
    """Wedding events to store in this transaction; it receives them as stored."""

    events: Sequence[NewEvent]


Tx = Generator[Sql | Events, Any, _T]
"""A transaction's work: yields statements, receives their rows, returns its result."""

_TABLES = (
    "thread_members",
    "threads",
    "thread_participants",
    "thread_messages",
    "thread_reads",
    "thread_notifications",
    "thread_outbox",
    "thread_requests",
)

_SQLITE = (
    "CREATE TABLE IF NOT EXISTS thread_members (wedding TEXT NOT NULL, sub TEXT NOT NULL,"
    " role TEXT NOT NULL, name TEXT NOT NULL, email TEXT, participation TEXT NOT NULL"
    " DEFAULT 'all', email_on INTEGER NOT NULL DEFAULT 1, unsubscribe TEXT NOT NULL,"
    " emailed_at REAL NOT NULL DEFAULT 0, updated_at REAL NOT NULL,"
    " PRIMARY KEY (wedding, sub))",
    "CREATE TABLE IF NOT EXISTS threads (wedding TEXT NOT NULL, id TEXT NOT NULL,"
    " subject TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL, priority TEXT NOT NULL,"
    " anchors TEXT NOT NULL, docs TEXT NOT NULL, creator TEXT NOT NULL,"
    " creator_role TEXT NOT NULL, created_at REAL NOT NULL, activity REAL NOT NULL,"
    " last_seq INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (wedding, id))",
    "CREATE TABLE IF NOT EXISTS thread_participants (wedding TEXT NOT NULL,"
    " thread TEXT NOT NULL, sub TEXT NOT NULL, PRIMARY KEY (wedding, thread, sub))",
    "CREATE TABLE IF NOT EXISTS thread_messages (wedding TEXT NOT NULL, thread TEXT NOT NULL,"
    " id TEXT NOT NULL, seq INTEGER NOT NULL, author TEXT NOT NULL, author_role TEXT NOT NULL,"
    " body TEXT NOT NULL, reply_to TEXT, mentions TEXT NOT NULL, priority TEXT NOT NULL,"
    " created_at REAL NOT NULL, edited_at REAL, deleted INTEGER NOT NULL DEFAULT 0,"
    " fingerprint TEXT NOT NULL, reactions TEXT NOT NULL DEFAULT '{}',"
    " PRIMARY KEY (wedding, thread, id))",
    "CREATE UNIQUE INDEX IF NOT EXISTS thread_messages_seq"
    " ON thread_messages (wedding, thread, seq)",
    "CREATE TABLE IF NOT EXISTS thread_reads (wedding TEXT NOT NULL, thread TEXT NOT NULL,"
    " sub TEXT NOT NULL, up_to INTEGER NOT NULL, PRIMARY KEY (wedding, thread, sub))",
    "CREATE TABLE IF NOT EXISTS thread_notifications (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " wedding TEXT NOT NULL, sub TEXT NOT NULL, reason TEXT NOT NULL, thread TEXT NOT NULL,"
    " message TEXT NOT NULL, actor TEXT NOT NULL, actor_role TEXT NOT NULL,"
    " priority TEXT NOT NULL, created_at REAL NOT NULL, read INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS thread_notifications_sub"
    " ON thread_notifications (wedding, sub, id)",
    "CREATE TABLE IF NOT EXISTS thread_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " wedding TEXT NOT NULL, sub TEXT NOT NULL, reason TEXT NOT NULL, thread TEXT NOT NULL,"
    " message TEXT NOT NULL, priority TEXT NOT NULL, created_at REAL NOT NULL,"
    " claimed_until REAL NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS thread_requests (wedding TEXT NOT NULL, sub TEXT NOT NULL,"
    " key TEXT NOT NULL, fingerprint TEXT NOT NULL, thread TEXT NOT NULL,"
    " expires_at REAL NOT NULL, PRIMARY KEY (wedding, sub, key))",
    "CREATE VIRTUAL TABLE IF NOT EXISTS thread_search USING fts5(text, wedding UNINDEXED,"
    " thread UNINDEXED)",
    # Messages index as rowid*2, subjects as rowid*2+1: one FTS table, two sources.
    "CREATE TRIGGER IF NOT EXISTS thread_messages_fts_i AFTER INSERT ON thread_messages"
    " BEGIN INSERT INTO thread_search (rowid, text, wedding, thread)"
    " VALUES (NEW.rowid * 2, NEW.body, NEW.wedding, NEW.thread); END",
    "CREATE TRIGGER IF NOT EXISTS thread_messages_fts_u AFTER UPDATE OF body ON thread_messages"
    " BEGIN DELETE FROM thread_search WHERE rowid = OLD.rowid * 2;"
    " INSERT INTO thread_search (rowid, text, wedding, thread)"
    " VALUES (NEW.rowid * 2, NEW.body, NEW.wedding, NEW.thread); END",
    "CREATE TRIGGER IF NOT EXISTS thread_messages_fts_d AFTER DELETE ON thread_messages"
    " BEGIN DELETE FROM thread_search WHERE rowid = OLD.rowid * 2; END",
    "CREATE TRIGGER IF NOT EXISTS threads_fts_i AFTER INSERT ON threads"
    " BEGIN INSERT INTO thread_search (rowid, text, wedding, thread)"
    " VALUES (NEW.rowid * 2 + 1, NEW.subject, NEW.wedding, NEW.id); END",
    "CREATE TRIGGER IF NOT EXISTS threads_fts_u AFTER UPDATE OF subject ON threads"
    " BEGIN DELETE FROM thread_search WHERE rowid = OLD.rowid * 2 + 1;"
    " INSERT INTO thread_search (rowid, text, wedding, thread)"
    " VALUES (NEW.rowid * 2 + 1, NEW.subject, NEW.wedding, NEW.id); END",
    "CREATE TRIGGER IF NOT EXISTS threads_fts_d AFTER DELETE ON threads"
    " BEGIN DELETE FROM thread_search WHERE rowid = OLD.rowid * 2 + 1; END",
)

_POSTGRES = (
    "CREATE TABLE IF NOT EXISTS {s}.thread_members (wedding text NOT NULL, sub text NOT NULL,"
    " role text NOT NULL, name text NOT NULL, email text, participation text NOT NULL"
    " DEFAULT 'all', email_on integer NOT NULL DEFAULT 1, unsubscribe text NOT NULL,"
    " emailed_at double precision NOT NULL DEFAULT 0, updated_at double precision NOT NULL,"
    " PRIMARY KEY (wedding, sub))",
    "CREATE TABLE IF NOT EXISTS {s}.threads (wedding text NOT NULL, id text NOT NULL,"
    " subject text NOT NULL, kind text NOT NULL, status text NOT NULL, priority text NOT NULL,"
    " anchors text NOT NULL, docs text NOT NULL, creator text NOT NULL,"
    " creator_role text NOT NULL, created_at double precision NOT NULL,"
    " activity double precision NOT NULL, last_seq bigint NOT NULL DEFAULT 0,"
    " search tsvector GENERATED ALWAYS AS (to_tsvector('simple', subject)) STORED,"
    " PRIMARY KEY (wedding, id))",
    "CREATE INDEX IF NOT EXISTS threads_search ON {s}.threads USING gin (search)",
    "CREATE TABLE IF NOT EXISTS {s}.thread_participants (wedding text NOT NULL,"
    " thread text NOT NULL, sub text NOT NULL, PRIMARY KEY (wedding, thread, sub))",
    "CREATE TABLE IF NOT EXISTS {s}.thread_messages (wedding text NOT NULL,"
    " thread text NOT NULL, id text NOT NULL, seq bigint NOT NULL, author text NOT NULL,"
    " author_role text NOT NULL, body text NOT NULL, reply_to text, mentions text NOT NULL,"
    " priority text NOT NULL, created_at double precision NOT NULL,"
    " edited_at double precision, deleted integer NOT NULL DEFAULT 0,"
    " fingerprint text NOT NULL, reactions text NOT NULL DEFAULT '{{}}',"
    " search tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED,"
    " PRIMARY KEY (wedding, thread, id))",
    "CREATE UNIQUE INDEX IF NOT EXISTS thread_messages_seq"
    " ON {s}.thread_messages (wedding, thread, seq)",
    "CREATE INDEX IF NOT EXISTS thread_messages_search ON {s}.thread_messages USING gin (search)",
    "CREATE TABLE IF NOT EXISTS {s}.thread_reads (wedding text NOT NULL, thread text NOT NULL,"
    " sub text NOT NULL, up_to bigint NOT NULL, PRIMARY KEY (wedding, thread, sub))",
    "CREATE TABLE IF NOT EXISTS {s}.thread_notifications (id bigserial PRIMARY KEY,"
    " wedding text NOT NULL, sub text NOT NULL, reason text NOT NULL, thread text NOT NULL,"
    " message text NOT NULL, actor text NOT NULL, actor_role text NOT NULL,"
    " priority text NOT NULL, created_at double precision NOT NULL,"
    " read integer NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS thread_notifications_sub"
    " ON {s}.thread_notifications (wedding, sub, id)",
    "CREATE TABLE IF NOT EXISTS {s}.thread_requests (wedding text NOT NULL, sub text NOT NULL,"
    " key text NOT NULL, fingerprint text NOT NULL, thread text NOT NULL,"
    " expires_at double precision NOT NULL, PRIMARY KEY (wedding, sub, key))",
    "CREATE TABLE IF NOT EXISTS {s}.thread_outbox (id bigserial PRIMARY KEY,"
    " wedding text NOT NULL, sub text NOT NULL, reason text NOT NULL, thread text NOT NULL,"
    " message text NOT NULL, priority text NOT NULL, created_at double precision NOT NULL,"
    " claimed_until double precision NOT NULL DEFAULT 0)",
)

SCHEMA = Schema("threads", sqlite=_SQLITE, postgres=_POSTGRES, wedding_tables=_TABLES)
"""Members, threads, participants, messages (with their search index), read marks,
notifications, the email outbox and idempotency keys: all erased with their wedding."""

_PLACEHOLDER = re.compile(r"\?")


class ThreadDb:
    """Runs the feature's statements on whichever store the server has."""

    def __init__(self, store: DocumentStore) -> None:
        if isinstance(store, SqliteStore):
            self.dialect = "sqlite"
            self._prefix = ""
        elif isinstance(store, PostgresStore):
            self.dialect = "postgres"
            self._prefix = f"{store.schema}."
        else:
            raise TypeError(f"threads need SQLite or PostgreSQL, not {type(store).__name__}")
        self.store = store
        self._queue: list[tuple[Tx[Any], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def _sql(self, text: str) -> str:
        text = text.replace("{t}", self._prefix)
        if self.dialect == "postgres":
            count = iter(range(1, 10_000))
            text = _PLACEHOLDER.sub(lambda _: f"${next(count)}", text)
        return text

    async def read(self, text: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of one query (committed data)."""
        sql = self._sql(text)
        if isinstance(self.store, SqliteStore):
            return [tuple(r) for r in await self.store.read(sql, *params)]
        assert isinstance(self.store, PostgresStore)
        return [tuple(r) for r in await self.store.fetch(sql, *params)]

    async def write(self, tx: Tx[_T]) -> _T:
        """Run a transaction (see the module docstring); all of it commits or none.

        Transactions queued while one is committing share the next commit (one fsync for
        all), each in a savepoint of its own: one that raises is rolled back alone and its
        caller gets the exception; the others commit. Results are given after the commit.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((tx, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="thread-writes")
        result: _T = await future
        return result

    async def drain(self) -> None:
        """Wait for every queued transaction to be committed (the server is stopping)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                outcomes = await self._commit([tx for tx, _ in batch])
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    async def _commit(self, txs: list[Tx[Any]]) -> list[tuple[bool, Any]]:
        store = self.store
        if isinstance(store, SqliteStore):
            from crdt_server.storage.sqlite import insert_events

            def body(db: Any) -> list[tuple[bool, Any]]:
                outcomes: list[tuple[bool, Any]] = []
                for tx in txs:
                    db.execute("SAVEPOINT thread_tx")
                    try:
                        reply: Any = None
                        while True:
                            step = tx.send(reply)
                            if isinstance(step, Events):
                                reply = insert_events(db, list(step.events), time.time())
                            else:
                                reply = db.execute(self._sql(step.text), step.params).fetchall()
                    except StopIteration as done:
                        db.execute("RELEASE thread_tx")
                        outcomes.append((True, done.value))
                    except Exception as exc:
                        db.execute("ROLLBACK TO thread_tx")
                        db.execute("RELEASE thread_tx")
                        outcomes.append((False, exc))
                return outcomes

            return await store.write(body)
        assert isinstance(store, PostgresStore)

        async def pg_body(conn: Any) -> list[tuple[bool, Any]]:
            outcomes: list[tuple[bool, Any]] = []
            for tx in txs:
                try:
                    async with conn.transaction():  # a savepoint inside the store's transaction
                        reply: Any = None
                        try:
                            while True:
                                step = tx.send(reply)
                                if isinstance(step, Events):
                                    reply = await store.insert_events(conn, list(step.events))
                                else:
                                    sql = self._sql(step.text)
                                    reply = [tuple(r) for r in await conn.fetch(sql, *step.params)]
                        except StopIteration as done:
                            value = done.value
                    outcomes.append((True, value))
                except Exception as exc:
                    outcomes.append((False, exc))
            return outcomes

        return await store.write(pg_body)


def stored_events(reply: Any) -> list[StoredEvent]:
    """The events an :class:`Events` step received (typed)."""
    return list(reply)
