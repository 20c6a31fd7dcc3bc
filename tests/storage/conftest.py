"""Backends the storage conformance suite runs against.

To add a backend, implement the ``Backend`` protocol below and add it to ``BACKENDS``;
every test in ``test_conformance.py`` then runs against it too.

PostgreSQL: each test gets fresh schemas in the database named by ``CRDT_TEST_POSTGRES_DSN``
(default ``postgresql://postgres@127.0.0.1:5432/test``), dropped when the test ends. If the
server is unreachable its tests are skipped, or fail when ``CI`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg
import pytest
import pytest_asyncio

from crdt_server.features.events.tables import SCHEMA as EVENTS
from crdt_server.storage import DocumentStore, PostgresStore, SqliteStore
from crdt_server.storage.gateway import statements

_T = TypeVar("_T")

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


class _SyncSession:
    """One asyncpg connection driven from synchronous code, on a thread with its own loop
    (the hooks are plain context managers, entered from tests whose loop is running)."""

    def __init__(self, dsn: str, *, timeout: float = 10.0) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        try:
            self._conn = self._run(asyncpg.connect(dsn, timeout=timeout))
        except BaseException:
            self._stop()
            raise

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    def execute(self, sql: str) -> None:
        self._run(self._conn.execute(sql))

    def close(self) -> None:
        try:
            self._run(self._conn.close())
        finally:
            self._stop()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


@contextlib.contextmanager
def _session(dsn: str) -> Iterator[_SyncSession]:
    session = _SyncSession(dsn)
    try:
        yield session
    finally:
        session.close()


class PostgresBackend:
    """One fresh schema per workdir, created on first use and dropped by drop_schemas()."""

    name = "postgres"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._schemas: dict[Path, str] = {}
        self._unreachable: str | None = None
        self._checked = False

    def require(self) -> None:
        """Skip (fail, when ``CI`` is set) if the server does not answer."""
        if not self._checked:
            self._checked = True
            try:
                _SyncSession(self.dsn, timeout=3.0).close()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self._unreachable = f"PostgreSQL at {self.dsn} is unreachable: {exc!r}"
        if self._unreachable is not None:
            if os.environ.get("CI"):
                pytest.fail(f"{self._unreachable} (CI is set, so this fails)")
            pytest.skip(f"{self._unreachable} (set CRDT_TEST_POSTGRES_DSN or start it)")

    def schema(self, workdir: Path) -> str:
        if workdir not in self._schemas:
            name = f"t_{uuid.uuid4().hex}"
            with _session(self.dsn) as session:
                session.execute(f"CREATE SCHEMA {name}")
            self._schemas[workdir] = name
        return self._schemas[workdir]

    def drop_schemas(self) -> None:
        if not self._schemas:
            return
        names = ", ".join(self._schemas.values())
        self._schemas.clear()
        with _session(self.dsn) as session:
            session.execute(f"DROP SCHEMA IF EXISTS {names} CASCADE")

    def factory(self, workdir: Path, *, lock_timeout: float = 5.0) -> StoreFactory:
        schema = self.schema(workdir)
        return lambda: PostgresStore(self.dsn, schema=schema, lock_timeout=lock_timeout)

    @contextlib.contextmanager
    def block_writes(self, workdir: Path) -> Iterator[None]:
        # EXCLUSIVE, not ACCESS EXCLUSIVE: reads (ACCESS SHARE) must still work.
        schema = self.schema(workdir)
        with _session(self.dsn) as session:
            session.execute(
                f"BEGIN; LOCK TABLE {schema}.updates, {schema}.history IN EXCLUSIVE MODE"
            )
            yield
            session.execute("ROLLBACK")

    @contextlib.contextmanager
    def fail_writes_of(self, workdir: Path, doc: str) -> Iterator[None]:
        schema, literal = self.schema(workdir), doc.replace("'", "''")
        with _session(self.dsn) as session:
            session.execute(
                f"CREATE FUNCTION {schema}.injected_failure() RETURNS trigger LANGUAGE plpgsql"
                " AS $$ BEGIN RAISE EXCEPTION 'injected'; END $$;"
                f" CREATE TRIGGER injected_failure BEFORE INSERT ON {schema}.history"
                f" FOR EACH ROW WHEN (NEW.doc = '{literal}')"
                f" EXECUTE FUNCTION {schema}.injected_failure()"
            )
            yield
            session.execute(f"DROP FUNCTION {schema}.injected_failure() CASCADE")


POSTGRES = PostgresBackend(
    os.environ.get("CRDT_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
)


class InlineSqliteBackend(SqliteBackend):
    """SQLite with every statement on the loop's thread (the testing kit's in-process mode)."""

    name = "sqlite-inline"

    def factory(self, workdir: Path, *, lock_timeout: float = 5.0) -> StoreFactory:
        path = self.path(workdir)
        return lambda: SqliteStore(path, busy_timeout=lock_timeout, inline=True)


BACKENDS: dict[str, Backend] = {
    "sqlite": SqliteBackend(),
    "sqlite-inline": InlineSqliteBackend(),
    "postgres": POSTGRES,
}


@pytest.fixture(scope="session", params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    """Session-scoped so that hypothesis tests may use it too (the PostgreSQL backend's
    only state is which schemas to drop after the test)."""
    chosen = BACKENDS[request.param]
    if isinstance(chosen, PostgresBackend):
        chosen.require()
    return chosen


@pytest.fixture(autouse=True)
def _drop_postgres_schemas() -> Iterator[None]:
    """Drop the schemas the test made (autouse: hypothesis allows those in its tests)."""
    yield
    POSTGRES.drop_schemas()


@pytest.fixture
def store_factory(backend: Backend, tmp_path: Path) -> StoreFactory:
    return backend.factory(tmp_path)


@pytest_asyncio.fixture
async def open_store(store_factory: StoreFactory) -> AsyncIterator[OpenStore]:
    """Open another store over the same data, with the events feature's tables installed
    (as every server and data tool does: the events, their counters and idempotency keys
    are that feature's); everything opened is closed at teardown."""
    opened: list[DocumentStore] = []

    async def _open() -> DocumentStore:
        store = store_factory()
        await store.open()
        opened.append(store)
        await store.install(EVENTS)
        return store

    yield _open
    for store in reversed(opened):
        await store.close()


@pytest_asyncio.fixture
async def store(open_store: OpenStore) -> DocumentStore:
    return await open_store()


async def writer_in_flight(store: DocumentStore) -> asyncio.Future[list[int]]:
    """An append of nothing but a read, under way when this returns: on SQLite a leader
    already handed to the writer thread, elsewhere the writer task's next transaction, taken
    alone. The writes queued next, in one turn of the loop, share the transaction after it
    (a leader does not wait for them: without it, the first of them would commit alone)."""
    in_flight = asyncio.ensure_future(store.append([], steps=[statements([("SELECT 1", [])])]))
    await asyncio.sleep(0)
    return in_flight


def finished_at_once(call: Coroutine[Any, Any, _T]) -> _T | None:
    """What ``call`` returns if it runs to its end without suspending (what it raises,
    raised); ``None`` if it suspends (it is closed then)."""
    try:
        call.send(None)
    except StopIteration as done:
        result: _T = done.value
        return result
    call.close()
    return None
