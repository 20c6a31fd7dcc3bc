"""Metrics tell the truth after a known workload; storage faults never acknowledge anything."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import httpx
import pytest
from pycrdt import Map

from tests.server import ServerProcess
from tests.yclient import YClient


def _metric(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"{name}{labels} not in metrics"
    return float(match.group(1))


@pytest.mark.asyncio
async def test_metrics_after_a_known_workload(server: ServerProcess) -> None:
    async with (
        YClient(server.ws_url, "w1/guests") as a,
        YClient(server.ws_url, "w1/guests") as b,
        YClient(server.ws_url, "w2/budget") as c,
    ):
        for client in (a, b, c):
            await client.wait(client.synced.is_set)
        for i in range(10):
            a.doc.get("m", type=Map)[f"k{i}"] = i
            await a.flush()
        for i in range(3):
            c.doc.get("m", type=Map)[f"k{i}"] = i
            await c.flush()
        await a.wait(a.is_confirmed)
        await c.wait(c.is_confirmed)
        await b.set_awareness({"user": {"name": "B"}})
        await a.wait(lambda: b.doc.client_id in a.awareness)
        async with YClient(server.ws_url, "w1/guests") as bad:
            await bad.send_raw(b"\x00\x02\x05ab")
            await bad.wait(bad.closed.is_set)
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{server.url}/metrics")
        assert response.status_code == 200
        text = response.text
        assert _metric(text, "crdt_updates_accepted_total") == 13
        assert _metric(text, "crdt_connections_open") == 3
        # The two rooms of the clients, plus each wedding's conflicts room once the
        # conflicts keeper's debounced refresh has run (timing decides whether it has yet).
        assert 2 <= _metric(text, "crdt_rooms_loaded") <= 4
        assert _metric(text, "crdt_awareness_messages_total") == 1
        assert _metric(text, "crdt_updates_rejected_total", '{reason="ProtocolError"}') == 1
        assert _metric(text, "crdt_connections_closed_total", '{code="1007"}') == 1
        assert 1 <= _metric(text, "crdt_commit_seconds_count") <= 13
        assert _metric(text, "crdt_commit_batch_size_sum") == 13
        assert _metric(text, "crdt_broadcast_seconds_count") >= 1
        assert _metric(text, "crdt_bytes_received_total") > 0
        assert _metric(text, "crdt_bytes_sent_total") > 0


@pytest.mark.asyncio
async def test_a_store_that_cannot_commit_acknowledges_nothing(tmp_path: Path) -> None:
    env = {"CRDT_SERVER_SQLITE_BUSY_TIMEOUT_SECONDS": "0.2"}
    async with ServerProcess(tmp_path / "data", env=env) as server:
        async with (
            YClient(server.ws_url, "w1/guests") as writer,
            YClient(server.ws_url, "w1/guests") as watcher,
        ):
            await writer.wait(writer.synced.is_set)
            await watcher.wait(watcher.synced.is_set)
            writer.doc.get("m", type=Map)["before"] = 1
            await writer.flush()
            await writer.wait(writer.is_confirmed)
            await watcher.wait(lambda: "before" in watcher.doc.get("m", type=Map).to_py())

            # Another process takes the write lock and keeps it: commits fail.
            blocker = sqlite3.connect(server.data_dir / "crdt.sqlite3", isolation_level=None)
            blocker.execute("BEGIN EXCLUSIVE")
            try:
                writer.doc.get("m", type=Map)["during"] = 2
                await writer.flush()
                await writer.wait(writer.closed.is_set)
                assert writer.close_code == 1011
                assert not writer.is_confirmed()
                await watcher.wait(watcher.closed.is_set)  # the room is reloaded: all reconnect
                assert "during" not in (watcher.doc.get("m", type=Map).to_py() or {})
                async with httpx.AsyncClient() as http:
                    ready = await http.get(f"{server.url}/readyz")
                assert ready.status_code == 503 and "locked" in ready.json()["store"]
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()

        # The lock is gone: the client reconnects with its state and resends what was lost.
        async with YClient(server.ws_url, "w1/guests") as again:
            again.doc.apply_update(writer.doc.get_update())
            await again.flush()
            await again.wait(again.synced.is_set)
            await again.wait(lambda: "during" in (again.confirmed.get("m", type=Map).to_py() or {}))
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{server.url}/readyz")).status_code == 200
        await server.kill()
        await server.start()
        async with YClient(server.ws_url, "w1/guests") as check:
            await check.wait(
                lambda: check.doc.get("m", type=Map).to_py() == {"before": 1.0, "during": 2.0}
            )
