"""The thread feature's tables, on SQLite and PostgreSQL alike.

Transactions are written once, as generators that ``yield`` statements (:class:`Sql`, or
:class:`Events` to number and insert wedding events in the same transaction) and receive
their rows; :meth:`ThreadDb.write` drives a generator on the backend's writer (SQLite's
writer thread, PostgreSQL's locked connection) through the store's SQL gateway
(:class:`crdt_server.storage.Gateway`), so every check-then-write (an idempotent message
id, a per-thread sequence) runs inside one serialised transaction. Statements use ``?``
placeholders and ``{t}`` before table names (the gateway's one placeholder rule).

Full-text search: SQLite keeps an FTS5 table fed by triggers on the subject and message
tables (so erasing rows erases their index entries in the same transaction); PostgreSQL a
generated ``tsvector`` column with a GIN index on each.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from crdt_server.storage import DocumentStore, Gateway, StoredEvent, Table, schema_of
from crdt_server.storage.gateway import Events, Sql, Tx

__all__ = ["SCHEMA", "Events", "Sql", "ThreadDb", "Tx"]

_T = TypeVar("_T")


MEMBERS = Table(
    "thread_members",
    "(wedding {text} NOT NULL, sub {text} NOT NULL, role {text} NOT NULL, name {text} NOT NULL,"
    " email {text}, participation {text} NOT NULL DEFAULT 'all',"
    " email_on INTEGER NOT NULL DEFAULT 1, unsubscribe {text} NOT NULL,"
    " emailed_at {real} NOT NULL DEFAULT 0, updated_at {real} NOT NULL,"
    " PRIMARY KEY (wedding, sub))",
)
# Full-text search. SQLite: one FTS5 table fed by triggers on the subjects and messages
# (messages index as rowid*2, subjects as rowid*2+1). PostgreSQL: a generated tsvector
# column with a GIN index on each table.
_SEARCH = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS thread_search USING fts5(text, wedding UNINDEXED,"
    " thread UNINDEXED)"
)
THREADS = Table(
    "threads",
    "(wedding {text} NOT NULL, id {text} NOT NULL, subject {text} NOT NULL,"
    " kind {text} NOT NULL, status {text} NOT NULL, priority {text} NOT NULL,"
    " anchors {text} NOT NULL, docs {text} NOT NULL, creator {text} NOT NULL,"
    " creator_role {text} NOT NULL, created_at {real} NOT NULL, activity {real} NOT NULL,"
    " last_seq {int} NOT NULL DEFAULT 0, PRIMARY KEY (wedding, id))",
    postgres_columns="search tsvector GENERATED ALWAYS AS (to_tsvector('simple', subject)) STORED",
    postgres=("CREATE INDEX IF NOT EXISTS threads_search ON {t}threads USING gin (search)",),
)
PARTICIPANTS = Table(
    "thread_participants",
    "(wedding {text} NOT NULL, thread {text} NOT NULL, sub {text} NOT NULL,"
    " PRIMARY KEY (wedding, thread, sub))",
)
MESSAGES = Table(
    "thread_messages",
    "(wedding {text} NOT NULL, thread {text} NOT NULL, id {text} NOT NULL, seq {int} NOT NULL,"
    " author {text} NOT NULL, author_role {text} NOT NULL, body {text} NOT NULL,"
    " reply_to {text}, mentions {text} NOT NULL, priority {text} NOT NULL,"
    " created_at {real} NOT NULL, edited_at {real}, deleted INTEGER NOT NULL DEFAULT 0,"
    " fingerprint {text} NOT NULL, reactions {text} NOT NULL DEFAULT '{}',"
    " PRIMARY KEY (wedding, thread, id))",
    postgres_columns="search tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED",
    indexes=(
        "CREATE UNIQUE INDEX IF NOT EXISTS thread_messages_seq"
        " ON {t}thread_messages (wedding, thread, seq)",
    ),
    sqlite=(
        _SEARCH,
        "CREATE TRIGGER IF NOT EXISTS thread_messages_fts_i AFTER INSERT ON thread_messages"
        " BEGIN INSERT INTO thread_search (rowid, text, wedding, thread)"
        " VALUES (NEW.rowid * 2, NEW.body, NEW.wedding, NEW.thread); END",
        "CREATE TRIGGER IF NOT EXISTS thread_messages_fts_u AFTER UPDATE OF body"
        " ON thread_messages"
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
    ),
    postgres=(
        "CREATE INDEX IF NOT EXISTS thread_messages_search"
        " ON {t}thread_messages USING gin (search)",
    ),
)
READS = Table(
    "thread_reads",
    "(wedding {text} NOT NULL, thread {text} NOT NULL, sub {text} NOT NULL,"
    " up_to {int} NOT NULL, PRIMARY KEY (wedding, thread, sub))",
)
NOTIFICATIONS = Table(
    "thread_notifications",
    "(id {id}, wedding {text} NOT NULL, sub {text} NOT NULL, reason {text} NOT NULL,"
    " thread {text} NOT NULL, message {text} NOT NULL, actor {text} NOT NULL,"
    " actor_role {text} NOT NULL, priority {text} NOT NULL, created_at {real} NOT NULL,"
    " read INTEGER NOT NULL DEFAULT 0)",
    indexes=(
        "CREATE INDEX IF NOT EXISTS thread_notifications_sub"
        " ON {t}thread_notifications (wedding, sub, id)",
    ),
)
OUTBOX = Table(
    "thread_outbox",
    "(id {id}, wedding {text} NOT NULL, sub {text} NOT NULL, reason {text} NOT NULL,"
    " thread {text} NOT NULL, message {text} NOT NULL, priority {text} NOT NULL,"
    " created_at {real} NOT NULL, claimed_until {real} NOT NULL DEFAULT 0)",
)
REQUESTS = Table(
    "thread_requests",
    "(wedding {text} NOT NULL, sub {text} NOT NULL, key {text} NOT NULL,"
    " fingerprint {text} NOT NULL, thread {text} NOT NULL, expires_at {real} NOT NULL,"
    " PRIMARY KEY (wedding, sub, key))",
)


SCHEMA = schema_of(
    "threads", MEMBERS, THREADS, PARTICIPANTS, MESSAGES, READS, NOTIFICATIONS, OUTBOX, REQUESTS
)
"""Members, threads, participants, messages (with their search index), read marks,
notifications, the email outbox and idempotency keys: all erased with their wedding."""


class ThreadDb:
    """Runs the feature's statements through the store's SQL gateway."""

    def __init__(self, store: DocumentStore) -> None:
        self._sql = Gateway.of(store)
        self.dialect = self._sql.dialect
        self.store = store
        self._queue: list[tuple[Tx[Any], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def read(self, text: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of one query (committed data)."""
        return await self._sql.fetch(text, *params)

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
        return await self._sql.run(_each_in_a_savepoint(txs))


def _each_in_a_savepoint(txs: list[Tx[Any]]) -> Tx[list[tuple[bool, Any]]]:
    """``txs`` one after the other, each in a savepoint: one that raises (or whose
    statement fails) is rolled back alone; its outcome is ``(False, exception)``."""
    outcomes: list[tuple[bool, Any]] = []
    for tx in txs:
        yield Sql("SAVEPOINT thread_tx")
        try:
            reply: Any = None
            while True:
                reply = yield tx.send(reply)
        except StopIteration as done:
            yield Sql("RELEASE SAVEPOINT thread_tx")
            outcomes.append((True, done.value))
        except Exception as exc:
            yield Sql("ROLLBACK TO SAVEPOINT thread_tx")
            yield Sql("RELEASE SAVEPOINT thread_tx")
            outcomes.append((False, exc))
    return outcomes


def stored_events(reply: Any) -> list[StoredEvent]:
    """The events an :class:`Events` step received (typed)."""
    return list(reply)
