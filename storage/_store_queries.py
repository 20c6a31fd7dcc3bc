"""The store's own statements that both backends run alike, written once.

Loading a document, compaction, deletion and erasure, tombstones, revocations, history,
the document list and the seq lookups read and write the same way on SQLite and
PostgreSQL; only dialect words differ, and those are the gateway's rules
(:func:`storage.gateway.dialect_sql`: ``?`` and ``{t}``, rewritten once per statement).
So do installing a feature's tables (:mod:`storage._schema_versions`), the checks every
value passes before it is queued, an append's way into the write queue, a shared batch's
gateway transactions (each in a savepoint), the checks of moved documents and the
features' rows written with them, and the store's side of the gateway
(:meth:`StoreQueries.sql_backend`: a held transaction, deprecated, runs each of its
statements through the backend's ordinary driver of gateway transactions). Each backend
mixes :class:`StoreQueries` in and keeps what truly differs: how it connects and reads,
where a transaction runs (its driver), the update append and commit, the seqs of moved
documents, the DDL words, and scrub.

Reads go through the backend's reading connections (committed data); writes are gateway
transactions in the store's one write queue (:meth:`storage.gateway.Gateway.run`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from crdt_server import clock

from ._postgres_schema import tombstone_trigger as postgres_trigger
from ._schema_versions import upgrading
from ._sqlite_schema import tombstone_trigger as sqlite_trigger
from .base import (
    Erasure,
    FeatureRow,
    HistoryEntry,
    Migration,
    MovedDocument,
    NewUpdate,
    Revocation,
    Schema,
    StoredLog,
    StoreError,
    check_feature_rows,
    recorded_tables,
    wedding_of_prefix,
)
from .gateway import (
    Backend,
    Dialect,
    Gateway,
    HeldRun,
    Sql,
    Tx,
    dialected,
    each_in_a_savepoint,
    statements,
)

if TYPE_CHECKING:
    from ._group_commit import GroupCommitter

__all__ = ["StoreQueries"]

_T = TypeVar("_T")

_SQLITE_IN_LIST = 500
"""Values per ``IN`` list on SQLite (it caps bound parameters); PostgreSQL takes one array."""


RECORDED = "SELECT wedding_tables FROM {t}schema_versions"
"""The wedding tables of every feature a store installed (:meth:`StoreQueries._recorded`)."""


class StoreQueries:
    """The statements of :class:`~storage.base.DocumentStore` both backends share, and the
    gateway's way into the store (:meth:`sql_backend`)."""

    _text_holds_nul = True
    """Whether the database's text may hold NUL characters (PostgreSQL's may not)."""

    _dialect: Dialect
    _where: str
    """The store as messages name it (a file, or a PostgreSQL schema, never its DSN)."""
    _table_prefix: str
    """What stands before a table's name (``{t}``): the PostgreSQL schema and a dot."""
    _writer: GroupCommitter[Any]
    _commits: int
    _schemas: set[str]
    """The schemas this instance installed."""
    _wedding_tables: tuple[str, ...]
    """The tables, of every feature the store ever installed, that hold rows per wedding."""
    _versions: str
    """The backend's DDL of the ``schema_versions`` table."""

    async def _read(self, sql: str, *params: Any) -> Sequence[Any]:
        """Rows of one query (in the store's dialect) on a reading connection."""
        raise NotImplementedError

    def held_transaction(self) -> AbstractAsyncContextManager[HeldRun]:
        """A write transaction whose statements the caller sends one at a time, in its
        turn in the writer's queue (see :meth:`storage.gateway.Gateway.transaction`)."""
        raise NotImplementedError

    async def scrub(self) -> bool:
        raise NotImplementedError

    def _driver(self, tx: Tx[Any]) -> Callable[[Any], Any]:
        """The work of a gateway transaction (in the store's dialect already) on the write
        connection, as the writer runs it."""
        raise NotImplementedError

    async def _shared(self, body: Callable[[Any], Any]) -> Any:
        """Run ``body`` as a transaction of the write queue's shared batch."""
        raise NotImplementedError

    def _check_text(self, data: bytes, *names: str) -> None:
        """Refuse, before anything is queued, what the database cannot store (with
        :class:`StoreError`): a value it cannot bind would fail the whole shared batch,
        i.e. other callers' updates too."""
        if not isinstance(data, bytes) or not all(isinstance(name, str) for name in names):
            raise TypeError("update data must be bytes, document names and origins str")
        for name in names:
            if "\x00" in name and not self._text_holds_nul:
                raise StoreError(f"{name!r}: PostgreSQL text cannot hold NUL characters")
            try:
                name.encode()
            except UnicodeEncodeError as exc:
                raise StoreError(f"{name!r} is not valid UTF-8 text") from exc

    def sql_backend(self) -> Backend:
        """What :class:`storage.gateway.Gateway` runs its SQL through."""
        return _StoreSql(self)

    @functools.cached_property
    def _gateway(self) -> Gateway:
        return Gateway(self.sql_backend())

    @property
    def commits(self) -> int:
        """Write transactions this instance has committed (append batches, compactions,
        deletions). Read-only; for tests and metrics, e.g. to see group commit at work."""
        return self._commits

    async def run(self, tx: Tx[_T]) -> _T:
        """Run a gateway transaction (in the store's dialect already) on the write
        connection, in one transaction with the others queued beside it, each in a
        savepoint (:func:`storage.gateway.each_in_a_savepoint`); its result once
        committed."""
        result: _T = await self._writer.run(tx)
        return result

    async def append(
        self,
        updates: Sequence[NewUpdate],
        *,
        rows: Sequence[FeatureRow] = (),
        steps: Sequence[Tx[Any]] = (),
        first: bool = False,
    ) -> list[int]:
        """Durably append ``updates``, features' ``steps`` and ``rows`` about them in one
        transaction, shared with concurrent callers (see the protocol; ``first``: ahead of
        them).

        Returns the updates' seqs in order, once committed (and on SQLite fsynced). If the
        shared transaction fails, every caller in it gets :class:`StoreError` and none of it
        is stored.
        """
        batch = list(updates)
        if not batch and not steps and not rows:
            return []
        for update in batch:
            self._check_text(update.data, update.doc, update.origin, update.sub, update.role)
        check_feature_rows(rows, self._wedding_tables)
        appended: list[int] = await self._writer.append(batch, steps, rows, first)
        return appended

    async def _run_shared(self, txs: list[Tx[Any]]) -> list[tuple[bool, Any]]:
        """The gateway transactions of a shared batch, in one transaction: one alone as it
        is (its failure rolls the transaction back), several each in a savepoint."""
        if len(txs) == 1:
            return [(True, await self._shared(self._driver(txs[0])))]
        outcomes: list[tuple[bool, Any]] = await self._shared(
            self._driver(each_in_a_savepoint(txs))
        )
        return outcomes

    async def _in_a_transaction(self, tx: Tx[_T]) -> _T:
        """``tx`` (in the store's dialect already) in a write transaction of its own, in
        its turn in the write queue; its result once committed."""
        result: _T = await self._writer.write(self._driver(tx))
        return result

    async def install(self, schema: Schema) -> None:
        """Create a feature's tables, or bring them to the schema's newest version (once
        per instance); erase its wedding tables with each wedding from then on."""
        if schema.name in self._schemas:
            return
        await self._installing(schema)
        self._schemas.add(schema.name)
        gone = schema.renamed_from  # renamed: erased under their new names
        self._wedding_tables = tuple(t for t in self._wedding_tables if t not in gone)
        self._add_wedding_tables(schema.wedding_tables)

    async def _installing(self, schema: Schema) -> None:
        ddl, trigger = self._gateway.by_dialect(
            sqlite=(schema.sqlite, sqlite_trigger), postgres=(schema.postgres, postgres_trigger)
        )
        first = (*ddl, *map(trigger, schema.first_wedding_tables))
        tx = self._upgrading(schema.name, first, schema.migrations, schema.wedding_tables)
        await self._in_a_transaction(tx)

    def _upgrading(
        self,
        name: str,
        first: Sequence[str],
        migrations: Sequence[Migration],
        wedding_tables: Sequence[str] = (),
        added: Tx[None] | None = None,
    ) -> Tx[None]:
        """:func:`storage._schema_versions.upgrading` in this store (its statements in
        its dialect already)."""
        by_dialect = self._gateway.by_dialect
        versions = [
            (m.version, by_dialect(sqlite=m.sqlite, postgres=m.postgres)) for m in migrations
        ]
        s = self._table_prefix.removesuffix(".")  # PostgreSQL's quoted schema
        return upgrading(
            name,
            first,
            versions,
            wedding_tables,
            dialect=self._dialect,
            versions=self._versions,
            s=s,
            added=added,
        )

    def _recorded(self, rows: Iterable[Any]) -> None:
        """Erase with each wedding the tables of every feature this store ever installed:
        ``rows`` are what :data:`RECORDED` read (once open)."""
        for row in rows:
            self._add_wedding_tables(recorded_tables(str(row[0])))

    def _add_wedding_tables(self, tables: Sequence[str]) -> None:
        self._wedding_tables += tuple(t for t in tables if t not in self._wedding_tables)

    async def load(self, doc: str, *, upto: int | None = None) -> StoredLog | None:
        """The document's log in seq order (up to ``upto``), or ``None`` if it has no rows."""
        sql = "SELECT seq, data FROM {t}updates WHERE doc = ? AND seq <= ? ORDER BY seq"
        rows = await self._read(self._gateway.sql(sql), doc, 2**63 - 1 if upto is None else upto)
        if not rows:
            return None
        updates = [bytes(data) for _, data in rows]
        return StoredLog(updates=updates, last_seq=rows[-1][0], first_seq=rows[0][0])

    async def compact(self, doc: str, upto_seq: int, snapshot: bytes) -> None:
        """Replace the rows of ``doc`` up to ``upto_seq`` by ``snapshot``, keeping that seq.

        ``snapshot`` must hold the content of all those rows; history is left untouched.
        Raises :class:`StoreError`, changing nothing, unless ``doc`` has a row ``upto_seq``.
        """
        self._check_text(snapshot, doc)
        await self._gateway.run(self._compacting(doc, upto_seq, snapshot))

    def _compacting(self, doc: str, upto_seq: int, snapshot: bytes) -> Tx[None]:
        keep = "UPDATE {t}updates SET data = ? WHERE doc = ? AND seq = ?"
        fold = "DELETE FROM {t}updates WHERE doc = ? AND seq < ?"
        if self._gateway.dialect == "postgres":  # one round trip
            both = f"WITH kept AS ({keep} RETURNING seq), gone AS ({fold})"
            both += " SELECT count(*) FROM kept"
            [(kept,)] = yield Sql(both, (snapshot, doc, upto_seq, doc, upto_seq))
        else:
            kept = yield Sql(keep, (snapshot, doc, upto_seq), count=True)
            if kept == 1:
                yield Sql(fold, (doc, upto_seq))
        if kept != 1:
            raise StoreError(f"{doc!r} has no row with seq {upto_seq}")  # rolls back

    async def put_documents(
        self,
        documents: Sequence[MovedDocument],
        origin: str,
        rows: Sequence[FeatureRow] = (),
        steps: Sequence[Tx[Any]] = (),
    ) -> list[int]:
        """Write documents this store has never seen, in one transaction (see
        :meth:`storage.base.Store.put_documents`)."""
        moved = list(documents)
        if len({d.doc for d in moved}) != len(moved):
            raise StoreError("a document is listed twice")
        for document in moved:
            if not document.updates:
                raise StoreError(f"{document.doc!r} has no update to store")
            for data in document.updates:
                self._check_text(data, document.doc, origin)
            for entry in document.history:
                self._check_text(b"", entry.origin)
                if not isinstance(entry.created_at, float | int) or not isinstance(entry.size, int):
                    raise TypeError("history times must be numbers and sizes integers")
        check_feature_rows(rows, self._wedding_tables)
        refused = dialected(self._refusing_stored([d.doc for d in moved]), self._gateway.sql)
        then = dialected(_moved_in(list(steps), list(rows)), self._gateway.sql)
        moving = self._moving(moved, origin)
        return await self._in_a_transaction(_putting(refused, moving, then))

    def _refusing_stored(self, docs: Sequence[str]) -> Tx[None]:
        """Refuse (rolling back) documents that have rows here already."""
        sql = (
            "SELECT doc FROM {t}updates WHERE doc {in}"
            " UNION ALL SELECT doc FROM {t}history WHERE doc {in} LIMIT 1"
        )
        for condition, params in self._in_lists(docs):
            found = yield Sql(sql.replace("{in}", condition), params * 2)
            if found:
                raise StoreError(f"{found[0][0]!r} already has rows in {self._where}")

    def _moving(self, moved: list[MovedDocument], origin: str) -> Tx[list[int]]:
        """The documents' history and updates, each with fresh seqs (in the store's dialect
        already); the updates' seqs."""
        raise NotImplementedError

    async def delete(self, prefix: str) -> int:
        """Delete every document whose name starts with ``prefix`` (``""``: all of them)
        together with its history. Returns how many documents were deleted."""
        self._check_text(b"", prefix)
        deleted: int = await self._gateway.run(self._deleting(prefix, wedding_of_prefix(prefix)))
        return deleted

    async def erase_wedding(self, wedding_id: str) -> Erasure:
        """Delete every row of the wedding (``{wedding_id}/...`` documents and their
        history) and tombstone it, in one transaction, then :meth:`scrub` so that no copy
        of those rows stays readable. Tables installed by features are emptied of the
        wedding too."""
        self._check_text(b"", wedding_id)
        documents = await self._gateway.run(
            self._deleting(f"{wedding_id}/", wedding_id, tombstone=True)
        )
        return Erasure(documents=documents, scrubbed=await self.scrub())

    def _deleting(self, prefix: str, wedding: str | None, *, tombstone: bool = False) -> Tx[int]:
        where, params = self._starting_with(prefix)
        count = (
            f"SELECT COUNT(*) FROM (SELECT doc FROM {{t}}updates WHERE {where}"
            f" UNION SELECT doc FROM {{t}}history WHERE {where}) AS docs"
        )
        [(documents,)] = yield Sql(count, params * 2)
        yield Sql(f"DELETE FROM {{t}}updates WHERE {where}", params)
        yield Sql(f"DELETE FROM {{t}}history WHERE {where}", params)
        if wedding:
            for table in self._wedding_tables:
                yield Sql(f"DELETE FROM {{t}}{table} WHERE wedding = ?", (wedding,))
        if tombstone:
            yield Sql(
                "INSERT INTO {t}tombstones (wedding, deleted_at) VALUES (?, ?)"
                " ON CONFLICT (wedding) DO UPDATE SET deleted_at = excluded.deleted_at",
                (wedding, clock.now()),
            )
        return int(documents)

    def _starting_with(self, prefix: str) -> tuple[str, tuple[Any, ...]]:
        """The condition "``doc`` starts with ``prefix``" and its parameters. Not ``LIKE``,
        whose wildcards (``_ %``) and SQLite's ASCII case folding would make ``w_1/`` match
        ``wx1/`` or ``W_1/``; the ``doc >= ?`` term lets the (doc, seq) index start at the
        prefix instead of scanning from the first name."""
        return self._gateway.by_dialect(
            sqlite=("doc >= ? AND substr(doc, 1, ?) = ?", (prefix, len(prefix), prefix)),
            postgres=("doc >= ? AND starts_with(doc, ?)", (prefix, prefix)),
        )

    async def tombstones(self) -> dict[str, float]:
        """Every erased wedding id and when it was erased."""
        rows = await self._gateway.fetch("SELECT wedding, deleted_at FROM {t}tombstones")
        return {str(wedding): float(at) for wedding, at in rows}

    async def lift_tombstone(self, wedding_id: str) -> bool:
        """Let the wedding id be used again; whether it was tombstoned."""
        self._check_text(b"", wedding_id)
        delete = "DELETE FROM {t}tombstones WHERE wedding = ?"
        [lifted] = await self._gateway.run(statements([(delete, (wedding_id,))], count=True))
        return int(lifted) > 0

    async def revoke(self, revocation: Revocation, *, forget_before: float) -> None:
        """Record the revocation durably; forget those made before ``forget_before``."""
        self._check_text(b"", revocation.sub, revocation.wedding or "")
        later = self._gateway.by_dialect(sqlite="max", postgres="greatest")
        upsert = (
            "INSERT INTO {t}revocations AS r (sub, wedding, at) VALUES (?, ?, ?)"
            f" ON CONFLICT (sub, wedding) DO UPDATE SET at = {later}(r.at, excluded.at)"
        )
        forget = "DELETE FROM {t}revocations WHERE at < ?"
        row = (revocation.sub, revocation.wedding or "", revocation.at)
        await self._gateway.run(statements([(upsert, row), (forget, (forget_before,))]))

    async def revocations(self) -> list[Revocation]:
        """Every revocation recorded and not forgotten."""
        rows = await self._gateway.fetch("SELECT sub, wedding, at FROM {t}revocations ORDER BY at")
        return [Revocation(str(sub), str(w) or None, float(at)) for sub, w, at in rows]

    async def history(
        self, doc: str, limit: int = 100, *, before: int | None = None, after: int = 0
    ) -> list[HistoryEntry]:
        """The newest ``limit`` entries of ``doc`` with ``after < seq < before`` (none if
        ``limit <= 0``), newest first."""
        if limit <= 0:
            return []  # SQLite would read a negative LIMIT as "no limit"
        sql = (
            "SELECT seq, doc, origin, created_at, size, sub, role, client_id FROM {t}history"
            " WHERE doc = ? AND seq > ? AND seq < ? ORDER BY seq DESC LIMIT ?"
        )
        upper = before if before is not None else 2**63 - 1
        rows = await self._gateway.fetch(sql, doc, after, upper, limit)
        return [HistoryEntry(*row) for row in rows]  # columns in field order

    async def last_seq(self) -> int:
        """The newest seq ever committed (0 for an empty store)."""
        rows = await self._gateway.fetch("SELECT COALESCE(MAX(seq), 0) FROM {t}history")
        return int(rows[0][0])

    async def last_seqs(self, docs: Sequence[str]) -> dict[str, int]:
        """The seq of each document's newest row; documents with no rows are absent."""
        sql = "SELECT doc, MAX(seq) FROM {t}updates WHERE doc {in} GROUP BY doc"
        rows = await self._fetch_in(sql, sorted(set(docs)))
        return {str(doc): int(seq) for doc, seq in rows}

    async def docs_of(self, seqs: Sequence[int]) -> dict[int, str]:
        """Which document each of ``seqs`` went to; seqs never used (or deleted) are absent.

        Absence is final for any seq below one already committed (see the backends'
        ordering guarantee): a failed batch's seqs are never used later.
        """
        sql = "SELECT seq, doc FROM {t}history WHERE seq {in}"
        rows = await self._fetch_in(sql, sorted(set(seqs)))
        return {int(seq): str(doc) for seq, doc in rows}

    async def _fetch_in(self, sql: str, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows of ``sql``, whose ``{in}`` stands for "is one of ``values``": an ``IN``
        list of at most 500 at a time on SQLite, one array on PostgreSQL."""
        rows: list[tuple[Any, ...]] = []
        for condition, params in self._in_lists(values):
            rows += await self._gateway.fetch(sql.replace("{in}", condition), *params)
        return rows

    def _in_lists(self, values: Sequence[Any]) -> list[tuple[str, tuple[Any, ...]]]:
        """ "Is one of ``values``" as conditions, each with its parameters: an ``IN`` list
        of at most 500 at a time on SQLite, one array on PostgreSQL."""
        if self._gateway.dialect == "postgres":
            return [("= ANY(?)", (list(values),))]
        chunks = (values[i : i + _SQLITE_IN_LIST] for i in range(0, len(values), _SQLITE_IN_LIST))
        return [(f"IN ({','.join('?' * len(chunk))})", tuple(chunk)) for chunk in chunks]

    # Last in the class on purpose: below this def, the name ``list`` in annotations means
    # this method, not the builtin.
    async def list(self, prefix: str = "") -> list[str]:
        """Names of stored documents starting with ``prefix``, sorted by code point."""
        where, params = self._starting_with(prefix)
        sql = f"SELECT DISTINCT doc FROM {{t}}updates WHERE {where} ORDER BY doc"
        return [str(doc) for (doc,) in await self._gateway.fetch(sql, *params)]


def _putting(refused: Tx[None], moving: Tx[list[int]], then: Tx[None]) -> Tx[list[int]]:
    """``refused`` (the documents' check), ``moving`` (the documents), then ``then``; the
    updates' seqs."""
    yield from refused
    written = yield from moving
    yield from then
    return written


def _moved_in(steps: list[Tx[Any]], rows: list[FeatureRow]) -> Tx[None]:
    """What :meth:`StoreQueries.put_documents` writes after the documents: the features'
    steps, then their rows, each of which must go in."""
    for step in steps:
        yield from step
    for row in rows:
        columns = ", ".join(column for column, _ in row.values)
        marks = ", ".join("?" * len(row.values))
        insert = f"INSERT INTO {{t}}{row.table} ({columns}) VALUES ({marks})"  # noqa: S608
        try:
            yield Sql(insert, tuple(value for _, value in row.values))
        except StoreError as exc:
            failed = exc.__cause__  # the database's own error, as the backend's driver gives it
            raise StoreError(f"a row for {row.table} cannot be stored: {failed}") from failed


class _StoreSql:
    """The store's side of :class:`storage.gateway.Gateway`: its dialect, its reading
    connections, its held transactions and its write queue."""

    def __init__(self, store: StoreQueries) -> None:
        self._store = store
        self.dialect: Dialect = store._dialect
        self.prefix = store._table_prefix

    async def fetch(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await self._store._read(sql, *params)]

    def transaction(self) -> AbstractAsyncContextManager[HeldRun]:
        return self._store.held_transaction()

    async def run(self, tx: Tx[_T], sql: Callable[[str], str]) -> _T:
        return await self._store.run(dialected(tx, sql))
