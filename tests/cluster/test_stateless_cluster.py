"""Stateless messages across processes: real ``@hocuspocus/provider`` clients on bare
``/collab`` sockets of two server processes sharing one store and one Redis.

A bare ``/collab`` socket serves documents of any wedding where it landed, so the providers
of one document may sit on different processes: a writer's payload, and the server's own
notices (a finding, a lost write, each cut to the role's field rules), reach them all
through the bus; a read-only principal's payloads reach nobody.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pycrdt import Doc, Map

from crdt_server.testing.tokens import TokenMinter, new_secret
from tests.cluster.conftest import RedisProcess
from tests.hocusclient import HocusClient
from tests.server import FAMILY_WRITES, ServerProcess

pytestmark = [pytest.mark.js, pytest.mark.asyncio, pytest.mark.timeout(120)]

MINT = TokenMinter(new_secret())
HI, LO = 900_001, 5_001
FROM_SERVER = {"sub": "server", "name": "crdt-server"}


@pytest_asyncio.fixture
async def two(tmp_path: Path, redis_server: RedisProcess) -> AsyncIterator[list[ServerProcess]]:
    env = {"CRDT_SERVER_REDIS_URL": redis_server.url, **MINT.env, **FAMILY_WRITES}
    servers = [ServerProcess(tmp_path / "data", env=env, anonymous=False) for _ in range(2)]
    for server in servers:
        await server.start()
    try:
        yield servers
    finally:
        for server in servers:
            await server.stop()


def bare(server: ServerProcess) -> str:
    return f"ws://127.0.0.1:{server.port}/collab"


def new_wedding() -> str:
    return f"w{uuid.uuid4().hex[:10]}"


def told(info: dict[str, Any]) -> list[dict[str, Any]]:
    """The stateless messages a provider heard, parsed."""
    return [json.loads(e["payload"]) for e in info["events"] if e["type"] == "stateless"]


async def test_a_writers_payload_reaches_the_other_process_and_a_readers_does_not(
    two: list[ServerProcess],
) -> None:
    one, other = two
    w = new_wedding()
    ann = MINT(sub="ann", role="couple", wedding=w, name="Ann")
    bob = MINT(sub="bob", role="planner", wedding=w, name="Bob")
    vic = MINT(sub="vic", role="vendor", wedding=w, name="Vic")
    async with (
        await HocusClient.start(bare(one)) as a,
        await HocusClient.start(bare(one)) as v,
        await HocusClient.start(bare(other)) as b,
    ):
        await a.attach("t", f"{w}/timeline", ann)
        await v.attach("t", f"{w}/timeline", vic)
        await b.attach("t", f"{w}/timeline", bob)
        for client in (a, v, b):
            await client.wait("t", "synced")
        assert (await v.info("t"))["scope"] == "readonly"
        await a.call("stateless", doc="t", payload=json.dumps({"kind": "ping", "n": 1}))
        info = await b.wait("t", "stateless")
        assert told(info) == [
            {"from": {"sub": "ann", "name": "Ann"}, "payload": {"kind": "ping", "n": 1}}
        ]
        # The reader's payload is dropped where it was sent: had it crossed, it would reach
        # the other process before the writer's next one (one bus, in order).
        await v.call("stateless", doc="t", payload=json.dumps({"kind": "vendor"}))
        await a.call("stateless", doc="t", payload=json.dumps({"n": 2}))
        info = await b.wait("t", "stateless", count=2)
        assert [m["payload"] for m in told(info)] == [{"kind": "ping", "n": 1}, {"n": 2}]
        # And back: the other process's writer reaches this one's writer, never itself.
        await b.call("stateless", doc="t", payload=json.dumps({"kind": "pong"}))
        info = await a.wait("t", "stateless")
        assert told(info) == [{"from": {"sub": "bob", "name": "Bob"}, "payload": {"kind": "pong"}}]
        assert len(told(await b.info("t"))) == 2
        # Never stored: a provider attached now hears nothing of what was said before.
        async with await HocusClient.start(bare(other)) as late:
            await late.attach("t", f"{w}/timeline", bob)
            await late.wait("t", "synced")
            await a.call("stateless", doc="t", payload=json.dumps({"n": 3}))
            info = await late.wait("t", "stateless")
            assert [m["payload"] for m in told(info)] == [{"n": 3}]


def _item(item_id: str, start: str, end: str) -> dict[str, Any]:
    return {
        "op": "add_timeline_item",
        "item_id": item_id,
        "title": item_id,
        "start": f"2026-06-13T{start}:00Z",
        "end": f"2026-06-13T{end}:00Z",
        "vendor": "DJ Max",
    }


async def _op(http: httpx.AsyncClient, wedding: str, doc: str, body: dict[str, Any]) -> None:
    answer = await http.post(
        f"/api/weddings/{wedding}/docs/{doc}/ops",
        json=body,
        headers=MINT.headers("couple", "cam", wedding=wedding),
    )
    assert answer.status_code == 200, answer.text


async def test_a_finding_reaches_the_providers_on_both_processes(
    two: list[ServerProcess],
) -> None:
    one, other = two
    w = new_wedding()
    async with httpx.AsyncClient(base_url=one.url, timeout=10) as http:
        await _op(http, w, "timeline", _item("i1", "10:00", "11:00"))
        couple = MINT(sub="ann", role="couple", wedding=w, name="Ann")
        planner = MINT(sub="bob", role="planner", wedding=w, name="Bob")
        async with (
            await HocusClient.start(bare(one)) as here,
            await HocusClient.start(bare(other)) as there,
        ):
            await here.attach("t", f"{w}/timeline", couple)
            await there.attach("t", f"{w}/timeline", planner)
            for client in (here, there):
                await client.wait("t", "synced")
            await _op(http, w, "timeline", _item("i2", "10:30", "11:30"))  # overlaps i1
            heard = []
            for client in (here, there):
                [message] = told(await client.wait("t", "stateless"))
                assert message["from"] == FROM_SERVER
                heard.append(message["payload"])
            assert heard[0] == heard[1]
            assert heard[0]["type"] == "finding" and heard[0]["code"] == "timeline.vendor_overlap"
            assert heard[0]["paths"] == ["timeline/items/i1", "timeline/items/i2"]


async def _race(
    http: httpx.AsyncClient,
    wedding: str,
    doc: str,
    edits: list[tuple[int, str, Callable[[Doc[Any]], None]]],
) -> None:
    """Each edit made on its own replica of ``doc`` as it is now, then sent over HTTP: none
    saw the others (a concurrent edit: one write is lost)."""
    base = (
        await http.get(
            f"/api/weddings/{wedding}/docs/{doc}",
            headers={**MINT.headers(wedding=wedding), "Accept": "application/octet-stream"},
        )
    ).content
    for client, who, change in edits:
        replica: Doc[Any] = Doc(client_id=client)
        replica.apply_update(base)
        before = replica.get_state()
        change(replica)
        sent = await http.post(
            f"/api/weddings/{wedding}/docs/{doc}/update",
            content=replica.get_update(before),
            headers=MINT.headers(who, f"{who}-1", wedding=wedding),
        )
        assert sent.status_code == 200, sent.text


async def test_a_lost_write_told_on_another_process_keeps_each_roles_field_rules(
    two: list[ServerProcess],
) -> None:
    """A vendor reads the guest list without contacts (its projection): the notice it hears
    on the other process names who and when, never the value."""
    one, other = two
    w = new_wedding()
    async with httpx.AsyncClient(base_url=one.url, timeout=10) as http:
        await _op(http, w, "guests", {"op": "add_guest", "guest_id": "g1", "name": "Ada"})
        planner = MINT(sub="bob", role="planner", wedding=w, name="Bob")
        vendor = MINT(sub="vic", role="vendor", wedding=w, name="Vic")
        async with (
            await HocusClient.start(bare(other)) as p,
            await HocusClient.start(bare(other)) as v,
        ):
            await p.attach("g", f"{w}/guests", planner)
            await v.attach("g", f"{w}/guests", vendor)
            for client in (p, v):
                await client.wait("g", "synced")

            def contact(value: str) -> Callable[[Doc[Any]], None]:
                return lambda doc: doc.get("guests", type=Map)["g1"].__setitem__("contact", value)

            await _race(
                http,
                w,
                "guests",
                [(HI, "planner", contact("+44 7700 900001")), (LO, "couple", contact("+44 1"))],
            )
            [shown] = [m["payload"] for m in told(await p.wait("g", "stateless"))]
            [hidden] = [m["payload"] for m in told(await v.wait("g", "stateless"))]
            assert shown["type"] == hidden["type"] == "lost-write"
            assert shown["id"] == hidden["id"] and shown["path"] == ["guests", "g1", "contact"]
            assert shown["lost"]["value"] == "+44 1"
            assert shown["kept"]["value"] == "+44 7700 900001"
            assert hidden["lost"]["actor"] == shown["lost"]["actor"]
            assert "value" not in hidden["lost"] and "value" not in hidden["kept"]
            assert "7700" not in json.dumps(hidden) and "+44 1" not in json.dumps(hidden)
