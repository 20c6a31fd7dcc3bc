"""The iCalendar feed through a real server, parsed back with `icalendar`: stable UIDs, a
SEQUENCE that grows with each change, ETag/If-None-Match, and calendar-only feed tokens
that open this route and nothing else (HTTP and the WebSocket gate)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import icalendar
import pytest
import pytest_asyncio
import websockets

from crdt_server.documents.schema import read_timeline
from crdt_server.features.integrations.extension import fingerprint
from crdt_server.testing.tokens import TokenMinter
from tests.server import ServerProcess, served
from tests.yclient import YClient

SECRET = "calendar-test-secret-at-least-32-bytes!"
MINT = TokenMinter(SECRET)
PUBLIC = "https://plan.example.com"
ENV = {"CRDT_SERVER_AUTH_SECRET": SECRET, "CRDT_SERVER_PUBLIC_URL": PUBLIC}
FEED = "/api/weddings/w1/calendar.ics"
TOKENS = "/api/weddings/w1/calendar-tokens"
FOLLOW_WINDOW = 0.25
"""Seconds the background step gathers timeline changes before it reconciles them once
(``IntegrationService``'s ``follow_window``)."""


auth = MINT.headers


@pytest_asyncio.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[ServerProcess, httpx.AsyncClient]]:
    async with served(tmp_path / "data", ENV) as running:
        yield running


async def op(http: httpx.AsyncClient, body: dict[str, Any]) -> None:
    answer = await http.post("/api/weddings/w1/docs/timeline/ops", json=body, headers=auth())
    assert answer.status_code == 200, answer.text


def events(data: bytes) -> dict[str, icalendar.Event]:
    calendar = icalendar.Calendar.from_ical(data)
    assert calendar["VERSION"] == "2.0" and "PRODID" in calendar
    return {str(e["UID"]): e for e in calendar.walk("VEVENT")}


@pytest.mark.asyncio
async def test_the_feed_parses_back_and_counts_changes(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = api
    await op(
        http,
        {
            "op": "add_timeline_item",
            "item_id": "ceremony",
            "title": "Ceremony, garden",
            "start": "2026-06-13T15:30:00+02:00",
            "end": "2026-06-13T16:15:00+02:00",
            "location": "Rose garden; gate B",
            "vendor": "Harp & Co",
            "owner": "Ada",
            "notes": "Bring the rings\nand the vows",
        },
    )
    await op(
        http,
        {
            "op": "add_timeline_item",
            "item_id": "dinner",
            "title": "Dinner",
            "start": "2026-06-13T19:00:00Z",
            "end": "2026-06-13T22:00:00Z",
        },
    )
    first = await http.get(FEED, headers=auth("friend", "fred"))
    assert first.status_code == 200, first.text
    assert first.headers["content-type"].startswith("text/calendar")
    found = events(first.content)
    assert set(found) == {"w1.ceremony@crdt-server", "w1.dinner@crdt-server"}
    ceremony = found["w1.ceremony@crdt-server"]
    assert str(ceremony["SUMMARY"]) == "Ceremony, garden"
    assert str(ceremony["LOCATION"]) == "Rose garden; gate B"
    assert ceremony.decoded("DTSTART") == datetime(2026, 6, 13, 13, 30, tzinfo=UTC)
    assert ceremony.decoded("DTEND") == datetime(2026, 6, 13, 14, 15, tzinfo=UTC)
    assert str(ceremony["CONTACT"]) == "Harp & Co"
    assert str(ceremony["X-WEDDING-OWNER"]) == "Ada"
    assert "Bring the rings\nand the vows" in str(ceremony["DESCRIPTION"])
    assert ceremony["SEQUENCE"] == 0 and ceremony["STATUS"] == "TENTATIVE"
    assert "DTSTAMP" in ceremony and "LAST-MODIFIED" in ceremony
    etag = first.headers["etag"]
    # Unchanged: 304, and the same bytes when asked without the header.
    same = await http.get(FEED, headers={**auth(), "If-None-Match": etag})
    assert same.status_code == 304 and same.headers["etag"] == etag and same.content == b""
    assert (await http.get(FEED, headers=auth())).content == first.content

    def ceremony_of(answer: httpx.Response) -> icalendar.Event:
        assert answer.status_code == 200, answer.status_code
        return events(answer.content)["w1.ceremony@crdt-server"]

    # Each change read by the feed: one more each time, and a new ETag.
    await op(http, {"op": "update_timeline_item", "item_id": "ceremony", "status": "confirmed"})
    changed = await http.get(FEED, headers={**auth(), "If-None-Match": etag})
    ceremony = ceremony_of(changed)
    assert ceremony["SEQUENCE"] == 1 and ceremony["STATUS"] == "CONFIRMED"
    assert changed.headers["etag"] != etag
    assert ceremony.decoded("LAST-MODIFIED") >= ceremony.decoded("CREATED")
    await op(
        http,
        {
            "op": "move_timeline_item",
            "item_id": "ceremony",
            "start": "2026-06-13T16:00:00+02:00",
            "end": "2026-06-13T16:45:00+02:00",
        },
    )
    ceremony = ceremony_of(await http.get(FEED, headers=auth()))
    assert ceremony["SEQUENCE"] == 2
    assert ceremony.decoded("DTSTART") == datetime(2026, 6, 13, 14, 0, tzinfo=UTC)

    # Changes nobody reads are recorded as they are committed (the feed is not needed for
    # the count to move): wait until the background step has seen both.
    await op(http, {"op": "update_timeline_item", "item_id": "ceremony", "notes": "rain plan"})

    async def settled() -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + 10
        with sqlite3.connect(server.data_dir / "crdt.sqlite3") as db:
            while True:
                row = db.execute(
                    "SELECT sequence FROM calendar_items WHERE item = 'ceremony'"
                ).fetchone()
                if row[0] == 3:
                    return
                assert loop.time() < end, row
                await asyncio.sleep(0.05)

    await settled()
    await op(http, {"op": "update_timeline_item", "item_id": "ceremony", "owner": "Bo"})
    ceremony = ceremony_of(await http.get(FEED, headers=auth()))
    assert ceremony["SEQUENCE"] == 4
    assert (
        events((await http.get(FEED, headers=auth())).content)["w1.dinner@crdt-server"]["SEQUENCE"]
        == 0
    )
    # The sequence is kept in the store: a restart does not reset it.
    sequence = ceremony["SEQUENCE"]
    await server.restart()
    again = events((await http.get(FEED, headers=auth())).content)
    assert again["w1.ceremony@crdt-server"]["SEQUENCE"] == sequence
    await op(http, {"op": "remove_timeline_item", "item_id": "dinner"})
    assert set(events((await http.get(FEED, headers=auth())).content)) == {
        "w1.ceremony@crdt-server"
    }


@pytest.mark.asyncio
async def test_a_burst_of_timeline_edits_is_reconciled_once_per_window(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    """The background step gathers a quarter second of changes (it reconciled once per
    commit, a read and a transaction each). Twenty edits in a row move SEQUENCE at most once
    per window that passed while they were sent and reconciled (a few times on a quiet
    machine, not twenty; the bound is counted from the time taken, so a loaded machine that
    spends longer on each edit is held to what it owes, not failed), and the last of them is
    not left behind."""
    server, http = api
    await op(
        http,
        {
            "op": "add_timeline_item",
            "item_id": "ceremony",
            "title": "Ceremony",
            "start": "2026-06-13T15:30:00Z",
            "end": "2026-06-13T16:00:00Z",
        },
    )
    assert ceremony_sequence(await http.get(FEED, headers=auth())) == 0
    loop = asyncio.get_running_loop()
    last_sent = first_sent = time.time()
    started = loop.time()
    for n in range(20):
        last_sent = time.time()
        await op(http, {"op": "update_timeline_item", "item_id": "ceremony", "notes": f"v{n}"})
    # What the feed must end up showing: the item as the last edit left it.
    async with YClient(server.ws_url, "w1/timeline", token=MINT()) as reader:
        await asyncio.wait_for(reader.synced.wait(), 10)
        final = fingerprint(read_timeline(reader.doc).items["ceremony"])
    end = loop.time() + 10
    with sqlite3.connect(server.data_dir / "crdt.sqlite3") as db:
        while True:
            sequence, modified_at, shown = db.execute(
                "SELECT sequence, modified_at, fingerprint FROM calendar_items"
                " WHERE item = 'ceremony'"
            ).fetchone()
            # Reconciled with the last edit: stamped with its commit, or, when a window's
            # read already saw it (a room's document holds an update as soon as it is
            # accepted), with the commit before it, the content being the same.
            if shown == final:
                break
            assert loop.time() < end, (sequence, modified_at, last_sent)
            await asyncio.sleep(0.05)
    assert modified_at >= first_sent
    # Each reconciliation waits a whole window after the one before, and the last was done
    # by now: no more than the windows that fit between the first edit and now, and one
    # more, begun by the item's creation before the first edit.
    windows = 1 + (loop.time() - started) / FOLLOW_WINDOW
    assert 1 <= sequence <= windows, (sequence, windows)
    # The background step saw the last edit: reading the feed finds nothing more to count.
    assert ceremony_sequence(await http.get(FEED, headers=auth())) == sequence


def ceremony_sequence(answer: httpx.Response) -> int:
    assert answer.status_code == 200, answer.text
    return int(events(answer.content)["w1.ceremony@crdt-server"]["SEQUENCE"])


@pytest.mark.asyncio
async def test_feed_tokens_open_the_feed_and_nothing_else(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = api
    assert (await http.post(TOKENS, headers=auth("vendor", "v"))).status_code == 403
    assert (await http.post(TOKENS, headers=auth("friend", "f"))).status_code == 403
    created = await http.post(TOKENS, json={"label": "Ada's phone"}, headers=auth("couple"))
    assert created.status_code == 201, created.text
    body = created.json()
    token = body["token"]
    assert token.startswith("cal_") and body["url"] == f"{PUBLIC}{FEED}?token={token}"
    feed = await http.get(FEED, params={"token": token})
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    # Not a credential anywhere else: every other route and the WebSocket gate say 401.
    for path in (
        "/api/weddings/w1/docs/timeline",
        "/api/weddings/w1/events",
        "/api/weddings/w1/guests.csv",
        TOKENS,
    ):
        refused = await http.get(path, params={"token": token})
        assert refused.status_code == 401, (path, refused.text)
        header = await http.get(path, headers={"Authorization": f"Bearer {token}"})
        assert header.status_code == 401, path
    with pytest.raises(websockets.InvalidStatus) as caught:
        async with websockets.connect(f"{server.ws_url}/w1/timeline?token={token}"):
            pass
    assert caught.value.response.status_code == 401
    # Another wedding's feed, an unknown token: 401.
    assert (
        await http.get("/api/weddings/w2/calendar.ics", params={"token": token})
    ).status_code == 401
    assert (await http.get(FEED, params={"token": "cal_nope"})).status_code == 401
    assert (await http.get(FEED)).status_code == 401
    listed = (await http.get(TOKENS, headers=auth())).json()["tokens"]
    assert [(t["id"], t["label"], t["created_by"]) for t in listed] == [
        (body["id"], "Ada's phone", "ada")
    ]
    assert token not in str(listed)
    assert (await http.delete(f"{TOKENS}/{body['id']}", headers=auth())).status_code == 200
    assert (await http.delete(f"{TOKENS}/{body['id']}", headers=auth())).status_code == 404
    assert (await http.get(FEED, params={"token": token})).status_code == 401
    bad = await http.post(TOKENS, json={"label": 5}, headers=auth())
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "label"
    assert (await http.post(TOKENS, json={"x": 1}, headers=auth())).status_code == 422


@pytest.mark.asyncio
async def test_a_revoked_or_erased_creator_s_feed_answers_401(tmp_path: Path) -> None:
    admin = {"Authorization": "Bearer calendar-admin-key"}
    env = {**ENV, "CRDT_SERVER_ADMIN_API_KEY": "calendar-admin-key"}
    async with served(tmp_path / "data", env) as (_, http):
        feeds = {}
        for who in ("pia", "ada", "cam"):
            made = await http.post(TOKENS, json={"label": who}, headers=auth("couple", who))
            assert made.status_code == 201, made.text
            feeds[who] = made.json()["token"]
        for token in feeds.values():
            assert (await http.get(FEED, params={"token": token})).status_code == 200
        revoked = await http.post(
            "/api/admin/revoke", json={"sub": "pia", "wedding": "w1"}, headers=admin
        )
        assert revoked.status_code == 200, revoked.text
        assert (await http.get(FEED, params={"token": feeds["pia"]})).status_code == 401
        cam = auth("couple", "cam")
        assert (await http.get("/api/weddings/w1/members", headers=cam)).status_code == 200
        erased = await http.delete("/api/weddings/w1/members/cam", headers=admin)
        assert erased.status_code == 204, erased.text
        assert (await http.get(FEED, params={"token": feeds["cam"]})).status_code == 401
        assert (await http.get(FEED, params={"token": feeds["ada"]})).status_code == 200
        listed = (await http.get(TOKENS, headers=auth())).json()["tokens"]
        assert [t["created_by"] for t in listed] == ["ada"]


async def budget_op(http: httpx.AsyncClient, body: dict[str, Any], sub: str = "cam") -> None:
    headers = auth("couple", sub)
    answer = await http.post("/api/weddings/w1/docs/budget/ops", json=body, headers=headers)
    assert answer.status_code == 200, answer.text


@pytest.mark.asyncio
async def test_scheduled_payments_are_all_day_events_for_who_reads_the_budget(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    await op(
        http,
        {
            "op": "add_timeline_item",
            "item_id": "ceremony",
            "title": "Ceremony",
            "start": "2026-06-13T15:30:00+02:00",
            "end": "2026-06-13T16:15:00+02:00",
        },
    )
    await budget_op(http, {"op": "set_category", "category_id": "venue", "name": "Venue"})
    await budget_op(
        http,
        {
            "op": "record_payment",
            "payment_id": "balance",
            "amount": 120_000,
            "currency": "EUR",
            "category_id": "venue",
            "status": "scheduled",
            "due": "2026-05-01",
            "vendor": "Villa Aurora",
            "notes": "Second half",
        },
    )
    await budget_op(
        http,
        {
            "op": "record_payment",
            "payment_id": "deposit",
            "amount": 120_000,
            "category_id": "venue",
            "date": "2026-01-15",
        },
    )
    made = await http.post(TOKENS, json={"label": "planner"}, headers=auth("planner", "ada"))
    token = made.json()["token"]
    payment_uid = "w1.payment.balance@crdt-server"
    for answer in (
        await http.get(FEED, headers=auth("couple", "cam")),
        await http.get(FEED, params={"token": token}),
    ):
        assert answer.status_code == 200, answer.text
        found = events(answer.content)
        # The paid deposit is not an event; the scheduled balance is, on its due day.
        assert set(found) == {"w1.ceremony@crdt-server", payment_uid}
        due = found[payment_uid]
        assert str(due["SUMMARY"]) == "Payment due: 1,200.00 EUR to Villa Aurora"
        assert due.decoded("DTSTART") == date(2026, 5, 1)
        assert due.decoded("DTEND") == date(2026, 5, 2)
        assert str(due["TRANSP"]) == "TRANSPARENT" and due["SEQUENCE"] == 0
        assert "Category: Venue" in str(due["DESCRIPTION"])
        assert "Second half" in str(due["DESCRIPTION"])
    # Who may not read the budget (friends, vendors, by default) sees no payment.
    for role in ("friend", "vendor", "family"):
        hidden = events((await http.get(FEED, headers=auth(role, f"x-{role}"))).content)
        assert set(hidden) == {"w1.ceremony@crdt-server"}, role
    # A new due date is a new SEQUENCE on the same UID; paid, it leaves the feed.
    await budget_op(http, {"op": "update_payment", "payment_id": "balance", "due": "2026-05-08"})
    moved = events((await http.get(FEED, headers=auth())).content)[payment_uid]
    assert moved.decoded("DTSTART") == date(2026, 5, 8) and moved["SEQUENCE"] == 1
    # The token's maker made a vendor: the token's feed stops showing money.
    demoted = await http.put(
        "/api/weddings/w1/members/ada", json={"role": "vendor"}, headers=auth("couple", "cam")
    )
    assert demoted.status_code in (200, 201), demoted.text
    as_vendor = events((await http.get(FEED, params={"token": token})).content)
    assert set(as_vendor) == {"w1.ceremony@crdt-server"}
    await budget_op(
        http,
        {"op": "update_payment", "payment_id": "balance", "status": "paid", "date": "2026-05-02"},
    )
    shown = events((await http.get(FEED, headers=auth("couple", "cam"))).content)
    assert set(shown) == {"w1.ceremony@crdt-server"}


def test_the_feed_reads_a_budget_of_many_payments_within_a_time_budget() -> None:
    """A budget a client filled with 5,000 scheduled payments (and junk beside them) is
    read for the feed in one pass of the budget's reader (about 0.2 ms a payment here)."""
    from pycrdt import Doc, Map, Text

    from crdt_server.features.integrations.extension import due_payments

    doc: Doc[Any] = Doc()
    payments = doc.get("payments", type=Map)
    with doc.transaction():
        for i in range(5_000):
            fields: dict[str, Any] = {"amount": i, "category_id": "c", "notes": Text("")}
            fields |= {"status": "scheduled", "due": f"2027-0{1 + i % 9}-1{i % 10}"}
            payments[f"p{i}"] = Map(fields)
        payments["junk"] = Map({"amount": "x" * 100_000, "status": "scheduled", "due": 7})
    started = time.perf_counter()
    found = due_payments(doc)
    elapsed = time.perf_counter() - started
    assert len(found) == 5_000 and found[0].due <= found[-1].due
    assert elapsed < 5.0, elapsed


@pytest.mark.asyncio
async def test_a_payment_due_on_the_last_day_a_date_holds_lasts_that_day(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    """9999-12-31 is a valid due day with no day after it for DTEND: the event has none and
    lasts its one day (RFC 5545 3.6.1), instead of the whole feed failing."""
    _, http = api
    await budget_op(http, {"op": "set_category", "category_id": "venue", "name": "Venue"})
    await budget_op(
        http,
        {
            "op": "record_payment",
            "payment_id": "last",
            "amount": 100,
            "category_id": "venue",
            "status": "scheduled",
            "due": "9999-12-31",
        },
    )
    answer = await http.get(FEED, headers=auth("couple", "cam"))
    assert answer.status_code == 200, answer.text  # was 500
    last = events(answer.content)["w1.payment.last@crdt-server"]
    assert last.decoded("DTSTART") == date(9999, 12, 31) and "DTEND" not in last
