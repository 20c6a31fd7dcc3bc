"""Transactions over the store's SQL gateway, for the features whose rows are written by
several of them at once (threads, people, notifications).

Transactions are written once, as generators that ``yield`` statements (:class:`Sql`) and
receive their rows (wedding events go in the same transaction with ``yield from`` the
events feature's ``store_events``); :meth:`FeatureDb.write` hands a generator to the
store's one write queue through the SQL gateway (:meth:`crdt_server.storage.Gateway.run`), so every
check-then-write (an idempotent message id, a per-thread sequence) runs inside one
serialised transaction, in turn with the update commits. Transactions queued together share
one commit, each in a savepoint of its own. Statements use ``?`` placeholders and ``{t}``
before table names (the gateway's one placeholder rule). Rows are read by name:
:meth:`FeatureDb.read_as` outside a transaction, ``yield from rows_as(Kind, ...)`` (or
:func:`row_as`) inside one, into a Struct the feature's ``tables.py`` declares.

A feature that writes another's rows in its own transaction (a message and the
notifications it causes) composes the other's steps with ``yield from``: the other feature
exports them as small :data:`Tx` functions, so it alone knows its tables' SQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from crdt_server.storage import DocumentStore, Gateway
from crdt_server.storage.gateway import Sql, Tx, row_as, rows_as

__all__ = ["FeatureDb", "Sql", "Tx", "row_as", "rows_as"]

_T = TypeVar("_T")


class FeatureDb:
    """Runs a feature's statements through the store's SQL gateway (see the module
    docstring); several features may each have one over the same store."""

    def __init__(self, store: DocumentStore) -> None:
        self._sql = Gateway.of(store)
        self.dialect = self._sql.dialect
        self.store = store
        self._pending: set[asyncio.Future[Any]] = set()

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
        Once queued, a transaction is carried out even if its caller is cancelled.
        """
        job = asyncio.ensure_future(self._sql.run(tx))
        self._pending.add(job)
        job.add_done_callback(self._done)
        result: _T = await asyncio.shield(job)
        return result

    def _done(self, job: asyncio.Future[Any]) -> None:
        self._pending.discard(job)
        if not job.cancelled():
            job.exception()  # its caller may be gone: the error is theirs, not unretrieved

    async def drain(self) -> None:
        """Wait for every transaction this feature queued to be committed (the server is
        stopping)."""
        while self._pending:
            await asyncio.wait(set(self._pending))
