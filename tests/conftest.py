from __future__ import annotations

import asyncio
import functools
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from xdist.scheduler import LoadScopeScheduling

from tests.server import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
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
    ``scripts/test --unit`` can leave them out on a machine without them.

    Then run the ``slow`` tests first (those of a module that shares a module-scoped
    fixture apart, which stay with their module): in the full tier, the longest tests
    start at once on every pytest-xdist worker instead of being left for the end, when
    one worker would run the last of them while the other has nothing left to do."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if (
            "cluster" in item.path.parts
            or fixtures & SERVICE_FIXTURES
            or "postgres" in item.name.lower()
        ):
            item.add_marker(pytest.mark.services)
    items.sort(key=lambda item: not _runs_first(item))


def _runs_first(item: pytest.Item) -> bool:
    return item.get_closest_marker("slow") is not None and not _shares_a_module_fixture(
        item.path.relative_to(ROOT).as_posix()
    )


_MODULE_SCOPE = re.compile(r"""scope=["']module["']""")


@functools.cache
def _shares_a_module_fixture(path: str) -> bool:
    """Whether the test module at ``path`` (from the root) defines a module-scoped fixture:
    one server (or one client, one Chromium) for all its tests."""
    source = ROOT / path
    return source.suffix == ".py" and bool(_MODULE_SCOPE.search(source.read_text()))


class _OneServerPerModule(LoadScopeScheduling):
    """pytest-xdist's ``load`` distribution (tests go one by one to whichever worker is
    free), except that the tests of a module with a module-scoped fixture go to one worker
    together, so that the module starts its server once rather than once per worker."""

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        return path if _shares_a_module_fixture(path) else nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """``-n N`` (``--dist load``, what scripts/test runs) schedules with
    :class:`_OneServerPerModule`; another ``--dist`` asked for is left as it is."""
    if config.getvalue("dist") != "load":
        return None
    return _OneServerPerModule(config, log)  # type: ignore[arg-type]
