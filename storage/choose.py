"""Which store a deployment uses: the one place outside the two backends that names them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from .base import Store
from .sqlite import SqliteStore

__all__ = ["PostgresTimeouts", "store_for"]


@dataclass(frozen=True, slots=True)
class PostgresTimeouts:
    """The PostgreSQL store's timeouts in seconds (:class:`~storage.postgres.PostgresStore`)."""

    lock: float = 5.0
    answer: float = 6.0
    idle: float = 2.0

    @classmethod
    def for_commands(cls, lock: float) -> PostgresTimeouts:
        """An operator's command's: it may move a whole wedding in one transaction, so it
        gets the servers' lock timeout and far longer to do its work than they do."""
        return cls(lock=lock, answer=3600.0, idle=60.0)


def store_for(
    database_url: str | None,
    sqlite_path: str | os.PathLike[str],
    *,
    busy_timeout: float = 5.0,
    synchronous: Literal["full", "normal"] = "full",
    read_connections: int = 0,
    commits: Literal["auto", "loop", "thread"] = "auto",
    postgres_timeouts: PostgresTimeouts | None = None,
) -> Store:
    """PostgreSQL when ``database_url`` is set, else the embedded SQLite file (unopened);
    ``read_connections``: the SQLite store's reads at once (0: its default); ``commits``:
    where it commits (:class:`~storage.sqlite.SqliteStore`); ``postgres_timeouts``: the
    PostgreSQL store's (:class:`~storage.postgres.PostgresStore`), its defaults if none."""
    if database_url:
        from .postgres import PostgresStore  # asyncpg only where PostgreSQL is used

        t = postgres_timeouts or PostgresTimeouts()
        return PostgresStore(
            database_url,
            lock_timeout=t.lock,
            answer_timeout=t.answer,
            idle_timeout=t.idle,
        )
    return SqliteStore(
        sqlite_path,
        busy_timeout=busy_timeout,
        synchronous=synchronous,
        read_connections=read_connections,
        commits=commits,
    )
