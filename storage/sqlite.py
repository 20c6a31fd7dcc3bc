"""SQLite implementation of :class:`storage.base.DocumentStore`, with group commit.

One writer task owns every write transaction: concurrent :meth:`SqliteStore.append` calls
are queued and committed together, so many small Yjs updates cost one fsync per batch
rather than one each. Each transaction runs whole, ``BEGIN IMMEDIATE`` to ``COMMIT``, in
one call on the writer thread; an append with no transaction in flight is handed to it at
once, from its caller's turn of the loop (a leader, :mod:`._group_commit`), so the loop
never waits for an fsync (``commits="loop"`` runs the shared transactions on the loop's
own thread instead: :func:`~storage._sqlite_schema.commits_on_loop`). Past saturation
(``commits="auto"``, the default) the writer task's shared transactions run on the loop's
thread while a whole transaction's worth is queued behind the one being carried out
(:mod:`._sqlite_writes`). Reads run on a bounded
pool of read-only connections, several at once (:mod:`storage._sqlite_readers`); in WAL
mode each sees every commit acknowledged before it started, and nothing uncommitted.

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
import functools
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Literal, TypeVar

from ._group_commit import GroupCommitter, handed_over
from ._schema_versions import STORE_MIGRATIONS
from ._sqlite_readers import ReadPool, default_read_connections
from ._sqlite_schema import (
    SCHEMA,
    VERSIONS,
    Body,
    checkpoint,
    commits_on_loop,
    connect_writer,
)
from ._sqlite_sql import Held, Outside, adding_columns, driver, moving
from ._sqlite_writes import SqliteWrites
from ._store_queries import RECORDED, StoreQueries
from .base import (
    MovedDocument,
    StoreError,
)
from .gateway import HeldRun, Tx

__all__ = [
    "SqliteStore",
]

_T = TypeVar("_T")


class SqliteStore(SqliteWrites, StoreQueries):
    """A :class:`~storage.base.DocumentStore` in one SQLite file (WAL, ``synchronous=FULL``
    unless ``synchronous="normal"``).

    ``read_connections`` is how many reads run at once, each on a read-only connection of
    its own (0: :func:`~storage._sqlite_readers.default_read_connections`, one more than
    the cores, at most 4); writes keep their one writer.

    ``busy_timeout`` is how many seconds a write waits for another process's lock on the
    file before failing with :class:`StoreError`. Use one instance per file per process,
    from one event loop. Cancelling a waiting :meth:`append`, :meth:`compact` or
    :meth:`delete` does not withdraw it: once queued, it is carried out.

    ``inline=True`` runs every statement on the event loop's own thread, blocking the loop
    meanwhile, instead of on the writer thread and the reading threads: the same SQL,
    transactions and group commit (one reading connection), without a thread hop per call.
    Only for a process whose loop has nothing else to do while the store works and whose
    file is small and local, such as the testing kit's in-process mode (where the hop costs
    more than the statement); a server keeps the default.

    ``commits``: where the shared transactions run, ``"auto"``, ``"loop"`` or ``"thread"``
    (:func:`~storage._sqlite_schema.commits_on_loop`).
    """

    _dialect = "sqlite"
    _versions = VERSIONS
    _table_prefix = ""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 5.0,
        synchronous: Literal["full", "normal"] = "full",
        inline: bool = False,
        read_connections: int = 0,
        commits: Literal["auto", "loop", "thread"] = "auto",
    ) -> None:
        if read_connections < 0:
            raise ValueError("read_connections must be 0 (automatic) or more")
        self._path = Path(path)
        self._where = str(self._path)
        self._read_connections = read_connections or default_read_connections()
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._inline = inline
        if commits not in ("auto", "loop", "thread"):
            raise ValueError("commits must be auto, loop or thread")
        self._commits_on = commits
        self._on_loop = inline
        """The shared transactions run on the loop's thread (decided when opened)."""
        self._behind_on_loop = commits == "auto"
        """The writer task's shared transactions run on the loop's thread while the writer
        is behind (:attr:`~storage._group_commit.GroupCommitter.behind`), ``auto`` only."""
        self._readers: ReadPool | None = None
        """The read connections."""
        self._inline_db: sqlite3.Connection | None = None
        """The read connection when ``inline``, used on the loop's thread."""
        self._write_db: sqlite3.Connection | None = None
        """The write connection, used by one thread at a time: the writer thread, or the
        loop's for the shared transactions where the disk is fast."""
        self._thread: ThreadPoolExecutor | None = None
        self._writer: GroupCommitter[Body[Any]] = GroupCommitter(
            str(self._path),
            self._commit_rows,
            self._transaction,
            self._run_shared,
            self._commit_parts,
        )
        self._commits = 0
        self._schemas: set[str] = set()
        self._wedding_tables: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def commits_on_loop(self) -> bool:
        """Whether the shared transactions run on the event loop's thread (once open)."""
        return self._on_loop

    @property
    def readers(self) -> ReadPool | None:
        """The pool of reading connections while open (``None`` when closed or inline):
        its size, and how many reads run now and at most ran at once."""
        return self._readers

    async def open(self) -> None:
        """Create the file, its directory and the schema if needed; start the writer."""
        if self._readers is not None or self._inline_db is not None:
            raise StoreError(f"{self._path} is already open")
        if self._inline:
            self._open_inline()
            return
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            loop = asyncio.get_running_loop()
            write_db = await loop.run_in_executor(thread, connect_writer, *self._writer_args())
        except (OSError, sqlite3.Error) as exc:
            thread.shutdown()
            raise StoreError(f"cannot open {self._path}: {exc}") from exc
        except BaseException:
            thread.shutdown()
            raise
        self._write_db = write_db
        self._readers = ReadPool(self._path, self._read_connections, self._busy_timeout)
        self._thread = thread
        self._on_loop = on_loop = commits_on_loop(self._commits_on)
        if on_loop:
            self._writer.start(commit_now=self._commit_now)
        else:
            self._writer.start(lead=self._lead)
        try:
            # The first read: a reader can open.
            self._recorded(await self._read(self._gateway.sql(RECORDED)))
        except BaseException:
            await self.close()
            raise

    def _writer_args(self) -> tuple[Path, float, str, Body[None]]:
        """What :func:`~storage._sqlite_schema.connect_writer` is given: the store's own
        schema brought to its newest version when the file opens."""

        def set_up(db: sqlite3.Connection) -> None:
            tx = self._upgrading("store", SCHEMA, STORE_MIGRATIONS, added=adding_columns())
            driver(tx, self._path)(db)

        return self._path, self._busy_timeout, self._synchronous, set_up

    def _open_inline(self) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            write_db = connect_writer(*self._writer_args())
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
        self._writer.start(self._commit_now)
        self._recorded(db.execute(self._gateway.sql(RECORDED)).fetchall())

    async def close(self) -> None:
        """Commit every append already queued, stop the writer and close the file.

        Calls made after close() has started raise :class:`StoreError`.
        """
        await self._writer.stop()
        readers, write_db, thread = self._readers, self._write_db, self._thread
        inline_db, self._inline_db = self._inline_db, None
        self._readers = self._write_db = self._thread = None
        try:
            if inline_db is not None:
                inline_db.close()
                if write_db is not None:
                    write_db.close()
            # Readers first: the writer, closing last, checkpoints and removes the WAL.
            if readers is not None:
                await readers.close()
            if write_db is not None and thread is not None:
                await asyncio.get_running_loop().run_in_executor(thread, write_db.close)
        except sqlite3.Error as exc:
            raise StoreError(f"closing {self._path} failed: {exc}") from exc
        finally:
            if thread is not None:
                thread.shutdown(wait=False)

    async def scrub(self) -> bool:
        """Checkpoint the write-ahead log into the database file and truncate it; whether
        that finished (it cannot while another process reads an older snapshot)."""
        if self._write_db is None:
            raise StoreError(f"{self._path} is not open")
        # In the writer's queue: never beside a transaction on the same connection.
        scrubbed: bool = await self._writer.write(
            Outside(functools.partial(checkpoint, busy_timeout=self._busy_timeout))
        )
        return scrubbed

    def _moving(self, moved: list[MovedDocument], origin: str) -> Tx[list[int]]:
        return moving(moved, origin)

    # -- for features (storage.base.Schema) -------------------------------------------

    async def read(self, sql: str, *params: Any) -> list[Any]:
        """Rows of one query on a reading connection: every commit acknowledged before
        it started, nothing uncommitted."""
        return await self._read(sql, *params)

    async def write(self, body: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``body`` on the writer thread in one committed transaction of its own, in
        turn with the update commits; a :class:`sqlite3.Error` in it rolls everything back
        and becomes a :class:`StoreError`."""
        result: _T = await self._writer.write(body)
        return result

    def held_transaction(self) -> AbstractAsyncContextManager[HeldRun]:
        """A write transaction whose statements the caller sends one at a time (see
        :meth:`storage.gateway.Gateway.transaction`), on the writer thread and connection,
        in its turn in the writer's queue (the update commits wait for it)."""

        async def start(entered: asyncio.Future[HeldRun], leave: asyncio.Future[bool]) -> None:
            async def hold(db: sqlite3.Connection) -> None:
                await self.on_writer(db.execute, "BEGIN IMMEDIATE")
                try:
                    entered.set_result(lambda tx: self.on_writer(driver(tx, self._path), db))
                    commit = await leave
                except BaseException:
                    commit = False
                    raise
                finally:
                    if not commit and db.in_transaction:
                        await self.on_writer(db.rollback)
                await self.on_writer(db.execute, "COMMIT")

            await self._writer.write(Held(hold))

        return handed_over(start)

    # -- internals ---------------------------------------------------------------------

    def _driver(self, tx: Tx[_T]) -> Body[_T]:
        return driver(tx, self._path)

    async def _shared(self, body: Body[_T]) -> _T:
        return await self._transaction(body, shared=True)

    async def _read(self, sql: str, *params: Any) -> list[Any]:
        inline_db, readers = self._inline_db, self._readers
        if inline_db is None and readers is None:
            raise StoreError(f"{self._path} is not open")
        try:
            if inline_db is not None:
                await asyncio.sleep(0)  # a suspension point, as every other store call
                return inline_db.execute(sql, params).fetchall()
            assert readers is not None
            return await readers.fetch(sql, params)
        except sqlite3.Error as exc:
            raise StoreError(f"reading {self._path} failed: {exc}") from exc
