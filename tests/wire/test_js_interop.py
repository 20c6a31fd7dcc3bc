"""Stock JavaScript Yjs clients (yjs + y-websocket 2.x and 3.x, in Node) against the real server."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.jsclient import (
    JsClient,
    JsClientGroup,
    JsCommandError,
    JsProcessDiedError,
    JsTimeoutError,
    RootType,
    array_delete,
    array_insert,
    array_push,
    map_delete,
    map_set,
    text_delete,
    text_insert,
    ymap,
)
from tests.server import ServerProcess

# One event loop for the module, so that one server serves every test that leaves it running.
pytestmark = [pytest.mark.js, pytest.mark.asyncio(loop_scope="module")]

VERSIONS = [2, 3]
ROOTS: dict[str, RootType] = {"guests": "map", "tables": "array", "notes": "text"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    """One real server for the module: every test uses rooms of its own (``new_room``)."""
    async with ServerProcess(tmp_path_factory.mktemp("js-interop") / "data") as proc:
        yield proc


@pytest_asyncio.fixture(loop_scope="module")
async def own_server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """A server of the test's own, for a test that stops it."""
    async with ServerProcess(tmp_path / "data") as proc:
        yield proc


@pytest_asyncio.fixture(loop_scope="module")
async def group() -> AsyncIterator[JsClientGroup]:
    async with JsClientGroup() as g:
        yield g
        pids = [c.pid for c in g.clients]
    for pid in pids:  # the group really ended every process it started
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def new_room() -> str:
    return f"w{uuid.uuid4().hex[:8]}/guests"


async def oracle_merge(group: JsClientGroup, *clients: JsClient) -> dict[str, Any]:
    """Expected converged JSON: merge every client's full update into an offline Yjs doc."""
    oracle = await group.start(version=2, name="oracle")
    await oracle.connect("ws://127.0.0.1:9/unused", "oracle", connect=False)
    for c in clients:
        await oracle.apply_update((await c.state(ROOTS))["update"])
    expected: dict[str, Any] = (await oracle.state(ROOTS))["json"]
    await oracle.close()
    return expected


@pytest.mark.parametrize("version", VERSIONS)
async def test_url_path_and_params(
    server: ServerProcess, group: JsClientGroup, version: int
) -> None:
    c = await group.start(version=version)
    info = await c.ping()
    assert info["version"] == version and info["yjs"].startswith("13.6.")
    room = f"w42-{uuid.uuid4().hex[:6]}/guests"
    await c.connect(server.ws_url + "/", room, params={"note": "a b&c/é", "x": "1"})
    await c.wait_synced()
    status = await c.status()
    expected_path = f"/sync/{room}?note=a%20b%26c%2F%C3%A9&x=1"
    assert status["url"] == f"ws://127.0.0.1:{server.port}{expected_path}"


@pytest.mark.parametrize("versions", [(2, 2, 2), (3, 3, 3), (2, 3, 2)], ids=str)
async def test_concurrent_edits_converge_and_late_joiner(
    server: ServerProcess, group: JsClientGroup, versions: tuple[int, int, int]
) -> None:
    room = new_room()
    clients = [await group.start(version=v) for v in versions]
    for c in clients:
        await c.connect(server.ws_url, room)
    for c in clients:
        await c.wait_synced()
    a, b, c = clients
    # sequential seed so that indices below are valid everywhere
    await a.edit(
        map_set("guests", "seed", {"name": "Seed", "rsvp": None}),
        array_push("tables", [1, 2, 3]),
        text_insert("notes", 0, "hello"),
    )
    for x in clients:
        await x.wait_for(
            {"guests": {"seed": {"name": "Seed", "rsvp": None}}, "tables": [1, 2, 3]},
            roots=ROOTS,
        )
    # concurrent edits (fired together; whether a peer's edit already arrived is up to timing,
    # the oracle below merges whatever actually happened): same roots, overlapping positions,
    # one conflicting map key
    await asyncio.gather(
        a.edit(
            map_set("guests", "g1", {"name": "Ada"}),
            map_set("guests", "conflict", "a"),
            array_insert("tables", 0, ["a0"]),
            text_insert("notes", 5, " from A"),
        ),
        b.edit(
            map_set("guests", "g2", ymap({"name": "Bob", "plus": 1})),
            map_set("guests", "conflict", "b"),
            array_delete("tables", 1, 1),
            array_push("tables", ["b-end"]),
            text_insert("notes", 0, "B:"),
        ),
        c.edit(
            map_delete("guests", "seed"),
            map_set("guests", "conflict", "c"),
            array_insert("tables", 3, [{"t": "c"}]),
            text_delete("notes", 0, 1),
            text_insert("notes", 0, "H"),
        ),
    )
    expected = await oracle_merge(group, *clients)
    guests = expected["guests"]
    assert guests["g1"] == {"name": "Ada"} and guests["g2"] == {"name": "Bob", "plus": 1}
    assert "seed" not in guests and guests["conflict"] in ("a", "b", "c")
    tables = expected["tables"]
    assert len(tables) == 5 and {"t": "c"} in tables
    assert {"a0", "b-end"} <= {t for t in tables if isinstance(t, str)}
    for x in clients:
        await x.wait_for(expected, roots=ROOTS)
    # late joiner of the other major version gets everything from the server
    late = await group.start(version=5 - versions[0])
    await late.connect(server.ws_url, room)
    await late.wait_synced()
    await late.wait_for(expected, roots=ROOTS)
    assert (await late.state(ROOTS))["json"] == expected


@pytest.mark.parametrize("version", VERSIONS)
async def test_awareness_propagates_and_disappears(
    server: ServerProcess, group: JsClientGroup, version: int
) -> None:
    room = new_room()
    a, b, watcher = [await group.start(version=version) for _ in range(3)]
    ids = [await x.connect(server.ws_url, room) for x in (a, b, watcher)]
    for x in (a, b, watcher):
        await x.wait_synced()
    await a.set_awareness({"user": {"name": "A", "color": "#f00"}})
    await b.set_awareness({"user": {"name": "B"}})
    await watcher.wait_awareness(ids[0], field=["user", "name"], equals="A")
    states = await watcher.wait_awareness(ids[1], field=["user", "name"], equals="B")
    assert states[ids[0]] == {"user": {"name": "A", "color": "#f00"}}
    assert states[ids[1]] == {"user": {"name": "B"}}
    await a.wait_awareness(ids[1], field="user", equals={"name": "B"})
    # field update
    await b.set_awareness_field("cursor", 7)
    await watcher.wait_awareness(ids[1], field="cursor", equals=7)
    # destroy: clean close -> removed everywhere
    mark = watcher.event_mark()
    closed = await a.destroy()
    assert closed["socket"] == "closed"
    await watcher.wait_awareness(ids[0], present=False)
    await b.wait_awareness(ids[0], present=False)
    ev = await watcher.wait_event(
        "awareness", lambda e: ids[0] in e["removed"], after=mark, timeout=5
    )
    assert ev["local"] is False
    # SIGKILL: socket dropped without a close frame; the server removes b's state on close
    await b.kill()
    assert b.returncode == -9
    await watcher.wait_awareness(ids[1], present=False)
    with pytest.raises(JsProcessDiedError, match="SIGKILL"):
        await b.ping()


@pytest.mark.parametrize("versions", [(2, 2), (3, 3), (3, 2)], ids=str)
async def test_offline_edits_merge(
    server: ServerProcess, group: JsClientGroup, versions: tuple[int, int]
) -> None:
    room = new_room()
    a = await group.start(version=versions[0])
    b = await group.start(version=versions[1])
    for x in (a, b):
        await x.connect(server.ws_url, room)
        await x.wait_synced()
    await a.edit(text_insert("notes", 0, "base"), array_push("tables", ["t1"]))
    await b.wait_for({"notes": "base", "tables": ["t1"]}, roots=ROOTS)

    mark = a.event_mark()
    closed = await a.disconnect()
    assert closed["socket"] == "closed"
    ev = await a.wait_event("close", after=mark)
    assert ev["local"] is True
    await a.wait_event("status", lambda e: e["status"] == "disconnected", after=mark)
    assert (await a.status())["synced"] is False

    await a.edit(text_insert("notes", 4, "+A"), map_set("guests", "ga", 1))
    await b.edit(text_insert("notes", 0, "B+"), map_set("guests", "gb", 2))
    await b.wait_for({"notes": "B+base"}, roots=ROOTS)
    with pytest.raises(JsTimeoutError, match="B\\+base"):
        # still offline: a cannot see b's edit (bounded negative check)
        await a.wait_for({"notes": "B+base+A"}, roots=ROOTS, timeout=0.5)

    mark = a.event_mark()
    await a.reconnect()
    await a.wait_synced()
    await a.wait_event("status", lambda e: e["status"] == "connected", after=mark)
    await a.wait_event("synced", lambda e: e["synced"] is True, after=mark)
    expected = {"notes": "B+base+A", "guests": {"ga": 1, "gb": 2}, "tables": ["t1"]}
    await a.wait_for(expected, roots=ROOTS)
    await b.wait_for(expected, roots=ROOTS)


async def test_harness_errors_are_clear(server: ServerProcess, group: JsClientGroup) -> None:
    c = await group.start(version=3)
    with pytest.raises(JsCommandError, match="not connected"):
        await c.state()
    with pytest.raises(JsCommandError, match="unknown command"):
        await c.call("nope")
    await c.connect(server.ws_url, new_room())
    await c.wait_synced()
    with pytest.raises(JsCommandError, match="unknown op type"):
        await c.edit({"type": "map.frobnicate", "name": "guests"})
    with pytest.raises(JsCommandError, match="is a map, not a array"):
        await c.edit(map_set("guests", "k", 1), array_push("guests", [1]))
    with pytest.raises(JsTimeoutError, match="timed out after 200 ms"):
        await c.wait_for({"guests": {"k": 2}}, timeout=0.2)
    assert await c.json() == {"guests": {"k": 1}}
    assert (await c.state({"other": "array"}))["json"] == {"guests": {"k": 1}, "other": []}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_everything_received_survives_a_restart(
    own_server: ServerProcess, group: JsClientGroup, sig: signal.Signals
) -> None:
    server = own_server
    room = new_room()
    a = await group.start(version=2)
    b = await group.start(version=3)
    for x in (a, b):
        await x.connect(server.ws_url, room)
        await x.wait_synced()
    for i in range(20):
        writer = a if i % 2 else b
        await writer.edit(map_set("guests", f"g{i}", {"n": i}), text_insert("notes", 0, f"{i},"))
    expected = await oracle_merge(group, a, b)
    # Once a client has received everything, the server stops (or dies) and comes back.
    await a.wait_for(expected, roots=ROOTS)
    await b.wait_for(expected, roots=ROOTS)
    await server.stop(sig)
    await server.start()
    fresh = await group.start(version=2)
    await fresh.connect(server.ws_url, room)
    await fresh.wait_synced()
    await fresh.wait_for(expected, roots=ROOTS)
    # The old clients reconnect by themselves and keep editing.
    await a.edit(map_set("guests", "after", True))
    await b.wait_for({"guests": {**expected["guests"], "after": True}}, roots={"guests": "map"})
