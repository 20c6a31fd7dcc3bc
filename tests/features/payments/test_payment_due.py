"""``budget.payment_due`` (issue 54, point 3) through the scheduler, with a fake clock, on a
real server (uvicorn on an ephemeral port, a real SQLite store): one event and one reminder
per reader of the budget on the due day, once; a new due date moves the job, paying or
removing the payment cancels it; a restart schedules nothing twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from crdt_server import clock
from crdt_server.app import create_app
from crdt_server.features.payments import FEATURE, KIND, PaymentReminders, due_moment, due_when
from crdt_server.features.scheduler import Scheduler
from crdt_server.settings import Settings
from crdt_server.testing.waits import until
from tests.features.recorded import Recorded
from tests.features.test_feature_list import MINT, SECRET, serving

pytestmark = pytest.mark.timeout(60)

START = datetime(2031, 6, 1, 8, 0, tzinfo=UTC)
HOUR = 3600.0
DAY = 24 * HOUR
W = "/api/weddings/w1"


def couple() -> dict[str, str]:
    # Minted when asked: tokens are checked against the (fake) clock.
    return MINT.headers(role="couple", sub="cam")


def vendor() -> dict[str, str]:
    return MINT.headers(role="vendor", sub="vic")


RECORDED = Recorded(FEATURE, PaymentReminders)


@asynccontextmanager
async def running(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, PaymentReminders]]:
    settings = Settings(data_dir=tmp_path, auth_secret=SECRET)
    app = create_app(settings, features=RECORDED.features)
    async with serving(app) as client:
        yield client, RECORDED.last


async def op(client: httpx.AsyncClient, doc: str, body: dict[str, Any]) -> None:
    answer = await client.post(f"{W}/docs/{doc}/ops", json=body, headers=couple())
    assert answer.status_code == 200, answer.text


async def scheduled_payment(client: httpx.AsyncClient, payment_id: str, due: str) -> None:
    """A payment of 1, scheduled for ``due``, in a category of its own."""
    await op(client, "budget", {"op": "set_category", "category_id": "c", "name": "C"})
    payment = {"payment_id": payment_id, "category_id": "c", "amount": 1, "due": due}
    await op(client, "budget", {"op": "record_payment", "status": "scheduled"} | payment)


async def due_events(client: httpx.AsyncClient, when: str = "today") -> list[Any]:
    """The reminders' events, each ``when`` (today, unless asked)."""
    answer = await client.get(f"{W}/events?types=budget.payment_due", headers=couple())
    assert answer.status_code == 200, answer.text
    events = answer.json()["events"]
    assert all(e["data"]["when"] == when for e in events), events
    return [(e["data"]["id"], e["data"]["due"]) for e in events]


async def reminders_of(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    answer = await client.get(f"{W}/notifications", headers=headers)
    assert answer.status_code == 200, answer.text
    return [n["ref"] for n in answer.json()["notifications"] if n["reason"] == "payment_due"]


async def pending(scheduler: Scheduler, entry: str) -> list[tuple[float, str]]:
    return [(j.due_at, j.status) for j in await scheduler.jobs("w1", KIND, entry)]


def test_the_due_moment_is_nine_in_the_morning_of_the_weddings_zone() -> None:
    assert due_moment("2031-06-03", "Europe/Berlin") == datetime(2031, 6, 3, 7, 0, tzinfo=UTC)
    assert due_moment("2031-12-03", "Europe/Berlin") == datetime(2031, 12, 3, 8, 0, tzinfo=UTC)
    assert due_moment("2031-06-03", None) == datetime(2031, 6, 3, 9, 0, tzinfo=UTC)


def test_a_due_day_is_today_overdue_or_soon_in_the_weddings_zone() -> None:
    # 2031-06-01 08:00 UTC is already the 1st in Berlin, still May 31st in Honolulu.
    with clock.use(clock.FakeClock(START)):
        assert due_when("2031-06-01", "Europe/Berlin") == "today"
        assert due_when("2031-05-06", "Europe/Berlin") == "overdue"
        assert due_when("2031-06-01", "Pacific/Honolulu") == "soon"
        assert due_when("2031-05-31", "Pacific/Honolulu") == "today"


@pytest.mark.asyncio
async def test_a_payment_scheduled_after_its_day_is_reminded_at_once_as_overdue(
    tmp_path: Path,
) -> None:
    # The bug: a payment due 26 days ago was reminded as "due today".
    with clock.use(clock.FakeClock(START)):
        async with running(tmp_path) as (client, reminders):
            await scheduled_payment(client, "late", "2031-05-06")
            await reminders.settled()

            async def reminded() -> list[Any]:
                return await due_events(client, when="overdue")

            assert await until(reminded, deadline=10) == [("late", "2031-05-06")]
            assert await reminders_of(client, couple()) == ["late"]


@pytest.mark.asyncio
async def test_a_payment_is_due_once_on_its_day_moved_paid_or_removed(tmp_path: Path) -> None:
    fake = clock.FakeClock(START)
    with clock.use(fake):
        async with running(tmp_path) as (client, reminders):
            scheduler = reminders.scheduler
            # Members: the couple (reads the budget) and a vendor (does not).
            assert await reminders_of(client, vendor()) == []
            await op(client, "timeline", {"op": "set_profile", "time_zone": "Europe/Berlin"})
            await op(client, "budget", {"op": "set_category", "category_id": "venue", "name": "V"})
            scheduled = {"category_id": "venue", "amount": 120_000, "status": "scheduled"}
            for pid in ("p1", "p2", "p3"):
                body = {"op": "record_payment", "payment_id": pid, "due": "2031-06-03"}
                await op(client, "budget", body | scheduled)
            await reminders.settled()
            nine_berlin = datetime(2031, 6, 3, 7, 0, tzinfo=UTC).timestamp()
            assert await pending(scheduler, "p1") == [(nine_berlin, "pending")]
            # A new due date moves the job; paid and removed payments are cancelled.
            await op(client, "budget", {"op": "update_payment", "payment_id": "p1",
                                        "due": "2031-06-04"})  # fmt: skip
            await op(client, "budget", {"op": "update_payment", "payment_id": "p2",
                                        "status": "paid", "date": "2031-06-01"})  # fmt: skip
            await op(client, "budget", {"op": "remove_payment", "payment_id": "p3"})
            await reminders.settled()
            assert await pending(scheduler, "p1") == [(nine_berlin + DAY, "pending")]
            assert await pending(scheduler, "p2") == []
            assert await pending(scheduler, "p3") == []

            await fake.advance(2 * DAY)  # 2031-06-03 08:00 UTC: nothing is due yet
            assert await due_events(client) == []
            await fake.advance(DAY)  # past 2031-06-04 09:00 in Berlin
            assert await due_events(client) == [("p1", "2031-06-04")]
            assert await reminders_of(client, couple()) == ["p1"]
            assert await reminders_of(client, vendor()) == []  # vendors read no budget
            await fake.advance(7 * DAY)
            assert await due_events(client) == [("p1", "2031-06-04")]
            assert await reminders_of(client, couple()) == ["p1"]
            [job] = await scheduler.jobs("w1", KIND, "p1")
            assert job.status == "done"
            # The vendor may not read the budget's events either.
            listed = await client.get(f"{W}/events?types=budget.*", headers=vendor())
            assert listed.status_code in (200, 403)
            if listed.status_code == 200:
                assert listed.json()["events"] == []

        # A restart loads the budget and schedules its payments again: nothing twice.
        async with running(tmp_path) as (client, reminders):
            await op(client, "budget", {"op": "set_category", "category_id": "venue",
                                        "planned": 5})  # fmt: skip
            await reminders.settled()
            await fake.advance(DAY)
            assert await due_events(client) == [("p1", "2031-06-04")]
            assert await reminders_of(client, couple()) == ["p1"]


@pytest.mark.asyncio
async def test_a_payment_paid_after_its_job_was_claimed_is_not_reminded(tmp_path: Path) -> None:
    """The run is the last word: a payment paid (with the document saying so) by the time
    its job runs writes nothing, even if the cancellation has not happened yet."""
    fake = clock.FakeClock(START)
    with clock.use(fake):
        async with running(tmp_path) as (client, reminders):
            await scheduled_payment(client, "p9", "2031-06-02")
            await reminders.settled()
            # Paid through the document, while the reminders' step has not run yet: the
            # job is still pending when the clock passes its time.
            reminders._follower.mark = lambda *_: None  # type: ignore[method-assign]
            await op(client, "budget", {"op": "update_payment", "payment_id": "p9",
                                        "status": "paid", "date": "2031-06-01"})  # fmt: skip
            [(_, status)] = await pending(reminders.scheduler, "p9")
            assert status == "pending"
            await fake.advance(2 * DAY)
            assert await due_events(client) == []
            [job] = await reminders.scheduler.jobs("w1", KIND, "p9")
            assert job.status == "done"


@pytest.mark.asyncio
async def test_an_edit_the_reminder_does_not_follow_touches_no_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The amount, the vendor, the notes: the reminder's step does not run (it reads the
    whole budget, and wrote each touched payment's job: one transaction per keystroke)."""
    calls: list[tuple[str, str]] = []
    for name in ("schedule", "cancel"):
        real = getattr(Scheduler, name)

        def counting(self: Scheduler, *args: Any, _name: str = name, _real: Any = real) -> Any:
            calls.append((_name, args[2]))  # (wedding, kind, entry, ...)
            return _real(self, *args)

        monkeypatch.setattr(Scheduler, name, counting)
    fake = clock.FakeClock(START)
    with clock.use(fake):
        async with running(tmp_path) as (client, reminders):
            await scheduled_payment(client, "p1", "2031-06-02")
            await reminders.settled()
            assert calls == [("schedule", "p1")]
            for edit in ({"amount": 250}, {"vendor": "Villa"}, {"notes": "the rest"}):
                await op(client, "budget", {"op": "update_payment", "payment_id": "p1"} | edit)
            await reminders.settled()
            assert calls == [("schedule", "p1")]
            await op(client, "budget", {"op": "update_payment", "payment_id": "p1",
                                        "due": "2031-06-09"})  # fmt: skip
            await reminders.settled()
            assert calls == [("schedule", "p1"), ("schedule", "p1")]
            nine = datetime(2031, 6, 9, 9, 0, tzinfo=UTC).timestamp()
            assert await pending(reminders.scheduler, "p1") == [(nine, "pending")]
