"""The pytest plugin of the testing kit (entry point ``pytest11``: loaded on every install).

It imports only pytest and the standard library here; the kit's heavy parts (pycrdt,
websockets, the server) are imported inside the fixtures, when a test first uses one.

Fixtures:

* ``crdt_token`` -- a :class:`~crdt_server.testing.TokenMinter`; every server the fixtures
  start accepts its tokens (``crdt_token(sub="ann", role="couple", wedding="w1")``).
* ``crdt_server_factory`` -- starts real servers (uvicorn on an ephemeral port, SQLite in a
  temporary directory): ``crdt_server_factory()``, ``crdt_server_factory(anonymous=False)``,
  ``crdt_server_factory(redis_url=...)`` for servers sharing the Redis bus. All stopped at
  teardown.
* ``crdt_server_process`` / ``crdt_server_url`` -- one such server / its ``http://`` URL.
* ``crdt_redis_url`` -- the Redis URL given with ``--crdt-redis-url`` (skips if none).
* ``crdt_clients`` -- a :class:`~crdt_server.testing.fixtures.ClientPool` of socket clients
  for ``crdt_server_process``: ``async with crdt_clients: a = await crdt_clients.connect()``.
* ``crdt_inprocess`` -- the in-process mode (session-scoped, so ``@given`` tests may use it).
* ``crdt_clock`` -- a :class:`~crdt_server.clock.FakeClock` that is the process's clock for
  the test (``crdt_server.clock.use``): every server the test runs in its own process (the
  in-process mode, an app it serves itself) dates rows, checks token expiry, closes
  sockets at a token's ``exp`` and runs scheduled jobs by it;
  ``await crdt_clock.advance(seconds)`` wakes the timers and runs the jobs it makes due.
  Servers in child processes keep the real time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from crdt_server.clock import FakeClock

    from .fixtures import ClientPool, InProcess, ServerFactory
    from .server import ServerProcess
    from .tokens import TokenMinter

__all__ = [
    "crdt_clients",
    "crdt_clock",
    "crdt_inprocess",
    "crdt_redis_url",
    "crdt_server_factory",
    "crdt_server_process",
    "crdt_server_url",
    "crdt_token",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("crdt-server", "crdt-server testing kit")
    group.addoption(
        "--crdt-redis-url",
        default=None,
        help="Redis for the crdt_redis_url fixture (servers on the Redis bus); "
        "tests that need it are skipped without it",
    )


@pytest.fixture
def crdt_clock() -> Iterator[FakeClock]:
    """The process's clock, faked for the test (see the module docstring); it starts at
    the real time, so tokens minted before it was installed stay valid until moved."""
    from crdt_server import clock

    fake = clock.FakeClock(clock.now())
    with clock.use(fake):
        yield fake


@pytest.fixture(scope="session")
def crdt_token() -> TokenMinter:
    """Mints HS256 tokens that the kit's servers accept (one secret per test session)."""
    from .tokens import TokenMinter, new_secret

    return TokenMinter(new_secret())


@pytest.fixture
def crdt_server_factory(tmp_path: Path, crdt_token: TokenMinter) -> Iterator[ServerFactory]:
    """Start real servers on ephemeral ports (each with its own data directory)."""
    from .fixtures import ServerFactory

    factory = ServerFactory(tmp_path / "crdt-servers", crdt_token)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def crdt_server_process(crdt_server_factory: ServerFactory) -> ServerProcess:
    """One real server (anonymous clients allowed; tokens from ``crdt_token`` work too)."""
    return crdt_server_factory()


@pytest.fixture
def crdt_server_url(crdt_server_process: ServerProcess) -> str:
    """The ``http://127.0.0.1:PORT`` URL of a real server; WebSocket rooms are at
    ``ws://127.0.0.1:PORT/sync/{wedding}/{doc}``."""
    return crdt_server_process.url


@pytest.fixture(scope="session")
def crdt_redis_url(pytestconfig: pytest.Config) -> str:
    """The Redis URL given with ``--crdt-redis-url``; the test is skipped without one."""
    url = pytestconfig.getoption("--crdt-redis-url")
    if not url:
        pytest.skip("no --crdt-redis-url given")
    return str(url)


@pytest.fixture
def crdt_clients(crdt_server_process: ServerProcess, crdt_token: TokenMinter) -> ClientPool:
    """Socket clients of ``crdt_server_process``; use ``async with crdt_clients:`` so they
    are closed on the test's event loop."""
    from .fixtures import ClientPool

    return ClientPool(crdt_server_process.ws_url, crdt_token)


@pytest.fixture(scope="session")
def crdt_inprocess() -> Iterator[InProcess]:
    """The in-process mode: an empty server for every ``play``/``run``/``server()`` call
    (``play``/``run`` reuse one, reset between calls); its loop is closed at session end."""
    from .fixtures import InProcess

    kit = InProcess()
    try:
        yield kit
    finally:
        kit.close()
