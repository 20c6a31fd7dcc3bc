"""A wedding weekend across a daylight-saving change over HTTP (issue 54, point 4): the
domain operations write each item with its zone's offset on its own day, an item that ends
after midnight is no finding, and the calendar feed has every item at its instant."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import icalendar
import pytest
import pytest_asyncio

from crdt_server.testing.tokens import TokenMinter
from tests.server import ServerProcess, served

SECRET = "calendar-days-secret-at-least-32-bytes!"
MINT = TokenMinter(SECRET)
ENV = {"CRDT_SERVER_AUTH_SECRET": SECRET}
OPS = "/api/weddings/w1/docs/timeline/ops"

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]


@pytest_asyncio.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[ServerProcess, httpx.AsyncClient]]:
    async with served(tmp_path / "data", ENV) as running:
        yield running


async def op(http: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await http.post(OPS, json=body, headers=MINT.headers())


async def items(http: httpx.AsyncClient) -> dict[str, Any]:
    answer = await http.get("/api/weddings/w1/docs/timeline", headers=MINT.headers())
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["items"])


async def feed(http: httpx.AsyncClient) -> dict[str, icalendar.Event]:
    answer = await http.get("/api/weddings/w1/calendar.ics", headers=MINT.headers())
    assert answer.status_code == 200, answer.text
    found = icalendar.Calendar.from_ical(answer.content).walk("VEVENT")
    return {str(e["UID"]).split(".")[1].split("@")[0]: e for e in found}


async def codes(http: httpx.AsyncClient, wanted: str) -> list[str]:
    """The findings' codes once ``wanted`` is among them (a deadline, not a sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        answer = await http.get("/api/weddings/w1/conflicts", headers=MINT.headers())
        found = [c["code"] for c in answer.json()["conflicts"]]
        if wanted in found:
            return found
        assert loop.time() < deadline, found
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("zone", "date", "friday", "sunday", "sunday_utc"),
    [
        # Summer time ends at 03:00 on Sunday 25 October 2026 in Berlin.
        ("Europe/Berlin", "2026-10-24", "+02:00", "+01:00", datetime(2026, 10, 25, 10, tzinfo=UTC)),
        # Daylight time ends at 02:00 on Sunday 1 November 2026 in New York.
        (
            "America/New_York",
            "2026-10-31",
            "-04:00",
            "-05:00",
            datetime(2026, 11, 1, 16, tzinfo=UTC),
        ),
    ],
)
async def test_a_weekend_across_the_change_over_http_and_in_the_feed(
    api: tuple[ServerProcess, httpx.AsyncClient],
    zone: str,
    date: str,
    friday: str,
    sunday: str,
    sunday_utc: datetime,
) -> None:
    _, http = api
    saturday = date
    fri = f"{date[:8]}{int(date[8:]) - 1:02d}"
    sun = "2026-10-25" if zone == "Europe/Berlin" else "2026-11-01"
    assert (
        await op(http, {"op": "set_profile", "date": date, "time_zone": zone})
    ).status_code == 200
    for body in (
        {
            "item_id": "dinner",
            "title": "Rehearsal dinner",
            "start": f"{fri}T19:00",
            "end": f"{fri}T22:00",
            "location": "Barn",
        },
        {
            "item_id": "party",
            "title": "After-party",
            "start": f"{saturday}T22:00",
            "end": f"{sun}T01:30",
            "location": "Barn",
        },
        # Given with Friday's offset: written as the same instant in Sunday's.
        {
            "item_id": "brunch",
            "title": "Brunch",
            "start": f"{sun}T12:00:00{friday}",
            "end": f"{sun}T13:00",
            "location": "Barn",
        },
    ):
        answer = await op(http, {"op": "add_timeline_item", **body})
        assert answer.status_code == 200, answer.text
    stored = await items(http)
    assert stored["dinner"]["start"] == f"{fri}T19:00:00{friday}"
    # The after-party ends after midnight but before the change: still the summer offset.
    assert stored["party"]["end"] == f"{sun}T01:30:00{friday}"
    assert stored["brunch"]["start"] == f"{sun}T11:00:00{sunday}"
    assert stored["brunch"]["end"] == f"{sun}T13:00:00{sunday}"

    # Moved over HTTP to a wall clock on Sunday: Sunday's offset.
    moved = await op(
        http,
        {
            "op": "move_timeline_item",
            "item_id": "dinner",
            "start": f"{sun}T18:00",
            "end": f"{sun}T21:00",
        },
    )
    assert moved.status_code == 200, moved.text
    assert (await items(http))["dinner"]["start"] == f"{sun}T18:00:00{sunday}"

    # An item over midnight is no finding; one that overlaps it after midnight is.
    taxi = {
        "op": "add_timeline_item",
        "item_id": "taxi",
        "title": "Taxis",
        "location": "Barn",
        "start": f"{sun}T01:00",
        "end": f"{sun}T01:15",
    }
    assert (await op(http, taxi)).status_code == 200
    found = await codes(http, "timeline.location_overlap")
    assert "timeline.ends_before_start" not in found

    # A move that would end before it starts is refused, naming the field; nothing changed.
    before = await items(http)
    refused = await op(
        http, {"op": "move_timeline_item", "item_id": "party", "end": f"{saturday}T21:00"}
    )
    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["end"]
    # A day without a time of day is refused as malformed, naming its field.
    bad = await op(http, {**taxi, "item_id": "bad", "start": f"{sun}"})
    assert bad.status_code == 400 and [e["field"] for e in bad.json()["errors"]] == ["start"]
    assert await items(http) == before

    # The feed: every item at its instant, in UTC.
    events = await feed(http)
    assert events["brunch"].decoded("DTSTART") == sunday_utc
    assert events["party"].decoded("DTEND") - events["party"].decoded("DTSTART") == (
        datetime(2026, 1, 1, 3, 30) - datetime(2026, 1, 1, 0, 0)
    )
    dinner_utc = datetime.fromisoformat(f"{sun}T18:00:00{sunday}").astimezone(UTC)
    assert events["dinner"].decoded("DTSTART") == dinner_utc
