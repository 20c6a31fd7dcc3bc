"""Stores written by an earlier release (``tests/fixtures/legacy/``, made by
``tests/make_legacy_fixtures.py`` on ``main`` at 7ae9b59) open with the current code and
serve every row as they did then: documents, history, events, idempotency keys, tickets,
revocations, tombstones, threads (with their search index), webhook endpoints and
deliveries, inbound deliveries seen, calendar tokens and feed items, restore points."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from crdt_server.app import FEATURES
from crdt_server.features import install_tables
from crdt_server.storage import DocumentStore, Gateway, PostgresStore, SqliteStore
from tests.legacy_stores import served

FIXTURES = Path(__file__).parent.parent / "fixtures" / "legacy"


def _expected(name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return found


async def _serves_as_before(
    store: DocumentStore, expected: dict[str, Any], *, again: bool = False
) -> None:
    """``again``: the store was opened and served once already (its one ticket is taken),
    and this release's features installed their schemas on it: the member directory and
    the inbox, features of their own since, find their tables there (the threads schema
    made them), record their version rows and rename them (version 2), and the directory
    gains its members' ``last_seen`` (version 3) and what each vendor reads of the guest list
    (version 4: none of this store's members is a vendor)."""
    answer = dict(expected["served"])
    if again:
        answer["ticket"] = None
    await store.open()
    try:
        if again:
            await install_tables(store, FEATURES)
            versions = await Gateway.of(store).fetch("SELECT name, version FROM {t}schema_versions")
            expected_versions = {
                "people": 4,
                "notifications": 2,
                "threads": 1,
                "scheduler": 1,
                "webhooks": 3,
            }
            assert expected_versions.items() <= dict(versions).items()
            # version 3 of the member directory: when each member was last seen, unknown so far
            seen = await Gateway.of(store).fetch("SELECT last_seen FROM {t}members")
            assert seen and all(row[0] is None for row in seen)
            fields = await Gateway.of(store).fetch("SELECT guest_fields FROM {t}members")
            assert fields and all(row[0] is None for row in fields)
        assert await served(store, expected["facts"]) == answer
    finally:
        await store.close()


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_sqlite_file_of_the_earlier_release_serves_every_row_as_before(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.sqlite3"
    shutil.copyfile(FIXTURES / "store.sqlite3", path)
    await _serves_as_before(SqliteStore(path), _expected("sqlite"))
    # and again, once this release has opened (and migrated) it
    await _serves_as_before(SqliteStore(path), _expected("sqlite"), again=True)


def _psql(dsn: str, *args: str) -> str:
    return subprocess.run(
        ["psql", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-q", *args, dsn],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_postgres_dump_of_the_earlier_release_serves_every_row_as_before(
    scratch_postgres: str,
) -> None:
    _psql(scratch_postgres, "-f", str(FIXTURES / "postgres.sql"))
    expected = _expected("postgres")
    await _serves_as_before(PostgresStore(scratch_postgres, schema="legacy"), expected)
    await _serves_as_before(PostgresStore(scratch_postgres, schema="legacy"), expected, again=True)
