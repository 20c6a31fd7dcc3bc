"""The fault campaign's pycrdt writer counts an op acknowledged once the server holds it
committed, even when the echo of its update never reached it: a commit that went through
while the server saw it fail (a PostgreSQL failover's dropped primary) closes the socket
before any echo, and the writer's next connection must learn it from the server's step 2."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from pycrdt import Map

from benchmarks.faults.clienthost import PyWriter
from crdt_server.testing.waits import until
from tests.server import ServerProcess
from tests.yclient import YClient


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_an_op_stored_without_its_echo_is_acknowledged_after_a_reconnect(
    server: ServerProcess,
) -> None:
    writer = PyWriter(server.ws_url.removesuffix("/sync"), "w1", "py", rate=2)
    writing = asyncio.create_task(writer.write())
    await until(lambda: asyncio.sleep(0, len(writer.ops)))
    writer.writing = False
    await writing
    assert [op["acked"] for op in writer.ops] == [None]

    # The op reaches the store through another socket: its echo goes there, not to the
    # writer (as when the socket that carried it closed before the commit was answered).
    async with YClient(server.ws_url, "w1/guests") as other:
        await other.wait(other.synced.is_set)
        other.doc.apply_update(writer.doc.get_update())
        await other.flush()
        await other.wait(lambda: len(other.confirmed.get("guests", type=Map)) == 1)

    running = asyncio.create_task(writer.run())
    try:
        await until(lambda: asyncio.sleep(0, writer.ops[0]["acked"] is not None))
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
