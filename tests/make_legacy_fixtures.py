"""Write ``tests/fixtures/legacy/``: stores as a release wrote them, and what they served.

    python -m tests.make_legacy_fixtures

Run once, on the release whose stores later code must keep reading (it was run on ``main``
at commit 7ae9b59, before the storage gateway and numbered migrations): it writes one of
everything (:func:`tests.legacy_stores.fill`) into a fresh SQLite file and a fresh
PostgreSQL schema, saves the file, a plain-SQL dump of the schema (``pg_dump``; loadable
with ``psql`` into an empty database) and what :func:`tests.legacy_stores.served` answered
on each. Running it again on later code makes fixtures of that code instead: do that only
for a new fixture directory, never over these.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from crdt_server.storage import DocumentStore, PostgresStore, SqliteStore
from tests.legacy_stores import fill, served

OUT = Path(__file__).parent / "fixtures" / "legacy"
DSN = os.environ.get("CRDT_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA = "legacy"
"""The schema the dump creates (its name is in the dump)."""


async def _fill(store: DocumentStore) -> dict[str, Any]:
    await store.open()
    try:
        return await fill(store)
    finally:
        await store.close()


async def _served(store: DocumentStore, facts: dict[str, Any]) -> dict[str, Any]:
    """What the store serves, asked after the fixture was saved (a ticket served is gone)."""
    await store.open()
    try:
        return {"facts": facts, "served": await served(store, facts)}
    finally:
        await store.close()


def _output(*command: str) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "store.sqlite3"
        facts = await _fill(SqliteStore(path))
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode = DELETE")  # one file, no -wal beside it
        conn.close()
        shutil.copyfile(path, OUT / "store.sqlite3")
        answer = await _served(SqliteStore(path), facts)
    (OUT / "sqlite.json").write_text(json.dumps(answer, indent=1, ensure_ascii=False) + "\n")

    database = f"legacy_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(DSN)
    await admin.execute(f"CREATE DATABASE {database}")
    try:
        dsn = DSN.rsplit("/", 1)[0] + f"/{database}"
        conn = await asyncpg.connect(dsn)
        await conn.execute(f"CREATE SCHEMA {SCHEMA}")
        await conn.close()
        facts = await _fill(PostgresStore(dsn, schema=SCHEMA))
        dump = _output("pg_dump", "--no-owner", "--no-privileges", "--schema", SCHEMA, dsn)
        (OUT / "postgres.sql").write_text(dump)
        answer = await _served(PostgresStore(dsn, schema=SCHEMA), facts)
        (OUT / "postgres.json").write_text(json.dumps(answer, indent=1, ensure_ascii=False) + "\n")
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {database}")
        await admin.close()
    commit = _output("git", "rev-parse", "HEAD").strip()
    (OUT / "COMMIT").write_text(commit + "\n")
    print(f"wrote {OUT} from {commit}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
