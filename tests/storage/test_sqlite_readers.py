"""The SQLite store's reads run on a bounded pool of read-only connections: loads proceed
side by side (a slow read does not hold up another), never on more connections than the
pool's size, and every read sees every commit acknowledged before it started."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Text

from crdt_server.storage import NewUpdate, SqliteStore, StoreError
from crdt_server.storage._sqlite_readers import default_read_connections

# One statement that keeps a reading connection busy for seconds (about a million rows a
# second here), against loads of a few milliseconds.
SLOW = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT ?) SELECT count(*) FROM c"
)
SLOW_ROWS = 3_000_000


def _update(text: str) -> bytes:
    doc: Doc[Any] = Doc(client_id=7)
    doc.get("t", type=Text).insert(0, text)
    return doc.get_update()


async def _until(check: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    """Let the loop run until ``check`` holds (a reading thread's count: no event to
    wait on), ``seconds`` at most."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.005)


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [1, 2])
async def test_a_slow_read_holds_up_another_only_when_it_has_the_only_connection(
    tmp_path: Path, size: int
) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3", read_connections=size)
    await store.open()
    try:
        await store.append([NewUpdate("w/guests", _update("Ada"), "test")])
        readers = store.readers
        assert readers is not None and readers.size == size
        slow = asyncio.create_task(store.read(SLOW, SLOW_ROWS))
        await _until(lambda: readers.busy == 1, "the slow read started")

        loaded = await asyncio.wait_for(store.load("w/guests"), 60)

        assert loaded is not None and loaded.updates == [_update("Ada")]
        if size == 1:  # one connection: the load waited for the slow read to finish
            assert slow.done()
        else:  # a second connection: the load did not wait
            assert not slow.done()
            assert readers.peak == 2
        assert await asyncio.wait_for(slow, 120) == [(SLOW_ROWS,)]
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_many_reads_at_once_use_at_most_the_pools_connections(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3", read_connections=3)
    await store.open()
    try:
        docs = [f"w{i}/guests" for i in range(20)]
        await store.append([NewUpdate(doc, _update(doc), "test") for doc in docs])

        loads = [store.load(docs[i % len(docs)]) for i in range(400)]
        logs = await asyncio.wait_for(asyncio.gather(*loads), 120)

        assert [log.updates if log else None for log in logs] == [
            [_update(docs[i % len(docs)])] for i in range(400)
        ]
        readers = store.readers
        assert readers is not None
        assert readers.opened <= 3 and readers.peak <= 3
        assert readers.busy == 0
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_every_read_sees_each_commit_acknowledged_before_it(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3", read_connections=4)
    await store.open()
    stop = asyncio.Event()

    async def keep_reading() -> None:  # other connections busy with reads meanwhile
        while not stop.is_set():
            await store.load("w/guests")

    busy = [asyncio.create_task(keep_reading()) for _ in range(3)]
    try:
        for i in range(1, 101):
            [seq] = await store.append([NewUpdate("w/guests", _update(str(i)), "test")])
            loaded, last = await asyncio.gather(store.load("w/guests"), store.last_seq())
            assert loaded is not None and len(loaded.updates) == i and loaded.last_seq == seq
            assert last == seq
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*busy), 60)
        await store.close()


@pytest.mark.asyncio
async def test_a_failed_read_leaves_no_snapshot_behind(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3", read_connections=1)
    await store.open()
    try:
        await store.append([NewUpdate("w/guests", _update("a"), "test")])
        with pytest.raises(StoreError):
            await store.read("SELECT json(?) FROM updates", "{not json")
        with pytest.raises(StoreError, match="readonly"):  # the readers cannot write
            await store.read("DELETE FROM updates")

        await store.append([NewUpdate("w/guests", _update("b"), "test")])

        loaded = await store.load("w/guests")
        assert loaded is not None and len(loaded.updates) == 2
        assert await store.scrub()  # no reader holds an old snapshot: the WAL empties
    finally:
        await store.close()
    wal = await asyncio.to_thread(Path(f"{store.path}-wal").exists)
    assert not wal  # the writer, closed last, removed it


def test_the_default_pool_is_one_more_than_the_cores_at_most_four() -> None:
    assert 2 <= default_read_connections() <= 4
    with pytest.raises(ValueError, match="read_connections"):
        SqliteStore("x.sqlite3", read_connections=-1)
