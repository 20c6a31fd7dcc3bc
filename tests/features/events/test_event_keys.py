"""The events' keys on both stores: an event that tells of a Yjs item an earlier event of
the wedding told of is not stored (the same content committed by two servers, in one
update on one and in several on the other), events of one commit may share items, and an
event without a key is always stored; seqs stay without gaps."""

from __future__ import annotations

from pathlib import Path

import pytest

from crdt_server.features.events.tables import SCHEMA, read_events, store_events
from crdt_server.storage import Gateway, NewEvent, store_for


def _event(kind: str, key: str | None, wedding: str = "w1") -> NewEvent:
    return NewEvent(wedding, kind, "{}", "guests", key=key)


async def _check(url: str | None, tmp_path: Path) -> None:
    store = store_for(url, tmp_path / "store.sqlite3")
    await store.open()
    try:
        await store.install(SCHEMA)
        gateway = Gateway.of(store)

        async def commit(*events: NewEvent) -> list[str]:
            stored = await gateway.run(store_events(list(events)))
            return [e.type for e in stored]

        # One server: the guest added with its fields, then its answer, one update each.
        added = "guests:w:9:0 guests:w:9:1 guests:w:9:2"
        assert await commit(_event("guest.added", added)) == ["guest.added"]
        assert await commit(_event("guest.rsvp_changed", "guests:w:9:3")) == ["guest.rsvp_changed"]
        # The other server, both in one update: its guest.added tells of the entry's item.
        merged = "guests:w:9:0 guests:w:9:1 guests:w:9:3"
        assert await commit(_event("guest.added", merged)) == []
        # The other way round: told at once first, then one by one (w2).
        assert await commit(_event("guest.added", merged, "w2")) == ["guest.added"]
        assert await commit(_event("guest.added", added, "w2")) == []
        assert await commit(_event("guest.rsvp_changed", "guests:w:9:3", "w2")) == []
        # Removing the entry tells of its item removed: a fact of its own.
        assert await commit(_event("guest.removed", "guests:r:9:0")) == ["guest.removed"]
        # Two events of one change share an item; an event without a key is stored.
        both = ("budget.payment_updated", "budget.payment_paid")
        assert await commit(*(_event(k, "budget:w:4:7") for k in both)) == list(both)
        assert await commit(_event("budget.payment_paid", "budget:w:4:7")) == []
        assert await commit(_event("day.cake", None), _event("day.cake", None)) == [
            "day.cake",
            "day.cake",
        ]
        seqs = [e.seq for e in await read_events(gateway, "w1", limit=100)]
        assert seqs == list(range(1, 8))  # no seq taken by one left out
    finally:
        await store.close()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_an_event_of_items_told_before_is_not_stored(tmp_path: Path) -> None:
    await _check(None, tmp_path)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_an_event_of_items_told_before_is_not_stored_on_postgres(
    tmp_path: Path, postgres_url: str
) -> None:
    await _check(postgres_url, tmp_path)
