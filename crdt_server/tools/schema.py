"""What a SQLite store may hold: the tables, indexes and triggers the server itself creates.

A backup is a file from elsewhere: beside the rows it may carry a trigger that runs on every
insert, a view, or a table the server never made. The server's own objects are listed from
a fresh store in a scratch directory with every feature's schema installed (the same DDL the
server runs), so the list cannot drift from the code. Tables may lack columns (a file made
by an older release: the server adds them at start); everything else must be the same
object with the same SQL.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from collections.abc import Sequence
from pathlib import Path

from crdt_server.storage import Schema, SqliteStore

__all__ = ["foreign_objects", "server_objects"]

Objects = dict[tuple[str, str], str]
"""(type, name) -> SQL text (normalised) of the objects in a SQLite file."""


def _normal(sql: str | None) -> str:
    return " ".join((sql or "").split())


def _objects(conn: sqlite3.Connection) -> Objects:
    rows = conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
    return {(str(t), str(n)): _normal(s) for t, n, s in rows}


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(r[1]) for r in conn.execute(f'PRAGMA table_xinfo("{table}")')}


def server_objects(schemas: Sequence[Schema]) -> tuple[Objects, dict[str, set[str]]]:
    """The objects (and each table's columns) of a store the server made, with the
    features' ``schemas`` (``crdt_server.app.FEATURES``'; the tools import no feature)."""

    async def build(path: Path) -> None:
        store = SqliteStore(path)
        await store.open()
        try:
            for schema in schemas:
                await store.install(schema)
        finally:
            await store.close()

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "crdt.sqlite3"
        asyncio.run(build(path))
        conn = sqlite3.connect(path)
        try:
            objects = _objects(conn)
            columns = {name: _columns(conn, name) for kind, name in objects if kind == "table"}
        finally:
            conn.close()
    return objects, columns


def foreign_objects(
    conn: sqlite3.Connection, expected: tuple[Objects, dict[str, set[str]]]
) -> list[str]:
    """What ``conn``'s file holds that the server would not have created, one line each."""
    objects, columns = expected
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
