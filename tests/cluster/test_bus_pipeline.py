"""The Redis bus publishes what is queued in one round trip (a pipeline): every message
arrives, in the order it was published, at another process; on a real Redis."""

from __future__ import annotations

import pytest

from crdt_server.cluster.redis_bus import RedisBus
from tests.cluster.conftest import Heard, RedisProcess, eventually


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_what_is_queued_in_one_turn_arrives_whole_and_in_order(
    redis_server: RedisProcess,
) -> None:
    sender, receiver = RedisBus(redis_server.url), RedisBus(redis_server.url)
    heard = Heard()
    await sender.start(Heard())
    await receiver.start(heard)
    try:
        # The rooms are open at the receiver: their updates are sent there.
        rooms = [f"w{i}/guests" for i in range(7)]
        for room in rooms:
            receiver.watch(room)
        await eventually(lambda: all(sender._remote.get(room) for room in rooms))
        # 600 messages queued in one turn: more than one pipeline's worth (256).
        for i in range(300):
            sender.publish_updates(f"w{i % 7}/guests", [i + 1], [b"u%d" % i])
            sender.publish_event({"type": "events", "wedding": f"w{i}"})
        await heard.until(lambda: len(heard.updates) >= 300 and len(heard.events) >= 300, 20)
        assert [seqs for _, seqs, _ in heard.updates] == [[i + 1] for i in range(300)]
        assert [u for _, _, u in heard.updates] == [[b"u%d" % i] for i in range(300)]
        assert [e["wedding"] for e in heard.events] == [f"w{i}" for i in range(300)]
        assert sender.status == "ok" and sender.dropped == 0
    finally:
        await sender.close()
        await receiver.close()
