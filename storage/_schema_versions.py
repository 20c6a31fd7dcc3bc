"""Schema versions, brought up to date the same way on both backends (see
:class:`storage.base.Schema`): one gateway transaction, run in a transaction of its own
(opening the store, installing a feature's tables)."""

from __future__ import annotations

from collections.abc import Sequence

from .base import EVENTS_HANDED_OVER, Migration, recorded_version
from .gateway import Dialect, Sql, Tx, dialect_sql

__all__ = ["STORE_MIGRATIONS", "upgrading"]

STORE_MIGRATIONS: tuple[Migration, ...] = (EVENTS_HANDED_OVER,)
"""The store's own numbered migrations (versions 2, 3...); version 1 is each backend's
``SCHEMA``, as the releases before schema versions left it (with the events' tables)."""


def upgrading(
    name: str,
    first: Sequence[str],
    migrations: Sequence[tuple[int, Sequence[str]]],
    wedding_tables: Sequence[str] = (),
    *,
    dialect: Dialect,
    versions: str,
    s: str = "",
    added: Tx[None] | None = None,
) -> Tx[None]:
    """In the caller's transaction: bring schema ``name`` to its newest version. With no
    version recorded, ``first`` (version 1, ``IF NOT EXISTS``: what a release before
    versions made is kept as it is) runs, then ``added`` (columns a store made before them
    lacks), and version 1 is recorded; then each migration ``(version, statements)`` above
    the recorded version runs and is recorded. A version newer than this code knows is
    refused (a newer release wrote the store). ``versions`` creates the versions table;
    on PostgreSQL ``s`` is the quoted schema, ``{s}`` in the DDL (each statement sent as
    it is, several in one text allowed there)."""

    def ddl(statement: str) -> Sql:
        return Sql(statement.format(s=s) if s else statement, count=True)

    def sql(text: str, *params: object) -> Sql:
        return Sql(dialect_sql(text, dialect, f"{s}." if s else ""), params)

    yield ddl(versions)
    rows = yield sql("SELECT version FROM {t}schema_versions WHERE name = ?", name)
    newest = max((number for number, _ in migrations), default=1)
    if rows:
        version = recorded_version(name, rows[0][0], newest)
    else:
        for statement in first:
            yield ddl(statement)
        if added is not None:
            yield from added
        version = 1
        yield sql("INSERT INTO {t}schema_versions (name, version) VALUES (?, 1)", name)
    for number, statements in migrations:
        if number > version:
            for statement in statements:
                yield ddl(statement)
            yield sql("UPDATE {t}schema_versions SET version = ? WHERE name = ?", number, name)
            version = number
    if wedding_tables:
        tables = ",".join(wedding_tables)
        yield sql("UPDATE {t}schema_versions SET wedding_tables = ? WHERE name = ?", tables, name)
