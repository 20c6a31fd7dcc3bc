"""Which store a deployment uses: the one place outside the two backends that names them."""

from __future__ import annotations

import os
from typing import Literal

from .base import Store
from .sqlite import SqliteStore

__all__ = ["store_for"]


def store_for(
    database_url: str | None,
    sqlite_path: str | os.PathLike[str],
    *,
    busy_timeout: float = 5.0,
    synchronous: Literal["full", "normal"] = "full",
    read_connections: int = 0,
    commits: Literal["auto", "loop", "thread"] = "auto",
) -> Store:
    """PostgreSQL when ``database_url`` is set, else the embedded SQLite file (unopened);
    ``read_connections``: the SQLite store's reads at once (0: its default); ``commits``:
    where it commits (:class:`~storage.sqlite.SqliteStore`)."""
    if database_url:
        from .postgres import PostgresStore  # asyncpg only where PostgreSQL is used

        return PostgresStore(database_url)
    return SqliteStore(
        sqlite_path,
        busy_timeout=busy_timeout,
        synchronous=synchronous,
        read_connections=read_connections,
        commits=commits,
    )
