"""Updates that arrive before what they depend on are kept, stored, and survive restarts."""

from __future__ import annotations

import sqlite3

import pytest
from pycrdt import Array, Doc, Text

from crdt_server.codec.protocol import encode_update
from tests.server import ServerProcess
from tests.yclient import YClient

ROOM = "w5/timeline"


def _three_updates() -> list[bytes]:
    doc: Doc[Text | Array[int]] = Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text = doc.get("notes", type=Text)
    text.insert(0, "a")
    text.insert(0, "b")
    doc.get("list", type=Array).append(1)
    return updates


def _stored_rows(server: ServerProcess) -> int:
    with sqlite3.connect(server.data_dir / "crdt.sqlite3") as db:
        (count,) = db.execute("SELECT count(*) FROM history").fetchone()
    return int(count)


def _content(client: YClient) -> tuple[str, list[int]]:
    return str(client.doc.get("notes", type=Text)), client.doc.get("list", type=Array).to_py()


@pytest.mark.asyncio
async def test_out_of_order_updates_wait_then_integrate(server: ServerProcess) -> None:
    u1, u2, u3 = _three_updates()
    async with YClient(server.ws_url, ROOM) as sender:
        await sender.wait(sender.synced.is_set)
        # u2 and u3 both wait on u1; the server must keep both, not just the last.
        await sender.send_raw(encode_update(u2))
        await sender.send_raw(encode_update(u3))
        await sender.wait(lambda: _stored_rows(server) == 2)
    async with YClient(server.ws_url, ROOM) as watcher:
        await watcher.wait(watcher.synced.is_set)
        assert _content(watcher) == ("", [])
    # Pending content is on disk: it survives a kill.
    await server.kill()
    await server.start()
    async with YClient(server.ws_url, ROOM) as sender:
        await sender.wait(sender.synced.is_set)
        await sender.send_raw(encode_update(u1))
        async with YClient(server.ws_url, ROOM) as watcher:
            await watcher.wait(lambda: _content(watcher) == ("ba", [1.0]))  # type: ignore[comparison-overlap]
    await server.kill()
    await server.start()
    async with YClient(server.ws_url, ROOM) as late:
        await late.wait(lambda: _content(late) == ("ba", [1.0]))  # type: ignore[comparison-overlap]
