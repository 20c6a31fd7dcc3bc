from __future__ import annotations

import pytest
from pycrdt import Map

from tests.server import ServerProcess
from tests.yclient import YClient


@pytest.mark.asyncio
async def test_two_clients_converge_and_survive_restart(server: ServerProcess) -> None:
    async with YClient(server.ws_url, "w42/guests") as a, YClient(server.ws_url, "w42/guests") as b:
        await a.wait(lambda: a.synced.is_set())
        a.doc.get("guests", type=Map)["g1"] = "Ada"
        await a.flush()
        await b.wait(lambda: b.doc.get("guests", type=Map).to_py() == {"g1": "Ada"})
        await a.wait(a.is_confirmed)
    await server.kill()
    await server.start()
    async with YClient(server.ws_url, "w42/guests") as c:
        await c.wait(lambda: c.doc.get("guests", type=Map).to_py() == {"g1": "Ada"})
