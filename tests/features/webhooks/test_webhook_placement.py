"""With ``--workers N`` a wedding's events are fanned out to its webhook endpoints by its
owner alone (crdt_server.placement): two workers over one store each write the deliveries
of their own weddings, and together every event's once."""

from __future__ import annotations

import json

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from crdt_server.features import install_tables
from crdt_server.features import webhooks as webhooks_feature
from crdt_server.features.events import add_events
from crdt_server.features.webhooks.extension import Webhooks
from crdt_server.features.webhooks.settings import WebhookSettings
from crdt_server.placement import ALONE, Placement, owner
from crdt_server.settings import Settings
from crdt_server.storage import DocumentStore, Gateway, NewEvent

SETTINGS = Settings(fragments=(WebhookSettings(webhook_retry_schedule="0,60"),))
WEDDINGS = [f"w_{n}" for n in range(8)]


class Queued(msgspec.Struct, frozen=True):
    wedding: str
    event_seq: int


async def queued(store: DocumentStore) -> list[Queued]:
    return await Gateway.of(store).fetch_as(
        Queued, "SELECT wedding, event_seq FROM {t}webhook_deliveries ORDER BY wedding, event_seq"
    )


def test_each_wedding_has_one_owner_among_the_workers() -> None:
    for count in (1, 2, 3, 5):
        workers = [Placement(index, count) for index in range(count)]
        for wedding in WEDDINGS * 3:
            owners = [w.index for w in workers if w.owns(wedding)]
            assert owners == [owner(wedding, count)]
    assert all(ALONE.owns(wedding) for wedding in WEDDINGS)
    with pytest.raises(ValueError, match="no such worker"):
        Placement(2, 2)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_two_workers_fan_out_their_own_weddings_and_together_every_event_once(
    store: DocumentStore,
) -> None:
    workers = [
        Webhooks(store, SETTINGS, CollectorRegistry(), placement=Placement(index, 2))
        for index in range(2)
    ]
    await install_tables(store, [webhooks_feature.FEATURE])
    for wedding in WEDDINGS:
        await workers[0].manage.create(wedding, "https://example.com/h", ["*"], "")
    added = await add_events(
        Gateway.of(store),
        [NewEvent(w, "custom.note", json.dumps({"n": 1})) for w in WEDDINGS],
    )
    seq_of = {e.wedding: e.seq for e in added.events}
    owned = [[w for w in WEDDINGS if owner(w, 2) == index] for index in range(2)]
    assert all(owned), "the weddings are spread over both workers"

    # The first worker fans out its weddings' events, and leaves the others' alone.
    assert await workers[0].fan_out() == (False, [])
    assert sorted(q.wedding for q in await queued(store)) == sorted(owned[0])

    # The second fans out the rest; neither finds anything more to do, however often.
    assert await workers[1].fan_out() == (False, [])
    for webhooks in workers:
        assert await webhooks.fan_out() == (False, [])
    assert await queued(store) == [Queued(w, seq_of[w]) for w in sorted(WEDDINGS)]
