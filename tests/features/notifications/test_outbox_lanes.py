"""The outbox lanes on every backend (:func:`claim_lane`, the email outbox's claim, which
the push outbox is to share): the urgent lane takes the urgent and emergency rows, oldest
first, ahead of any backlog; the normal lane takes what is left; a claimed row is not
claimed again until its claim lapses."""

from __future__ import annotations

import time

import pytest

from crdt_server.features.notifications import claim_lane
from crdt_server.features.notifications.tables import (
    LANED_COLUMNS,
    OUTBOX,
    SCHEMA,
    LanedOutboxItem,
)
from crdt_server.names import Lane
from crdt_server.storage import DocumentStore, Gateway
from crdt_server.storage.gateway import Tx, statements


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_the_urgent_lane_is_claimed_ahead_of_a_backlog(store: DocumentStore) -> None:
    await store.install(SCHEMA)
    gateway = Gateway.of(store)
    now = time.time()
    priorities = ["normal"] * 300 + ["emergency", "low", "urgent", "normal"]
    await gateway.run(
        statements(
            [
                (
                    "INSERT INTO {t}notification_outbox (wedding, sub, reason, thread, message,"
                    " priority, created_at) VALUES (?, ?, 'mention', 't', ?, ?, ?)",
                    ("w1", f"s{i % 7}", f"m{i}", priority, now),
                )
                for i, priority in enumerate(priorities)
            ]
        )
    )

    def claim(lane: Lane, at: float, limit: int = 50) -> Tx[list[LanedOutboxItem]]:
        return claim_lane(LanedOutboxItem, OUTBOX.name, lane, LANED_COLUMNS, at, at + 60, limit)

    ahead = await gateway.run(claim("urgent", now))
    assert sorted((i.message, i.priority, i.sub) for i in ahead) == [
        ("m300", "emergency", "s6"),
        ("m302", "urgent", "s1"),
    ]
    assert await gateway.run(claim("urgent", now)) == []  # claimed until it lapses
    rest = await gateway.run(claim("normal", now, 1000))
    assert len(rest) == len(priorities) - 2
    assert {i.message for i in rest}.isdisjoint({"m300", "m302"})
    # A lapsed claim (the sender died) is claimed again: at least once.
    again = await gateway.run(claim("urgent", now + 61))
    assert sorted(i.message for i in again) == ["m300", "m302"]
