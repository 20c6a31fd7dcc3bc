"""Incoming webhooks through a real server: senders sign with the `standardwebhooks` package
as Svix-style senders do; signatures and timestamps are checked, replays apply nothing (also
after a restart), and a source does only what it was given."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from standardwebhooks.webhooks import Webhook

from crdt_server.testing.tokens import TokenMinter
from tests.server import ServerProcess, served

SECRET = "inbound-test-secret-at-least-32-bytes!!"
ADMIN = "inbound-admin-key"
MINT = TokenMinter(SECRET)
ENV = {"CRDT_SERVER_AUTH_SECRET": SECRET, "CRDT_SERVER_ADMIN_API_KEY": ADMIN}
SOURCES = "/api/weddings/w1/inbound-sources"


auth = MINT.headers


def signed(
    secret: str, body: Any, msg_id: str, *, at: datetime | None = None
) -> tuple[bytes, dict[str, str]]:
    """A delivery as a Standard Webhooks sender makes it."""
    data = json.dumps(body)
    when = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, when, data)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    return data.encode(), headers


@pytest_asyncio.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[ServerProcess, httpx.AsyncClient]]:
    async with served(tmp_path / "data", ENV) as running:
        yield running


async def new_source(http: httpx.AsyncClient, name: str, access: dict[str, str]) -> str:
    answer = await http.post(SOURCES, json={"source": name, "access": access}, headers=auth())
    assert answer.status_code == 201, answer.text
    secret: str = answer.json()["secret"]
    assert secret.startswith("whsec_") and answer.json()["access"] == access
    return secret


async def deliver(
    http: httpx.AsyncClient, source: str, secret: str, body: Any, msg_id: str
) -> httpx.Response:
    data, headers = signed(secret, body, msg_id)
    return await http.post(f"/api/weddings/w1/inbound/{source}", content=data, headers=headers)


async def guests(http: httpx.AsyncClient) -> dict[str, Any]:
    answer = await http.get("/api/weddings/w1/docs/guests", headers=auth())
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()["guests"]
    return found


@pytest.mark.asyncio
async def test_signed_operations_apply_once_as_the_integration(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = api
    secret = await new_source(http, "crm", {"guests": "write"})
    ops = {
        "doc": "guests",
        "ops": [
            {"op": "add_guest", "guest_id": "ann", "name": "Ann Lee"},
            {"op": "set_rsvp", "guest_id": "ann", "rsvp": "accepted"},
        ],
    }
    first = await deliver(http, "crm", secret, ops, "msg_1")
    assert first.status_code == 200, first.text
    assert [r["id"] for r in first.json()["results"]] == ["ann", "ann"]
    assert (await guests(http))["ann"]["rsvp"] == "accepted"
    # The sender retries (its timeout): same id, signed again later; nothing applied again.
    await http.post(
        "/api/weddings/w1/docs/guests/ops",
        json={"op": "set_rsvp", "guest_id": "ann", "rsvp": "declined"},
        headers=auth(),
    )
    again = await deliver(http, "crm", secret, ops, "msg_1")
    assert again.status_code == 200 and again.json() == first.json()
    assert (await guests(http))["ann"]["rsvp"] == "declined"
    events = (await http.get("/api/weddings/w1/events", headers=auth())).json()["events"]
    mine = [e for e in events if e["actor"]["sub"] == "integration:crm"]
    assert [e["type"] for e in mine if e["type"].startswith("guest.")] == ["guest.added"]
    assert {e["actor"]["role"] for e in mine} == {"integration"}
    history = await http.get("/api/weddings/w1/docs/guests/history", headers=auth())
    assert "integration:crm" in {h["sub"] for h in history.json()["history"]}

    # All or nothing: the second operation is impossible, so the first is not applied.
    bad = {
        "doc": "guests",
        "ops": [
            {"op": "add_guest", "guest_id": "bob", "name": "Bob"},
            {"op": "set_rsvp", "guest_id": "nobody", "rsvp": "accepted"},
        ],
    }
    refused = await deliver(http, "crm", secret, bad, "msg_2")
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"][0]["field"] == "ops[1].guest_id"
    assert "bob" not in await guests(http)
    # A batch is the one edit checked as it goes (each operation against what the ones
    # before it wrote): it ran on a copy of the document, thrown away, so the room's own
    # document was never written and never rebuilt (WeddingService.edit, copy=True).
    metrics = (await http.get("/metrics")).text
    assert "crdt_server_edits_rolled_back_total 0.0" in metrics
    # A refused delivery is not remembered: fixed and sent again with its id, it applies.
    fixed = {"doc": "guests", "ops": bad["ops"][:1]}
    assert (await deliver(http, "crm", secret, fixed, "msg_2")).status_code == 200
    assert "bob" in await guests(http)

    # Seen ids survive a restart.
    await server.restart()
    after = await deliver(http, "crm", secret, ops, "msg_1")
    assert after.status_code == 200 and after.json() == first.json()


@pytest.mark.asyncio
async def test_bad_signatures_and_stale_timestamps_are_refused(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    secret = await new_source(http, "crm", {"guests": "write"})
    other = await new_source(http, "sheet", {"guests": "write"})
    ops = {"doc": "guests", "ops": [{"op": "add_guest", "guest_id": "eve", "name": "Eve"}]}
    url = "/api/weddings/w1/inbound/crm"
    data, headers = signed(secret, ops, "m1")
    cases: list[tuple[bytes, dict[str, str]]] = [
        signed(other, ops, "m1"),  # another source's secret
        (data.replace(b"Eve", b"Eva"), headers),  # body changed after signing
        signed(secret, ops, "m1", at=datetime.now(UTC) - timedelta(minutes=6)),
        signed(secret, ops, "m1", at=datetime.now(UTC) + timedelta(minutes=6)),
        (data, {k: v for k, v in headers.items() if k != "webhook-signature"}),
        (data, {**headers, "webhook-signature": "v1,not base64!"}),
        (data, {**headers, "webhook-signature": "garbage"}),
        (data, {**headers, "webhook-timestamp": "nan"}),
    ]
    refusals = set()
    for body, hdrs in cases:
        answer = await http.post(url, content=body, headers=hdrs)
        assert answer.status_code == 401, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        refusals.add(answer.content)
    # An unknown source answers byte for byte what a known one with a bad signature does:
    # nobody learns which sources exist, nor why a signature failed.
    for name in ("nope", "crm"):
        for hdrs in (headers, {}):
            answer = await http.post(
                f"/api/weddings/w1/inbound/{name}", content=b"{}", headers=hdrs
            )
            assert answer.status_code == 401, answer.text
            refusals.add(answer.content)
    unknown = await http.post("/api/weddings/w1/inbound/nope", content=data, headers=headers)
    assert unknown.status_code == 401
    refusals.add(unknown.content)
    assert len(refusals) == 1, refusals
    assert await guests(http) == {}
    # Within the 5 minute tolerance it is fine.
    late = signed(secret, ops, "m1", at=datetime.now(UTC) - timedelta(minutes=4))
    assert (await http.post(url, content=late[0], headers=late[1])).status_code == 200
    # Signed, but not a valid body: problem+json naming the field, nothing applied.
    for body, field, status in (
        ({"doc": "guests"}, "ops", 422),
        ({"doc": "attic", "ops": []}, "doc", 422),
        ({"hello": 1}, "body", 422),
        ({"doc": "guests", "ops": [{"op": "add_guest"}]}, "ops[0].name", 400),
    ):
        answer = await deliver(http, "crm", secret, body, f"bad-{field}")
        assert answer.status_code == status, answer.text
        assert answer.json()["errors"][0]["field"] == field


@pytest.mark.asyncio
async def test_a_source_does_only_what_it_was_given(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    secret = await new_source(http, "crm", {"guests": "write", "timeline": "read"})
    budget = {"doc": "budget", "ops": [{"op": "set_budget_total", "total": 100}]}
    assert (await deliver(http, "crm", secret, budget, "a")).status_code == 403
    event = {"event": {"type": "custom.synced", "data": {"n": 1}}}
    assert (await deliver(http, "crm", secret, event, "b")).status_code == 403
    # A source allowed to post events posts them as the integration, once per id.
    poster = await new_source(http, "ops-board", {"events": "write", "timeline": "read"})
    posted = await deliver(http, "ops-board", poster, event, "e1")
    assert posted.status_code == 200, posted.text
    again = await deliver(http, "ops-board", poster, event, "e1")
    assert again.json() == posted.json()
    found = (await http.get("/api/weddings/w1/events", headers=auth())).json()["events"]
    customs = [e for e in found if e["type"] == "custom.synced"]
    assert len(customs) == 1 and customs[0]["actor"]["sub"] == "integration:ops-board"
    budget_event = {"event": {"type": "custom.paid", "doc": "budget"}}
    assert (await deliver(http, "ops-board", poster, budget_event, "e2")).status_code == 403
    bad_type = {"event": {"type": "guest.added"}}
    answer = await deliver(http, "ops-board", poster, bad_type, "e3")
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "event.type"


@pytest.mark.asyncio
async def test_who_may_manage_sources(api: tuple[ServerProcess, httpx.AsyncClient]) -> None:
    _, http = api
    body = {"source": "crm", "access": {"guests": "write"}}
    for role, status in (("vendor", 403), ("family", 403), ("friend", 403)):
        answer = await http.post(SOURCES, json=body, headers=auth(role, role))
        assert answer.status_code == status, (role, answer.text)
    assert (await http.post(SOURCES, json=body)).status_code == 401
    admin = {"Authorization": f"Bearer {ADMIN}"}
    created = await http.post(SOURCES, json=body, headers=admin)
    assert created.status_code == 201, created.text
    assert (await http.post(SOURCES, json=body, headers=auth("couple"))).status_code == 409
    for bad, field in (
        ({"source": "Bad Name!", "access": {}}, "source"),
        ({"source": "x", "access": {"guests": "admin"}}, "access.guests"),
        ({"source": "x", "access": {"cellar": "write"}}, "access.cellar"),
        ({"source": "x"}, "access"),
    ):
        answer = await http.post(SOURCES, json=bad, headers=auth())
        assert answer.status_code in (400, 422), answer.text
        assert answer.json()["errors"][0]["field"] == field
    listed = await http.get(SOURCES, headers=auth())
    assert listed.status_code == 200
    assert [(s["source"], s["created_by"]) for s in listed.json()["sources"]] == [("crm", "admin")]
    assert "secret" not in listed.text
    assert (await http.delete(f"{SOURCES}/crm", headers=auth())).status_code == 200
    assert (await http.delete(f"{SOURCES}/crm", headers=auth())).status_code == 404
    assert (await http.get(SOURCES, headers=auth())).json()["sources"] == []


@pytest.mark.asyncio
async def test_a_delivery_cut_short_by_a_crash_is_never_applied_twice(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    """The process dies after a delivery's commit but before its answer is recorded (the
    claim stays ``pending``): the marker event committed with the operations tells a retry
    that it was applied. A claim without a marker was cut short before the commit: the
    retry applies it. A claim younger than a minute may still be in flight: 409."""
    server, http = api
    secret = await new_source(http, "crm", {"guests": "write"})
    add = {"doc": "guests", "ops": [{"op": "add_guest", "guest_id": "ann", "name": "Ann"}]}
    assert (await deliver(http, "crm", secret, add, "applied")).status_code == 200
    await server.stop()
    stale = time.time() - 120
    with sqlite3.connect(server.data_dir / "crdt.sqlite3") as db:
        # As a crash leaves them: the first committed, the others never reached the store.
        db.execute(
            "UPDATE inbound_seen SET state = 'pending', answer = '', at = ?"
            " WHERE webhook_id = 'applied'",
            (stale,),
        )
        db.execute(
            "INSERT INTO inbound_seen VALUES ('w1', 'crm', 'lost', 'pending', '', ?)", (stale,)
        )
        db.execute(
            "INSERT INTO inbound_seen VALUES ('w1', 'crm', 'busy', 'pending', '', ?)",
            (time.time(),),
        )
    await server.start()
    await http.post(
        "/api/weddings/w1/docs/guests/ops",
        json={"op": "remove_guest", "guest_id": "ann"},
        headers=auth(),
    )
    retried = await deliver(http, "crm", secret, add, "applied")
    assert retried.status_code == 200, retried.text
    assert "ann" not in await guests(http)  # not applied a second time
    bob = {"doc": "guests", "ops": [{"op": "add_guest", "guest_id": "bob", "name": "Bob"}]}
    assert (await deliver(http, "crm", secret, bob, "lost")).status_code == 200
    assert "bob" in await guests(http)
    busy = await deliver(http, "crm", secret, bob, "busy")
    assert busy.status_code == 409 and busy.headers["retry-after"] == "5"


@pytest.mark.asyncio
async def test_a_revoked_or_erased_creator_s_source_stops_writing(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    # A fired planner's CRM source must not keep writing the guest list.
    _, http = api
    admin = {"Authorization": f"Bearer {ADMIN}"}
    body = {"access": {"guests": "write"}}
    sources = {}
    for source, who in (("crm", "pia"), ("rsvp", "ada"), ("forms", "cam")):
        made = await http.post(SOURCES, json={"source": source, **body}, headers=auth(sub=who))
        assert made.status_code == 201, made.text
        sources[source] = made.json()["secret"]
    op = {"doc": "guests", "ops": [{"op": "add_guest", "guest_id": "g1", "name": "Ann"}]}
    revoked = await http.post("/api/admin/revoke", json={"sub": "pia"}, headers=admin)
    assert revoked.status_code == 200, revoked.text
    refused = await deliver(http, "crm", sources["crm"], op, "msg_a")
    assert refused.status_code == 401, refused.text
    # Erasing a member (here one the directory knows) stops theirs too.
    assert (await http.get("/api/weddings/w1/members", headers=auth(sub="cam"))).status_code == 200
    erased = await http.delete("/api/weddings/w1/members/cam", headers=admin)
    assert erased.status_code == 204, erased.text
    refused = await deliver(http, "forms", sources["forms"], op, "msg_b")
    assert refused.status_code == 401, refused.text
    assert "g1" not in await guests(http)
    # Others' sources are untouched; the list shows what is left.
    applied = await deliver(http, "rsvp", sources["rsvp"], op, "msg_c")
    assert applied.status_code == 200, applied.text
    listed = (await http.get(SOURCES, headers=auth())).json()["sources"]
    assert [s["source"] for s in listed] == ["rsvp"]
