"""Queued transactions over the store's SQL gateway, for the features whose rows are written
by several of them at once (threads, people, notifications).

Transactions are written once, as generators that ``yield`` statements (:class:`Sql`, or
:class:`Events` to number and insert wedding events in the same transaction) and receive
their rows; :meth:`FeatureDb.write` drives a generator on the backend's writer (SQLite's
writer thread, PostgreSQL's locked connection) through the store's SQL gateway
(:class:`crdt_server.storage.Gateway`), so every check-then-write (an idempotent message
id, a per-thread sequence) runs inside one serialised transaction. Statements use ``?``
placeholders and ``{t}`` before table names (the gateway's one placeholder rule). Rows are
read by name: :meth:`FeatureDb.read_as` outside a transaction, ``yield from rows_as(Kind,
...)`` (or :func:`row_as`) inside one, into a Struct the feature's ``tables.py`` declares.

A feature that writes another's rows in its own transaction (a message and the
notifications it causes) composes the other's steps with ``yield from``: the other feature
exports them as small :data:`Tx` functions, so it alone knows its tables' SQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from crdt_server.storage import DocumentStore, Gateway, StoredEvent
from crdt_server.storage.gateway import Events, Sql, Tx, row_as, rows_as

__all__ = ["Events", "FeatureDb", "Sql", "Tx", "row_as", "rows_as", "stored_events"]

_T = TypeVar("_T")


class FeatureDb:
    """Runs a feature's statements through the store's SQL gateway (see the module
    docstring); several features may each have one over the same store."""

    def __init__(self, store: DocumentStore) -> None:
        self._sql = Gateway.of(store)
        self.dialect = self._sql.dialect
        self.store = store
        self._queue: list[tuple[Tx[Any], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def read(self, text: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of one query (committed data)."""
        return await self._sql.fetch(text, *params)

    async def read_as(self, kind: Callable[..., _T], text: str, *params: Any) -> list[_T]:
        """Rows of one query (committed data), each made into ``kind`` (a Struct whose
        fields are in ``SELECT`` order: :meth:`Gateway.fetch_as`)."""
        return await self._sql.fetch_as(kind, text, *params)

    async def read_one_as(self, kind: Callable[..., _T], text: str, *params: Any) -> _T | None:
        """The first row of one query as ``kind``; ``None`` if there is none."""
        return await self._sql.fetch_one_as(kind, text, *params)

    def by_dialect(self, *, sqlite: _T, postgres: _T) -> _T:
        """The one of two this store's dialect takes (:meth:`Gateway.by_dialect`)."""
        return self._sql.by_dialect(sqlite=sqlite, postgres=postgres)

    async def write(self, tx: Tx[_T]) -> _T:
        """Run a transaction (see the module docstring); all of it commits or none.

        Transactions queued while one is committing share the next commit (one fsync for
        all), each in a savepoint of its own: one that raises is rolled back alone and its
        caller gets the exception; the others commit. Results are given after the commit.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((tx, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="feature-writes")
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
        yield Sql("SAVEPOINT feature_tx")
        try:
            reply: Any = None
            while True:
                reply = yield tx.send(reply)
        except StopIteration as done:
            yield Sql("RELEASE SAVEPOINT feature_tx")
            outcomes.append((True, done.value))
        except Exception as exc:
            yield Sql("ROLLBACK TO SAVEPOINT feature_tx")
            yield Sql("RELEASE SAVEPOINT feature_tx")
            outcomes.append((False, exc))
    return outcomes


def stored_events(reply: Any) -> list[StoredEvent]:
    """The events an :class:`Events` step received (typed)."""
    return list(reply)
