"""The storage quota's count of a wedding's stored bytes, read from each backend (SQLite
and PostgreSQL): every document of the wedding, none of another wedding whose id starts
the same, and a loaded room's own size wins over what was read."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from crdt_server.core.usage import WeddingUsage
from crdt_server.storage import DocumentStore, Gateway, NewUpdate

pytestmark = [pytest.mark.timeout(60)]


@pytest.mark.asyncio
async def test_a_weddings_stored_bytes_are_counted_per_document(store: DocumentStore) -> None:
    await store.append(
        [
            NewUpdate("w1/guests", b"a" * 100, "test"),
            NewUpdate("w1/guests", b"b" * 50, "test"),
            NewUpdate("w1/budget", b"c" * 30, "test"),
            NewUpdate("w10/guests", b"d" * 1000, "test"),
            NewUpdate("w1-x/guests", b"e" * 1000, "test"),
        ]
    )
    usage = WeddingUsage()
    await usage.count(store, "w1")
    assert usage.others("w1/timeline") == 180
    assert usage.others("w1/guests") == 30
    usage.set("w1/guests", 10)  # the room's own count wins, and is not read again
    await usage.count(store, "w1")
    assert usage.others("w1/timeline") == 40
    await usage.count(store, "w10")
    assert usage.others("w10/budget") == 1000
    usage.forget("w1")
    assert usage.others("w1/timeline") == 0


@pytest.mark.asyncio
async def test_rooms_of_a_wedding_loading_at_once_read_its_sizes_once(
    store: DocumentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Hocuspocus socket attaches a wedding's documents at once: their rooms load together
    and wait for one grouped query, not one each; a read that fails is made again."""
    await store.append(
        [
            NewUpdate("w2/guests", b"a" * 100, "test"),
            NewUpdate("w2/budget", b"b" * 30, "test"),
            NewUpdate("w3/budget", b"c" * 30, "test"),
        ]
    )
    reads: list[str] = []
    fetch = Gateway.fetch
    held = asyncio.Event()  # the first read of w3 waits for it (it is cancelled meanwhile)

    async def counted(self: Gateway, sql: str, *params: object) -> Any:
        reads.append(str(params[0]))
        if reads == ["w2/", "w3/"]:
            await held.wait()
        return await fetch(self, sql, *params)

    monkeypatch.setattr(Gateway, "fetch", counted)
    usage = WeddingUsage()
    await asyncio.gather(*(usage.count(store, "w2") for _ in range(8)))
    assert reads == ["w2/"]
    assert usage.others("w2/timeline") == 130
    # The first reader cancelled: the one still waiting reads for itself.
    first = asyncio.create_task(usage.count(store, "w3"))
    await asyncio.sleep(0)
    second = asyncio.create_task(usage.count(store, "w3"))
    await asyncio.sleep(0)
    assert reads == ["w2/", "w3/"] and not second.done()  # waiting for the first's read
    first.cancel()
    async with asyncio.timeout(10):
        await second
    assert first.cancelled()
    assert reads.count("w3/") == 2
    assert usage.others("w3/guests") == 30
    await usage.count(store, "w3")  # counted now: never read again
    assert reads.count("w3/") == 2
