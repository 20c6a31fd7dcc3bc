"""The SQLite store's write transactions and where each runs: on the writer thread (a
leader's handed over at once, :mod:`._group_commit`), on the event loop's thread where
``commits="loop"`` or ``inline``, held open for a caller's statements, or outside any
transaction (a checkpoint). Mixed into :class:`storage.sqlite.SqliteStore`, which owns the
connection, the thread and the count of commits.

Past saturation (``commits="auto"``) the writer task's shared transactions run on the
loop's thread while it is behind: a whole shared transaction's worth queued behind the one
being carried out (:attr:`~storage._group_commit.GroupCommitter.behind`). A transaction on
the writer thread needs the interpreter back after each statement (the driver lets it go
for each), and behind a loop that runs Python without pause it waits for it at each one:
in the product scenario at 4,000 updates a second, shared transactions of 50 updates (500
statements) took 100 ms to 1.2 s on the thread for 30 to 80 ms of its CPU, the queue grew
past 3,000 jobs, and writers paused past the limit were closed with 1013. On the loop's
thread the same transaction costs its CPU and one fsync for 50 updates, and the loop reads
nobody meanwhile: the excess is pushed back to the writers (:mod:`crdt_server.core.backlog`).
The loop turns at least every :data:`TURN_SECONDS` meanwhile (with a turn after each
transaction, 50 updates were committed per turn of a loop past saturation, 40 to 60 ms:
fewer than arrived, and 1,289 writers were still closed). Below saturation nothing
changes: a commit never blocks the loop."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ._group_commit import Appending, GroupCommitter, Part
from ._sqlite_schema import Body, Busy, run_transaction, try_transaction
from ._sqlite_sql import Held, Outside, appending, driver
from .base import FeatureRow, NewUpdate, StoreError
from .gateway import Tx, each_in_a_savepoint

__all__ = ["SqliteWrites"]

_T = TypeVar("_T")

TURN_SECONDS = 0.05
"""While the writer is behind, it commits on the loop's thread one transaction after the
other, letting the loop turn at least this often (a turn of a loop past saturation takes
40 to 60 ms: one transaction per turn commits 50 updates per turn, fewer than arrive)."""


class SqliteWrites:
    """How :class:`storage.sqlite.SqliteStore` runs its write transactions."""

    _path: Path
    _busy_timeout: float
    _write_db: sqlite3.Connection | None
    _thread: ThreadPoolExecutor | None
    """The writer thread (``None`` inline)."""
    _on_loop: bool
    """The shared transactions run on the loop's thread."""
    _writer: GroupCommitter[Any]
    _behind_on_loop: bool
    _turned = 0.0
    """When the writer task last let the loop turn between commits on the loop's thread."""
    _commits: int

    async def on_writer(self, call: Callable[..., _T], *args: Any) -> _T:
        """``call(*args)`` on the writer thread (inline: here)."""
        thread = self._thread
        if thread is None:
            await asyncio.sleep(0)
            return call(*args)
        return await asyncio.get_running_loop().run_in_executor(thread, call, *args)

    async def _commit_rows(
        self, rows: list[NewUpdate], steps: list[Tx[Any]], features: list[FeatureRow]
    ) -> list[int]:
        body = appending(rows, steps, features, self._path)
        return await self._transaction(body, shared=True)

    def _lead(
        self, rows: list[NewUpdate], steps: list[Tx[Any]], features: list[FeatureRow]
    ) -> asyncio.Future[list[int]]:
        """:meth:`_commit_rows` handed to the writer thread at once, from the caller's turn
        (a leader's transaction, :mod:`._group_commit`); the future of the seqs."""
        db, thread, path = self._write_db, self._thread, self._path
        assert db is not None and thread is not None, "leaders only while open, threaded"
        body = appending(rows, steps, features, path)
        done = asyncio.get_running_loop().run_in_executor(thread, _committed, db, body, path)
        done.add_done_callback(self._counted)
        return done

    def _counted(self, done: asyncio.Future[list[int]]) -> None:
        if not done.cancelled() and done.exception() is None:
            self._commits += 1

    def _commit_now(
        self, rows: list[NewUpdate], steps: list[Tx[Any]], features: list[FeatureRow]
    ) -> list[int] | None:
        """:meth:`_commit_rows` on the loop's thread, without suspending (:mod:`._group_commit`);
        ``None``: not now, another connection holds the write lock."""
        db, path = self._write_db, self._path
        if db is None:
            raise StoreError(f"{path} is not open")
        try:
            body = appending(rows, steps, features, path)
            seqs = try_transaction(db, body, path, self._busy_timeout)
        except Busy:
            return None  # queued instead: the writer thread waits for the lock
        except sqlite3.Error as exc:
            raise StoreError(f"writing {path} failed: {exc}") from exc
        self._commits += 1
        return seqs

    async def _commit_parts(self, parts: list[Part]) -> list[Any]:
        path = self._path
        bodies: list[Body[Any]] = [
            appending(part.updates, part.steps, part.rows, path)
            if isinstance(part, Appending)
            else driver(each_in_a_savepoint(part), path)
            for part in parts
        ]
        return await self._transaction(lambda db: [body(db) for body in bodies], shared=True)

    async def _transaction(self, body: Body[_T], *, shared: bool = False) -> _T:
        """Run ``body`` in one committed transaction, in one call on the writer thread, or
        on the loop's thread if it is ``shared`` and the disk is fast (see the module)."""
        db, thread = self._write_db, self._thread
        assert db is not None, "the writer runs only while open"
        try:
            if isinstance(body, Held):
                held: _T = await body.run(db)
                self._commits += 1
                return held
            if isinstance(body, Outside):  # no transaction, nothing committed
                return await self.on_writer(body.call, db)
            if thread is None:  # inline; still a suspension point, as with the thread
                await asyncio.sleep(0)
                result = run_transaction(db, body, self._path)
            elif shared and self._on_loop:
                result = await self._on_the_loop(db, body, thread)
            elif shared and self._behind_on_loop and self._writer.behind:
                result = await self._on_the_loop(db, body, thread)
                loop = asyncio.get_running_loop()
                if loop.time() - self._turned >= TURN_SECONDS:
                    await asyncio.sleep(0)  # the loop turns, at least this often
                    self._turned = loop.time()
            else:
                result = await asyncio.get_running_loop().run_in_executor(
                    thread, run_transaction, db, body, self._path
                )
        except sqlite3.Error as exc:
            raise StoreError(f"writing {self._path} failed: {exc}") from exc
        self._commits += 1
        return result

    async def _on_the_loop(
        self, db: sqlite3.Connection, body: Body[_T], thread: ThreadPoolExecutor
    ) -> _T:
        """``body`` committed on the loop's thread, or on the writer thread where another
        connection holds the write lock (it waits for it there, the loop goes on)."""
        try:
            return try_transaction(db, body, self._path, self._busy_timeout)
        except Busy:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(thread, run_transaction, db, body, self._path)


def _committed(db: sqlite3.Connection, body: Body[_T], path: Path) -> _T:
    """On the writer thread: :func:`run_transaction`, its failure as :class:`StoreError`."""
    try:
        return run_transaction(db, body, path)
    except sqlite3.Error as exc:
        raise StoreError(f"writing {path} failed: {exc}") from exc
