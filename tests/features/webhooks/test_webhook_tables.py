"""The webhook outbox on every backend (SQLite, PostgreSQL): deliveries written once per
endpoint and event whoever fans out, claims that never hand one delivery to two processes,
settling, dead letters, replay, rotation, and erasure with the wedding."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from crdt_server.features import install_tables
from crdt_server.features import webhooks as webhooks_feature
from crdt_server.features.events import add_events
from crdt_server.features.webhooks import tables
from crdt_server.features.webhooks.domain import IdempotencyConflict
from crdt_server.features.webhooks.extension import Webhooks
from crdt_server.features.webhooks.settings import WebhookSettings
from crdt_server.settings import Settings
from crdt_server.storage import DocumentStore, Gateway, NewEvent, Once, SqliteStore
from tests.storage.conftest import OpenStore

SETTINGS = Settings(fragments=(WebhookSettings(webhook_retry_schedule="0,60"),))


async def opened(store: DocumentStore) -> Webhooks:
    await install_tables(store, [webhooks_feature.FEATURE])
    webhooks = Webhooks(store, SETTINGS, CollectorRegistry())
    return webhooks


async def events(store: DocumentStore, wedding: str, *types: str) -> None:
    await add_events(
        Gateway.of(store), [NewEvent(wedding, t, json.dumps({"n": i})) for i, t in enumerate(types)]
    )


@pytest.mark.asyncio
async def test_the_outbox_fans_out_once_claims_once_and_is_erased(
    store: DocumentStore, open_store: OpenStore
) -> None:
    one, two = await opened(store), await opened(await open_store())
    await events(store, "w_1", "guest.added")  # before the endpoint: never sent
    endpoint, secret, first = await one.manage.create(
        "w_1", "https://example.com/h", ["guest.*"], "crm"
    )
    assert secret.startswith("whsec_") and endpoint.events == ["guest.*"] and first
    other, _, _ = await one.manage.create("w_2", "https://example.com/h", ["*"], "")
    await events(store, "w_1", "guest.updated", "budget.total_changed", "guest.removed")
    await events(store, "w_2", "timeline.item_added")

    # Two processes fanning out at once write each delivery once.
    await asyncio.gather(one.fan_out(), two.fan_out())
    await one.fan_out()
    found = await one.manage.deliveries(endpoint, status="pending", after=None, limit=50)
    assert sorted(d.type for d in found) == ["guest.removed", "guest.updated"]
    assert [d.event_seq for d in found] == [4, 2]  # newest first
    assert len(await one.manage.deliveries(other, status=None, after=None, limit=50)) == 1

    # Claims by two processes at once never share a delivery; leased rows stay taken.
    now = 10**10  # every delivery is due
    a, b = await asyncio.gather(
        one.tables.claim(one._owner, now, now + 30, 2),
        two.tables.claim(two._owner, now, now + 30, 2),
    )
    claimed = [r.id for r in a + b]
    assert len(claimed) == len(set(claimed)) == 3
    assert await one.tables.claim("three", now, now + 30, 10) == []
    assert {r.attempts for r in a + b} == {1}  # the attempt is counted at the claim
    # A fan-out may take the deliveries it writes for their first attempt at once.
    await events(store, "w_2", "timeline.item_updated")
    more, taken = await one.fan_out(lease=5)
    assert not more and len(taken) == 1 and taken[0].endpoint == other.id and taken[0].attempts == 1
    assert await two.tables.claim(two._owner, time.time(), time.time() + 30, 10) == []

    # Settle: one delivered, one retried, then dead after the last attempt of "0,60".
    rows = {r.id: r for r in a + b}
    owner = {r.id: (one if r in a else two) for r in a + b}
    by_type = {d.type: d.id for d in found}
    for delivery, outcome in (
        (by_type["guest.updated"], "delivered"),
        (by_type["guest.removed"], "rejected"),
    ):
        webhooks = owner[delivery]
        row = rows[delivery]
        webhooks._settle(
            endpoint,
            delivery,
            int(row.attempts),
            float(row.event_at),
            outcome,
            200 if outcome == "delivered" else 500,
            "" if outcome == "delivered" else "HTTP 500",
            "ok",
        )
        await webhooks.flush()
    health = await one.manage.health(endpoint)
    assert (health.attempts_24h, health.failures_24h, health.pending, health.failed) == (2, 1, 1, 0)
    assert health.next_attempt is not None
    # Later: the retry is due, and so is the w_2 delivery whose lease ran out unsettled
    # (a process killed mid-attempt).
    later = await one.tables.claim(one._owner, now + 100, now + 130, 10)
    assert {r.endpoint for r in later} == {endpoint.id, other.id}
    [again] = [r for r in later if r.endpoint == endpoint.id]
    assert again.id == by_type["guest.removed"] and again.attempts == 2
    one._settle(endpoint, again.id, 2, float(again.event_at), "rejected", 503, "HTTP 503", "")
    await one.fan_out()  # settled attempts are committed with the next fan-out
    [dead] = await one.manage.deliveries(endpoint, status="failed", after=None, limit=50)
    assert dead.id == by_type["guest.removed"] and dead.last_status == 503
    shown = await one.manage.endpoint("w_1", endpoint.id)
    assert shown is not None and shown.last_error == "HTTP 503"

    # Replay: pending again from the first attempt; a pending delivery cannot be replayed.
    assert await one.manage.replay(endpoint, dead.id)
    assert not await one.manage.replay(endpoint, dead.id)
    assert (await one.manage.delivery(endpoint, dead.id)).status == "pending"  # type: ignore[union-attr]

    # Rotation keeps the old secret signing beside the new one.
    new = await one.manage.rotate("w_1", endpoint.id)
    rotated = await one.manage.endpoint("w_1", endpoint.id)
    assert new is not None and rotated is not None
    assert rotated.signing_secrets(0) == [new, secret]
    assert await one.manage.rotate("w_1", "wh_nope") is None

    # Idempotency-Key: two processes creating with one key at once make one endpoint.
    once = Once("w_1:ada:webhooks", "k1", "f1", time.time() + 60)
    made = await asyncio.gather(
        one.manage.create("w_1", "https://example.com/k", ["*"], "", once=once),
        two.manage.create("w_1", "https://example.com/k", ["*"], "", once=once),
    )
    assert made[0][0].id == made[1][0].id and made[0][1] == made[1][1]
    assert sorted(m[2] for m in made) == [False, True]
    with pytest.raises(IdempotencyConflict):
        await one.manage.create(
            "w_1", "https://example.com/k", ["*"], "", once=replace(once, fingerprint="f2")
        )
    expired = Once("w_1:ada:webhooks", "k2", "f1", time.time() - 1)
    await one.manage.create("w_1", "https://example.com/k", ["*"], "", once=expired)
    again = await one.manage.create("w_1", "https://example.com/k", ["*"], "", once=expired)
    assert again[2]  # an expired key is a new key

    # Erasure empties every webhook table of the wedding, and nothing comes back.
    await store.erase_wedding("w_1")
    assert await one.manage.endpoint("w_1", endpoint.id) is None
    assert await one.manage.deliveries(endpoint, status=None, after=None, limit=50) == []
    assert await one.manage.endpoints("w_2", after="", limit=50) != []
    with pytest.raises(LookupError):
        await one.manage.create("w_1", "https://example.com/h", ["*"], "", once=once)
    assert await one.manage.delete("w_2", other.id)
    assert not await one.manage.delete("w_2", other.id)
    assert await one.manage.deliveries(other, status=None, after=None, limit=50) == []
    await one.close()
    await two.close()


@pytest.mark.asyncio
async def test_claims_racing_in_many_processes_never_share_a_delivery(
    store: DocumentStore, open_store: OpenStore
) -> None:
    """Many claimers at once, over and over: every delivery is taken exactly once. (On
    PostgreSQL a claim that read the rows before another claim committed its lease must
    not take them too: the lease condition is re-checked on the row it locks.)"""
    claimers = [await opened(store)] + [await opened(await open_store()) for _ in range(3)]
    endpoints = [
        (await claimers[0].manage.create(f"w_{i}", "https://example.com/h", ["*"], ""))[0]
        for i in range(4)
    ]
    for endpoint in endpoints:
        await events(store, endpoint.wedding, *(["guest.added"] * 10))
    await claimers[0].fan_out()
    now = 10**10  # every delivery is due, and no lease runs out during the test
    taken: list[str] = []
    for _ in range(100):  # bounded: 40 deliveries, at least one taken per round
        rounds = await asyncio.gather(
            *(c.tables.claim(c._owner, now, now + 30, 1, per_endpoint=100) for c in claimers)
        )
        got = [r.id for rows in rounds for r in rows]
        if not got:
            break
        taken += got
    assert len(taken) == len(set(taken)) == 40


@pytest.mark.asyncio
async def test_a_claim_leaves_each_endpoint_at_most_its_share_in_flight(
    store: DocumentStore, open_store: OpenStore
) -> None:
    """``per_endpoint`` counts the leases every process holds on an endpoint: what another
    process took is subtracted from what this claim may take there, endpoint by endpoint,
    and due deliveries go oldest first."""
    one, two = await opened(store), await opened(await open_store())
    busy, idle = [(await one.manage.create(w, "https://example.com/h", ["*"], ""))[0]
                  for w in ("w_busy", "w_idle")]  # fmt: skip
    for endpoint in (busy, idle):
        await events(store, endpoint.wedding, *(["guest.added"] * 6))
    await one.fan_out()
    now = 10**10
    held = await two.tables.claim(two._owner, now, now + 30, 2, per_endpoint=2)
    assert [r.endpoint for r in held] == [busy.id, busy.id]  # the oldest: busy's were written first
    got = await one.tables.claim(one._owner, now, now + 30, 10, per_endpoint=3)
    by_endpoint = {e.id: sum(r.endpoint == e.id for r in got) for e in (busy, idle)}
    assert by_endpoint == {busy.id: 1, idle.id: 3}
    # Every endpoint at its share: nothing more until a lease ends or an attempt settles.
    assert await one.tables.claim(one._owner, now, now + 30, 10, per_endpoint=3) == []
    await one.close()
    await two.close()


@pytest.mark.asyncio
async def test_a_sqlite_claim_reads_each_endpoint_through_its_indexes(tmp_path: Path) -> None:
    """SQLite's claim reads an endpoint at a time (tables._claim_per_endpoint): each of its
    statements searches an index, none scans the deliveries, so its cost is the endpoints
    and what it leases, not the backlog (ranking every due delivery took 3 to 20 ms a claim
    under the overload benchmark's backlog)."""
    store = SqliteStore(tmp_path / "claim.sqlite3")
    await store.open()
    try:
        await opened(store)
        gateway = Gateway.of(store)
        now = 10**10
        ids = [f"msg_{n}" for n in range(16)]
        for sql, params, searches in (
            (
                tables._ENDPOINTS_DUE,
                ("normal", now, "normal", now, now),
                ("webhook_deliveries_leased", "webhook_deliveries_due_per_endpoint"),
            ),
            (
                tables._DUE_OF_ENDPOINT,
                ("e", "normal", now, now, 4),
                ("webhook_deliveries_due_per_endpoint",),
            ),
            # Sixteen ids: the planner once preferred the index on (status, next_at) here.
            (
                tables._LEASE.replace("{ids}", ", ".join("?" * len(ids))),
                (now + 30, "p", *ids, now),
                ("(id=?)",),
            ),
        ):
            plan = [
                str(row[-1]) for row in await gateway.fetch("EXPLAIN QUERY PLAN " + sql, *params)
            ]
            # Only the endpoints are scanned; every read of the deliveries is a search
            # through the claim's own indexes, or by id.
            scans = [step.split()[1] for step in plan if step.startswith("SCAN")]
            assert set(scans) <= {"e"}, plan
            reads = [step for step in plan if step.startswith("SEARCH")]
            assert len(reads) == len(searches), plan
            for read, index in zip(reads, searches, strict=True):
                assert index in read, plan
    finally:
        await store.close()
