"""The SQLite store's reading side: a bounded pool of read-only connections, so that room
loads, connects and JSON reads run side by side instead of queueing behind one thread.

Each read is one statement in autocommit mode on a connection of its own for the time it
runs: in WAL mode its snapshot starts when it starts and ends when its rows are read, so a
read begun after a commit was acknowledged sees that commit (the writer's ``COMMIT`` has
returned, and its frames are in the write-ahead log index, before any caller hears of it).
No connection is left inside a read transaction between reads (that would pin an older
snapshot and keep a checkpoint from finishing). See :mod:`storage.sqlite`.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

__all__ = ["ReadPool", "default_read_connections"]


def default_read_connections() -> int:
    """The pool size when none is given: one more than the usable cores, at most 4 (a read
    waits on the disk or the page cache as often as on a core, and more connections than
    that only cost memory: each keeps its own page cache)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        cores = os.cpu_count() or 1
    return min(4, cores + 1)


class ReadPool:
    """Up to ``size`` read-only connections to ``path``, each used by one reading thread
    at a time; reads beyond that wait their turn (first come, first served).

    Connections are opened as the reads need them (never more than ``size``) and closed
    by :meth:`close`, after the reads under way have finished.
    """

    def __init__(self, path: Path, size: int, busy_timeout: float) -> None:
        if size < 1:
            raise ValueError("a read pool needs at least one connection")
        self._path = path
        self._size = size
        self._busy_timeout = busy_timeout
        self._threads = ThreadPoolExecutor(max_workers=size, thread_name_prefix="sqlite-reader")
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._busy = 0
        self._peak = 0

    @property
    def size(self) -> int:
        """The most connections (and reads at once) this pool has."""
        return self._size

    @property
    def opened(self) -> int:
        """Connections opened so far (at most :attr:`size`)."""
        return len(self._all)

    @property
    def busy(self) -> int:
        """Reads running right now."""
        return self._busy

    @property
    def peak(self) -> int:
        """The most reads that ran at the same time since the pool started."""
        return self._peak

    async def fetch(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        """Every row of one statement, read on one of the pool's connections."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._fetch, sql, params)

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        db = self._take()
        with self._lock:
            self._busy += 1
            self._peak = max(self._peak, self._busy)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            with self._lock:
                self._busy -= 1
            if db.in_transaction:  # e.g. a failed statement: never pin an old snapshot
                db.rollback()
            self._idle.put(db)

    def _take(self) -> sqlite3.Connection:
        # At most ``size`` threads call this at once and each gives its connection back
        # before it takes another, so an idle one exists unless fewer than ``size`` are
        # open: never more than ``size`` connections.
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        db = sqlite3.connect(
            self._path,
            isolation_level=None,
            timeout=self._busy_timeout,
            check_same_thread=False,  # handed from thread to thread, one at a time
        )
        # Read-only by pragma: a statement that would write fails ("attempt to write a
        # readonly database"), while the connection opens the file as every other one
        # does (a ``mode=ro`` open depends on the WAL's side files already existing).
        db.execute("PRAGMA query_only = ON")
        with self._lock:
            self._all.append(db)
        return db

    async def close(self) -> None:
        """Wait for the reads under way, then close every connection."""
        threads = self._threads
        await asyncio.get_running_loop().run_in_executor(None, threads.shutdown)
        with self._lock:
            connections, self._all = self._all, []
        for db in connections:
            db.close()
