"""Backends the storage conformance suite runs against.

To add a backend (e.g. PostgreSQL), implement the ``Backend`` protocol below and add it to
``BACKENDS``; every test in ``test_conformance.py`` then runs against it too.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest
import pytest_asyncio

from storage import DocumentStore, SqliteStore

StoreFactory = Callable[[], DocumentStore]
OpenStore = Callable[[], Awaitable[DocumentStore]]


class Backend(Protocol):
    name: str

    def factory(self, workdir: Path, *, lock_timeout: float = 5.0) -> StoreFactory:
        """A function making new, unopened stores that all share the data kept under
        ``workdir`` (so closing one and opening another is a restart).

        ``lock_timeout`` is how long a write waits for a lock another session holds.
        """
        ...

    def block_writes(self, workdir: Path) -> contextlib.AbstractContextManager[None]:
        """While active, another session holds the write lock of the store's data."""
        ...

    def fail_writes_of(self, workdir: Path, doc: str) -> contextlib.AbstractContextManager[None]:
        """While active, any transaction writing a history row of ``doc`` fails.

        The store must have been opened (schema created) before entering.
        """
        ...


class SqliteBackend:
    name = "sqlite"

    @staticmethod
    def path(workdir: Path) -> Path:
        # A directory that does not exist yet: open() must create it.
        return workdir / "nested" / "store.sqlite3"

    def factory(self, workdir: Path, *, lock_timeout: float = 5.0) -> StoreFactory:
        path = self.path(workdir)
        return lambda: SqliteStore(path, busy_timeout=lock_timeout)

    @contextlib.contextmanager
    def block_writes(self, workdir: Path) -> Iterator[None]:
        conn = sqlite3.connect(self.path(workdir), isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            yield
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    @contextlib.contextmanager
    def fail_writes_of(self, workdir: Path, doc: str) -> Iterator[None]:
        conn = sqlite3.connect(self.path(workdir), isolation_level=None)
        literal = doc.replace("'", "''")
        try:
            conn.execute(
                "CREATE TRIGGER injected_failure BEFORE INSERT ON history"
                f" WHEN NEW.doc = '{literal}' BEGIN SELECT RAISE(ABORT, 'injected'); END"
            )
            yield
            conn.execute("DROP TRIGGER injected_failure")
        finally:
            conn.close()


BACKENDS: dict[str, Backend] = {"sqlite": SqliteBackend()}


@pytest.fixture(scope="session", params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    """Session-scoped (and stateless) so that hypothesis tests may use it too."""
    return BACKENDS[request.param]


@pytest.fixture
def store_factory(backend: Backend, tmp_path: Path) -> StoreFactory:
    return backend.factory(tmp_path)


@pytest_asyncio.fixture
async def open_store(store_factory: StoreFactory) -> AsyncIterator[OpenStore]:
    """Open another store over the same data; everything opened is closed at teardown."""
    opened: list[DocumentStore] = []

    async def _open() -> DocumentStore:
        store = store_factory()
        await store.open()
        opened.append(store)
        return store

    yield _open
    for store in reversed(opened):
        await store.close()


@pytest_asyncio.fixture
async def store(open_store: OpenStore) -> DocumentStore:
    return await open_store()
