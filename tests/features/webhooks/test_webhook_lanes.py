"""The webhook outbox's two lanes on every backend: an urgent or emergency event is queued
and claimed ahead of a normal backlog (its own cursor, its own slots), then queued again in
order on the normal lane with the same ``webhook-id``; a delivery is unique per endpoint,
event and lane. And a store of the earlier release gains the lanes (migration 2)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from crdt_server.features import install_tables
from crdt_server.features import webhooks as webhooks_feature
from crdt_server.features.events import add_events
from crdt_server.features.webhooks.extension import Webhooks
from crdt_server.features.webhooks.service import insert_delivery
from crdt_server.features.webhooks.settings import WebhookSettings
from crdt_server.features.webhooks.tables import SCHEMA
from crdt_server.settings import Settings
from crdt_server.storage import (
    DocumentStore,
    Gateway,
    NewEvent,
    PostgresStore,
    SqliteStore,
    Store,
)

SETTINGS = Settings(fragments=(WebhookSettings(webhook_retry_schedule="0,60"),))
LEGACY = Path(__file__).parent.parent.parent / "fixtures" / "legacy"


class Row(msgspec.Struct, frozen=True):
    id: str
    event_seq: int | None
    lane: str
    webhook_id: str
    status: str


async def rows(store: DocumentStore, endpoint: str) -> list[Row]:
    return await Gateway.of(store).fetch_as(
        Row,
        "SELECT id, event_seq, lane, webhook_id, status FROM {t}webhook_deliveries"
        " WHERE endpoint = ? ORDER BY event_seq, lane",
        endpoint,
    )


async def post(store: DocumentStore, wedding: str, count: int, priority: str = "normal") -> int:
    added = await add_events(
        Gateway.of(store),
        [
            NewEvent(wedding, "custom.note", json.dumps({"n": i}), priority=priority)
            for i in range(count)
        ],
    )
    return added.events[-1].seq


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_an_urgent_event_goes_ahead_of_the_backlog_then_again_in_order(
    store: DocumentStore,
) -> None:
    await install_tables(store, [webhooks_feature.FEATURE])
    webhooks = Webhooks(store, SETTINGS, CollectorRegistry())
    endpoint, _, _ = await webhooks.manage.create("w_1", "https://example.com/h", ["*"], "")
    await post(store, "w_1", 450)  # more than two pages behind the normal cursor
    emergency = await post(store, "w_1", 1, "emergency")
    urgent = await post(store, "w_1", 1, "urgent")
    last = await post(store, "w_1", 3)

    # The first fan-out queues both urgent events on their lane, and a page of the backlog.
    more, taken = await webhooks.fan_out()
    assert more and taken == []
    queued = await rows(store, endpoint.id)
    assert [(r.event_seq, r.lane) for r in queued if r.lane == "urgent"] == [
        (emergency, "urgent"),
        (urgent, "urgent"),
    ]
    assert [r.event_seq for r in queued if r.lane == "normal"] == list(range(1, 201))

    # A claim of the urgent lane takes them, whatever the normal lane holds; they have
    # slots of their own (the normal lane's per-endpoint share is spent).
    now = time.time()
    normal = await webhooks.tables.claim("p", now, now + 30, 10, per_endpoint=4)
    assert len(normal) == 4 and all(c.lane == "normal" for c in normal)
    ahead = await webhooks.tables.claim("p", now, now + 30, 10, per_endpoint=4, lane="urgent")
    assert [json.loads(c.payload)["data"]["seq"] for c in ahead] == [emergency, urgent]
    assert [c.webhook_id for c in ahead] == [c.id for c in ahead]

    # The normal lane reaches them in order: the same events again, each with the
    # webhook-id of its urgent delivery (the receiver drops the repeat); nothing twice on
    # one lane, however often the outbox is fanned out.
    while (await webhooks.fan_out())[0]:
        pass
    await webhooks.fan_out()
    queued = await rows(store, endpoint.id)
    assert [r.event_seq for r in queued if r.lane == "normal"] == list(range(1, last + 1))
    assert len([r for r in queued if r.lane == "urgent"]) == 2
    for seq in (emergency, urgent):
        both = [r for r in queued if r.event_seq == seq]
        assert sorted(r.lane for r in both) == ["normal", "urgent"]
        assert both[0].webhook_id == both[1].webhook_id and both[0].id != both[1].id
    assert all(r.webhook_id == r.id for r in queued if r.event_seq not in (emergency, urgent))

    # An urgent event the normal lane has passed already is queued on it only.
    late = await post(store, "w_1", 1, "urgent")
    endpoint_row = await Gateway.of(store).fetch(
        "SELECT after_seq, urgent_after_seq FROM {t}webhook_endpoints WHERE id = ?", endpoint.id
    )
    assert endpoint_row == [(last, last)]
    await webhooks.tables.transaction(
        [("UPDATE {t}webhook_endpoints SET after_seq = ? WHERE id = ?", (late, endpoint.id))]
    )
    await webhooks.fan_out()
    assert [r for r in await rows(store, endpoint.id) if r.event_seq == late] == []


async def _gains_the_lanes(store: Store, endpoint: str) -> None:
    """The legacy store, opened with this release and its webhooks schema installed: past
    version 2, the endpoint's urgent cursor where its normal one stands, the deliveries on
    the normal lane with their ids as their webhook-ids, and room for an urgent one (and
    at version 3, the claim's indexes)."""
    await store.open()
    try:
        await store.install(SCHEMA)
        gateway = Gateway.of(store)
        versions = dict(await gateway.fetch("SELECT name, version FROM {t}schema_versions"))
        assert versions["webhooks"] == 3
        assert await gateway.fetch(
            "SELECT after_seq = urgent_after_seq FROM {t}webhook_endpoints WHERE id = ?",
            endpoint,
        ) in ([(1,)], [(True,)])
        old = await rows(store, endpoint)
        assert sorted((r.id, r.lane, r.webhook_id) for r in old) == [
            ("d1", "normal", "d1"),
            ("d2", "normal", "d2"),
        ]
        webhooks = Webhooks(store, SETTINGS, CollectorRegistry())
        [hook] = await webhooks.tables.endpoints("WHERE id = ?", endpoint)
        now = time.time()
        written = await webhooks.tables.transaction(
            [
                insert_delivery(hook, "d1u", 1, "guest.added", "{}", now, now, lane="urgent"),
                insert_delivery(hook, "d1again", 1, "guest.added", "{}", now, now),
            ]
        )
        assert [len(w) for w in written] == [1, 0]  # unique per endpoint, event and lane
        # The tombstone trigger came back with the rebuilt table (SQLite).
        await store.erase_wedding("w1")
        await webhooks.tables.transaction(
            [insert_delivery(hook, "d9", 9, "guest.added", "{}", now, now)]
        )
        assert await rows(store, endpoint) == []
    finally:
        await store.close()


def _endpoint() -> str:
    facts = json.loads((LEGACY / "sqlite.json").read_text())["facts"]
    return str(facts["endpoint"])


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_sqlite_store_of_the_earlier_release_gains_the_lanes(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    shutil.copyfile(LEGACY / "store.sqlite3", path)
    await _gains_the_lanes(SqliteStore(path), _endpoint())


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_postgres_store_of_the_earlier_release_gains_the_lanes(
    scratch_postgres: str,
) -> None:
    subprocess.run(  # noqa: ASYNC221 (as the legacy fixtures' own test loads it)
        ["psql", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-q", "-f", str(LEGACY / "postgres.sql")]
        + [scratch_postgres],
        check=True,
        capture_output=True,
        timeout=60,
    )
    endpoint = json.loads((LEGACY / "postgres.json").read_text())["facts"]["endpoint"]
    await _gains_the_lanes(PostgresStore(scratch_postgres, schema="legacy"), str(endpoint))
