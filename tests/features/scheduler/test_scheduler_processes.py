"""The scheduler across real server processes (issue 54): two servers share one SQLite file
or one PostgreSQL database; the one that claims a reminder is killed (SIGKILL) while it
holds the job's lease; the other runs the job once the lease has run out; the reminder's
notification is written exactly once, and a restart runs nothing again."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from crdt_server.testing import ServerProcess
from tests.features.test_feature_list import MINT, SECRET

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

LEASE = 2.0


async def until(check: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)  # polling a file and a route: nothing to wait on


@pytest.fixture(params=["sqlite", "postgres"])
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "postgres":
        return {"CRDT_SERVER_DATABASE_URL": request.getfixturevalue("postgres_url")}
    return {}


@pytest.mark.asyncio
async def test_a_reminder_is_written_once_when_its_process_dies_holding_the_lease(
    tmp_path: Path, store_env: dict[str, str]
) -> None:
    hold = tmp_path / "hold"
    hold.mkdir()
    env = {
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        "CRDT_SERVER_SCHEDULER_LEASE_SECONDS": str(LEASE),
        "CRDT_SERVER_SCHEDULER_POLL_SECONDS": "0.2",
        "REMINDER_HOLD_DIR": str(hold),
        **store_env,
    }
    data = tmp_path / "data"  # one SQLite file for both (unused on PostgreSQL)
    couple = MINT.headers(role="couple", sub="ana", ttl=3600)
    url = "/api/weddings/w1/test-reminders/cake"
    first = ServerProcess(data, env=env, anonymous=False, module="tests.scheduled")
    second = ServerProcess(data, env=env, anonymous=False, module="tests.scheduled")
    async with first, second:
        servers = [first, second]
        async with httpx.AsyncClient(base_url=first.url, timeout=10) as http:
            assert (await http.get("/api/weddings/w1/notifications", headers=couple)).is_success
            due = time.time() + 0.5
            answer = await http.put(url, json={"sub": "ana", "due": due}, headers=couple)
            assert answer.status_code == 200 and answer.json() == {"added": True}

        held = hold / "held"

        async def claimed() -> bool:
            return held.exists() and held.read_text() != ""

        await until(claimed, "no process claimed the reminder")
        pid = int(held.read_text())
        [holder] = [s for s in servers if s.process is not None and s.process.pid == pid]
        [other] = [s for s in servers if s is not holder]
        await holder.kill()  # SIGKILL, the lease still held
        killed_at = time.monotonic()

        async def state() -> dict[str, object]:
            async with httpx.AsyncClient(base_url=other.url, timeout=10) as http:
                answer = await http.get(url, headers=couple)
                assert answer.status_code == 200, answer.text
                [job] = answer.json()["jobs"]
                return dict(job)

        async def done() -> bool:
            return (await state())["status"] == "done"

        await until(done, "the other process did not take the job over")
        assert time.monotonic() - killed_at > LEASE / 2  # not before the lease ran out
        assert (await state())["attempts"] == 2  # the killed claim, then the other's
        await holder.restart()
        for server in (holder, other):
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                answer = await http.get("/api/weddings/w1/notifications", headers=couple)
                reminders = [n for n in answer.json()["notifications"] if n["reason"] == "reminder"]
                assert len(reminders) == 1, reminders
                # Scheduled again (a feature re-deriving its reminders at start): nothing.
                again = await http.put(url, json={"sub": "ana", "due": due}, headers=couple)
                assert again.json() == {"added": False}
