"""The thread feature's transactions on every backend: statements written once run on
SQLite and PostgreSQL, concurrent transactions share commits, and one that fails is
rolled back alone (its savepoint) while the others commit."""

from __future__ import annotations

import asyncio

import pytest

from crdt_server.features.events import read_events, store_events
from crdt_server.features.people.tables import SCHEMA
from crdt_server.storage import DocumentStore, Gateway, NewEvent
from crdt_server.storage.gateway import Sql, Tx


class Refused(Exception):
    pass


def add_member(wedding: str, sub: str, *, fail: bool = False) -> Tx[int]:
    yield Sql(
        "INSERT INTO {t}members (wedding, sub, role, name, unsubscribe, updated_at)"
        " VALUES (?, ?, 'vendor', ?, 'k', 0)",
        (wedding, sub, sub),
    )
    stored = yield from store_events([NewEvent(wedding, "thread.member_added", "{}")])
    if fail:
        raise Refused(sub)
    rows = yield Sql("SELECT COUNT(*) FROM {t}members WHERE wedding = ?", (wedding,))
    return len(stored) * 1000 + int(rows[0][0])


@pytest.mark.asyncio
async def test_thread_transactions_share_commits_and_fail_alone(store: DocumentStore) -> None:
    await store.install(SCHEMA)
    db = Gateway.of(store)
    results = await asyncio.gather(
        *(db.run(add_member("w_1", f"m{i}", fail=i == 3)) for i in range(8)),
        return_exceptions=True,
    )
    assert isinstance(results[3], Refused)
    assert all(isinstance(r, int) and r > 1000 for i, r in enumerate(results) if i != 3)
    rows = await db.fetch("SELECT sub FROM {t}members WHERE wedding = ? ORDER BY sub", "w_1")
    assert [r[0] for r in rows] == [f"m{i}" for i in range(8) if i != 3]
    # The failed one's event was rolled back with it: seqs have no gap.
    events = await read_events(Gateway.of(store), "w_1", limit=100)
    assert [e.seq for e in events] == list(range(1, 8))
    # The wedding's erasure empties the feature's tables.
    await store.erase_wedding("w_1")
    assert await db.fetch("SELECT COUNT(*) FROM {t}members") == [(0,)]
