"""The scheduler with a fake clock (issue 54): a due job runs once when the clock passes its
due time, its notification is written once (also across a restart), rescheduling moves
it, cancelling removes it, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from crdt_server import clock
from crdt_server.app import create_app
from crdt_server.features.scheduler import Scheduler, UnknownJobKind
from crdt_server.settings import Settings
from crdt_server.times import rfc3339
from tests.features.test_feature_list import MINT, SECRET, serving
from tests.fixtures.reminder_feature import BUILT, KIND
from tests.scheduled import WITH_REMINDERS

pytestmark = pytest.mark.timeout(60)

START = datetime(2031, 6, 1, 9, 0, tzinfo=UTC)
HOUR = 3600.0


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        return Settings(data_dir=tmp_path, auth_secret=SECRET, database_url=url)
    return Settings(data_dir=tmp_path, auth_secret=SECRET)


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Scheduler]]:
    app = create_app(settings, features=WITH_REMINDERS)
    async with serving(app) as client:
        yield client, BUILT[-1].scheduler


async def put(client: httpx.AsyncClient, entry: str, due: float | None, sub: str = "ana") -> bool:
    answer = await client.put(
        f"/api/weddings/w1/test-reminders/{entry}",
        json={"sub": sub, "due": due},
        headers=MINT.headers(role="couple", sub="cal"),
    )
    assert answer.status_code == 200, answer.text
    added: bool = answer.json()["added"]
    return added


async def inbox(client: httpx.AsyncClient, sub: str = "ana") -> list[str]:
    answer = await client.get(
        "/api/weddings/w1/notifications", headers=MINT.headers(role="couple", sub=sub)
    )
    assert answer.status_code == 200, answer.text
    return sorted(
        n["created_at"] for n in answer.json()["notifications"] if n["reason"] == "reminder"
    )


def at(seconds: float) -> str:
    """The ``created_at`` of a reminder written ``seconds`` after START (the clock's time
    when the job ran)."""
    return rfc3339(START.timestamp() + seconds)


@pytest.mark.asyncio
async def test_a_due_job_runs_once_when_the_clock_passes_it(settings: Settings) -> None:
    fake = clock.FakeClock(START)
    with clock.use(fake):
        async with running(settings) as (client, scheduler):
            await inbox(client)  # ana is a member (the directory learns her here)
            assert await put(client, "cake", START.timestamp() + HOUR)
            await fake.advance(HOUR - 1)
            assert await inbox(client) == []
            await fake.advance(1)
            assert await inbox(client) == [at(HOUR)]
            await fake.advance(7 * 24 * HOUR)
            assert await inbox(client) == [at(HOUR)]
            # The same job again (a feature re-deriving its reminders) is the one done.
            assert not await put(client, "cake", START.timestamp() + HOUR)
            await fake.advance(HOUR)
            assert await inbox(client) == [at(HOUR)]
            [job] = await scheduler.jobs("w1", KIND, "cake")
            assert (job.status, job.attempts) == ("done", 1)
            assert job.done_at == START.timestamp() + HOUR


@pytest.mark.asyncio
async def test_rescheduling_moves_the_job_and_cancelling_removes_it(settings: Settings) -> None:
    fake = clock.FakeClock(START)
    t0 = START.timestamp()
    with clock.use(fake):
        async with running(settings) as (client, scheduler):
            await inbox(client)
            assert await put(client, "moved", t0 + HOUR)
            assert await put(client, "moved", t0 + 3 * HOUR)  # the due date changed
            assert await put(client, "dropped", t0 + HOUR)
            assert not await put(client, "dropped", None)  # the due date was removed
            assert await put(client, "kept", t0 + 2 * HOUR)
            pending = await scheduler.jobs("w1", KIND, "moved")
            assert [(j.due_at, j.status) for j in pending] == [(t0 + 3 * HOUR, "pending")]
            assert await scheduler.jobs("w1", KIND, "dropped") == []
            await fake.advance(2 * HOUR)
            assert await inbox(client) == [at(2 * HOUR)]
            await fake.advance(HOUR)
            assert await inbox(client) == [at(2 * HOUR), at(3 * HOUR)]
            assert await scheduler.cancel("w1", KIND, "moved") == 0  # done: nothing pending
            with pytest.raises(UnknownJobKind):
                await scheduler.schedule("w1", "nobody.declares", "x", t0)


@pytest.mark.asyncio
async def test_a_job_due_while_the_server_was_down_runs_once_at_start(
    settings: Settings,
) -> None:
    fake = clock.FakeClock(START)
    with clock.use(fake):
        async with running(settings) as (client, _):
            await inbox(client)
            await put(client, "late", START.timestamp() + HOUR)
        await fake.advance(2 * HOUR)  # nobody runs: the server is stopped
        async with running(settings) as (client, scheduler):
            await fake.advance(0)
            assert await inbox(client) == [at(2 * HOUR)]
        async with running(settings) as (client, scheduler):
            await fake.advance(HOUR)
            assert await inbox(client) == [at(2 * HOUR)]
            assert scheduler.done == 0


@pytest.mark.asyncio
async def test_a_run_with_nothing_to_write_completes_the_job(settings: Settings) -> None:
    fake = clock.FakeClock(START)
    with clock.use(fake):
        async with running(settings) as (client, scheduler):
            await scheduler.schedule("w1", KIND, "gone", START.timestamp(), {"obsolete": True})
            await fake.advance(1)
            [job] = await scheduler.jobs("w1", KIND, "gone")
            assert job.status == "done"
            assert await inbox(client) == []


@pytest.mark.asyncio
async def test_plan_makes_a_weddings_jobs_of_a_kind_what_is_wanted(settings: Settings) -> None:
    fake = clock.FakeClock(START)
    t0 = START.timestamp()
    with clock.use(fake):
        async with running(settings) as (client, scheduler):
            await inbox(client)
            wanted = {"a": (t0 + HOUR, {"sub": "ana"}), "b": (t0 + 2 * HOUR, {"sub": "ana"})}
            assert await scheduler.plan("w1", KIND, wanted) == 2
            assert await scheduler.plan("w1", KIND, wanted) == 0  # nothing differs
            await fake.advance(HOUR)
            assert await inbox(client) == [at(HOUR)]
            # b moves, c comes, a (done) is no longer wanted: it stays done.
            again = {"b": (t0 + 3 * HOUR, {"sub": "ana"}), "c": (t0 + 3 * HOUR, {"sub": "ana"})}
            assert await scheduler.plan("w1", KIND, again) == 3  # b deleted and added, c added
            assert [j.status for j in await scheduler.jobs("w1", KIND, "a")] == ["done"]
            await fake.advance(HOUR)
            assert await inbox(client) == [at(HOUR)]
            assert await scheduler.plan("w1", KIND, {}) == 2  # both pending ones cancelled
            await fake.advance(2 * HOUR)
            assert await inbox(client) == [at(HOUR)]
            assert await scheduler.plan("w2", KIND, {}) == 0


@pytest.mark.asyncio
async def test_many_jobs_are_planned_in_one_write_and_each_run_once(tmp_path: Path) -> None:
    # A ceiling against work in the square of the jobs (a claim that rescans, a plan that
    # writes per entry twice), not a benchmark.
    settings = Settings(data_dir=tmp_path, auth_secret=SECRET)
    fake = clock.FakeClock(START)
    t0 = START.timestamp()
    with clock.use(fake):
        async with running(settings) as (_, scheduler):
            wanted = {f"e{i}": (t0 + 60 + i % 7, {"obsolete": True}) for i in range(300)}
            started = time.monotonic()
            assert await scheduler.plan("w1", KIND, wanted) == 300
            assert await scheduler.plan("w1", KIND, wanted) == 0
            await fake.advance(120)
            assert scheduler.done == 300
            assert time.monotonic() - started < 60
            await fake.advance(120)
            assert scheduler.done == 300
            assert {j.status for j in await scheduler.jobs("w1", KIND, "e299")} == {"done"}


@pytest.mark.asyncio
async def test_a_failing_job_is_retried_with_a_back_off_then_given_up(settings: Settings) -> None:
    fake = clock.FakeClock(START)
    with clock.use(fake):
        async with running(settings) as (_, scheduler):
            await scheduler.schedule("w1", KIND, "broken", START.timestamp(), {"fail": True})
            await fake.advance(0)
            [job] = await scheduler.jobs("w1", KIND, "broken")
            assert (job.status, job.attempts) == ("pending", 1)
            await fake.advance(29)
            assert (await scheduler.jobs("w1", KIND, "broken"))[0].attempts == 1
            for pause in (1, 120, 480, 1920):  # 30 s, then four times longer each time
                await fake.advance(pause)
            [job] = await scheduler.jobs("w1", KIND, "broken")
            assert (job.status, job.attempts) == ("failed", 5)
            await fake.advance(86400)
            assert (await scheduler.jobs("w1", KIND, "broken"))[0].attempts == 5
            assert scheduler.done == 0
