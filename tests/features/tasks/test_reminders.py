"""A task's reminder with the fake clock (issue 54): the owner's notification is written
once when the task falls due (09:00 in the wedding's zone), the job moves when the task's
day or the wedding date moves, and goes when the task is done; on a real server (uvicorn,
a SQLite file) with the real scheduler."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from crdt_server import clock
from crdt_server.app import create_app
from crdt_server.features.scheduler import Scheduler
from crdt_server.features.tasks import KIND, due_time, due_when
from crdt_server.settings import Settings
from tests.features.test_feature_list import MINT, SECRET, serving

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

START = datetime(2027, 3, 1, 0, 0, tzinfo=UTC)
DAY = 24 * 3600.0
W = "w1"


def headers(role: str, sub: str) -> dict[str, str]:
    return MINT.headers(role=role, sub=sub, wedding=W)


async def op(client: httpx.AsyncClient, doc: str, body: dict[str, Any]) -> None:
    answer = await client.post(
        f"/api/weddings/{W}/docs/{doc}/ops", json=body, headers=headers("couple", "cal")
    )
    assert answer.status_code == 200, answer.text


async def reminders(client: httpx.AsyncClient, sub: str, role: str) -> list[str]:
    answer = await client.get(f"/api/weddings/{W}/notifications", headers=headers(role, sub))
    assert answer.status_code == 200, answer.text
    return [n["ref"] for n in answer.json()["notifications"] if n["reason"] == "task.due"]


async def due_events(client: httpx.AsyncClient) -> list[tuple[str, str, str | None]]:
    """The ``task.due`` events (id, day, owner), as the couple reads them."""
    answer = await client.get(
        f"/api/weddings/{W}/events?types=task.due", headers=headers("couple", "cal")
    )
    assert answer.status_code == 200, answer.text
    events = answer.json()["events"]
    assert all(e["actor"]["role"] == "server" for e in events), events
    return [(e["data"]["id"], e["data"]["due"], e["data"]["owner"]) for e in events]


async def due_whens(client: httpx.AsyncClient) -> list[str]:
    """What each ``task.due`` event says of its day: ``today``, ``overdue`` or ``soon``."""
    answer = await client.get(
        f"/api/weddings/{W}/events?types=task.due", headers=headers("couple", "cal")
    )
    assert answer.status_code == 200, answer.text
    return [e["data"]["when"] for e in answer.json()["events"]]


async def test_a_tasks_day_is_today_overdue_or_soon_in_the_weddings_zone() -> None:
    # 1 June 2031, 23:30 UTC: already 2 June in Berlin, still 1 June in Honolulu.
    with clock.use(clock.FakeClock(datetime(2031, 6, 1, 23, 30, tzinfo=UTC))):
        assert due_when("2031-06-02", "Europe/Berlin") == "today"
        assert due_when("2031-06-01", "Europe/Berlin") == "overdue"
        assert due_when("2031-06-02", "Pacific/Honolulu") == "soon"
        assert due_when("2031-06-01", None) == "today"


async def pending(data: Path, entry: str, due_at: float | None, timeout: float = 10.0) -> None:
    """Wait until the pending job of ``entry`` is due at ``due_at`` (``None``: none)."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(data / "crdt.sqlite3") as conn:
            rows = conn.execute(
                "SELECT due_at FROM scheduler_jobs WHERE wedding = ? AND kind = ? AND entry = ?"
                " AND status = 'pending'",
                (W, KIND, entry),
            ).fetchall()
        if [r[0] for r in rows] == ([] if due_at is None else [due_at]):
            return
        assert time.monotonic() < deadline, f"{entry}: pending {rows}, wanted {due_at}"
        await asyncio.sleep(0.02)


async def test_a_task_is_reminded_once_when_it_falls_due_and_follows_the_wedding(
    tmp_path: Path,
) -> None:
    fake = clock.FakeClock(START)
    settings = Settings(data_dir=tmp_path, auth_secret=SECRET)
    with clock.use(fake):
        async with serving(create_app(settings)) as client:
            # Members (the directory learns them as they call).
            assert await reminders(client, "cal", "couple") == []
            assert await reminders(client, "pia", "planner") == []
            zone = {"op": "set_profile", "date": "2027-06-12", "time_zone": "Europe/Berlin"}
            await op(client, "timeline", zone)
            task = {"op": "add_task", "task_id": "invites", "title": "Send the invitations"}
            await op(client, "tasks", task | {"due_offset": "-3M", "owner": "pia"})
            # 2027-03-12 09:00 in Berlin (08:00 UTC).
            first = due_time("2027-03-12", "Europe/Berlin")
            assert first == datetime(2027, 3, 12, 8, 0, tzinfo=UTC).timestamp()
            await pending(tmp_path, "invites", first)
            # The wedding moves a week later: so does the reminder.
            await op(client, "timeline", {"op": "set_profile", "date": "2027-06-19"})
            moved = due_time("2027-03-19", "Europe/Berlin")
            await pending(tmp_path, "invites", moved)
            await fake.advance(first - START.timestamp())
            assert await reminders(client, "pia", "planner") == []  # not the old day
            await fake.advance(moved - first - 1)
            assert await reminders(client, "pia", "planner") == []
            assert await due_events(client) == []
            await fake.advance(1)
            assert await reminders(client, "pia", "planner") == ["invites"]
            assert await reminders(client, "cal", "couple") == []  # the owner only
            # With it, the event that tells the open apps to look at their inbox.
            assert await due_events(client) == [("invites", "2027-03-19", "pia")]
            assert await due_whens(client) == ["today"]  # told apart from overdue and soon
            await fake.advance(30 * DAY)
            assert await reminders(client, "pia", "planner") == ["invites"]  # once

            # A task without an owner reminds the couple; done before its day, nobody.
            cake = {"op": "add_task", "task_id": "cake", "title": "Cake", "due": "2027-05-01"}
            await op(client, "tasks", cake)
            band = {"op": "add_task", "task_id": "band", "title": "Band", "due": "2027-05-02"}
            await op(client, "tasks", band | {"owner": "pia"})
            await pending(tmp_path, "band", due_time("2027-05-02", "Europe/Berlin"))
            await op(client, "tasks", {"op": "complete_task", "task_id": "band"})
            await pending(tmp_path, "band", None)
            await pending(tmp_path, "cake", due_time("2027-05-01", "Europe/Berlin"))
            await fake.advance(60 * DAY)
            assert await reminders(client, "cal", "couple") == ["cake"]
            assert await reminders(client, "pia", "planner") == ["invites"]
            assert await due_events(client) == [
                ("invites", "2027-03-19", "pia"),
                ("cake", "2027-05-01", None),
            ]
            # Removed: its reminder goes too.
            late = {"op": "add_task", "task_id": "late", "title": "Late", "due": "2027-09-01"}
            await op(client, "tasks", late)
            await pending(tmp_path, "late", due_time("2027-09-01", "Europe/Berlin"))
            await op(client, "tasks", {"op": "remove_task", "task_id": "late"})
            await pending(tmp_path, "late", None)
    with sqlite3.connect(tmp_path / "crdt.sqlite3") as conn:
        done = conn.execute(
            "SELECT message, count(*) FROM notifications WHERE reason = 'task.due'"
            " GROUP BY message ORDER BY message"
        ).fetchall()
    assert done == [("cake", 1), ("invites", 1)]


async def test_an_edit_the_reminder_does_not_follow_touches_no_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task's title, notes or owner: the reminder's step does not run for it (it read
    the whole task list and wrote the task's job, one transaction per keystroke). Its due
    day does."""
    calls: list[str] = []
    real = Scheduler.reschedule

    async def counting(self: Scheduler, wedding: str, kind: str, entry: str, *rest: Any) -> bool:
        calls.append(entry)
        return await real(self, wedding, kind, entry, *rest)

    monkeypatch.setattr(Scheduler, "reschedule", counting)
    settings = Settings(data_dir=tmp_path, auth_secret=SECRET)
    with clock.use(clock.FakeClock(START)):
        async with serving(create_app(settings)) as client:
            assert await reminders(client, "pia", "planner") == []  # a member: an owner
            await op(client, "timeline", {"op": "set_profile", "date": "2027-06-12"})
            for task_id in ("invites", "cake"):
                body = {"op": "add_task", "task_id": task_id, "title": task_id, "due_offset": "-1M"}
                await op(client, "tasks", body)
            await pending(tmp_path, "cake", due_time("2027-05-12", None))
            assert sorted(set(calls)) == ["cake", "invites"]
            calls.clear()
            for edit in ({"title": "Send the invitations"}, {"notes": "100"}, {"owner": "pia"}):
                await op(client, "tasks", {"op": "update_task", "task_id": "invites"} | edit)
            # A change the step follows, after them: its run would have taken theirs along.
            await op(client, "tasks", {"op": "update_task", "task_id": "cake", "due_offset": "-2M"})
            await pending(tmp_path, "cake", due_time("2027-04-12", None))
            assert calls == ["cake"]
