"""The open sessions' rows on every backend (SQLite, PostgreSQL): many opened in one
transaction, and closed in batches that store each session's event exactly once: with its
row, or without one only when the row was never written (issue 47, bounded work per
update)."""

from __future__ import annotations

import pytest

from crdt_server.features import install_tables
from crdt_server.features import notes as notes_feature
from crdt_server.features.events import read_events
from crdt_server.features.notes.tables import NoteSession, NoteSessionStore
from crdt_server.storage import DocumentStore, Gateway, NewEvent

pytestmark = pytest.mark.asyncio


def session(n: int) -> NoteSession:
    return NoteSession(
        f"s{n}", "w_1", "w_1/guests", "guests", f"g{n}", "notes", "pat", "planner", "", 1, 0.0
    )


def event(n: int) -> NewEvent:
    return NewEvent("w_1", "guest.notes_edited", f'{{"session":"s{n}"}}', "guests")


async def stored(store: DocumentStore) -> list[str]:
    return [e.data for e in await read_events(Gateway.of(store), "w_1", limit=10_000)]


async def test_sessions_open_together_and_close_once(store: DocumentStore) -> None:
    await install_tables(store, [notes_feature.FEATURE])
    rows = NoteSessionStore(store)
    count = 1200  # more than one IN (...) list of ids
    await rows.open([session(n) for n in range(count)])
    await rows.open([session(0)])  # an id stored already is left as it is
    assert len(await rows.all()) == count

    closed = await rows.close([(session(n), event(n), True) for n in range(count)])
    assert len(closed) == count
    assert await rows.all() == []
    # Closed again (another process closed them, or a repeat): nothing is stored twice.
    assert await rows.close([(session(n), event(n), True) for n in range(3)]) == []
    # A session whose row was never written (its write failed) still reports its event.
    again = await rows.close([(session(count), event(count), False)])
    assert [e.data for e in again] == ['{"session":"s1200"}']
    assert sorted(await stored(store)) == sorted(event(n).data for n in range(count + 1))
