from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tests.server import ServerProcess


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """A real server (uvicorn, SQLite under tmp_path) on an ephemeral port."""
    async with ServerProcess(tmp_path / "data") as proc:
        yield proc
