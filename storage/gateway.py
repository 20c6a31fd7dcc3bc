"""The SQL gateway: every feature's tables, the same way on SQLite and PostgreSQL.

The document store (:class:`storage.base.DocumentStore`) keeps what rooms need; a feature
keeps its own rows in tables it declares, once, next to its code::

    NOTES = Table(
        "notes",
        "(wedding {text} NOT NULL, id {text} NOT NULL, body {text} NOT NULL,"
        " at {real} NOT NULL, PRIMARY KEY (wedding, id))",
        indexes=("CREATE INDEX IF NOT EXISTS notes_at ON {t}notes (at)",),
    )
    SCHEMA = schema_of("notes", NOTES)          # installed when the feature starts

and reaches them through a :class:`Gateway` (``Gateway.of(core.store)``):

- one placeholder rule: ``?`` for every parameter and ``{t}`` before every table name
  (:func:`dialect_sql` is the one rewrite: ``$1, $2...`` and the schema on PostgreSQL);
- reads (:meth:`Gateway.fetch`) see committed rows; rows are tuples in the order of the
  ``SELECT`` list. Feature code reads them by name: :meth:`Gateway.fetch_as` (and
  :meth:`Gateway.fetch_one_as`, the first row or ``None``) builds a msgspec Struct or
  dataclass of each, whose fields are in ``SELECT`` order; in a transaction,
  ``rows = yield from rows_as(Kind, "SELECT ...", ...)`` (or :func:`row_as`) does the same;
- ``await gateway.run(tx)`` runs a transaction written as a generator that yields
  :class:`Sql` (it receives the rows, or the count of rows touched): on SQLite all of it
  in one call on the store's one write connection (no second connection
  writes), on PostgreSQL on the writer's connection under its advisory lock; in its turn
  in the store's one write queue, with the update commits. Transactions queued together
  share one commit, each in a savepoint of its own (:func:`each_in_a_savepoint`). A
  database error is thrown into the generator as :class:`StoreError` (it may catch it,
  after a savepoint); whatever it raises rolls back all it did, and its caller gets the
  error (the others commit).
- ``await gateway.run(statements([(sql, params), ...]))`` is a transaction of plain
  statements (:func:`statements`: what each received, in order);
- a queued transaction commits even if its caller is cancelled (a client gone mid-request),
  and closing the store carries out every transaction queued before it stops its writer.
  This is the one way to write a feature's rows: :meth:`Gateway.transaction` (statements
  sent one at a time, holding the writer while the caller awaits) is deprecated and goes
  in the next release;
- rows to write with a room's updates, in the updates' own transaction (a hook's
  ``on_commit``), are :class:`storage.base.FeatureRow` values given to
  :meth:`DocumentStore.append` ``(rows=...)``; a transaction (a :data:`Tx`) to run there
  is one of its ``steps=...`` (the events feature's numbering of the batch's events).

Type words in a :class:`Table`'s columns, for the two dialects: ``{text}`` (TEXT / text),
``{ctext}`` (TEXT / text COLLATE "C": compared by code point, as SQLite does), ``{int}``
(INTEGER / bigint), ``{real}`` (REAL / double precision), ``{blob}`` (BLOB / bytea),
``{id}`` (an ``INTEGER PRIMARY KEY AUTOINCREMENT`` / ``bigserial PRIMARY KEY`` row id),
``{ints}`` (a list of integers: JSON text / ``bigint[]``).
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from ._postgres_schema import tombstone_trigger as postgres_trigger
from ._sqlite_schema import tombstone_trigger as sqlite_trigger
from .base import (
    DocumentStore,
    FeatureRow,
    Migration,
    Schema,
    StoreError,
)

__all__ = [
    "Dialect",
    "Gateway",
    "Sql",
    "Table",
    "Transaction",
    "Tx",
    "dialect_sql",
    "dialected",
    "each_in_a_savepoint",
    "escape_like",
    "created",
    "rebuilt",
    "renamed",
    "row_as",
    "rows_as",
    "schema_of",
    "statements",
]

Dialect = Literal["sqlite", "postgres"]
_R = TypeVar("_R")

_TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {
        "text": "TEXT",
        "ctext": "TEXT",
        "int": "INTEGER",
        "real": "REAL",
        "blob": "BLOB",
        "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "ints": "TEXT",
    },
    "postgres": {
        "text": "text",
        "ctext": 'text COLLATE "C"',
        "int": "bigint",
        "real": "double precision",
        "blob": "bytea",
        "id": "bigserial PRIMARY KEY",
        "ints": "bigint[]",
    },
}
_PLACEHOLDER = re.compile(r"\?")
_WORD = re.compile(r"\{(text|ctext|int|real|blob|id|ints|t)\}")


@functools.lru_cache(maxsize=4096)
def dialect_sql(text: str, dialect: Dialect, prefix: str = "") -> str:
    """``text`` for ``dialect``: ``{t}`` becomes ``prefix`` (the PostgreSQL schema and a
    dot; nothing on SQLite), the type words their dialect's types, and on PostgreSQL each
    ``?`` becomes ``$1``, ``$2``... in order. The one placeholder rewrite of the code base:
    write ``?`` only where a parameter goes (never inside a string literal). Rewritten once
    per text and dialect (the result is cached: statements are the code's own strings)."""
    words = _TYPES[dialect]
    text = _WORD.sub(lambda m: prefix if m[1] == "t" else words[m[1]], text)
    if dialect == "postgres":
        count = iter(range(1, 1_000_000))
        text = _PLACEHOLDER.sub(lambda _: f"${next(count)}", text)
    return text


@dataclass(frozen=True, slots=True)
class Table:
    """One table, declared once for both backends (see the module docstring).

    ``columns`` is the parenthesised column list with type words; ``indexes`` whole
    statements (``{t}`` before the table name). ``wedding``: the table has a ``wedding``
    column and is erased with the wedding (and refuses rows of an erased one).
    ``sqlite``/``postgres``: statements only one backend runs (a full-text index);
    ``postgres_columns``: columns only PostgreSQL has, after the others (a generated
    ``tsvector``)."""

    name: str
    columns: str
    indexes: tuple[str, ...] = ()
    wedding: bool = True
    sqlite: tuple[str, ...] = ()
    postgres: tuple[str, ...] = ()
    postgres_columns: str = ""
    without_rowid: bool = False
    """SQLite keeps the rows in their primary key's order (``WITHOUT ROWID``)."""

    def ddl(self, dialect: Dialect) -> tuple[str, ...]:
        """The statements that create the table if missing, as :class:`Schema` holds
        them (PostgreSQL: ``{s}`` stands for the schema)."""
        prefix = "" if dialect == "sqlite" else "{s}."
        columns = self.columns
        if dialect == "postgres" and self.postgres_columns:
            columns = f"{columns.rstrip()[:-1]}, {self.postgres_columns})"
        create = f"CREATE TABLE IF NOT EXISTS {{t}}{self.name} {columns}"
        if dialect == "sqlite" and self.without_rowid:
            create += " WITHOUT ROWID"
        only = self.sqlite if dialect == "sqlite" else self.postgres
        return tuple(
            _ddl_text(statement, dialect, prefix) for statement in (create, *self.indexes, *only)
        )


def _ddl_text(statement: str, dialect: Dialect, prefix: str) -> str:
    words = _TYPES[dialect]
    text = _WORD.sub(lambda m: prefix if m[1] == "t" else words[m[1]], statement)
    # PostgreSQL DDL goes through str.format (for {s}): keep literal braces literal.
    if dialect == "sqlite":
        return text
    return text.replace("{", "{{").replace("}", "}}").replace("{{s}}", "{s}")


def escape_like(text: str) -> str:
    """``text`` for a ``LIKE ... ESCAPE '!'`` pattern, matched as it is (its ``%``, ``_``
    and ``!`` escaped)."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def schema_of(name: str, *tables: Table, migrations: Sequence[Migration] = ()) -> Schema:
    """The :class:`Schema` a feature installs (:meth:`DocumentStore.install`): its tables as
    version 1 made them, each created once, those with a ``wedding`` column erased with
    their wedding (under the names the ``migrations`` give them), and its numbered
    ``migrations`` (versions 2, 3...)."""
    wedding_tables = [t.name for t in tables if t.wedding]
    for migration in migrations:
        new = dict(migration.renames)
        wedding_tables = [new.get(t, t) for t in wedding_tables]
        wedding_tables += [t for t in migration.creates if t not in wedding_tables]
    return Schema(
        name,
        sqlite=tuple(s for t in tables for s in t.ddl("sqlite")),
        postgres=tuple(s for t in tables for s in t.ddl("postgres")),
        wedding_tables=tuple(wedding_tables),
        migrations=tuple(migrations),
    )


_INDEX_NAME = re.compile(r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.I)


def created(version: int, *tables: Table) -> Migration:
    """Migration ``version``: each table is created if missing (``IF NOT EXISTS``: a store
    where another schema made it keeps it and its rows), with its indexes and, for a
    wedding table, its tombstone trigger; the schema erases its wedding tables from then
    on (``schema_of(name, ..., migrations=[created(2, table)])``)."""
    sqlite = [s for t in tables for s in t.ddl("sqlite")]
    postgres = [s for t in tables for s in t.ddl("postgres")]
    sqlite += [sqlite_trigger(t.name) for t in tables if t.wedding]
    postgres += [postgres_trigger(t.name) for t in tables if t.wedding]
    creates = tuple(t.name for t in tables if t.wedding)
    return Migration(version, tuple(sqlite), tuple(postgres), creates=creates)


def renamed(version: int, *tables: tuple[Table, Table]) -> Migration:
    """Migration ``version``: each table ``(old, new)`` takes ``new``'s name, with its
    rows, its indexes (named as ``new`` names them, in the same order as ``old``'s), its
    tombstone trigger and, on PostgreSQL, its primary key and row-id sequence; the lists of
    wedding tables every schema recorded name it by its new name. Declare ``old`` as version
    1 made it (``schema_of(name, old, migrations=[renamed(2, (old, new))])``) and use
    ``new``. Columns do not change."""
    sqlite: list[str] = []
    postgres: list[str] = []
    for old, new in tables:
        if old.wedding != new.wedding:
            raise ValueError(f"{old.name} -> {new.name}: a rename keeps the wedding column")
        old_indexes = [_index_name(i) for i in old.indexes]
        new_indexes = [_index_name(i) for i in new.indexes]
        if len(old_indexes) != len(new_indexes):
            raise ValueError(f"{old.name} -> {new.name}: a rename keeps the indexes")
        sqlite.append(f"ALTER TABLE {old.name} RENAME TO {new.name}")
        postgres.append(f"ALTER TABLE {{s}}.{old.name} RENAME TO {new.name}")
        # SQLite renames no index: they go and come back under their new names.
        sqlite += [f"DROP INDEX IF EXISTS {name}" for name in old_indexes]
        sqlite += [_ddl_text(i, "sqlite", "") for i in new.indexes]
        postgres += [
            f"ALTER INDEX IF EXISTS {{s}}.{a} RENAME TO {b}"
            for a, b in zip(old_indexes, new_indexes, strict=True)
        ]
        postgres += [
            f"ALTER INDEX IF EXISTS {{s}}.{old.name}_pkey RENAME TO {new.name}_pkey",
            f"ALTER SEQUENCE IF EXISTS {{s}}.{old.name}_id_seq RENAME TO {new.name}_id_seq",
        ]
        if new.wedding:
            sqlite += [f"DROP TRIGGER IF EXISTS {old.name}_tombstoned", sqlite_trigger(new.name)]
            postgres += [
                f"DROP TRIGGER IF EXISTS {old.name}_tombstoned ON {{s}}.{new.name}",
                postgres_trigger(new.name),
            ]
        listed = f"replace(',' || wedding_tables || ',', ',{old.name},', ',{new.name},')"
        sqlite.append(f"UPDATE schema_versions SET wedding_tables = trim({listed}, ',')")
        postgres.append(f"UPDATE {{s}}.schema_versions SET wedding_tables = btrim({listed}, ',')")
    renames = tuple((old.name, new.name) for old, new in tables)
    return Migration(version, tuple(sqlite), tuple(postgres), renames=renames)


def rebuilt(
    version: int,
    old: Table,
    new: Table,
    *,
    kept: str,
    postgres: Sequence[str],
    sqlite: Sequence[str] = (),
) -> Migration:
    """Migration ``version``: table ``old`` takes ``new``'s columns and constraints (same
    name; the columns ``kept``, comma separated, keep their values, new ones take their
    defaults). SQLite changes no constraint in place: its rows are copied into a table made
    as ``new``, which replaces ``old``, with ``new``'s indexes and its tombstone trigger,
    then ``sqlite`` runs (filling new columns). PostgreSQL runs ``postgres``: ``ALTER
    TABLE`` statements making the same change (``{s}`` stands for the schema)."""
    if old.name != new.name or old.wedding != new.wedding:
        raise ValueError(f"{old.name} -> {new.name}: a rebuild keeps the name and the wedding")
    name, scratch = new.name, f"{new.name}__rebuilt"
    steps = [
        _ddl_text(f"CREATE TABLE {scratch} {new.columns}", "sqlite", ""),
        f"INSERT INTO {scratch} ({kept}) SELECT {kept} FROM {name}",
        f"DROP TABLE {name}",  # with its indexes and trigger
        f"ALTER TABLE {scratch} RENAME TO {name}",
        *(_ddl_text(i, "sqlite", "") for i in (*new.indexes, *new.sqlite)),
    ]
    if new.wedding:
        steps.append(sqlite_trigger(name))
    return Migration(version, (*steps, *sqlite), tuple(postgres))


def _index_name(statement: str) -> str:
    found = _INDEX_NAME.match(statement.strip())
    if found is None:
        raise ValueError(f"not an index: {statement!r}")
    return found[1]


@dataclass(frozen=True, slots=True)
class Sql:
    """One statement of a :data:`Tx`; it receives the statement's rows (tuples), or with
    ``count`` how many rows it inserted, updated or deleted."""

    text: str
    params: tuple[Any, ...] = ()
    count: bool = False


Tx = Generator[Sql, Any, _R]
"""A transaction's work: yields statements, receives their rows, returns its result."""


def statements(items: Sequence[tuple[str, Sequence[Any]]], *, count: bool = False) -> Tx[list[Any]]:
    """A transaction of plain statements (``?``/``{t}`` SQL and their parameters), run in
    order: what each received, its rows or, with ``count``, how many rows it touched.
    ``await gateway.run(statements([...]))`` is the whole transaction."""
    received: list[Any] = []
    for text, params in items:
        received.append((yield Sql(text, tuple(params), count)))
    return received


def dialected(tx: Tx[_R], sql: Callable[[str], str]) -> Tx[_R]:
    """``tx`` with each statement's text rewritten by ``sql`` (:func:`dialect_sql`);
    what it receives, and the errors thrown into it, pass through."""
    reply: Any = None
    error: StoreError | None = None
    while True:
        try:
            step = tx.send(reply) if error is None else tx.throw(error)
        except StopIteration as done:
            result: _R = done.value
            return result
        error = None
        if isinstance(step, Sql):
            step = Sql(sql(step.text), step.params, step.count)
        try:
            reply = yield step
        except StoreError as exc:
            error = exc


def each_in_a_savepoint(txs: Sequence[Tx[Any]]) -> Tx[list[tuple[bool, Any]]]:
    """``txs`` one after the other in one transaction, each in a savepoint of its own: a
    database error is thrown into the transaction whose statement failed (it may catch
    it); one that raises is rolled back alone, and its outcome is ``(False, exception)``;
    the others' are ``(True, result)``. How the store's writer commits the gateway
    transactions queued together (one commit for all)."""
    outcomes: list[tuple[bool, Any]] = []
    for tx in txs:
        yield Sql("SAVEPOINT gateway_tx")
        reply: Any = None
        error: StoreError | None = None
        try:
            while True:
                try:
                    step = tx.send(reply) if error is None else tx.throw(error)
                except StopIteration as done:
                    outcome: tuple[bool, Any] = (True, done.value)
                    break
                error = None
                try:
                    reply = yield step
                except StoreError as exc:
                    error = exc
        except Exception as exc:  # the transaction's own failure, delivered to its caller
            outcome = (False, exc)
            yield Sql("ROLLBACK TO SAVEPOINT gateway_tx")
        yield Sql("RELEASE SAVEPOINT gateway_tx")
        outcomes.append(outcome)
    return outcomes


def rows_as(kind: Callable[..., _R], text: str, *params: object) -> Generator[Sql, Any, list[_R]]:
    """A step of a :data:`Tx` (``rows = yield from rows_as(Kind, "SELECT ...", a, b)``):
    the statement's rows, each made into ``kind`` (a Struct or dataclass whose fields are in
    ``SELECT`` or ``RETURNING`` order)."""
    rows = yield Sql(text, params)
    return [kind(*row) for row in rows]


def row_as(kind: Callable[..., _R], text: str, *params: object) -> Generator[Sql, Any, _R | None]:
    """:func:`rows_as`, the first row only (``None`` if there is none)."""
    rows = yield Sql(text, params)
    for row in rows:
        return kind(*row)
    return None


class Transaction(Protocol):
    """Statements in one write transaction (see :meth:`Gateway.transaction`)."""

    async def fetch(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """The rows one statement returns (a ``SELECT`` or a ``RETURNING``)."""
        ...

    async def fetch_as(self, kind: Callable[..., _R], sql: str, *params: object) -> list[_R]:
        """The rows one statement returns, each made into ``kind`` (fields in ``SELECT``
        order)."""
        ...

    async def execute(self, sql: str, *params: object) -> int:
        """Run one statement; how many rows it inserted, updated or deleted."""
        ...

    async def executemany(self, sql: str, params: Sequence[Sequence[object]]) -> None:
        """Run one statement once per parameter tuple."""
        ...

    async def insert(self, row: FeatureRow) -> int:
        """Insert a row given by column name; how many rows were inserted (0: a trigger
        dropped it, the wedding is erased)."""
        ...

    async def run(self, tx: Tx[_R]) -> _R:
        """Run ``tx``'s statements in this transaction (a feature's steps, such as the
        events feature's ``store_events``); its result. A database error is raised here,
        not thrown into ``tx``."""
        ...


HeldRun = Callable[[Tx[Any]], Awaitable[Any]]
"""How a held transaction runs statements: a :data:`Tx` (in the store's dialect already)
on the held connection, in one hop; its result, a database error raised as
:class:`StoreError`."""


class Backend(Protocol):
    """What a store offers the gateway (implemented in ``storage/`` only)."""

    dialect: Dialect
    prefix: str

    async def fetch(self, sql: str, *params: object) -> list[tuple[Any, ...]]: ...

    def transaction(self) -> AbstractAsyncContextManager[HeldRun]: ...

    async def run(self, tx: Tx[_R], sql: Callable[[str], str]) -> _R: ...


def insert_sql(row: FeatureRow) -> str:
    """``INSERT`` of ``row`` with ``?`` placeholders and ``{t}`` (columns checked by
    :func:`storage.base.check_feature_rows`)."""
    columns = ", ".join(column for column, _ in row.values)
    marks = ", ".join("?" * len(row.values))
    keep = " ON CONFLICT DO NOTHING" if row.if_absent else ""
    return f"INSERT INTO {{t}}{row.table} ({columns}) VALUES ({marks}){keep}"  # noqa: S608


class Gateway:
    """SQL on a feature's tables in one store (see the module docstring)."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.dialect: Dialect = backend.dialect
        self._prefix = backend.prefix

    @classmethod
    def of(cls, store: DocumentStore) -> Gateway:
        """The gateway of ``store``; :class:`StoreError` if it keeps no SQL tables."""
        backend = getattr(store, "sql_backend", None)
        if backend is None:
            raise StoreError(f"{type(store).__name__} keeps no feature tables")
        made: Backend = backend()
        return cls(made)

    def sql(self, text: str) -> str:
        """``text`` in this store's dialect (:func:`dialect_sql`)."""
        return dialect_sql(text, self.dialect, self._prefix)

    def by_dialect(self, *, sqlite: _R, postgres: _R) -> _R:
        """The one of two that this store's dialect takes: SQL that differs by backend (a
        full-text search) is chosen here, in a feature's ``tables.py``, never by testing
        the dialect in its rules."""
        return sqlite if self.dialect == "sqlite" else postgres

    def contains(self, column: str) -> str:
        """A condition true where ``column`` holds the next ``?`` argument as is (exact,
        case and all; ``LIKE`` would fold ASCII case on SQLite)."""
        return f"instr({column}, ?) > 0" if self.dialect == "sqlite" else f"strpos({column}, ?) > 0"

    async def fetch(self, text: str, *params: object) -> list[tuple[Any, ...]]:
        """Rows of one query (committed data), as tuples in ``SELECT`` order."""
        return await self._backend.fetch(self.sql(text), *params)

    async def fetch_as(self, kind: Callable[..., _R], text: str, *params: object) -> list[_R]:
        """Rows of one query, each made into ``kind`` (a Struct or dataclass whose fields
        are in ``SELECT`` order)."""
        return [kind(*row) for row in await self.fetch(text, *params)]

    async def fetch_one_as(self, kind: Callable[..., _R], text: str, *params: object) -> _R | None:
        """The first row of one query made into ``kind`` (:meth:`fetch_as`); ``None`` if
        it returns none."""
        for row in await self.fetch(text, *params):
            return kind(*row)
        return None

    async def run(self, tx: Tx[_R]) -> _R:
        """Run a transaction written as a generator (see the module docstring); its
        result once committed."""
        return await self._backend.run(tx, self.sql)

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """Deprecated (a :class:`DeprecationWarning`; it goes in the next release): write
        the transaction as a generator and ``await gateway.run(tx)``.

        One write transaction whose statements the caller sends one at a time; it commits
        when the block ends, and rolls back (and the error propagates) if it raises.
        Database errors become :class:`StoreError`. It holds the store's one writer while
        its caller awaits between statements: every room's commit waits for it."""
        warnings.warn(
            "Gateway.transaction() is deprecated and goes in the next release: write the"
            " transaction as a generator of Sql statements and await Gateway.run(tx)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self._held()

    @asynccontextmanager
    async def _held(self) -> AsyncIterator[Transaction]:
        async with self._backend.transaction() as run:
            yield _Dialected(run, self)


class _Dialected:
    """A held transaction taking ``?``/``{t}`` SQL: each call is one step (:func:`statements`)
    run on the held connection by the backend's ``run``."""

    def __init__(self, run: HeldRun, gateway: Gateway) -> None:
        self._run = run
        self._gateway = gateway

    async def _one(self, sql: str, params: Sequence[object], count: bool) -> Any:
        [received] = await self._run(statements([(self._gateway.sql(sql), params)], count=count))
        return received

    async def fetch(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = await self._one(sql, params, False)
        return rows

    async def fetch_as(self, kind: Callable[..., _R], sql: str, *params: object) -> list[_R]:
        return [kind(*row) for row in await self.fetch(sql, *params)]

    async def execute(self, sql: str, *params: object) -> int:
        return int(await self._one(sql, params, True))

    async def executemany(self, sql: str, params: Sequence[Sequence[object]]) -> None:
        if params:
            text = self._gateway.sql(sql)
            await self._run(statements([(text, each) for each in params]))

    async def insert(self, row: FeatureRow) -> int:
        return await self.execute(insert_sql(row), *(value for _, value in row.values))

    async def run(self, tx: Tx[_R]) -> _R:
        reply: Any = None
        while True:
            try:
                step = tx.send(reply)
            except StopIteration as done:
                result: _R = done.value
                return result
            if step.count:
                reply = await self.execute(step.text, *step.params)
            else:
                reply = await self.fetch(step.text, *step.params)
