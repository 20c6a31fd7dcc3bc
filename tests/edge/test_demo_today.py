"""``serve --demo`` seeds the wedding of today beside the sample one and prints its links
after the sample's, which keep their form (``ROLE URL``); the wedding of today's lines are
``today ROLE URL``, and its profile's date is today in the server's zone."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from crdt_server.documents.model import zone_of
from crdt_server.edge.demo import server_zone
from tests.server import ServerProcess

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

CURRENT = re.compile(rb"^(couple|planner|family|vendor|friend) (\S+)$", re.M)
TODAY = re.compile(rb"^today (couple|planner|family|vendor|friend) \S+#token=(\S+)$", re.M)


async def test_the_wedding_of_today_is_seeded_and_its_links_printed_after(tmp_path: Path) -> None:
    async with ServerProcess(tmp_path / "data", args=["--demo"], anonymous=False) as server:
        deadline = asyncio.get_running_loop().time() + 20
        while len(TODAY.findall(bytes(server.log))) < 5:
            assert asyncio.get_running_loop().time() < deadline, server.log_text()
            await asyncio.sleep(0.02)
        log = bytes(server.log)
        current = CURRENT.findall(log)
        assert len(current) == 5  # the sample wedding's lines, as before
        assert log.index(b"\ntoday couple ") > log.index(current[-1][1])
        token = dict(TODAY.findall(log))[b"planner"].decode()
        async with httpx.AsyncClient(base_url=server.url) as http:
            headers = {"Authorization": f"Bearer {token}"}
            view = (
                await http.get("/api/weddings/demo-today/docs/timeline", headers=headers)
            ).json()
        today = datetime.now(UTC).astimezone(zone_of(server_zone())).date().isoformat()
        assert view["profile"]["date"] == today
        assert view["items"]["d-ceremony"]["fixed"] is True
