"""A store written before the shape rule may hold content that does not fit its parent
(issue 47): each stored variant is listed by ``check``, served (JSON view included) without
iterating the bad items, logged once per load, and deleted by ``repair``.

Every command and server runs as a child process with a deadline: on code that iterates the
bad items, the read never returns, and the child is killed instead of the test run hanging.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from crdt_server.storage import NewUpdate, SqliteStore
from crdt_server.testing import forkserver
from tests import hostile_shapes as h
from tests.server import ServerProcess

STORED = {
    "nested insert": h.nested_insert(),
    "origin insert": h.origin_insert(),
    "gc origin insert": h.gc_origin_insert(),
    "one update": h.one_update(),
    "unknown root": h.unknown_root_update(),
}


async def _store(path: Path, hostile: bytes) -> None:
    """``w1/guests``: the base document, then the hostile row (as an older release kept it)."""
    store = SqliteStore(path)
    await store.open()
    try:
        await store.append([NewUpdate("w1/guests", h.base_document(), "ws:ada")])
        await store.append([NewUpdate("w1/guests", hostile, "ws:mallory")])
    finally:
        await store.close()


@dataclass
class _Done:
    returncode: int
    stdout: str
    stderr: str


def _cli(*args: str) -> _Done:
    """``crdt-server ARGS`` to completion (forked: :mod:`crdt_server.testing.forkserver`)."""
    code, out, err = forkserver.run("crdt_server", args, env=os.environ, timeout=30)
    return _Done(code, out.decode(), err.decode())


@pytest.mark.timeout(120)
@pytest.mark.parametrize("hostile", STORED.values(), ids=STORED.keys())
def test_check_lists_the_items_and_repair_deletes_them(tmp_path: Path, hostile: bytes) -> None:
    data = tmp_path / "data"
    data.mkdir()
    asyncio.run(_store(data / "crdt.sqlite3", hostile))
    done = _cli("check", "--data-dir", str(data), "--json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    (guests,) = [d for d in report["documents"] if d["doc"] == "w1/guests"]
    assert any(
        "does not fit their parent" in p
        and f"{h.HOSTILE_CLIENT}#" in p
        and "crdt-server repair --wedding w1" in p
        for p in guests["problems"]
    ), guests["problems"]

    done = _cli("repair", "--data-dir", str(data), "--wedding", "w1")
    assert done.returncode == 0, done.stderr
    assert f"repaired  w1/guests: deleted 1 items ({h.HOSTILE_CLIENT}#" in done.stdout
    assert "1 of 1 documents repaired" in done.stdout

    done = _cli("check", "--data-dir", str(data), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    done = _cli("repair", "--data-dir", str(data), "--wedding", "w1")
    assert "ok        w1/guests: nothing to repair" in done.stdout


@pytest.mark.timeout(120)
@pytest.mark.asyncio
@pytest.mark.parametrize("hostile", STORED.values(), ids=STORED.keys())
async def test_a_room_serves_it_and_its_json_view_and_logs_it_once(
    tmp_path: Path, hostile: bytes
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    await _store(data / "crdt.sqlite3", hostile)
    # Loaded once: an idle room unloads, and each load logs what it left out.
    server = await ServerProcess(data, env={"CRDT_SERVER_ROOM_IDLE_SECONDS": "600"}).start()
    try:
        # A loop that never returns would fail these for ever; 15 s is for a busy machine.
        async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:
            for view in ("", "?format=rich"):
                answer = await http.get(f"/api/weddings/w1/docs/guests{view}")
                assert answer.status_code == 200, answer.text
                assert "\U0001f600" not in answer.text
            binary = await http.get(
                "/api/weddings/w1/docs/guests", headers={"Accept": "application/octet-stream"}
            )
            assert binary.status_code == 200
            assert (await http.get("/healthz")).status_code == 200
        # The child's output is read by a thread: wait (with a deadline) for the line.
        deadline = time.monotonic() + 10
        while "does not fit their parent" not in server.log_text():
            assert time.monotonic() < deadline, server.log_text()
            await asyncio.sleep(0.05)
        log = server.log_text()
        assert log.count("hold content that does not fit their parent") == 1, log
        assert "\U0001f600" not in log and "a\\U0001f600" not in log
    finally:
        await server.stop(timeout=3)
