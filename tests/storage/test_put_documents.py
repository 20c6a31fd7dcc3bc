"""Conformance of ``DocumentStore.put_documents`` (moving documents between stores), run
against every backend of ``conftest.py`` (SQLite files and a real PostgreSQL)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from pycrdt import Doc, Map

from crdt_server.features.events import add_events, read_events, store_events
from crdt_server.storage import (
    DocumentStore,
    FeatureRow,
    Gateway,
    HistoryEntry,
    MovedDocument,
    NewEvent,
    NewUpdate,
    StoreError,
)

if TYPE_CHECKING:
    from tests.storage.conftest import OpenStore


def _update(key: str, value: int) -> bytes:
    doc: Doc[Any] = Doc()
    doc.get("m", type=Map)[key] = value
    return doc.get_update()


def _entry(origin: str, at: float, size: int) -> HistoryEntry:
    return HistoryEntry(seq=999, doc="ignored", origin=origin, created_at=at, size=size)


@pytest.mark.asyncio
async def test_moved_documents_keep_their_history_and_later_appends_follow(
    store: DocumentStore, open_store: OpenStore
) -> None:
    before = await store.append([NewUpdate("other/doc", _update("x", 1), "ws:zoe")])
    a, b = _update("a", 1), _update("b", 2)
    seqs = await store.put_documents(
        [
            MovedDocument(
                "w1/guests", [a], [_entry("ws:ada", 1000.5, 10), _entry("http:bo", 2000.0, 20)]
            ),
            MovedDocument("w1/budget", [b], []),
        ],
        "import",
    )
    assert len(seqs) == 2 and seqs[0] > before[0] and seqs[1] > seqs[0]
    loaded = await store.load("w1/guests")
    assert loaded is not None and loaded.updates == [a] and loaded.last_seq == seqs[0]
    history = await store.history("w1/guests")
    assert [(h.origin, h.created_at, h.size) for h in reversed(history)] == [
        ("ws:ada", 1000.5, 10),
        ("http:bo", 2000.0, 20),
        ("import", history[0].created_at, len(a)),
    ]
    assert [h.seq for h in reversed(history)] == sorted(h.seq for h in history)
    assert history[0].seq == seqs[0] and history[-1].seq > before[0]
    # Seqs keep growing past everything the move wrote, also after a restart.
    await store.close()
    again = await open_store()
    after = await again.append([NewUpdate("w1/guests", _update("c", 3), "ws:ada")])
    assert after[0] > seqs[-1]
    assert await again.docs_of([seqs[0], after[0]]) == {seqs[0]: "w1/guests", after[0]: "w1/guests"}


@pytest.mark.asyncio
async def test_a_document_that_exists_is_refused_and_nothing_is_written(
    store: DocumentStore,
) -> None:
    await store.append([NewUpdate("w1/budget", _update("x", 1), "ws:zoe")])
    last = await store.last_seq()
    with pytest.raises(StoreError):
        await store.put_documents(
            [
                MovedDocument("w1/guests", [_update("a", 1)], [_entry("ws:ada", 1.0, 3)]),
                MovedDocument("w1/budget", [_update("b", 1)], []),
            ],
            "import",
        )
    assert await store.load("w1/guests") is None
    assert await store.history("w1/guests") == []
    assert await store.last_seq() == last
    with pytest.raises(StoreError):
        await store.put_documents([MovedDocument("w2/guests", [], [])], "import")
    assert await store.list("w2/") == []


@pytest.mark.asyncio
async def test_moved_events_keep_their_time_and_actor_and_follow_the_wedding_s_own(
    store: DocumentStore,
) -> None:
    """An imported wedding's events go in with its documents, numbered after the wedding's
    last event; a refused move stores none of them."""
    await add_events(
        Gateway.of(store), [NewEvent("w1", "custom.note", '{"n":0}', None, "zoe", "couple")]
    )
    moved = [
        NewEvent("w1", "guest.added", '{"id":"a"}', "guests", "ada", "planner", "urgent", 1000.5),
        NewEvent("w1", "custom.note", '{"n":1}', None, "bo", "couple", "normal", 2000.25),
    ]
    await store.put_documents(
        [MovedDocument("w1/guests", [_update("a", 1)], [])], "import", steps=[store_events(moved)]
    )
    found = await read_events(Gateway.of(store), "w1", limit=10)
    assert [(e.seq, e.type, e.doc, e.sub, e.role, e.priority, e.data) for e in found[1:]] == [
        (2, "guest.added", "guests", "ada", "planner", "urgent", '{"id":"a"}'),
        (3, "custom.note", None, "bo", "couple", "normal", '{"n":1}'),
    ]
    assert [e.at for e in found[1:]] == [1000.5, 2000.25]
    with pytest.raises(StoreError):
        await store.put_documents(
            [MovedDocument("w1/guests", [_update("b", 1)], [])],
            "import",
            steps=[store_events(moved)],
        )
    assert len(await read_events(Gateway.of(store), "w1", limit=10)) == 3


@pytest.mark.asyncio
async def test_put_documents_writes_feature_rows_in_the_same_transaction(
    store: DocumentStore,
) -> None:
    """A feature's rows (an imported wedding's threads...) go in with the documents; a row
    that cannot be stored, or one for a table no installed schema declares, refuses the
    whole move."""
    from tests.storage.test_conformance import NOTES, notes

    note = FeatureRow("notes", (("wedding", "w1"), ("id", "n1"), ("body", "Peonies")))
    with pytest.raises(StoreError):  # not installed yet
        await store.put_documents(
            [MovedDocument("w1/guests", [_update("a", 1)], [])], "import", [note]
        )
    await store.install(NOTES)
    for bad in (
        FeatureRow("updates", (("doc", "w1/x"),)),
        FeatureRow("notes", (("id; DROP TABLE notes", "x"),)),
        FeatureRow("notes", ()),
    ):
        with pytest.raises(StoreError):
            await store.put_documents(
                [MovedDocument("w1/guests", [_update("a", 1)], [])], "import", [bad]
            )
    # The second row repeats the first's key: nothing of the move is stored.
    event = NewEvent("w1", "note.added", "{}")
    with pytest.raises(StoreError):
        await store.put_documents(
            [MovedDocument("w1/guests", [_update("a", 1)], [])],
            "import",
            [note, note],
            steps=[store_events([event])],
        )
    assert (
        await store.load("w1/guests") is None and await read_events(Gateway.of(store), "w1") == []
    )
    assert await notes(store) == []
    await store.put_documents(
        [MovedDocument("w1/guests", [_update("a", 1)], [])],
        "import",
        [note],
        steps=[store_events([event])],
    )
    assert await notes(store) == [("w1", "n1")]
    assert (
        await store.load("w1/guests") is not None
        and len(await read_events(Gateway.of(store), "w1")) == 1
    )
