"""Presence changes to the webhook endpoints that ask for them, on a path of their own:
signed like every delivery with a ``webhook-id`` each, sent once (no retries, no dead
letter, never in the deliveries list), only to endpoints that name ``presence.*`` (not
``*``), coalesced per person (the newest change of a window), through a real server and a
real receiver, and through the real webhooks extension with a short window."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from standardwebhooks import Webhook

from crdt_server.features import install_tables
from crdt_server.features import webhooks as webhooks_feature
from crdt_server.features.events.tables import SCHEMA as EVENTS
from crdt_server.features.presence import PresenceChange
from crdt_server.features.webhooks.extension import Webhooks
from crdt_server.features.webhooks.extension_presence import PresenceWebhooks
from crdt_server.features.webhooks.settings import WebhookSettings
from crdt_server.settings import Settings
from crdt_server.storage import SqliteStore
from crdt_server.testing.receiver import WebhookReceiver
from crdt_server.testing.tokens import TokenMinter
from crdt_server.testing.waits import until
from tests.server import served
from tests.yclient import YClient

pytestmark = pytest.mark.timeout(60)

SECRET = "presence-hooks-secret-at-least-32-bytes"
MINT = TokenMinter(SECRET)
ENV = {"CRDT_SERVER_AUTH_SECRET": SECRET, "CRDT_SERVER_WEBHOOK_ALLOW_PRIVATE": "true"}
BASE = "/api/weddings/w1/webhooks"


async def create(http: httpx.AsyncClient, url: str, events: list[str]) -> Any:
    answer = await http.post(
        BASE, json={"url": url, "events": events, "description": "x"}, headers=MINT.headers()
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


@pytest.mark.asyncio
async def test_a_presence_change_reaches_an_endpoint_that_asks_for_it_signed_once(
    tmp_path: Path,
) -> None:
    async with (
        served(tmp_path / "data", ENV) as (server, http),
        WebhookReceiver() as asking,
        WebhookReceiver() as everything,
        WebhookReceiver(default=500) as failing,
    ):
        wanted = await create(http, asking.url, ["presence.*"])
        await create(http, everything.url, ["*"])
        broken = await create(http, failing.url, ["presence.changed"])
        token = MINT(sub="ann", role="couple")
        async with YClient(server.ws_url, "w1/seating", token=token) as ann:
            await ann.wait(ann.synced.is_set)
            [got] = await asking.wait_for(1)
            body = Webhook(wanted["secret"]).verify(got.body, got.headers)
            assert body["type"] == "presence.changed" and body["timestamp"].endswith("Z")
            assert (body["data"]["sub"], body["data"]["status"]) == ("ann", "online")
            assert body["data"]["documents"] == ["seating"]
            assert got.id.startswith("msg_")
            await failing.wait_for(1)
            # The next change of ann within the window waits for its end (30 s).
            await ann.set_awareness({"status": "busy"})

            async def busy() -> bool:
                got = await http.get("/api/weddings/w1/presence", headers=MINT.headers())
                return [p["status"] for p in got.json()["presence"]] == ["busy"]

            await until(busy)
        # Not stored: no delivery listed, no retry of the 500, nothing to "*".
        for hook in (wanted["id"], broken["id"]):
            listed = await http.get(f"{BASE}/{hook}/deliveries", headers=MINT.headers())
            assert listed.json()["deliveries"] == [], listed.text
        await asyncio.sleep(1.5)  # a retry would come within the first second
        assert len(failing.received) == 1
        assert everything.received == []
        assert len(asking.received) == 1


def _change(status: Any, at: float, *, sender: bool = True) -> PresenceChange:
    return PresenceChange(
        "w1",
        "ann",
        "Ann",
        "couple",
        status,
        None,
        False,
        ("guests",),
        at,
        None,
        sender,
    )


@pytest.mark.asyncio
async def test_changes_are_coalesced_per_person_and_only_the_sender_sends(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, fragments=(WebhookSettings(webhook_allow_private=True),))
    store = SqliteStore(tmp_path / "store.sqlite3")
    await store.open()
    await store.install(EVENTS)  # a new endpoint's cursor starts at the newest event
    await install_tables(store, [webhooks_feature.FEATURE])
    webhooks = Webhooks(store, settings, CollectorRegistry())
    presence = PresenceWebhooks(webhooks, window=0.5)
    try:
        async with WebhookReceiver() as receiver:
            await webhooks.manage.create("w1", receiver.url, ["presence.*"], "x")
            await webhooks.manage.create(
                "w1",
                receiver.url,
                ["presence.changed"],
                "budget only",
                docs=frozenset({"budget"}),
            )
            presence.told(_change("online", 1.0))
            await receiver.wait_for(1)
            for n, status in enumerate(("busy", "away", "online", "busy")):
                presence.told(_change(status, 2.0 + n))
            presence.told(_change("offline", 9.0, sender=False))  # another process sends it
            got = await receiver.wait_for(2)
            statuses = [json.loads(g.body)["data"]["status"] for g in got]
            assert statuses == ["online", "busy"]  # the window's newest
            assert got[0].id != got[1].id
            await asyncio.sleep(1.0)
            assert len(receiver.received) == 2  # the budget-only endpoint gets nothing
    finally:
        await presence.close()
        await webhooks.close()
        await store.close()
