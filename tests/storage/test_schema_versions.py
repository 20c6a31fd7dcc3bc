"""Numbered migrations with a schema-version row, on every backend: a fresh store records
version 1 of its own schema and creates no feature's tables until the feature installs
them; a migration runs once, in one transaction with its version row; a store written by
a newer release is refused; a store written before versions (the legacy fixtures) is
recorded at version 1 with nothing else changed."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from crdt_server.features.versions.tables import VERSIONS
from crdt_server.storage import (
    DocumentStore,
    Gateway,
    Migration,
    PostgresStore,
    SqliteStore,
    StoreError,
    Table,
    schema_of,
)
from tests.storage.conftest import OpenStore
from tests.storage.test_legacy_fixtures import FIXTURES, _psql

NOTES = Table(
    "notes_v",
    "(wedding {text} NOT NULL, id {text} NOT NULL, body {text} NOT NULL,"
    " PRIMARY KEY (wedding, id))",
)
BAD = Migration(2, ("THIS IS NOT SQL",), ("THIS IS NOT SQL",))


async def _versions(store: DocumentStore) -> dict[str, int]:
    rows = await Gateway.of(store).fetch("SELECT name, version FROM {t}schema_versions")
    return {str(name): int(version) for name, version in rows}


async def _has_table(store: DocumentStore, table: str) -> bool:
    gateway = Gateway.of(store)
    if gateway.dialect == "sqlite":
        rows = await gateway.fetch("SELECT 1 FROM sqlite_master WHERE name = ?", table)
        return bool(rows)
    rows = await gateway.fetch("SELECT to_regclass(?) IS NOT NULL", gateway.sql("{t}" + table))
    return bool(rows[0][0])


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_fresh_store_records_its_version_and_makes_no_feature_table(
    store: DocumentStore,
) -> None:
    assert await _versions(store) == {"store": 1}
    for table in ("versions", "notes_v", "inbound_sources", "threads", "webhook_endpoints"):
        assert not await _has_table(store, table)
    await store.install(VERSIONS)
    assert await _has_table(store, "versions")
    assert await _versions(store) == {"store": 1, "versions": 1}


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_migration_runs_once_with_its_version_row(open_store: OpenStore) -> None:
    first = await open_store()
    await first.install(schema_of("notes", NOTES))
    add = Migration(
        2,
        ("INSERT INTO notes_v VALUES ('w1', 'seeded', 'by migration 2')",),
        ("INSERT INTO {s}.notes_v VALUES ('w1', 'seeded', 'by migration 2')",),
    )
    second = await open_store()
    await second.install(schema_of("notes", NOTES, migrations=(add,)))
    third = await open_store()
    await third.install(schema_of("notes", NOTES, migrations=(add,)))
    assert await _versions(third) == {"store": 1, "notes": 2}
    assert await Gateway.of(third).fetch("SELECT id FROM {t}notes_v") == [("seeded",)]


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_failing_migration_changes_nothing(open_store: OpenStore) -> None:
    store = await open_store()
    with pytest.raises(StoreError):
        await store.install(schema_of("notes", NOTES, migrations=(BAD,)))
    assert not await _has_table(store, "notes_v")  # version 1's DDL rolled back with it
    assert await _versions(store) == {"store": 1}


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_schema_newer_than_the_code_is_refused(open_store: OpenStore) -> None:
    store = await open_store()
    fine = Migration(2, ("SELECT 1",), ("SELECT 1",))
    await store.install(schema_of("notes", NOTES, migrations=(fine,)))
    older = await open_store()
    with pytest.raises(StoreError, match="version 2"):
        await older.install(schema_of("notes", NOTES))


def _sqlite_objects(path: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
        return [(str(t), str(n), str(s)) for t, n, s in rows]
    finally:
        conn.close()


def _sqlite_columns(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        names = [str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master")]
        return {n: list(conn.execute(f'PRAGMA table_xinfo("{n}")')) for n in names}
    finally:
        conn.close()


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_sqlite_file_written_before_versions_is_recorded_and_left_as_it_was(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.sqlite3"
    shutil.copyfile(FIXTURES / "store.sqlite3", path)
    objects, columns = _sqlite_objects(path), _sqlite_columns(path)
    store = SqliteStore(path)
    await store.open()
    try:
        assert await _versions(store) == {"store": 1}
    finally:
        await store.close()
    after = [o for o in _sqlite_objects(path) if o[1] != "schema_versions"]
    assert after == objects
    assert {n: c for n, c in _sqlite_columns(path).items() if n != "schema_versions"} == columns


def _pg_catalog(dsn: str) -> str:
    """Every table, column, index, trigger and function of the ``legacy`` schema."""
    return subprocess.run(
        ["pg_dump", "--schema-only", "--no-owner", "--schema", "legacy", dsn],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


def _without_versions(dump: str) -> str:
    """The dump without the schema_versions table and the lines that vary per dump."""
    blocks = dump.split("\n\n")
    return "\n\n".join(
        b
        for b in blocks
        if "schema_versions" not in b and not b.startswith(("\\restrict", "\\unrestrict"))
    )


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_postgres_schema_written_before_versions_is_recorded_and_left_as_it_was(
    scratch_postgres: str,
) -> None:
    _psql(scratch_postgres, "-f", str(FIXTURES / "postgres.sql"))
    before = _pg_catalog(scratch_postgres)
    store = PostgresStore(scratch_postgres, schema="legacy")
    await store.open()
    try:
        assert await _versions(store) == {"store": 1}
    finally:
        await store.close()
    assert "schema_versions" in _pg_catalog(scratch_postgres)
    assert _without_versions(_pg_catalog(scratch_postgres)) == _without_versions(before)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_the_features_declare_the_same_sqlite_tables_as_the_earlier_release(
    tmp_path: Path,
) -> None:
    """Each table's DDL, declared once for both backends, is what the earlier release
    wrote, to the byte: a backup of it passes ``crdt-server restore``'s object check."""
    from crdt_server.features.integrations.tables import INTEGRATIONS
    from crdt_server.features.notifications.tables import SCHEMA as NOTIFICATIONS
    from crdt_server.features.people.tables import SCHEMA as PEOPLE
    from crdt_server.features.threads.tables import SCHEMA as THREADS
    from crdt_server.features.webhooks.tables import SCHEMA as WEBHOOKS

    store = SqliteStore(tmp_path / "fresh.sqlite3")
    await store.open()
    try:
        for schema in (VERSIONS, INTEGRATIONS, PEOPLE, NOTIFICATIONS, THREADS, WEBHOOKS):
            await store.install(schema)
    finally:
        await store.close()
    fresh = [o for o in _sqlite_objects(tmp_path / "fresh.sqlite3") if o[1] != "schema_versions"]
    assert fresh == _sqlite_objects(FIXTURES / "store.sqlite3")


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_erasure_empties_the_tables_of_a_feature_left_out_this_time(
    open_store: OpenStore,
) -> None:
    """A feature installed once and left out later keeps its tables (nothing is dropped),
    and erasing a wedding still empties them: the store knows them from its versions."""
    first = await open_store()
    await first.install(schema_of("notes", NOTES))
    async with Gateway.of(first).transaction() as tx:
        await tx.execute("INSERT INTO {t}notes_v VALUES (?, ?, ?)", "w1", "a", "private")
        await tx.execute("INSERT INTO {t}notes_v VALUES (?, ?, ?)", "w2", "b", "kept")
    await first.close()
    later = await open_store()  # the notes feature is not installed this time
    assert await _has_table(later, "notes_v")
    await later.erase_wedding("w1")
    assert await Gateway.of(later).fetch("SELECT id FROM {t}notes_v") == [("b",)]
