"""A guest's answer reaches a webhook receiver (verified with ``standardwebhooks``) as a
``guest.rsvp_changed`` event whose actor is the guest: ``{"sub": "guest:g1", "role":
"guest"}``, a role no token carries, read by the webhooks as any other."""

from __future__ import annotations

from pathlib import Path

import pytest
from standardwebhooks import Webhook

from crdt_server.testing.receiver import WebhookReceiver
from crdt_server.testing.tokens import TokenMinter
from tests.server import served

SECRET = "rsvp-webhook-secret-at-least-32-bytes!!"
MINT = TokenMinter(SECRET)
ENV = {"CRDT_SERVER_AUTH_SECRET": SECRET, "CRDT_SERVER_WEBHOOK_ALLOW_PRIVATE": "true"}
W = "/api/weddings/w1"


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_guest_answer_reaches_webhooks_credited_to_the_guest(tmp_path: Path) -> None:
    headers = MINT.headers("couple", "ada", "w1", ttl=4 * 3600)
    async with served(tmp_path / "data", ENV) as (_, http), WebhookReceiver() as receiver:
        hook = await http.post(
            f"{W}/webhooks", json={"url": receiver.url, "events": ["guest.*"]}, headers=headers
        )
        assert hook.status_code == 201, hook.text
        for op in (
            {"op": "add_household", "household_id": "h1", "name": "Lees"},
            {"op": "add_guest", "guest_id": "g1", "name": "Ann", "household_id": "h1"},
        ):
            done = await http.post(f"{W}/docs/guests/ops", json=op, headers=headers)
            assert done.status_code == 200, done.text
        code = (await http.post(f"{W}/households/h1/rsvp-link", headers=headers)).json()["code"]
        answer = await http.put(
            f"/api/rsvp/{code}", json={"people": [{"guest_id": "g1", "attending": True}]}
        )
        assert answer.status_code == 200, answer.text
        verifier = Webhook(hook.json()["secret"])
        for count in range(1, 5):
            bodies = [verifier.verify(g.body, g.headers) for g in await receiver.wait_for(count)]
            found = [b for b in bodies if b["type"] == "guest.rsvp_changed"]
            if found:
                break
        changed = found[0]
        assert changed["data"]["actor"] == {"sub": "guest:g1", "role": "guest"}
        assert changed["data"]["data"]["to"] == "accepted"
