"""yjs 14 (``@y/y`` 14.0.0-rc.7 with ``@y/websocket`` 4.0.0-3) syncing through ``/sync``,
alone and beside a yjs 13 client, on documents whose shapes both read: a root whose
attributes yjs 13 reads as a ``Y.Map``, and a root whose text it reads as a ``Y.Text``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.hocusclient import Y14_SCRIPT, HocusClient
from tests.jsclient import JsClient, map_set, text_insert
from tests.server import ServerProcess

pytestmark = [pytest.mark.js, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    async with ServerProcess(tmp_path_factory.mktemp("yjs14") / "data") as proc:
        yield proc


def new_room() -> str:
    return f"w{uuid.uuid4().hex[:10]}/timeline"


async def y14(server: ServerProcess, room: str) -> HocusClient:
    client = await HocusClient.start(script=Y14_SCRIPT)
    await client.call("connect", url=server.ws_url, room=room)
    await client.call("wait", until="synced", timeout_ms=15000, timeout=15)
    return client


async def test_two_yjs14_clients_sync_and_a_late_one_catches_up(server: ServerProcess) -> None:
    room = new_room()
    async with await y14(server, room) as a, await y14(server, room) as b:
        await a.call("set", key="ceremony", value="14:00")
        await a.call("insert", index=0, text="Welcome")
        await b.call("wait", until="value", key="ceremony", value="14:00", timeout=15)
        await b.call("wait", until="text", text="Welcome", timeout=15)
        await b.call("insert", index=7, text=" all")
        await a.call("wait", until="text", text="Welcome all", timeout=15)
    async with await y14(server, room) as late:
        await late.call("wait", until="value", key="ceremony", value="14:00", timeout=15)
        await late.call("wait", until="text", text="Welcome all", timeout=15)


async def test_yjs14_beside_yjs13(server: ServerProcess) -> None:
    room = new_room()
    old = await JsClient.start(version=2)
    try:
        await old.connect(server.ws_url, room)
        await old.wait_synced()
        async with await y14(server, room) as new:
            await new.call("set", key="from14", value={"n": 14})
            await new.call("insert", index=0, text="fourteen")
            await old.wait_for(
                {"m": {"from14": {"n": 14}}, "t": "fourteen"}, roots={"m": "map", "t": "text"}
            )
            await old.edit(map_set("m", "from13", 13), text_insert("t", 0, "thirteen "))
            await new.call("wait", until="value", key="from13", value=13, timeout=15)
            await new.call("wait", until="text", text="thirteen fourteen", timeout=15)
    finally:
        await old.close()
