"""PostgreSQL implementation of :class:`storage.base.DocumentStore` (asyncpg), with group commit.

Several processes and hosts may share one schema. Seqs come from the identity sequence of
the ``updates`` table, and every write transaction (an append batch, a compaction, a
deletion) first takes a transaction-level advisory lock on the schema,
``pg_advisory_xact_lock(0x596A7300 << 32 | <oid of the schema>)``. Writers of every process
therefore run one at a time, draw their seqs inside the lock and commit in seq order.

Ordering guarantee: once seq ``N`` is committed, no smaller seq can commit later, so a
:meth:`PostgresStore.load` started after ``N`` was committed (or reported by anyone) sees
every row below ``N`` that will ever exist. Seqs are not dense: a failed batch burns the
values it drew (sequences ignore rollback); compaction and deletion remove rows. A seq
missing below a known one is gone for good: answer a gap by loading from the store, never
by waiting. This holds as long as every writer of the schema is a ``PostgresStore`` (or
takes the same lock) and the sequence keeps ``CACHE 1``.

Within a process one writer task commits all queued appends in one transaction (one WAL
flush); ``synchronous_commit`` is forced ``on``. Reads use the pool directly and see only
committed rows.

The lock is held across network round trips (the statements of a transaction, then its
COMMIT), so a host cut off from the database mid-commit would hold every process's writes
until PostgreSQL noticed the dead peer. Both sides bound that (:class:`~storage._postgres_sql.
Bounds`): the database ends a session that sits in a transaction sending nothing for
``idle_timeout`` seconds (``idle_in_transaction_session_timeout``: the other hosts' writes
wait at most that long, then go on), and drops a connection whose peer stops acknowledging
(keepalives, ``tcp_user_timeout``); here, a connection that has not answered within
``answer_timeout`` seconds (a read, or a whole write transaction with its wait for the lock)
is dropped and the call fails with :class:`~storage.base.StoreError`, so a server cut off
from its store says so within seconds instead of waiting for TCP to give up.

Erasure: :meth:`PostgresStore.erase_wedding` deletes the wedding's rows and tombstones it in
one transaction; a trigger drops any row later appended for a tombstoned wedding. Deleted
rows are gone from every query at once, but PostgreSQL keeps their bytes in the table's
pages until VACUUM reuses the space (VACUUM FULL rewrites the table), and in its WAL until
that is recycled; see the README.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from ._group_commit import Appending, GroupCommitter, Part, handed_over
from ._postgres_hosts import HostChooser, url_hosts
from ._postgres_schema import (
    APPEND,
    LOCK_CLASS,
    NEXT_SEQS,
    SCHEMA,
    VERSIONS,
    keep_session,
)
from ._postgres_sql import (
    DB_ERRORS,
    Bounds,
    MovedRows,
    RolledBack,
    driver,
    insert_features,
    run_steps,
    store_error,
)
from ._schema_versions import STORE_MIGRATIONS
from ._store_queries import RECORDED, StoreQueries
from .base import (
    FeatureRow,
    MovedDocument,
    NewUpdate,
    StoreError,
)
from .gateway import HeldRun, Tx, each_in_a_savepoint

if TYPE_CHECKING:
    from ._postgres_schema import Conn

__all__ = [
    "PostgresStore",
]

_T = TypeVar("_T")


class PostgresStore(StoreQueries):
    """A :class:`~storage.base.DocumentStore` in the tables of one PostgreSQL schema.

    ``schema`` must exist; the tables are created in it on :meth:`open`. Up to
    ``pool_size`` connections are opened (one at a time serves the writer). ``lock_timeout``
    is how many seconds a statement waits for a lock another session holds (including the
    writers of other processes) before failing with :class:`StoreError`;
    ``answer_timeout``, how long a read or a write transaction may take before its
    connection is dropped and it fails with :class:`StoreError` (more than
    ``lock_timeout``, so that a wait for the lock fails cleanly first); ``idle_timeout``, how
    long the database lets a transaction of this store sit sending nothing before ending
    its session (a host cut off mid-commit frees the write lock within that);
    ``statement_timeout``, the longest one statement may run. Any number of
    instances, in any processes, may share a schema; use each from one event loop.
    Cancelling a waiting :meth:`append`, :meth:`compact` or :meth:`delete` does not
    withdraw it: once queued, it is carried out. If the connection drops during COMMIT,
    PostgreSQL may have committed what the :class:`StoreError` reports as failed.
    """

    _text_holds_nul = False
    _dialect = "postgres"
    _versions = VERSIONS

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        pool_size: int = 4,
        lock_timeout: float = 5.0,
        answer_timeout: float = 6.0,
        idle_timeout: float = 2.0,
        statement_timeout: float = 30.0,
    ) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self._dsn = dsn
        self._schema = schema
        self._s = '"' + schema.replace('"', '""') + '"'
        self._table_prefix = f"{self._s}."
        self._where = f"PostgreSQL schema {schema!r}"  # never the DSN: it may hold a password
        self._pool_size = pool_size
        self._bounds = Bounds(
            answer=answer_timeout, idle=idle_timeout, statement=statement_timeout, lock=lock_timeout
        )
        self._reading = f"reading {self._where}"
        self._writing = f"writing {self._where}"
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._writer: GroupCommitter[Callable[[Conn], Awaitable[Any]]] = GroupCommitter(
            self._where,
            self._commit_rows,
            self._transaction,
            self._run_shared,
            self._commit_parts,
        )
        self._lock_key = 0
        self._commits = 0
        self._schemas: set[str] = set()
        self._wedding_tables: tuple[str, ...] = ()

    async def open(self) -> None:
        """Connect, create the tables if needed and start the writer."""
        if self._pool is not None:
            raise StoreError(f"{self._where} is already open")
        hosts = url_hosts(self._dsn)
        try:
            pool = await asyncpg.create_pool(
                self._dsn,
                # A multi-host URL: each host in turn with its own timeout (a failover).
                connect=HostChooser(hosts).connect if len(hosts) > 1 else None,
                min_size=1,
                max_size=self._pool_size,
                reset=keep_session,
                timeout=self._bounds.answer,  # to connect
                server_settings={
                    **self._bounds.server_settings(),
                    "synchronous_commit": "on",  # whatever the database's default
                    "client_min_messages": "warning",  # no "already exists" notices
                },
            )
        except (*DB_ERRORS, ValueError) as exc:
            raise StoreError(f"cannot open {self._where}: {exc}") from exc
        try:
            async with pool.acquire() as conn, conn.transaction():
                # A migration of a large table may take long: not cut by statement_timeout.
                await conn.execute("SET LOCAL statement_timeout = 0")
                oid = await conn.fetchval(
                    "SELECT oid FROM pg_namespace WHERE nspname = $1", self._schema
                )
                if oid is None:
                    raise StoreError(f"{self._where} does not exist")
                self._lock_key = LOCK_CLASS << 32 | int(oid)
                # Locked, so that processes opening a fresh schema at once do not collide.
                await self._lock(conn)
                await driver(self._upgrading("store", (SCHEMA,), STORE_MIGRATIONS), self)(conn)
                self._recorded(await conn.fetch(self._gateway.sql(RECORDED)))
        except BaseException as exc:
            pool.terminate()
            failed = exc.__cause__ if isinstance(exc, StoreError) else exc  # a step's error
            if isinstance(failed, DB_ERRORS):
                raise StoreError(f"cannot set up {self._where}: {failed}") from failed
            raise
        self._pool = pool
        self._writer.start()

    async def close(self) -> None:
        """Commit every write already queued, stop the writer and close the connections.

        Calls made after close() has started raise :class:`StoreError`.
        """
        await self._writer.stop()
        pool = self._pool
        if pool is not None:
            self._pool = None
            try:
                async with asyncio.timeout(self._bounds.answer):
                    await pool.close()
            except TimeoutError:
                pool.terminate()  # the database does not answer: no goodbye
            except DB_ERRORS as exc:
                raise StoreError(f"closing {self._where} failed: {exc}") from exc

    async def scrub(self) -> bool:
        """Nothing to retry: deleted rows are invisible at once (see the module docstring)."""
        if self._pool is None:
            raise StoreError(f"{self._where} is not open")
        return True

    def _moving(self, moved: list[MovedDocument], origin: str) -> Tx[list[int]]:
        return MovedRows(moved, origin).write(self._s)

    # -- for features (storage.base.Schema) -------------------------------------------

    @property
    def schema(self) -> str:
        """The quoted schema name that qualifies every table (``{s}`` in feature DDL)."""
        return self._s

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        """Rows of one query on a pooled connection (committed data only)."""
        return await self._read(sql, *args)

    async def write(self, body: Callable[[Conn], Awaitable[_T]]) -> _T:
        """Run ``body`` in one committed transaction, in turn with the update commits
        (the store's advisory lock is held); a database error in it rolls everything back
        and becomes a :class:`StoreError`."""
        result: _T = await self._writer.write(body)
        return result

    def held_transaction(self) -> AbstractAsyncContextManager[HeldRun]:
        """A write transaction whose statements the caller sends one at a time (see
        :meth:`storage.gateway.Gateway.transaction`), on the writer's connection under the
        store's advisory lock, in its turn in the writer's queue."""

        async def start(entered: asyncio.Future[HeldRun], leave: asyncio.Future[bool]) -> None:
            async def hold(conn: Conn) -> None:
                entered.set_result(lambda tx: driver(tx, self)(conn))
                if not await leave:
                    raise RolledBack

            await self._writer.write(hold)

        return handed_over(start)

    @property
    def where(self) -> str:
        """The store as messages name it (never the DSN: it may hold a password)."""
        return self._where

    # -- internals ---------------------------------------------------------------------

    def _driver(self, tx: Tx[_T]) -> Callable[[Conn], Awaitable[_T]]:
        return driver(tx, self)

    async def _read(self, sql: str, *args: object) -> list[asyncpg.Record]:
        pool = self._pool
        if pool is None:
            raise StoreError(f"{self._where} is not open")
        try:
            async with self._bounds.connection(pool, self._reading) as conn:
                return await conn.fetch(sql, *args)
        except DB_ERRORS as exc:
            raise store_error(f"{self._reading} failed: {exc}", exc) from exc

    async def _lock(self, conn: Conn) -> None:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock_key)

    async def _commit_rows(
        self, rows: list[NewUpdate], steps: list[Tx[Any]], features: list[FeatureRow]
    ) -> list[int]:
        async def body(conn: Conn) -> list[int]:
            return await self._append(conn, rows, steps, features)

        return await self._transaction(body)

    async def _commit_parts(self, parts: list[Part]) -> list[Any]:
        async def body(conn: Conn) -> list[Any]:
            results: list[Any] = []
            for part in parts:
                if isinstance(part, Appending):
                    results.append(await self._append(conn, part.updates, part.steps, part.rows))
                else:
                    results.append(await driver(each_in_a_savepoint(part), self)(conn))
            return results

        return await self._transaction(body)

    async def _append(
        self,
        conn: Conn,
        rows: list[NewUpdate],
        steps: list[Tx[Any]],
        features: list[FeatureRow],
    ) -> list[int]:
        """In the caller's transaction: an append batch's feature steps, feature rows and
        updates; the updates' seqs."""
        await run_steps(conn, steps, self)
        await insert_features(conn, self._s, features)
        if not rows:
            return []
        sequence = f"{self._s}.updates_seq"
        seqs: list[int] = sorted(await conn.fetchval(NEXT_SEQS, sequence, len(rows)))
        columns = (
            [u.doc for u in rows],
            [u.data for u in rows],
            [u.origin for u in rows],
            [u.sub for u in rows],
            [u.role for u in rows],
            [u.client_id for u in rows],
        )
        await conn.execute(APPEND.format(s=self._s), seqs, *columns)
        return seqs

    async def _transaction(self, body: Callable[[Conn], Awaitable[_T]]) -> _T:
        pool = self._pool
        assert pool is not None, "the writer runs only while open"
        try:
            async with self._bounds.connection(pool, self._writing) as conn, conn.transaction():
                await self._lock(conn)
                result = await body(conn)
        except RolledBack:
            return None  # type: ignore[return-value]  # only held transactions roll back
        except DB_ERRORS as exc:
            raise store_error(f"{self._writing} failed: {exc}", exc) from exc
        self._commits += 1
        return result

    _shared = _transaction
