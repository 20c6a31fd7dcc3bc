"""Due tasks in the calendar feed (issue 54, point 3), through a real server parsed back with
`icalendar`: an open task with a day is an all-day VEVENT on it (its own ``due``, or its
``due_offset`` from the wedding date, which moves with the wedding), done or removed it
leaves, and only readers of the tasks document see any: a token by its role, a feed token by
its maker's role now, through the permission matrix an operator may replace. The tasks'
reader is bounded: a hostile tasks document is read and rendered within a time budget."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import icalendar
import pytest
import pytest_asyncio

from crdt_server.features.integrations.extension import DueTask, due_tasks
from crdt_server.features.integrations.routes_calendar import render_calendar
from crdt_server.features.integrations.tables import FeedItem
from crdt_server.testing.tokens import TokenMinter
from tests.server import ServerProcess, served

SECRET = "calendar-tasks-secret-at-least-32-bytes!"
MINT = TokenMinter(SECRET)
ENV = {"CRDT_SERVER_AUTH_SECRET": SECRET}
FEED = "/api/weddings/w1/calendar.ics"
TOKENS = "/api/weddings/w1/calendar-tokens"
CEREMONY = "w1.ceremony@crdt-server"
VENUE = "w1.task.venue@crdt-server"
BAND = "w1.task.band@crdt-server"

pytestmark = pytest.mark.timeout(90)


def auth(role: str = "couple", sub: str = "cam", name: str | None = None) -> dict[str, str]:
    return MINT.headers(role, sub, name=name)


@pytest_asyncio.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[ServerProcess, httpx.AsyncClient]]:
    async with served(tmp_path / "data", ENV) as running:
        yield running


async def op(http: httpx.AsyncClient, doc: str, body: dict[str, Any]) -> None:
    answer = await http.post(f"/api/weddings/w1/docs/{doc}/ops", json=body, headers=auth())
    assert answer.status_code == 200, answer.text


async def member(http: httpx.AsyncClient, role: str, sub: str, name: str) -> None:
    """``sub`` calls once, so the member directory knows them (with their display name)."""
    answer = await http.get("/api/weddings/w1/access", headers=auth(role, sub, name))
    assert answer.status_code == 200, answer.text


def events(answer: httpx.Response) -> dict[str, icalendar.Event]:
    assert answer.status_code == 200, answer.text
    calendar = icalendar.Calendar.from_ical(answer.content)
    return {str(e["UID"]): e for e in calendar.walk("VEVENT")}


async def feed(http: httpx.AsyncClient, **kwargs: Any) -> dict[str, icalendar.Event]:
    return events(await http.get(FEED, **kwargs))


async def planned(http: httpx.AsyncClient) -> None:
    """A timeline item, a wedding date and one task due six months before it."""
    await op(
        http,
        "timeline",
        {
            "op": "add_timeline_item",
            "item_id": "ceremony",
            "title": "Ceremony",
            "start": "2027-06-12T15:30:00+02:00",
            "end": "2027-06-12T16:15:00+02:00",
        },
    )
    await op(http, "timeline", {"op": "set_profile", "date": "2027-06-12"})
    await op(
        http, "tasks", {"op": "add_task", "task_id": "venue", "title": "Book", "due_offset": "-6M"}
    )


async def sequence_of(server: ServerProcess, key: str, wanted: int) -> None:
    """Wait (a deadline, not a sleep) until the background step recorded ``wanted`` as the
    feed's SEQUENCE of ``key``, nobody reading the feed meanwhile."""
    loop = asyncio.get_running_loop()
    end = loop.time() + 10
    query = "SELECT sequence FROM calendar_items WHERE item = ?"
    with sqlite3.connect(server.data_dir / "crdt.sqlite3") as db:
        while True:
            row = db.execute(query, (key,)).fetchone()
            if row is not None and row[0] == wanted:
                return
            assert loop.time() < end, row
            await asyncio.sleep(0.05)


async def settled(server: ServerProcess, http: httpx.AsyncClient, marker: str) -> None:
    """Every change so far has been through the background step: a timeline item added now
    (``marker``) has its row once the step's read that saw it is done, and that read saw
    everything committed before it."""
    await op(
        http,
        "timeline",
        {
            "op": "add_timeline_item",
            "item_id": marker,
            "title": "Marker",
            "start": "2027-01-01T10:00:00Z",
            "end": "2027-01-01T11:00:00Z",
        },
    )
    await sequence_of(server, marker, 0)


def tasks_in(found: dict[str, icalendar.Event]) -> set[str]:
    return {uid for uid in found if ".task." in uid}


@pytest.mark.asyncio
async def test_open_tasks_are_all_day_events_that_follow_the_wedding_date(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = api
    await member(http, "planner", "ada", "Ada Byron")
    await member(http, "couple", "cam", "Cam Lee")
    await op(http, "timeline", {"op": "set_profile", "date": "2027-06-12"})
    title = "Book the band; call, then confirm"
    notes = "Ask for a quiet set, please; no drums\nand no confetti"
    for body in (
        {"task_id": "venue", "title": "Book the venue", "due_offset": "-10M", "owner": "ada"},
        {"task_id": "band", "title": title, "due": "2027-01-10", "owner": "cam", "notes": notes},
        {"task_id": "undated", "title": "Think about favours"},
        {"task_id": "cake", "title": "Order the cake", "due": "2027-05-01"},
    ):
        await op(http, "tasks", {"op": "add_task", **body})
    await op(http, "tasks", {"op": "complete_task", "task_id": "cake"})

    answer = await http.get(FEED, headers=auth())
    found = events(answer)
    # The done task and the one without a day are not events.
    assert set(found) == {VENUE, BAND}
    venue = found[VENUE]
    assert str(venue["SUMMARY"]) == "Task: Book the venue"
    assert venue.decoded("DTSTART") == date(2026, 8, 12)  # ten months before the wedding
    assert venue.decoded("DTEND") == date(2026, 8, 13)
    assert str(venue["TRANSP"]) == "TRANSPARENT" and venue["SEQUENCE"] == 0
    assert str(venue["X-WEDDING-TASK"]) == "venue"
    assert venue["CATEGORIES"].cats == ["Task"]
    assert str(venue["DESCRIPTION"]) == "Owner: Ada Byron"
    band = found[BAND]
    assert band.decoded("DTSTART") == date(2027, 1, 10)
    assert str(band["SUMMARY"]) == f"Task: {title}"
    assert str(band["DESCRIPTION"]) == f"Owner: Cam Lee\n\n{notes}"
    # The free text is escaped as RFC 5545 3.3.11 says (the library's doing).
    assert b"SUMMARY:Task: Book the band\\; call\\, then confirm" in answer.content
    assert b"\\nand no confetti" in answer.content.replace(b"\r\n ", b"")

    # The wedding moves: the relative task moves with it, a newer version of the same UID;
    # the task with its own day stays as it was.
    await op(http, "timeline", {"op": "set_profile", "date": "2027-09-04"})
    moved = await feed(http, headers=auth())
    assert moved[VENUE].decoded("DTSTART") == date(2026, 11, 4)
    assert moved[VENUE]["SEQUENCE"] == 1 and moved[BAND]["SEQUENCE"] == 0

    # The feed follows the tasks as they are committed, nobody reading it: a new title, then
    # a new wedding date, each counted by the background step (once it has counted the
    # changes before, whose window would otherwise see the new title too).
    await settled(server, http, "marker")
    await op(http, "tasks", {"op": "update_task", "task_id": "band", "title": "Book the band"})
    await sequence_of(server, "task:band", 1)
    await op(http, "timeline", {"op": "set_profile", "date": "2027-10-02"})
    await sequence_of(server, "task:venue", 2)
    shown = await feed(http, headers=auth())
    assert (shown[BAND]["SEQUENCE"], str(shown[BAND]["SUMMARY"])) == (1, "Task: Book the band")
    assert (shown[VENUE]["SEQUENCE"], shown[VENUE].decoded("DTSTART")) == (2, date(2026, 12, 2))

    # The owner renamed in the directory (no document changed): seen at the next read.
    renamed = await http.put(
        "/api/weddings/w1/members/ada",
        json={"role": "planner", "name": "Ada Lovelace"},
        headers=auth(),
    )
    assert renamed.status_code in (200, 201), renamed.text
    shown = await feed(http, headers=auth())
    assert str(shown[VENUE]["DESCRIPTION"]) == "Owner: Ada Lovelace"
    assert shown[VENUE]["SEQUENCE"] == 3

    # Done, or removed: out of the feed. Reopened: back, on its day.
    await op(http, "tasks", {"op": "complete_task", "task_id": "venue"})
    await op(http, "tasks", {"op": "remove_task", "task_id": "band"})
    assert tasks_in(await feed(http, headers=auth())) == set()
    await op(http, "tasks", {"op": "reopen_task", "task_id": "venue"})
    back = await feed(http, headers=auth())
    assert tasks_in(back) == {VENUE} and back[VENUE].decoded("DTSTART") == date(2026, 12, 2)


@pytest.mark.asyncio
async def test_only_readers_of_the_tasks_see_them_a_feed_token_by_its_maker_s_role(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    await planned(http)
    # By default the couple, the planner and family read the tasks.
    for role in ("couple", "planner", "family"):
        assert set(await feed(http, headers=auth(role, f"x-{role}"))) == {CEREMONY, VENUE}, role
    # Vendors and friends do not: the timeline only.
    for role in ("vendor", "friend"):
        assert set(await feed(http, headers=auth(role, f"x-{role}"))) == {CEREMONY}, role
    # A token whose own ``docs`` close the tasks to it: none either.
    narrowed = MINT("cam", "couple", docs={"tasks": "none"})
    assert set(await feed(http, headers={"Authorization": f"Bearer {narrowed}"})) == {CEREMONY}
    # A feed token shows them while its maker's role reads them; made a vendor, it does not.
    made = await http.post(TOKENS, json={"label": "phone"}, headers=auth("planner", "ada"))
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    assert set(await feed(http, params={"token": token})) == {CEREMONY, VENUE}
    demoted = await http.put(
        "/api/weddings/w1/members/ada", json={"role": "vendor"}, headers=auth()
    )
    assert demoted.status_code in (200, 201), demoted.text
    assert set(await feed(http, params={"token": token})) == {CEREMONY}


@pytest.mark.asyncio
async def test_an_operator_s_matrix_decides_who_sees_the_tasks(tmp_path: Path) -> None:
    """``CRDT_SERVER_PERMISSIONS`` grants vendors the tasks (not friends) and lets both make
    feed tokens: the vendor's token and JWT show the tasks, the friend's show none."""
    lead = {doc: "write" for doc in ("timeline", "budget", "guests", "seating", "tasks")}
    matrix = {
        "couple": lead,
        "planner": lead,
        "vendor": {"timeline": "read", "tasks": "read"},
        "friend": {"timeline": "read", "tasks": "none"},
        "capabilities": {"calendar.tokens": ["couple", "planner", "vendor", "friend"]},
    }
    env = {**ENV, "CRDT_SERVER_PERMISSIONS": json.dumps(matrix)}
    async with served(tmp_path / "data", env) as (_, http):
        await planned(http)
        assert set(await feed(http, headers=auth("vendor", "vic"))) == {CEREMONY, VENUE}
        assert set(await feed(http, headers=auth("friend", "fay"))) == {CEREMONY}
        shown = {}
        for role, sub in (("vendor", "vic"), ("friend", "fay")):
            made = await http.post(TOKENS, json={"label": sub}, headers=auth(role, sub))
            assert made.status_code == 201, made.text
            shown[role] = set(await feed(http, params={"token": made.json()["token"]}))
        assert shown == {"vendor": {CEREMONY, VENUE}, "friend": {CEREMONY}}


def test_the_feed_reads_a_hostile_tasks_document_within_a_time_budget() -> None:
    """5,000 tasks (days and offsets) beside junk a client wrote (a title of a million
    characters, due values of every wrong kind, offsets that leave the calendar, tasks that
    are not maps) are read in one pass of the tasks' reader (0.1 to 0.3 ms a task: 0.5 s,
    1.4 s at a load of 7 on the shared 2-core machine) and rendered, about 1 to 1.5 ms an
    event in `icalendar` (4.8 to 6.6 s for the 4,288 events at a load of 6 to 7): each
    within a budget that catches a reader gone quadratic, not a loaded machine."""
    from pycrdt import Doc, Map

    doc: Doc[Any] = Doc()
    tasks = doc.get("tasks", type=Map)
    with doc.transaction():
        for i in range(5_000):
            due: dict[str, Any] = (
                {"due_offset": f"-{i % 12}M"} if i % 2 else {"due": f"2027-0{1 + i % 9}-1{i % 10}"}
            )
            tasks[f"t{i}"] = Map({"title": f"Task {i}", "owner": "ada", "done": i % 7 == 0, **due})
        tasks["huge"] = Map({"title": "x" * 1_000_000, "due": "2027-01-01"})
        for n, bad in enumerate((7, "2026-13-45", "tomorrow", None, ["2027-01-01"], {"y": 1})):
            tasks[f"bad-due-{n}"] = Map({"title": "Bad", "due": bad})
        for n, bad in enumerate(("-999M", "+999M", "-99999D", "6 months", 7)):
            tasks[f"bad-offset-{n}"] = Map({"title": "Bad", "due_offset": bad})
        tasks["both"] = Map({"title": "Both", "due": "2027-02-02", "due_offset": "-1M"})
        tasks["not-a-map"] = "x" * 100_000
        tasks["bad id!"] = Map({"title": "Bad id", "due": "2027-01-01"})
    started = time.perf_counter()
    found = due_tasks(doc, "2027-06-12")
    read = time.perf_counter() - started
    state = FeedItem(0, 1.8e9, 1.8e9)
    body = render_calendar("w1", [], [], [(task, state) for task in found])
    rendered = time.perf_counter() - started - read
    # A wedding in the calendar's last year: an offset past its end has no day.
    late = due_tasks(doc, "9999-06-12")
    open_tasks = 5_000 - len(range(0, 5_000, 7))
    # Besides the open tasks: "both", as its offset says, and the offsets of 83 years.
    far = {"both": "2027-05-12", "bad-offset-0": "1944-03-12", "bad-offset-1": "2110-09-12"}
    assert len(found) == open_tasks + len(far)
    assert {t.id for t in found} == {f"t{i}" for i in range(5_000) if i % 7} | set(far)
    assert {t.id: t.due for t in found if t.id in far} == far
    assert [t.due for t in found] == sorted(t.due for t in found)
    assert {t.id for t in found} - {t.id for t in late} == {"bad-offset-1"}
    assert body.count(b"BEGIN:VEVENT") == len(found)
    assert read < 5.0, read
    assert rendered < 30.0, rendered


def test_a_task_due_on_the_last_day_a_date_holds_lasts_that_day() -> None:
    """A task due on 9999-12-31 (a valid day) has no day after it for DTEND: the event has
    none, and lasts its one day (RFC 5545 3.6.1), as a payment's does."""
    state = FeedItem(0, 1.8e9, 1.8e9)
    task = DueTask("t", "9999-12-31", "Last", None, None)
    (found,) = icalendar.Calendar.from_ical(render_calendar("w1", [], [], [(task, state)])).walk(
        "VEVENT"
    )
    assert found.decoded("DTSTART") == date(9999, 12, 31) and "DTEND" not in found
