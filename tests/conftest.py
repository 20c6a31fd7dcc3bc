from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from tests.server import ServerProcess

POSTGRES = os.environ.get("CRDT_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """A real server (uvicorn, SQLite under tmp_path) on an ephemeral port."""
    async with ServerProcess(tmp_path / "data") as proc:
        yield proc


@pytest.fixture
def scratch_postgres() -> Iterator[str]:
    """A new PostgreSQL database on the local server, dropped afterwards."""
    name = f"ops_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        try:
            conn = await asyncpg.connect(POSTGRES, timeout=5)
        except (OSError, asyncpg.PostgresError) as exc:
            if os.environ.get("CI"):
                raise
            pytest.skip(f"PostgreSQL at {POSTGRES} is unreachable: {exc!r}")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f"CREATE DATABASE {name}"))
    try:
        yield POSTGRES.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest_asyncio.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    name = f"crdt_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield POSTGRES.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin = await asyncpg.connect(POSTGRES)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


SERVICE_FIXTURES = frozenset(
    {"scratch_postgres", "postgres_url", "postgres_store", "redis_server", "cluster"}
)
"""Fixtures that talk to the local PostgreSQL or start a Redis server."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``services`` every test that needs the local Redis or PostgreSQL (the cluster
    tests, PostgreSQL fixtures, tests parametrized on the PostgreSQL store), so that
    ``scripts/test --unit`` can leave them out on a machine without them."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if (
            "cluster" in item.path.parts
            or fixtures & SERVICE_FIXTURES
            or "postgres" in item.name.lower()
        ):
            item.add_marker(pytest.mark.services)
