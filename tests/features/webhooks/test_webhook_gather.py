"""The webhook dispatcher, woken by a commit, waits a moment for the commits that follow
and fans them out together: a burst of events costs a fan-out or two, not one per event
(each reads every endpoint's cursor and the next due delivery, whatever it finds)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from crdt_server.features import install_tables
from crdt_server.features import webhooks as webhooks_feature
from crdt_server.features.events import add_events
from crdt_server.features.webhooks.extension import Webhooks
from crdt_server.features.webhooks.settings import WebhookSettings
from crdt_server.settings import Settings
from crdt_server.storage import DocumentStore, Gateway, NewEvent
from crdt_server.testing.waits import until

# First attempts a minute after the event: nothing here is sent anywhere.
SETTINGS = Settings(fragments=(WebhookSettings(webhook_retry_schedule="60,60"),))
BURST = 10


@pytest.mark.asyncio
@pytest.mark.timeout(60)
@pytest.mark.parametrize("gather", [0.0, 1.0])
async def test_a_burst_of_commits_is_fanned_out_together(
    store: DocumentStore, gather: float
) -> None:
    await install_tables(store, [webhooks_feature.FEATURE])
    webhooks = Webhooks(store, SETTINGS, CollectorRegistry())
    webhooks.gather = gather
    fan_outs = 0
    fan_out = webhooks.fan_out

    async def counting(**kwargs: Any) -> Any:
        nonlocal fan_outs
        fan_outs += 1
        return await fan_out(**kwargs)

    webhooks.fan_out = counting  # type: ignore[method-assign]
    try:
        await webhooks.manage.create("w_1", "https://example.com/h", ["*"], "")
        runner = asyncio.create_task(webhooks._run())

        async def idle() -> bool:
            return fan_outs >= 1

        await until(idle)
        await asyncio.sleep(0.05)  # its first look is over: it waits for a wake-up
        before = fan_outs
        for n in range(BURST):  # commits 50 ms apart, each waking the dispatcher
            await add_events(
                Gateway.of(store), [NewEvent("w_1", "custom.note", json.dumps({"n": n}))]
            )
            webhooks.wake("w_1")
            await asyncio.sleep(0.05)

        async def queued() -> bool:
            rows = await Gateway.of(store).fetch("SELECT count(*) FROM {t}webhook_deliveries")
            return rows == [(BURST,)]

        await until(queued)
        if gather:
            assert fan_outs - before <= 2  # the burst, and at most one more window
        else:
            assert fan_outs - before >= BURST / 2  # what the window saves
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    finally:
        await webhooks.close()
