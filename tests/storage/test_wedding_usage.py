"""The storage quota's count of a wedding's stored bytes, read from each backend (SQLite
and PostgreSQL): every document of the wedding, none of another wedding whose id starts
the same, and a loaded room's own size wins over what was read."""

from __future__ import annotations

import pytest

from crdt_server.core.usage import WeddingUsage
from crdt_server.storage import DocumentStore, NewUpdate

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
