"""The anonymous principal of a local demo (``--allow-anonymous``) is no role of the matrix:
it reads and writes the guest list itself, never a projection (whose fields are hidden from
every role not listed as their reader, it would otherwise land on one, read-only, and its
writes would never be echoed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pycrdt import Map

from tests.server import served
from tests.yclient import YClient

pytestmark = [pytest.mark.timeout(60)]


@pytest.mark.asyncio
async def test_an_anonymous_writer_s_guest_edit_is_echoed_and_relayed(tmp_path: Path) -> None:
    async with (
        served(tmp_path / "data", {}, anonymous=True) as (server, _),
        YClient(server.ws_url, "w1/guests") as ann,
        YClient(server.ws_url, "w1/guests") as bob,
    ):
        await ann.wait(ann.synced.is_set)
        await bob.wait(bob.synced.is_set)
        guests: Map[object] = ann.doc.get("guests", type=Map)
        guests["g1"] = Map({"name": "Ann Lee", "contact": "ann@example.com"})
        await ann.flush()
        await ann.wait(ann.is_confirmed)
        other: Map[object] = bob.doc.get("guests", type=Map)
        await bob.wait(lambda: "g1" in other)
