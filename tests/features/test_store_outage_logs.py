"""A lost store is said in one line per retry, never a traceback (issue 74's point 4: "one
log line per state change"). In the fault campaign's long run each server cut from
PostgreSQL logged 10 records with a traceback from the device sessions' sweep, the
scheduler, the restore points and the presence webhooks, each saying only what the
store's own ``the store is lost`` line had said; the deliveries' loops (texts, mail,
push, webhooks) already said one line."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from crdt_server.app import create_app
from crdt_server.features.scheduler.settings import SchedulerSettings
from crdt_server.features.signin import extension as signin
from crdt_server.features.versions.settings import VersionSettings
from crdt_server.settings import Settings
from crdt_server.storage import StoreUnavailable
from crdt_server.storage.sqlite import SqliteStore
from tests.features.test_feature_list import SECRET, serving

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

LOOPS = {
    "crdt_server.people.sessions": "sweeping device sessions paused, the store failed",
    "crdt_server.scheduler": "scheduled jobs paused, the store failed",
    "crdt_server.versions": "restore points paused, the store failed",
}


async def test_background_loops_say_a_lost_store_in_one_line_not_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signin, "SWEEP_SECONDS", 0.05)
    settings = Settings(
        data_dir=tmp_path,
        auth_secret=SECRET,
        fragments=(
            SchedulerSettings(scheduler_poll_seconds=0.05),
            VersionSettings(version_check_seconds=0.05),
        ),
    )
    async with serving(create_app(settings)):

        async def lost(self: SqliteStore, sql: str, *params: Any) -> list[Any]:
            raise StoreUnavailable("reading the store failed: no answer within 2 s")

        caplog.set_level(logging.WARNING)
        with monkeypatch.context() as patched:
            patched.setattr(SqliteStore, "_read", lost)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while not all(said(caplog, name) for name in LOOPS):
                assert loop.time() < deadline, (
                    f"not said: {sorted(n for n in LOOPS if not said(caplog, n))}"
                )
                await asyncio.sleep(0.05)
        for name, message in LOOPS.items():
            lines = [r for r in caplog.records if r.name == name]
            assert all(r.levelno == logging.WARNING for r in lines), name
            assert all(r.getMessage().startswith(message) for r in lines), name
            assert all("no answer within 2 s" in r.getMessage() for r in lines), name
        traced = [r.name for r in caplog.records if r.exc_info is not None]
        assert not traced, f"tracebacks logged by {sorted(set(traced))}"


def said(caplog: pytest.LogCaptureFixture, name: str) -> bool:
    return any(r.name == name for r in caplog.records)
