"""A vendor's run sheet by a read-only link (fake clock): the couple or planner makes a link
for one vendor; it shows that vendor's items only, is stored hashed, listed without its
token, revocable, refused everywhere else, and stops working two days after the wedding."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from crdt_server import clock
from tests.features.conversations import Inbox, W, ok
from tests.features.delays.test_delays import (
    DAY,
    FLO,
    FRIEND,
    PLANNER,
    START,
    member,
    server,
    setup,
)

pytestmark = [pytest.mark.timeout(120)]


@pytest.mark.asyncio
async def test_a_run_sheet_link_shows_one_vendors_items_until_two_days_after(
    tmp_path: Path, smtp: tuple[Controller, Inbox]
) -> None:
    controller, _ = smtp
    fake = clock.FakeClock(START)
    with clock.use(fake):
        async with server(tmp_path / "data", controller) as http:
            await setup(http)
            links = f"{W}/day/run-sheets"
            planner = member(*PLANNER)
            # Only the couple and the planner make links.
            for who in (FLO, FRIEND):
                refused = await http.post(links, json={"vendor": "bloom"}, headers=member(*who))
                assert refused.status_code == 403, refused.text
            unknown = await http.post(links, json={"vendor": "Nobody"}, headers=planner)
            assert unknown.status_code == 422 and "vendor" in unknown.text
            made = await ok(
                await http.post(links, json={"vendor": "bloom", "label": "Flo"}, headers=planner),
                201,
            )
            token = made["token"]
            assert token.startswith("rs_") and made["vendor"] == "Bloom & Co"
            assert made["url"].startswith("https://plan.example.com/api/weddings/w1/day/run-sheet")
            # Two days after 13 June, in Lisbon (UTC+1): until 16 June 00:00 local.
            assert made["expires_at"] == "2031-06-15T23:00:00Z"

            sheet = await http.get(f"{W}/day/run-sheet", params={"token": token})
            assert sheet.status_code == 200, sheet.text
            assert sheet.headers["content-type"].startswith("text/html")
            assert sheet.headers["referrer-policy"] == "no-referrer"
            page = sheet.text
            assert "Bloom &amp; Co" in page
            assert "Flowers" in page and "Bouquets" in page and "Table Flowers" in page
            assert "Prep Photos" not in page and "Ceremony" not in page and "Lunch" not in page

            # Listed without the token; stored as its digest only.
            listed = await ok(await http.get(links, headers=planner))
            assert [x["id"] for x in listed["links"]] == [made["id"]]
            assert token not in str(listed)
            with sqlite3.connect(tmp_path / "data" / "crdt.sqlite3") as db:
                rows = db.execute("SELECT digest FROM run_sheet_links").fetchall()
            assert rows == [(hashlib.sha256(token.encode()).hexdigest(),)]

            # Good for the run sheet only.
            other = await http.get(f"{W}/docs/timeline", params={"token": token})
            assert other.status_code == 401, other.text
            elsewhere = await http.get("/api/weddings/w2/day/run-sheet", params={"token": token})
            assert elsewhere.status_code == 401, elsewhere.text

            # Expired two days after the wedding.
            await fake.set(datetime(2031, 6, 15, 22, 59, tzinfo=UTC))
            assert (await http.get(f"{W}/day/run-sheet", params={"token": token})).is_success
            await fake.set(datetime(2031, 6, 15, 23, 0, tzinfo=UTC))
            late = await http.get(f"{W}/day/run-sheet", params={"token": token})
            assert late.status_code == 401, late.text

            # Revoked: gone.
            second = await ok(
                await http.post(links, json={"vendor": "Bloom & Co"}, headers=member(*PLANNER)),
                201,
            )
            gone = await http.delete(f"{links}/{second['id']}", headers=member(*PLANNER))
            assert gone.status_code == 200, gone.text
            again = await http.get(f"{W}/day/run-sheet", params={"token": second["token"]})
            assert again.status_code == 401
            missing = await http.delete(f"{links}/{second['id']}", headers=member(*PLANNER))
            assert missing.status_code == 404


@pytest.mark.asyncio
async def test_a_wedding_without_a_date_has_no_run_sheet_links(
    tmp_path: Path, smtp: tuple[Controller, Inbox]
) -> None:
    controller, _ = smtp
    with clock.use(clock.FakeClock(START)):
        async with server(tmp_path / "data", controller) as http:
            planner = member(*PLANNER)
            await ok(await http.get(f"{W}/members", headers=planner))
            op = {
                "op": "add_timeline_item",
                "item_id": "flowers",
                "title": "Flowers",
                "start": f"{DAY}T09:00:00Z",
                "end": f"{DAY}T10:00:00Z",
                "vendor": "Bloom",
            }
            await ok(await http.post(f"{W}/docs/timeline/ops", json=op, headers=planner))
            answer = await http.post(
                f"{W}/day/run-sheets", json={"vendor": "bloom"}, headers=planner
            )
            assert answer.status_code == 422 and "date" in answer.text, answer.text
