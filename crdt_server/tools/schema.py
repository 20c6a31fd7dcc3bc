"""What a SQLite store may hold: the tables, indexes and triggers the server itself creates.

A backup is a file from elsewhere: beside the rows it may carry a trigger that runs on every
insert, a view, or a table the server never made. The server's own objects are listed from
a fresh store in a scratch directory with every feature's schema installed (the same DDL the
server runs), so the list cannot drift from the code. Tables may lack columns (a file made
by an older release: the server adds them at start); everything else must be the same
object with the same SQL. The ``schema_versions`` rows must name schemas this release
declares, at versions it knows, with the wedding tables it declares.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crdt_server.storage import DocumentStore, Gateway, Schema, SqliteStore, StoreError
from crdt_server.storage.base import recorded_tables, recorded_version

__all__ = [
    "ServerSchema",
    "foreign_objects",
    "install_schemas",
    "object_problems",
    "refuse_unreadable_versions",
    "server_objects",
    "version_problems",
]

Objects = dict[tuple[str, str], str]
"""(type, name) -> SQL text (normalised) of the objects in a SQLite file."""


def _normal(sql: str | None) -> str:
    return " ".join((sql or "").split())


def _objects(conn: sqlite3.Connection) -> Objects:
    rows = conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
    return {(str(t), str(n)): _normal(s) for t, n, s in rows}


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(r[1]) for r in conn.execute(f'PRAGMA table_xinfo("{table}")')}


@dataclass(frozen=True, slots=True)
class ServerSchema:
    """What a store this release made holds: its objects, each table's columns, and each
    schema's ``schema_versions`` row (version, wedding tables)."""

    objects: Objects
    columns: dict[str, set[str]]
    versions: dict[str, tuple[int, frozenset[str]]]


async def install_schemas(path: Path, schemas: Sequence[Schema]) -> None:
    """Open the SQLite store at ``path`` (creating or bringing the store's own schema to
    this release's version) and install every one of ``schemas`` (each brought to its
    version): what a server starting on that file does to it."""
    store = SqliteStore(path)
    await store.open()
    try:
        for schema in schemas:
            await store.install(schema)
    finally:
        await store.close()


def server_objects(schemas: Sequence[Schema]) -> ServerSchema:
    """The objects (and each table's columns, and each schema's version row) of a store the
    server made, with the features' ``schemas`` (``crdt_server.app.FEATURES``'; the tools
    import no feature)."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "crdt.sqlite3"
        asyncio.run(install_schemas(path, schemas))
        conn = sqlite3.connect(path)
        try:
            objects = _objects(conn)
            columns = {name: _columns(conn, name) for kind, name in objects if kind == "table"}
            # A schema's tables under the names its migrations gave up may be listed too:
            # a backup from before the rename, which its migration brings to the new ones.
            renamed = {schema.name: frozenset(schema.renamed_from) for schema in schemas}
            versions = {
                str(name): (
                    int(version),
                    frozenset(recorded_tables(str(tables))) | renamed.get(str(name), frozenset()),
                )
                for name, version, tables in conn.execute(
                    "SELECT name, version, wedding_tables FROM schema_versions"
                )
            }
        finally:
            conn.close()
    return ServerSchema(objects, columns, versions)


def foreign_objects(conn: sqlite3.Connection, expected: ServerSchema) -> list[str]:
    """What ``conn``'s file holds that the server would not have created, one line each."""
    objects, columns = expected.objects, expected.columns
    found: list[str] = []
    for (kind, name), sql in sorted(_objects(conn).items()):
        if kind == "table" and name.startswith("sqlite_stat"):
            continue  # ANALYZE's statistics: SQLite's own, made by PRAGMA optimize
        if (kind, name) not in objects:
            found.append(f"{kind} {name!r} is not one the server creates")
        elif kind == "table":
            extra = _columns(conn, name) - columns[name]
            if extra:
                found.append(f"table {name!r} has columns the server never made: {sorted(extra)}")
        elif sql != objects[(kind, name)]:
            found.append(f"{kind} {name!r} differs from the server's")
    return found


def version_problems(conn: sqlite3.Connection, expected: ServerSchema) -> list[str]:
    """What ``conn``'s ``schema_versions`` records that this release cannot take, one line
    each: a schema it does not declare, a version that is not one or is newer than the
    code (a newer release wrote the file), a wedding table the schema does not declare
    (erasing a wedding empties every table listed there: a store's ``tombstones`` listed
    would bring a deleted wedding back). A file from before schema versions has none."""
    if ("table", "schema_versions") not in _objects(conn):
        return []
    found: list[str] = []
    rows = conn.execute("SELECT name, version, wedding_tables FROM schema_versions").fetchall()
    for name, version, tables in sorted(rows, key=lambda row: str(row[0])):
        declared = expected.versions.get(str(name))
        if declared is None:
            found.append(f"schema {str(name)!r} is not one this release declares")
            continue
        newest, wedding_tables = declared
        try:
            recorded_version(str(name), version, newest)
        except StoreError as exc:
            found.append(str(exc))
        listed = [t for t in str(tables).split(",") if t]
        for table in listed:
            if table not in wedding_tables:
                found.append(f"schema {str(name)!r} lists {table!r}, not one of its wedding tables")
    return found


def object_problems(path: Path, schemas: Sequence[Schema]) -> list[str]:
    """What the SQLite file at ``path`` holds that this release's ``schemas`` did not make,
    or records at versions it cannot take (:func:`version_problems`,
    :func:`foreign_objects`), one line each; opened read-only."""
    expected = server_objects(schemas)
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    found: list[str] = []
    try:
        found += version_problems(conn, expected)
        found += foreign_objects(conn, expected)
    except sqlite3.DatabaseError as exc:
        found.append(f"cannot list the store's objects: {exc}")
    finally:
        conn.close()
    return found


async def refuse_unreadable_versions(store: DocumentStore, schemas: Sequence[Schema]) -> None:
    """Raise :class:`StoreError` naming the first ``schema_versions`` row of the open
    ``store`` this release cannot take: a version that is not one (of any schema), or one
    newer than ``schemas`` (this release's) declare, written by a newer release. Opening a
    store checks its own row; the features' rows are otherwise checked only when each
    feature installs its schema, deep in a server's start or a command's work."""
    declared = {schema.name: schema.version for schema in schemas}
    rows = await Gateway.of(store).fetch("SELECT name, version FROM {t}schema_versions")
    for name, version in sorted(rows, key=lambda row: str(row[0])):
        # A schema this release does not declare (a feature left out) is not refused: only
        # a version that is none.
        recorded_version(str(name), version, declared.get(str(name), sys.maxsize))
