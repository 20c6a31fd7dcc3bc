"""A real Radicale per test (tests/radicale.py), and the store fixtures of the feature
tests (PostgreSQL's database)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tests.radicale import Radicale


@pytest_asyncio.fixture
async def radicale(tmp_path: Path) -> AsyncIterator[Radicale]:
    server = Radicale(tmp_path / "radicale")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
