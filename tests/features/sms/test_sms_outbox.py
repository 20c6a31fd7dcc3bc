"""The SMS outbox's own SQL on every backend (SQLite and PostgreSQL): texts are claimed
emergencies first, then urgent ones, codes and the day's alerts, then the rest, oldest
first within a lane, ahead of any backlog; a claimed text is not claimed again until its
lease lapses (then it is: at least once); a sent one never; a released one when it is due.
And the daily caps: each text counts against its wedding and the server, and the first
cap reached is named, nothing counted then."""

from __future__ import annotations

import time

import pytest

from crdt_server.features.sms import tables
from crdt_server.storage import DocumentStore, Gateway
from crdt_server.storage.gateway import Tx

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]


async def test_emergencies_are_claimed_first_with_a_lease(store: DocumentStore) -> None:
    await store.install(tables.SCHEMA)
    gateway = Gateway.of(store)
    now = time.time()

    def queue(n: int, kind: str) -> Tx[None]:
        phone = f"+4477009{n:05d}"
        yield from tables.queued("w1", f"s{n}", phone, f"text {n}", kind, n, now, now)

    kinds = ["mention"] * 40 + ["day", "code", "emergency", "urgent", "mention", "emergency"]
    for n, kind in enumerate(kinds, start=1):
        await gateway.run(queue(n, kind))
    # Already decided: never claimed (a member's STOP, a daily cap).
    for n, status in ((100, "skipped"), (101, "capped")):
        await gateway.run(
            tables.queued("w1", "x", "+447700900999", "no", "emergency", n, now, now, status)
        )

    first = await gateway.run(tables.claim(now, now + 60, 2))
    assert [(c.kind, c.body) for c in first] == [("emergency", "text 43"), ("emergency", "text 46")]
    second = await gateway.run(tables.claim(now, now + 60, 3))
    assert [(c.kind, c.body) for c in second] == [
        ("day", "text 41"),
        ("code", "text 42"),
        ("urgent", "text 44"),
    ]
    rest = await gateway.run(tables.claim(now, now + 60, 100))
    assert [c.kind for c in rest] == ["mention"] * 41
    assert all(c.attempts == 1 for c in first + second + rest)
    # Everything is held by its lease now.
    assert await gateway.run(tables.claim(now + 59, now + 120, 100)) == []

    # A sent text is never claimed again; a released one (a failed attempt) when it is
    # due; a lapsed lease (the sender died with it in hand) makes it claimable again.
    await gateway.run(tables.mark_sent(first[0].id, now))
    await gateway.run(tables.release(first[1].id, now + 300))
    lapsed = await gateway.run(tables.claim(now + 61, now + 121, 100))
    assert first[0].id not in {c.id for c in lapsed}
    assert first[1].id not in {c.id for c in lapsed}
    assert {c.attempts for c in lapsed} == {2} and len(lapsed) == len(kinds) - 2
    # Once due (the lapsed ones' leases are over too), the emergency is first again.
    [retried] = await gateway.run(tables.claim(now + 301, now + 361, 1))
    assert (retried.id, retried.kind, retried.attempts) == (first[1].id, "emergency", 2)


async def test_daily_caps_count_each_text_and_name_the_first_reached(
    store: DocumentStore,
) -> None:
    await store.install(tables.SCHEMA)
    gateway = Gateway.of(store)
    day = "2031-06-13"

    def count(wedding: str) -> Tx[int | None]:
        return tables.count_day(day, (f"w:{wedding}", "server"), (2, 3))

    assert await gateway.run(count("w1")) is None
    assert await gateway.run(count("w1")) is None
    assert await gateway.run(count("w1")) == 0  # the wedding's cap
    assert await gateway.run(count("w2")) is None
    assert await gateway.run(count("w2")) == 1  # the server's cap: w2 sent only one
    assert await gateway.run(count("w3")) == 1
    # Another day starts again.
    assert await gateway.run(tables.count_day("2031-06-14", ("w:w1", "server"), (2, 3))) is None
