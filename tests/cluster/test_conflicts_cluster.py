"""Findings of the checks across two processes: each keeps its findings from the other's
content as it integrates it (``on_remote_changes``), so a conflict made of one write on
each process is found, shown the same on both, and goes when either undoes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from crdt_server.testing.tokens import TokenMinter
from crdt_server.testing.waits import until
from tests.cluster.conftest import RedisProcess
from tests.server import ServerProcess

SECRET = "conflicts-cluster-secret-at-least-32-bytes!"
MINT = TokenMinter(SECRET)

pytestmark = pytest.mark.asyncio


def _item(item_id: str, start: str, end: str) -> dict[str, Any]:
    return {
        "op": "add_timeline_item",
        "item_id": item_id,
        "title": item_id,
        "start": f"2026-06-13T{start}:00Z",
        "end": f"2026-06-13T{end}:00Z",
        "vendor": "DJ Max",
    }


async def _op(http: httpx.AsyncClient, body: dict[str, Any]) -> None:
    answer = await http.post("/api/weddings/w1/docs/timeline/ops", json=body)
    assert answer.status_code == 200, answer.text


async def _shown(http: httpx.AsyncClient) -> list[tuple[str, list[str]]]:
    room = (await http.get("/api/weddings/w1/docs/conflicts")).json()
    return sorted((c["code"], c["paths"]) for c in room["conflicts"])


@pytest.mark.timeout(120)
async def test_one_write_on_each_process_makes_a_conflict_both_show(
    cluster: list[ServerProcess],
) -> None:
    one, two = cluster
    async with (
        httpx.AsyncClient(base_url=one.url, timeout=10) as http_one,
        httpx.AsyncClient(base_url=two.url, timeout=10) as http_two,
    ):
        # both processes hold the wedding (and have built its findings) first
        await _op(http_one, _item("i0", "08:00", "09:00"))
        await _op(http_two, {"op": "update_timeline_item", "item_id": "i0", "title": "Set-up"})
        await _op(http_one, _item("i1", "10:00", "11:00"))

        async def has_i1() -> bool:
            doc = (await http_two.get("/api/weddings/w1/docs/timeline")).json()
            return "i1" in doc["items"]

        await until(has_i1)
        await _op(http_two, _item("i2", "10:30", "11:30"))  # overlaps i1, written on one
        overlap = [("timeline.vendor_overlap", ["timeline/items/i1", "timeline/items/i2"])]

        async def on_both() -> bool:
            return all([await _shown(http) == overlap for http in (http_one, http_two)])

        await until(on_both, 20)
        # moved away on the other process: gone on both
        await _op(
            http_one,
            {
                "op": "move_timeline_item",
                "item_id": "i1",
                "start": "2026-06-13T14:00:00Z",
                "end": "2026-06-13T15:00:00Z",
            },
        )

        async def gone() -> bool:
            return all([await _shown(http) == [] for http in (http_one, http_two)])

        await until(gone, 20)
        answer = await http_one.get(
            "/api/weddings/w1/events", params={"types": "conflict.detected,conflict.resolved"}
        )
        kinds = [e["type"] for e in answer.json()["events"]]
        assert kinds.count("conflict.resolved") >= 1
        assert kinds.count("conflict.detected") >= 1


@pytest.mark.timeout(120)
async def test_a_finding_names_its_last_writer_across_processes(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    """A person writing an entry of a finding again on one process, after someone else
    wrote it on the other, is named again (a process rewrites a finding's actors when an
    entry's last writer changed, and another process's content counts as a change)."""
    env = {"CRDT_SERVER_REDIS_URL": redis_server.url, "CRDT_SERVER_AUTH_SECRET": SECRET}
    servers = [ServerProcess(tmp_path / "data", env=env, anonymous=False) for _ in range(2)]
    for server in servers:
        await server.start()
    try:
        one, two = servers
        ada, bob = MINT.headers("planner", "ada"), MINT.headers("couple", "bob")
        async with (
            httpx.AsyncClient(base_url=one.url, timeout=10, headers=ada) as http_one,
            httpx.AsyncClient(base_url=two.url, timeout=10, headers=bob) as http_two,
        ):
            await _op(http_one, _item("i1", "10:00", "11:00"))
            await _op(http_one, _item("i2", "10:30", "11:30"))

            async def actors(http: httpx.AsyncClient, want: list[str]) -> bool:
                room = (await http.get("/api/weddings/w1/docs/conflicts")).json()
                named = [
                    a["sub"]
                    for c in room["conflicts"]
                    for a in c["actors"]
                    if a["path"] == "timeline/items/i1"
                ]
                return named == want

            await until(lambda: actors(http_two, ["ada"]), 20)
            await _op(http_two, {"op": "update_timeline_item", "item_id": "i1", "notes": "Bob"})
            await until(lambda: actors(http_one, ["bob"]), 20)
            await _op(http_one, {"op": "update_timeline_item", "item_id": "i1", "notes": "Ada"})
            await until(lambda: actors(http_two, ["ada"]), 20)
    finally:
        for server in servers:
            await server.stop()
