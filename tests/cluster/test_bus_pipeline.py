"""The Redis bus publishes what is queued in one round trip (a pipeline): every message
arrives, in the order it was published, at another process; on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from crdt_server.cluster.redis_bus import RedisBus
from tests.cluster.conftest import RedisProcess


class _Heard:
    def __init__(self) -> None:
        self.updates: list[tuple[str, list[int], list[bytes]]] = []
        self.events: list[dict[str, Any]] = []
        self.changed = asyncio.Event()

    def on_updates(self, doc: str, seqs: Sequence[int], updates: Sequence[bytes]) -> None:
        self.updates.append((doc, list(seqs), list(updates)))
        self.changed.set()

    def on_awareness(self, doc: str, origin: str, payload: bytes) -> None:
        return None

    def on_stateless(self, room: str, text: str | Mapping[str, str]) -> None:
        return None

    def on_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.changed.set()

    async def committed_seq(self) -> int:
        return 0

    async def on_gap(self, seqs: Sequence[int]) -> None:
        return None

    async def on_reconnect(self) -> None:
        return None


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_what_is_queued_in_one_turn_arrives_whole_and_in_order(
    redis_server: RedisProcess,
) -> None:
    sender, receiver = RedisBus(redis_server.url), RedisBus(redis_server.url)
    heard = _Heard()
    await sender.start(_Heard())
    await receiver.start(heard)
    try:
        # 600 messages queued in one turn: more than one pipeline's worth (256).
        for i in range(300):
            sender.publish_updates(f"w{i % 7}/guests", [i + 1], [b"u%d" % i])
            sender.publish_event({"type": "events", "wedding": f"w{i}"})
        async with asyncio.timeout(20):
            while len(heard.updates) < 300 or len(heard.events) < 300:
                heard.changed.clear()
                await heard.changed.wait()
        assert [seqs for _, seqs, _ in heard.updates] == [[i + 1] for i in range(300)]
        assert [u for _, _, u in heard.updates] == [[b"u%d" % i] for i in range(300)]
        assert [e["wedding"] for e in heard.events] == [f"w{i}" for i in range(300)]
        assert sender.status == "ok" and sender.dropped == 0
    finally:
        await sender.close()
        await receiver.close()
