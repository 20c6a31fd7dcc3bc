"""Saturday mode's rooms (fake clock): on a wedding's day its rooms stay loaded past the
idle time, until midnight in the wedding's zone; another day, they unload as ever."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller

from crdt_server import clock
from crdt_server.features.day.extension_rooms import LOOK_EVERY, day_ends
from crdt_server.testing.waits import until
from tests.features.conversations import Inbox, W, ok
from tests.features.delays.test_delays import PLANNER, member, server

pytestmark = [pytest.mark.timeout(120)]

# 10:00 in Lisbon (UTC+1) on the wedding's day.
ON_THE_DAY = datetime(2031, 6, 13, 9, 0, tzinfo=UTC)


async def loaded(http: httpx.AsyncClient) -> int:
    text = (await http.get("/metrics")).text
    found = re.search(r"^crdt_rooms_loaded (\S+)$", text, re.M)
    assert found is not None
    return int(float(found.group(1)))


def test_the_day_ends_at_midnight_in_the_weddings_zone() -> None:
    end = datetime(2031, 6, 13, 23, 0, tzinfo=UTC).timestamp()
    assert day_ends("2031-06-13", "Europe/Lisbon", ON_THE_DAY.timestamp()) == end
    assert day_ends("2031-06-14", "Europe/Lisbon", ON_THE_DAY.timestamp()) is None
    assert day_ends(None, "Europe/Lisbon", ON_THE_DAY.timestamp()) is None


@pytest.mark.asyncio
async def test_rooms_stay_loaded_on_the_day_and_unload_after(
    tmp_path: Path, smtp: tuple[Controller, Inbox]
) -> None:
    controller, _ = smtp
    fake = clock.FakeClock(ON_THE_DAY)
    idle = {"CRDT_SERVER_ROOM_IDLE_SECONDS": "0.2"}
    with clock.use(fake):
        async with server(tmp_path / "data", controller, **idle) as http:
            planner = member(*PLANNER)
            profile = {"op": "set_profile", "date": "2031-06-13", "time_zone": "Europe/Lisbon"}
            await ok(await http.post(f"{W}/docs/timeline/ops", json=profile, headers=planner))

            # Set while the room was loaded (the day unknown at load): it unloads as ever,
            async def unloaded() -> bool:
                return await loaded(http) == 0

            await until(unloaded, deadline=10)
            # and loads again on the wedding's day: now it is held.
            await ok(await http.get(f"{W}/docs/timeline", headers=planner))

            # The day's rooms: every document of w1 stays loaded past the idle time.
            async def all_held() -> bool:
                return await loaded(http) >= 5

            await until(all_held, deadline=10)
            await fake.advance(600)  # ten minutes of the day later: still held
            assert await loaded(http) >= 5

            # Midnight in Lisbon: let go, and the rooms unload after their idle time.
            await fake.set(datetime(2031, 6, 13, 23, 0, 1, tzinfo=UTC))
            await until(unloaded, deadline=10)


@pytest.mark.asyncio
async def test_a_timeline_loaded_since_the_evening_before_is_held_once_the_day_begins(
    tmp_path: Path, smtp: tuple[Controller, Inbox]
) -> None:
    """A room its connections kept loaded across midnight never loads again on the day:
    the loaded timelines are looked at once a minute, so the day's hold begins anyway."""
    controller, _ = smtp
    fake = clock.FakeClock(datetime(2031, 6, 12, 21, 0, tzinfo=UTC))  # 22:00 in Lisbon
    idle = {"CRDT_SERVER_ROOM_IDLE_SECONDS": "3600"}  # kept loaded, as connections keep it
    with clock.use(fake):
        async with server(tmp_path / "data", controller, **idle) as http:
            planner = member(*PLANNER)
            profile = {"op": "set_profile", "date": "2031-06-13", "time_zone": "Europe/Lisbon"}
            await ok(await http.post(f"{W}/docs/timeline/ops", json=profile, headers=planner))
            await ok(await http.get(f"{W}/docs/timeline", headers=planner))
            assert await loaded(http) < 5  # the evening before: nothing held

            await fake.set(datetime(2031, 6, 12, 23, 0, 30, tzinfo=UTC))  # 00:00:30 in Lisbon
            await fake.advance(LOOK_EVERY)

            async def all_held() -> bool:
                return await loaded(http) >= 5

            await until(all_held, deadline=10)
