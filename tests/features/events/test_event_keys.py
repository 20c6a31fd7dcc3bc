"""The events' keys on both stores: an event that tells of a Yjs item an earlier event of
the wedding told of is not stored (the same content committed by two servers, in one
update on one and in several on the other), events of one commit may share items, and an
event without a key is always stored; seqs stay without gaps. A change some of whose items
were told before and some not is told for the rest, from what the events told."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from crdt_server.documents.changes import EntryChange
from crdt_server.documents.events import derive_events
from crdt_server.features.events.domain import DerivedEvent, derivation_of, told_items
from crdt_server.features.events.tables import SCHEMA, read_events, store_events
from crdt_server.storage import Gateway, NewEvent, store_for


def _event(kind: str, key: str | None, wedding: str = "w1") -> NewEvent:
    return NewEvent(wedding, kind, "{}", "guests", key=key)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    """Each store: SQLite (``None``), and a fresh database of the local PostgreSQL."""
    return request.getfixturevalue("postgres_url") if request.param == "postgres" else None


@pytest_asyncio.fixture
async def gateway(store_url: str | None, tmp_path: Path) -> AsyncIterator[Gateway]:
    """The events' tables on each store."""
    store = store_for(store_url, tmp_path / "store.sqlite3")
    await store.open()
    try:
        await store.install(SCHEMA)
        yield Gateway.of(store)
    finally:
        await store.close()


async def _stored(gateway: Gateway, events: list[NewEvent]) -> list[tuple[str, dict[str, object]]]:
    return [(e.type, json.loads(e.data)) for e in await gateway.run(store_events(events))]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_an_event_of_items_told_before_is_not_stored(gateway: Gateway) -> None:
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


def _derived(
    change: EntryChange, items: dict[tuple[str, ...], list[tuple[int, int]]], wedding: str = "w1"
) -> list[NewEvent]:
    """The events a keyed server derives from ``change`` to the guest list, whose slots
    ``items`` wrote (as :meth:`EventLog.on_commit` makes them)."""
    events = derive_events("guests", [change])
    told = [told_items("guests", e.type, e.data, change, items) for e in events]
    derivation = derivation_of("guests", change, told)
    return [
        DerivedEvent(
            wedding,
            e.type,
            json.dumps(e.data, separators=(",", ":")),
            "guests",
            key=" ".join(sorted(slots)) if slots else None,
            derivation=derivation,
        )
        for e, slots in zip(events, told, strict=True)
    ]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_the_untold_rest_of_a_change_is_told_from_what_was_told(gateway: Gateway) -> None:

    entry, name = ("guests", "g1"), ("guests", "g1", "name")
    rsvp = ("guests", "g1", "rsvp")
    fields = {"name": "Ada", "rsvp": "pending"}
    added = EntryChange("guests", "g1", "added", {}, fields)
    first = {entry: [(9, 0)], name: [(9, 1)], rsvp: [(9, 2)]}
    assert await _stored(gateway, _derived(added, first)) == [
        ("guest.added", {"id": "g1", "fields": fields})
    ]
    # Another server: the guest and its later answer, one merged update.
    answered = EntryChange("guests", "g1", "added", {}, {"name": "Ada", "rsvp": "accepted"})
    merged = {entry: [(9, 0)], name: [(9, 1)], rsvp: [(9, 3)]}
    assert await _stored(gateway, _derived(answered, merged)) == [
        ("guest.rsvp_changed", {"id": "g1", "from": "pending", "to": "accepted"})
    ]
    # The first server's own copy of the answer comes after: told already.
    change = EntryChange("guests", "g1", "updated", {"rsvp": "pending"}, {"rsvp": "accepted"})
    assert await _stored(gateway, _derived(change, {rsvp: [(9, 3)]})) == []
    # A rename told, then merged with a new phone: the phone alone, from what was told.
    renamed = EntryChange("guests", "g1", "updated", {"name": "Ada"}, {"name": "Ada L."})
    phone = ("guests", "g1", "phone")
    assert [t for t, _ in await _stored(gateway, _derived(renamed, {name: [(9, 4)]}))] == [
        "guest.updated"
    ]
    both = EntryChange(
        "guests",
        "g1",
        "updated",
        {"name": "Ada", "phone": None},
        {"name": "Ada L.", "phone": "1"},
    )
    assert await _stored(gateway, _derived(both, {name: [(9, 4)], phone: [(9, 5)]})) == [
        ("guest.updated", {"id": "g1", "changes": {"phone": {"from": None, "to": "1"}}})
    ]
    seqs = [e.seq for e in await read_events(gateway, "w1", limit=100)]
    assert seqs == [1, 2, 3, 4]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_an_item_overwritten_before_it_was_told_is_not_told(gateway: Gateway) -> None:
    """The fault campaign's missing answers: a server cut from the store while committing a
    guest (``rsvp`` pending); its writer moves to another server and sends the guest with
    the answer that overwrote ``pending``, committed there first; the first server's commit
    lands after. Its ``pending`` item was overwritten before anyone told it: not told as a
    change (it was ``guest.rsvp_changed`` accepted -> pending, the events ending at pending
    while the guest answered accepted)."""

    entry, name = ("guests", "g1"), ("guests", "g1", "name")
    rsvp, meal = ("guests", "g1", "rsvp"), ("guests", "g1", "meal")
    answered = {"name": "Ada", "rsvp": "accepted"}
    merged = EntryChange("guests", "g1", "added", {}, answered)
    assert await _stored(
        gateway, _derived(merged, {entry: [(9, 0)], name: [(9, 1)], rsvp: [(9, 3)]})
    ) == [("guest.added", {"id": "g1", "fields": answered})]
    stale = EntryChange("guests", "g1", "added", {}, {"name": "Ada", "rsvp": "pending"})
    assert (
        await _stored(gateway, _derived(stale, {entry: [(9, 0)], name: [(9, 1)], rsvp: [(9, 2)]}))
        == []
    )
    # Another writer's item at a slot is not ordered by clocks: told as it comes.
    other = EntryChange("guests", "g1", "updated", {"meal": None}, {"meal": "fish"})
    assert await _stored(gateway, _derived(other, {meal: [(7, 40)]})) == [
        ("guest.updated", {"id": "g1", "changes": {"meal": {"from": None, "to": "fish"}}})
    ]
    seqs = [e.seq for e in await read_events(gateway, "w1", limit=100)]
    assert seqs == [1, 2]


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_run_of_integrations_that_wrote_one_slot_is_told_once(gateway: Gateway) -> None:
    """The fault campaign's doubled events (the long run's ``server-stop``): a server
    paused for 22 s took its writers' buffered messages, once continued, as one update of
    several integrations: a guest (``rsvp`` pending), then the answer that replaced it.
    Two integrations wrote the ``rsvp`` slot, so the update's events carried no key and
    were stored, though the other server, to which the writers had moved, had told the
    guest with its answer: ``guest.added`` twice (and ``pending -> accepted`` after it)."""

    entry, name, rsvp = ("guests", "g1"), ("guests", "g1", "name"), ("guests", "g1", "rsvp")
    answered = {"name": "Ada", "rsvp": "accepted"}
    merged = EntryChange("guests", "g1", "added", {}, answered)
    at_once = {entry: [(9, 0)], name: [(9, 1)], rsvp: [(9, 3)]}
    added = EntryChange("guests", "g1", "added", {}, {"name": "Ada", "rsvp": "pending"})
    answer = EntryChange("guests", "g1", "updated", {"rsvp": "pending"}, {"rsvp": "accepted"})
    run = {entry: [(9, 0)], name: [(9, 1)], rsvp: [(9, 2), (9, 3)]}
    # The other server first, the content re-sent to it as one merged change.
    told = [("guest.added", {"id": "g1", "fields": answered})]
    assert await _stored(gateway, _derived(merged, at_once)) == told
    assert await _stored(gateway, _derived(added, run) + _derived(answer, run)) == []
    # The other way round (w2): the run first, told as it happened; the merged change after.
    assert await _stored(gateway, _derived(added, run, "w2") + _derived(answer, run, "w2")) == [
        ("guest.added", {"id": "g1", "fields": {"name": "Ada", "rsvp": "pending"}}),
        ("guest.rsvp_changed", {"id": "g1", "from": "pending", "to": "accepted"}),
    ]
    assert await _stored(gateway, _derived(merged, at_once, "w2")) == []
