"""Hidden fields stay hidden on every way out (issue 47, point 4), on SQLite and PostgreSQL.

A guest's ``contact`` and ``notes`` are for the couple, the planner and family. Canary
values are written into them by every path that makes a finding quote them: a concurrent
edit of the contact (``lost`` and ``kept`` carry both values) and a contact that breaks the
schema (its finding's message quotes it). Then every channel a vendor (and a friend given
``guests: read`` by a token override) reads is grepped for the canaries: the conflicts
list, the events list, the event stream, a webhook endpoint the vendor created (delivered
to a real local receiver), the socket, the binary read and the HTTP sync. Each still shows
the findings themselves: a vendor counts the same findings about the guest list as the
couple, so the app's banner agrees across roles.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from pycrdt import Doc, Map

from crdt_server.auth.permissions import DEFAULT_MATRIX
from crdt_server.testing.receiver import WebhookReceiver
from crdt_server.testing.tokens import TokenMinter
from crdt_server.testing.waits import until
from tests.features.conversations import Inbox, smtp  # noqa: F401 (the fixture)
from tests.server import ServerProcess
from tests.yclient import YClient

MINT = TokenMinter("hidden-fields-test-secret-at-least-32-bytes")
ADMIN_KEY = "admin-key-for-hidden-field-tests"
W = "/api/weddings/w1"
KEPT = "+44-7700-900-Kp1"
LOST = "+44-7700-900-Ls2"
FIRST = "+44-7700-900-Fs3"
NOTE = "Secret-note-Nt4"
BAD = 770090055504
"""A contact that is not a string: the schema finding's message quotes it."""
CANARIES = (KEPT, LOST, FIRST, NOTE, str(BAD), "Kp1", "Ls2", "Fs3", "Nt4")
PERMISSIONS = {
    **{role: {d: a.value for d, a in docs.items()} for role, docs in DEFAULT_MATRIX.items()},
    # The operator lets vendors manage webhooks: their endpoints must not carry contacts.
    "capabilities": {"webhooks.manage": ["couple", "planner", "vendor"]},
}
ENV = {
    **MINT.env,
    "CRDT_SERVER_ADMIN_API_KEY": ADMIN_KEY,
    "CRDT_SERVER_PERMISSIONS": json.dumps(PERMISSIONS),
    "CRDT_SERVER_WEBHOOK_ALLOW_PRIVATE": "true",
    "CRDT_SERVER_WEBHOOK_RETRY_SCHEDULE": "0,1,1",
}
DAY = 24 * 3600
"""Tokens minted at import outlive a whole test run (the full tier takes minutes)."""
COUPLE = MINT.headers("couple", "cam", ttl=DAY)
PLANNER = MINT.headers("planner", "pat", ttl=DAY)
VENDOR = MINT.headers("vendor", "vic", ttl=DAY)
FRIEND_TOKEN = MINT(sub="fay", role="friend", docs={"guests": "read"})
FRIEND = {"Authorization": f"Bearer {FRIEND_TOKEN}"}


def leaked(raw: bytes | str) -> list[str]:
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    return [c for c in CANARIES if c in text]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The store's settings: SQLite under tmp_path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield {}
    else:
        yield {"CRDT_SERVER_DATABASE_URL": request.getfixturevalue("scratch_postgres")}


@pytest_asyncio.fixture
async def api(
    tmp_path: Path, database: dict[str, str]
) -> AsyncIterator[tuple[ServerProcess, httpx.AsyncClient]]:
    env = {**ENV, **database}
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        yield server, http


async def ok(answer: Any, status: int = 200) -> Any:
    response = await answer
    assert response.status_code == status, response.text
    return response


async def op(http: httpx.AsyncClient, body: dict[str, Any], doc: str = "guests") -> None:
    await ok(http.post(f"{W}/docs/{doc}/ops", json=body, headers=COUPLE))


async def update(http: httpx.AsyncClient, doc: Doc[Any], since: bytes, who: dict[str, str]) -> None:
    body = doc.get_update(since)
    await ok(http.post(f"{W}/docs/guests/update", content=body, headers=who))


async def make_findings(http: httpx.AsyncClient) -> None:
    """A guest with a note and a contact; a race on the contact (the couple's value is
    kept, the planner's lost); a second guest whose contact breaks the schema."""
    await op(
        http,
        {"op": "add_guest", "guest_id": "g1", "name": "Ann Lee", "meal": "fish"}
        | {"contact": FIRST, "notes": NOTE},
    )
    await op(http, {"op": "add_guest", "guest_id": "g2", "name": "Bo Chen"})
    base = (
        await ok(
            http.get(f"{W}/docs/guests", headers=COUPLE | {"Accept": "application/octet-stream"})
        )
    ).content
    # In Yjs the higher client id wins a map key: the couple's write is kept.
    couple: Doc[Any] = Doc(client_id=900_001)
    planner: Doc[Any] = Doc(client_id=5_001)
    for doc in (couple, planner):
        doc.apply_update(base)
    since = couple.get_state()
    guests_of_couple = couple.get("guests", type=Map)
    guests_of_planner = planner.get("guests", type=Map)
    guests_of_couple["g1"]["contact"] = KEPT
    guests_of_planner["g1"]["contact"] = LOST
    guests_of_couple["g2"]["contact"] = BAD
    await update(http, couple, since, COUPLE)
    await update(http, planner, since, PLANNER)


async def conflicts(http: httpx.AsyncClient, who: dict[str, str]) -> list[dict[str, Any]]:
    answer = await ok(http.get(f"{W}/conflicts", headers=who))
    found: list[dict[str, Any]] = answer.json()["conflicts"]
    return found


async def events(http: httpx.AsyncClient, who: dict[str, str]) -> list[dict[str, Any]]:
    answer = await ok(http.get(f"{W}/events", params={"limit": 500}, headers=who))
    found: list[dict[str, Any]] = answer.json()["events"]
    return found


async def guest_findings(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The couple's findings about the guest list, once both are there."""
    found: list[dict[str, Any]] = []

    async def both() -> bool:
        found[:] = [
            c
            for c in await conflicts(http, COUPLE)
            if all(p.startswith("guests/") for p in c["paths"])
        ]
        return {c["code"] for c in found} == {"concurrent_edit", "guests.invalid_entry"}

    await until(both)
    return found


async def streamed(http: httpx.AsyncClient, who: dict[str, str], last: int) -> str:
    """The event stream's text up to the event of seq ``last``."""
    text = ""
    async with (
        asyncio.timeout(20),
        http.stream("GET", f"{W}/events/stream", headers=who, timeout=None) as stream,
    ):
        assert stream.status_code == 200
        async for chunk in stream.aiter_text():
            text += chunk
            if f"id: {last}\r\n" in text or f"id: {last}\n" in text:
                return text
    raise AssertionError(f"the stream ended before event {last}: {text[-500:]}")


@pytest.mark.timeout(120)
@pytest.mark.asyncio
async def test_a_vendor_reads_every_finding_and_no_hidden_value_on_any_channel(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = api
    async with WebhookReceiver() as receiver:
        created = await ok(
            http.post(f"{W}/webhooks", json={"url": receiver.url}, headers=VENDOR), 201
        )
        assert created.json()["id"]
        await make_findings(http)
        mine = await guest_findings(http)
        # The couple reads the values (the canaries are really there to leak).
        couple_text = json.dumps(mine)
        assert {KEPT, LOST, str(BAD)} <= set(leaked(couple_text))

        # GET /conflicts: the same findings, without the values.
        theirs = await conflicts(http, VENDOR)
        assert sorted(c["id"] for c in theirs) == sorted(c["id"] for c in mine)
        assert leaked(json.dumps(theirs)) == []
        race = next(c for c in theirs if c["code"] == "concurrent_edit")["concurrent"]
        assert race["field"] == "contact" and race["path"] == ["guests", "g1", "contact"]
        assert race["lost"]["actor"] == {"sub": "pat", "role": "planner"} and race["lost"]["at"]
        assert race["kept"]["actor"] == {"sub": "cam", "role": "couple"}
        assert "value" not in race["lost"] and "value" not in race["kept"]
        schema = next(c for c in theirs if c["code"] == "guests.invalid_entry")
        assert schema["paths"] == ["guests/guests/g2/contact"]
        assert schema["message"] == "Guest 'g2' has an invalid contact."

        # conflict.* events in the list: there, with actors, without the values.
        listed = await events(http, VENDOR)
        detected = [e for e in listed if e["type"] == "conflict.detected"]
        assert {tuple(e["data"]["paths"]) for e in detected} >= {("guests/guests/g1",)}
        assert leaked(json.dumps(listed)) == []
        assert leaked(json.dumps(await events(http, COUPLE)))  # the couple's carry them

        # The event stream.
        last = max(e["seq"] for e in await events(http, COUPLE))
        text = await streamed(http, VENDOR, last)
        assert "conflict.detected" in text and leaked(text) == []

        # The vendor's webhook endpoint: every event it may read arrives, cut.
        async def all_delivered() -> bool:
            seqs = {e["seq"] for e in await events(http, VENDOR)}
            return seqs == {json.loads(g.body)["data"]["seq"] for g in receiver.received}

        await until(all_delivered)
        got = list(receiver.received)
        bodies = [json.loads(g.body) for g in got]
        assert "conflict.detected" in {b["type"] for b in bodies}
        assert [leaked(g.body) for g in got] == [[]] * len(got)
        # Deliveries are not ordered across events: read every guest.added, not the first.
        added = {b["data"]["data"]["fields"]["name"] for b in bodies if b["type"] == "guest.added"}
        assert added == {"Ann Lee", "Bo Chen"}


@pytest.mark.timeout(120)
@pytest.mark.asyncio
async def test_a_friend_reading_the_guests_by_override_reads_the_projection(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = api
    await make_findings(http)
    # The socket: the friend syncs with the projection, read-only.
    async with YClient(server.ws_url, "w1/guests", token=FRIEND_TOKEN) as friend:
        await asyncio.wait_for(friend.synced.wait(), 10)
        await friend.wait(lambda: "g1" in (friend.doc.get("guests", type=Map).to_py() or {}))
        shown = friend.doc.get("guests", type=Map).to_py() or {}
        assert shown["g1"]["name"] == "Ann Lee" and "contact" not in shown["g1"]
        assert leaked(friend.doc.get_update()) == []
    # The binary read.
    binary = await ok(
        http.get(f"{W}/docs/guests", headers=FRIEND | {"Accept": "application/octet-stream"})
    )
    assert leaked(binary.content) == []
    # The HTTP sync, from nothing.
    synced = await ok(http.post(f"{W}/docs/guests/sync", json={"state_vector": ""}, headers=FRIEND))
    assert leaked(json.dumps(synced.json())) == []
    read: Doc[Any] = Doc()
    read.apply_update(base64.b64decode(synced.json()["update"]))
    assert (read.get("guests", type=Map).to_py() or {})["g1"]["name"] == "Ann Lee"
    # Its JSON read and its findings: the same as a vendor's.
    view = await ok(http.get(f"{W}/docs/guests", headers=FRIEND))
    assert leaked(view.text) == []
    assert leaked(json.dumps(await conflicts(http, FRIEND))) == []


@pytest.mark.timeout(120)
@pytest.mark.asyncio
async def test_a_role_change_of_an_endpoint_s_creator_applies_to_the_next_delivery(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = api
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with WebhookReceiver() as receiver:
        await ok(http.post(f"{W}/webhooks", json={"url": receiver.url}, headers=COUPLE), 201)
        await op(http, {"op": "add_guest", "guest_id": "g1", "name": "Ann", "contact": FIRST})
        first = await receiver.wait_for(1)
        assert leaked(first[0].body) == [FIRST, "Fs3"]  # the couple reads contacts
        # The couple's member entry becomes a vendor's (the directory, not a token): the
        # next delivery is cut, though the event was made by someone who reads it all.
        body = {"role": "vendor", "name": "Cam"}
        changed = await http.put(f"{W}/members/cam", json=body, headers=admin)
        assert changed.status_code in (200, 201), changed.text
        # A vendor made through the directory reads the guests' counts until the couple
        # chooses more: the guest list with meals, as every vendor read it before.
        fields = {"guest_fields": "names_meals"}
        chosen = await http.patch(f"{W}/members/cam", json=fields, headers=admin)
        assert chosen.status_code == 200, chosen.text
        add = {"op": "add_guest", "guest_id": "g2", "name": "Bo", "contact": KEPT}
        await ok(http.post(f"{W}/docs/guests/ops", json=add, headers=PLANNER))
        # The role change is an event too (member.role_changed), delivered before it, and
        # so is the choice (member.guest_fields_changed).
        second = await receiver.wait_for(4)
        [added] = [d for d in second[1:] if json.loads(d.body)["data"]["type"] == "guest.added"]
        assert json.loads(added.body)["data"]["data"]["fields"]["name"] == "Bo"
        assert leaked(added.body) == []


@pytest.mark.timeout(120)
@pytest.mark.asyncio
async def test_erasing_a_guest_removes_the_findings_events_and_deliveries_about_them(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = api
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    # The receiver refuses everything: the deliveries stay stored (pending, then failed).
    async with WebhookReceiver(default=500) as receiver:
        created = await ok(
            http.post(f"{W}/webhooks", json={"url": receiver.url}, headers=COUPLE), 201
        )
        hook = created.json()["id"]
        await make_findings(http)
        await guest_findings(http)

        async def deliveries() -> list[dict[str, Any]]:
            answer = await ok(
                http.get(f"{W}/webhooks/{hook}/deliveries", params={"limit": 200}, headers=COUPLE)
            )
            found: list[dict[str, Any]] = answer.json()["deliveries"]
            return found

        async def every_event_delivered() -> bool:
            seqs = {e["seq"] for e in await events(http, COUPLE)}
            return seqs == {d["seq"] for d in await deliveries()}

        await until(every_event_delivered)
        before = await events(http, COUPLE)
        race = [e for e in before if e["data"].get("paths") == ["guests/guests/g1"]]
        assert race and leaked(json.dumps(race))  # a finding event quoting the contacts

        erased = await ok(http.post(f"{W}/guests/g1/erase", headers=admin))
        assert erased.json()["found"] is True
        after = await events(http, COUPLE)
        assert leaked(json.dumps(after)) == [str(BAD)]  # g2's finding's value: not g1's
        assert not [e for e in after if "guests/guests/g1" in json.dumps(e)]
        # No delivery of an event that went is left, whatever its state.
        kept = {e["seq"] for e in after}
        assert {d["seq"] for d in await deliveries()} <= kept
        assert {e["seq"] for e in before} - kept  # some did go


def emailed(mailbox: Inbox) -> str:
    """The text of every email received."""
    return "".join(str(m.get_body().get_content()) for m in mailbox.messages)  # type: ignore[union-attr]


@pytest.mark.timeout(120)
@pytest.mark.asyncio
async def test_the_email_of_a_lost_write_is_cut_to_its_author_s_role(
    tmp_path: Path,
    smtp: tuple[Controller, Inbox],  # noqa: F811 (the fixture imported above)
) -> None:
    """A vendor the operator lets write the guest list loses two races to the planner: one
    on a guest's contact (a field hidden from vendors), one on their meal. The email that
    tells the vendor quotes the meals, never a contact, theirs or the planner's."""
    controller, mailbox = smtp
    vendors = {d: a.value for d, a in DEFAULT_MATRIX["vendor"].items()} | {"guests": "write"}
    matrix = {**PERMISSIONS, "vendor": vendors}
    env = {
        **ENV,
        "CRDT_SERVER_PERMISSIONS": json.dumps(matrix),
        "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
        "CRDT_SERVER_EMAIL_DIGEST_SECONDS": "0",
        "CRDT_SERVER_EMAIL_FROM": "plans@example.com",
    }
    vendor = MINT.headers("vendor", "vic", email="vic@example.com")
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        await ok(http.get(f"{W}/members", headers=vendor))  # the directory learns the address
        await op(http, {"op": "add_guest", "guest_id": "g1", "name": "Ann", "contact": FIRST})
        base = (
            await ok(
                http.get(
                    f"{W}/docs/guests", headers=COUPLE | {"Accept": "application/octet-stream"}
                )
            )
        ).content
        # In Yjs the higher client id wins a map key: the planner's writes are kept.
        planner: Doc[Any] = Doc(client_id=900_001)
        theirs: Doc[Any] = Doc(client_id=5_001)
        for doc in (planner, theirs):
            doc.apply_update(base)
        since = planner.get_state()
        planner.get("guests", type=Map)["g1"]["contact"] = KEPT
        planner.get("guests", type=Map)["g1"]["meal"] = "vegan"
        theirs.get("guests", type=Map)["g1"]["contact"] = LOST
        theirs.get("guests", type=Map)["g1"]["meal"] = "beef"
        await update(http, planner, since, PLANNER)
        await update(http, theirs, since, vendor)

        async def both_told() -> bool:
            text = emailed(mailbox)
            return '"beef"' in text and '"vegan"' in text and text.count("guests/g1/") >= 2

        await until(both_told)
        assert {m["To"] for m in mailbox.messages} == {"vic@example.com"}
        text = emailed(mailbox)
        assert "guests/g1/contact" in text  # told of the contact's race, without its values
        assert leaked(text) == []
        assert leaked(b"".join(m.as_bytes() for m in mailbox.messages)) == []
