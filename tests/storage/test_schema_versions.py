"""Numbered migrations with a schema-version row, on every backend: a fresh store records
its own schema's version and creates no feature's tables until the feature installs them
(the events' tables included: the events feature's since the store's version 2); a
migration runs once, in one transaction with its version row; a store written by a newer
release is refused; a store written before versions (the legacy fixtures) is recorded, its
events' tables handed to the events feature, with nothing else changed."""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
import subprocess
from pathlib import Path

import asyncpg
import pytest

from crdt_server.features.versions.tables import VERSIONS
from crdt_server.storage import (
    DocumentStore,
    Gateway,
    Migration,
    PostgresStore,
    Schema,
    SqliteStore,
    StoreError,
    Table,
    schema_of,
)
from crdt_server.storage.gateway import statements
from tests.storage.conftest import EVENTS, OpenStore, StoreFactory
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


async def _wedding_tables(store: DocumentStore, name: str) -> str:
    rows = await Gateway.of(store).fetch(
        "SELECT wedding_tables FROM {t}schema_versions WHERE name = ?", name
    )
    return str(rows[0][0])


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
    store_factory: StoreFactory,
) -> None:
    store = store_factory()  # not the fixture's: that one has the events' tables installed
    await store.open()
    try:
        assert await _versions(store) == {"store": 2}
        for table in (
            *("versions", "notes_v", "inbound_sources", "threads", "webhook_endpoints"),
            *("events", "event_counters", "idempotency", "tickets"),
        ):
            assert not await _has_table(store, table)
        await store.install(VERSIONS)
        assert await _has_table(store, "versions")
        assert await _versions(store) == {"store": 2, "versions": 2}
        await store.install(EVENTS)
        assert await _versions(store) == {"store": 2, "versions": 2, "events": 3}
        assert (
            await _wedding_tables(store, "events") == "events,event_counters,idempotency,event_keys"
        )
    finally:
        await store.close()


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
    assert await _versions(third) == {"store": 2, "events": 3, "notes": 2}
    assert await Gateway.of(third).fetch("SELECT id FROM {t}notes_v") == [("seeded",)]


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_failing_migration_changes_nothing(open_store: OpenStore) -> None:
    store = await open_store()
    with pytest.raises(StoreError):
        await store.install(schema_of("notes", NOTES, migrations=(BAD,)))
    assert not await _has_table(store, "notes_v")  # version 1's DDL rolled back with it
    assert await _versions(store) == {"store": 2, "events": 3}


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
        # Its events' tables are the events feature's now, at that feature's version 1
        # (its version 2 makes them where they are missing), erased with their wedding.
        assert await _versions(store) == {"store": 2, "events": 1}
        assert await _wedding_tables(store, "events") == "events,event_counters,idempotency"
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
        assert await _versions(store) == {"store": 2, "events": 1}
        assert await _wedding_tables(store, "events") == "events,event_counters,idempotency"
    finally:
        await store.close()
    assert "schema_versions" in _pg_catalog(scratch_postgres)
    assert _without_versions(_pg_catalog(scratch_postgres)) == _without_versions(before)


def _release_schemas() -> tuple[Schema, ...]:
    from crdt_server.features.events.tables import SCHEMA as EVENTS
    from crdt_server.features.integrations.tables import INTEGRATIONS
    from crdt_server.features.notifications.tables import SCHEMA as NOTIFICATIONS
    from crdt_server.features.people.tables import SCHEMA as PEOPLE
    from crdt_server.features.threads.tables import SCHEMA as THREADS
    from crdt_server.features.webhooks.tables import SCHEMA as WEBHOOKS

    return (EVENTS, VERSIONS, INTEGRATIONS, PEOPLE, NOTIFICATIONS, THREADS, WEBHOOKS)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_the_features_declare_the_same_sqlite_tables_as_the_earlier_release(
    tmp_path: Path,
) -> None:
    """Each table's DDL, declared once for both backends, is at version 1 what the earlier
    release wrote, to the byte; a store of the earlier release, once this release has
    installed its schemas on it (the renames of version 2), holds exactly the objects a
    fresh store of this release holds: a backup of either passes ``crdt-server restore``'s
    object check."""
    first = SqliteStore(tmp_path / "first.sqlite3")
    await first.open()
    try:
        for schema in _release_schemas():
            at_version_one = dataclasses.replace(
                schema, wedding_tables=schema.first_wedding_tables, migrations=()
            )
            # The earlier release's store made the events' tables, which the events
            # feature's version 2 makes now (the same DDL, to the byte); its version 3
            # (the events' keys) came after that release.
            at_version_two = dataclasses.replace(
                schema,
                wedding_tables=tuple(t for t in schema.wedding_tables if t != "event_keys"),
                migrations=schema.migrations[:1],
            )
            await first.install(at_version_two if schema.name == "events" else at_version_one)
    finally:
        await first.close()
    at_one = [o for o in _sqlite_objects(tmp_path / "first.sqlite3") if o[1] != "schema_versions"]
    assert at_one == _sqlite_objects(FIXTURES / "store.sqlite3")

    for name in ("fresh.sqlite3", "legacy.sqlite3"):
        if name == "legacy.sqlite3":
            shutil.copyfile(FIXTURES / "store.sqlite3", tmp_path / name)
        store = SqliteStore(tmp_path / name)
        await store.open()
        try:
            for schema in _release_schemas():
                await store.install(schema)
        finally:
            await store.close()
    fresh = _sqlite_objects(tmp_path / "fresh.sqlite3")
    assert _sqlite_objects(tmp_path / "legacy.sqlite3") == fresh
    names = {name for _, name, _ in fresh}
    assert {"members", "notifications", "notification_outbox", "notifications_sub"} <= names
    assert not {n for n in names if n.startswith(("thread_members", "thread_notif", "thread_out"))}


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_erasure_empties_the_tables_of_a_feature_left_out_this_time(
    open_store: OpenStore,
) -> None:
    """A feature installed once and left out later keeps its tables (nothing is dropped),
    and erasing a wedding still empties them: the store knows them from its versions."""
    first = await open_store()
    await first.install(schema_of("notes", NOTES))
    insert = "INSERT INTO {t}notes_v VALUES (?, ?, ?)"
    await Gateway.of(first).run(
        statements([(insert, ("w1", "a", "private")), (insert, ("w2", "b", "kept"))])
    )
    await first.close()
    later = await open_store()  # the notes feature is not installed this time
    assert await _has_table(later, "notes_v")
    await later.erase_wedding("w1")
    assert await Gateway.of(later).fetch("SELECT id FROM {t}notes_v") == [("b",)]


_RENAMED = {
    "thread_members": "members",
    "thread_notifications": "notifications",
    "thread_outbox": "notification_outbox",
}


async def _pg_objects(dsn: str, schema: str) -> set[tuple[str, str]]:
    """(kind, name) of the relations (tables, indexes, sequences) and triggers of
    ``schema`` that belong to the directory's and the inbox's tables, old names or new."""
    names = (*_RENAMED, *_RENAMED.values())
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT c.relkind::text, c.relname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1"
            " UNION ALL SELECT 'trigger', t.tgname FROM pg_trigger t"
            " JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = $1 AND NOT t.tgisinternal",
            schema,
        )
    finally:
        await conn.close()
    return {(str(k), str(n)) for k, n in rows if str(n).startswith(names)}


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_postgres_schema_of_the_earlier_release_is_renamed_as_a_fresh_one_is_made(
    scratch_postgres: str,
) -> None:
    """The first numbered migration of the people and notifications schemas (version 2)
    on the legacy PostgreSQL dump: the directory's and the inbox's tables, their primary
    keys, indexes, row-id sequences and tombstone triggers take the names a fresh store of
    this release gives them, rows kept (the legacy fixture test reads them back)."""
    _psql(scratch_postgres, "-f", str(FIXTURES / "postgres.sql"))
    conn = await asyncpg.connect(scratch_postgres)
    try:
        await conn.execute("CREATE SCHEMA fresh")
        counts = [
            await conn.fetchval(f"SELECT count(*) FROM legacy.{table}")  # noqa: S608
            for table in _RENAMED
        ]
    finally:
        await conn.close()
    assert all(counts)
    for schema in ("legacy", "fresh"):
        store = PostgresStore(scratch_postgres, schema=schema)
        await store.open()
        try:
            for declared in _release_schemas():
                await store.install(declared)
            if schema == "legacy":
                assert await _versions(store) == {
                    "store": 2,
                    "events": 3,
                    "versions": 2,
                    "integrations": 1,
                    "people": 4,
                    "notifications": 2,
                    "threads": 1,
                    "webhooks": 3,
                }
                gateway = Gateway.of(store)
                after = [
                    (await gateway.fetch(f"SELECT count(*) FROM {{t}}{table}"))[0][0]  # noqa: S608
                    for table in _RENAMED.values()
                ]
                assert after == counts
        finally:
            await store.close()
    migrated = await _pg_objects(scratch_postgres, "legacy")
    assert migrated == await _pg_objects(scratch_postgres, "fresh")
    assert {
        ("r", "members"),
        ("i", "members_pkey"),
        ("trigger", "members_tombstoned"),
        ("r", "notifications"),
        ("i", "notifications_pkey"),
        ("i", "notifications_sub"),
        ("S", "notifications_id_seq"),
        ("trigger", "notifications_tombstoned"),
        ("r", "notification_outbox"),
        ("i", "notification_outbox_pkey"),
        ("S", "notification_outbox_id_seq"),
        ("trigger", "notification_outbox_tombstoned"),
    } == migrated
    # The events' tables, which the earlier release's store made and the events feature
    # makes now: the same columns, types, collations, keys, indexes and triggers.
    legacy_events = await _pg_events_tables(scratch_postgres, "legacy")
    assert legacy_events == await _pg_events_tables(scratch_postgres, "fresh")
    assert ("trigger", "events_tombstoned", "") in legacy_events
    assert ("column", "idempotency.seqs", "ARRAY") in legacy_events


async def _pg_events_tables(dsn: str, schema: str) -> set[tuple[str, str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        columns = await conn.fetch(
            "SELECT table_name || '.' || column_name, data_type || ' ' || is_nullable"
            " || ' ' || coalesce(collation_name, '') || ' ' || ordinal_position"
            " FROM information_schema.columns WHERE table_schema = $1"
            " AND table_name IN ('events', 'event_counters', 'idempotency')",
            schema,
        )
        objects = await conn.fetch(
            "SELECT c.relkind::text, c.relname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1"
            " UNION ALL SELECT 'trigger', t.tgname FROM pg_trigger t"
            " JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = $1 AND NOT t.tgisinternal",
            schema,
        )
    finally:
        await conn.close()
    found = {("column", str(name), str(kind).split()[0]) for name, kind in columns}
    found |= {("column", str(name), str(kind)) for name, kind in columns}
    found |= {
        (str(k), str(n), "")
        for k, n in objects
        if str(n).startswith(("events", "event_counters", "idempotency"))
    }
    return found


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_erasure_in_the_process_that_renamed_a_table_empties_it(
    open_store: OpenStore,
) -> None:
    """A store opened with the directory's table under its old name (recorded so), then
    renamed by this process installing the people schema: erasing a wedding empties the
    table under its new name and names the old one nowhere."""
    from crdt_server.features.people.tables import SCHEMA as PEOPLE

    at_one = dataclasses.replace(PEOPLE, wedding_tables=PEOPLE.first_wedding_tables, migrations=())
    first = await open_store()
    await first.install(at_one)
    insert = (
        "INSERT INTO {t}thread_members (wedding, sub, role, name, unsubscribe,"
        " updated_at) VALUES (?, 'ada', 'planner', 'Ada', 'u', 1)"
    )
    await Gateway.of(first).run(statements([(insert, (wedding,)) for wedding in ("w1", "w2")]))
    await first.close()
    later = await open_store()
    await later.install(PEOPLE)
    await later.erase_wedding("w1")
    gateway = Gateway.of(later)
    assert await gateway.fetch("SELECT wedding FROM {t}members") == [("w2",)]
    assert await gateway.fetch(
        "SELECT wedding_tables FROM {t}schema_versions WHERE name = 'people'"
    ) == [("members",)]
    assert not await _has_table(later, "thread_members")
