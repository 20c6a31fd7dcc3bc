"""Under overload a quiet wedding's update is committed and echoed in the turn of the loop
that applied it (crdt_server.core.eager, storage._group_commit's commit at once): no task
to wake, no writer task to wake, no wake-up after. Elsewhere, commits keep their task."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pycrdt import Doc, Text

from crdt_server.actor import Actor
from crdt_server.cluster.bus import LocalBus
from crdt_server.codec.updates import inspect_update
from crdt_server.core.hooks import Sender
from crdt_server.core.room import Room, RoomServices
from crdt_server.settings import Settings
from crdt_server.storage import SqliteStore
from tests.storage.conftest import finished_at_once

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]

WRITER = Sender(Actor("u1", "couple"), "c1")


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    sqlite = SqliteStore(tmp_path / "quiet.sqlite3", commits="loop")
    await sqlite.open()
    yield sqlite
    await sqlite.close()


def _insert(text: str) -> bytes:
    doc: Doc[Any] = Doc()
    doc.get("notes", type=Text).insert(0, text)
    return doc.get_update()


async def _rooms(store: SqliteStore) -> tuple[RoomServices, Room]:
    services = RoomServices(
        store, Settings(room_backlog_updates=64, process_backlog_updates=8), LocalBus()
    )
    return services, await Room.load("quiet/guests", services, print)


def _overload(services: RoomServices) -> None:
    """Two busy weddings hold the process's bound; the quiet wedding has sent nothing."""
    for wedding in ("a", "b"):
        services.backlog.added(f"{wedding}/guests", 4)


async def test_a_quiet_weddings_update_is_committed_before_its_apply_returns(
    store: SqliteStore,
) -> None:
    services, room = await _rooms(store)
    _overload(services)
    update = _insert("hello")
    assert services.backlog.ahead(room.name)
    index = finished_at_once(room.apply(update, inspect_update(update), WRITER))
    # Applied, committed and stored within the call: no turn of the loop passed.
    assert index == 0 and room.wait_committed(index).done()
    log = await store.load(room.name)
    assert log is not None and log.updates == [update]
    assert services.backlog.of(room.name) == 0


async def test_without_overload_the_commit_waits_for_its_task(store: SqliteStore) -> None:
    _, room = await _rooms(store)
    update = _insert("hello")
    index = finished_at_once(room.apply(update, inspect_update(update), WRITER))
    assert index == 0 and not room.wait_committed(index).done()
    await room.wait_committed(index)
    log = await store.load(room.name)
    assert log is not None and log.updates == [update]
