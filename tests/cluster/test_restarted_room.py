"""A process killed and started again serves its rooms as the store holds them.

Its start may load rooms before the bus is subscribed (the notes feature closes the edit
sessions a crash left open, reading each one's room): what another process commits
between that load and the subscription must still reach the room. The fault campaign's
room check found the restarted server's rooms behind the store in every server-kill
schedule: a few of each writer's last clocks missing, for good. The features that had not
started yet when the room loaded failed on its load."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map, Text

from tests.server import ServerProcess
from tests.yclient import YClient

ROOM = "w9/guests"


def guests(doc: Doc[Any]) -> dict[str, Any]:
    return doc.get("guests", type=Map).to_py() or {}


async def until_open_session(data_dir: Path, timeout: float = 10) -> None:
    """Wait until the store holds an open edit session (its row is written after the
    commit)."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(f"file:{data_dir / 'crdt.sqlite3'}?mode=ro", uri=True) as db:
            if db.execute("SELECT count(*) FROM note_sessions").fetchone()[0]:
                return
        assert time.monotonic() < deadline, "no edit session was opened"
        await asyncio.sleep(0.05)


async def write(client: YClient, prefix: str, count: int) -> None:
    root = client.doc.get("guests", type=Map)
    for i in range(count):
        root[f"{prefix}{i}"] = Map({"name": f"Guest {i}", "notes": Text("")})
        await client.flush()
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_a_room_loaded_while_starting_follows_what_another_process_commits(
    cluster: list[ServerProcess],
) -> None:
    one, two = cluster
    async with YClient(one.ws_url, ROOM) as typist:
        await typist.wait(typist.synced.is_set)
        await write(typist, "before", 5)
        notes = typist.doc.get("guests", type=Map)["before0"]["notes"]
        assert isinstance(notes, Text)
        notes += "allergic to nuts"  # an edit session opens on `one`
        await typist.flush()
        await typist.wait(typist.is_confirmed)
        await until_open_session(one.data_dir)
        await one.kill()  # the session is left open
    async with YClient(two.ws_url, ROOM) as writer:
        await writer.wait(writer.synced.is_set)
        writing = asyncio.create_task(write(writer, "after", 300))
        await asyncio.sleep(0.3)
        await one.restart()  # closes the session: its room loads while writes go on
        await writing
        await writer.wait(writer.is_confirmed)
        want = guests(writer.doc)
        # A client of the restarted process is served its room: everything committed.
        async with YClient(one.ws_url, ROOM) as late:
            try:
                await late.wait(lambda: guests(late.doc).keys() == want.keys(), timeout=15)
            except TimeoutError:
                missing = sorted(want.keys() - guests(late.doc).keys())
                raise AssertionError(
                    f"the restarted room lacks {len(missing)}: {missing[:5]}"
                ) from None
    # Every feature saw the room's load once it had started (the day feature's came
    # before its start and failed).
    log = one.log_text()
    assert "caught up" in log or "catching them up" in log, log[-3000:]
    assert "failed on load" not in log, log[-3000:]
