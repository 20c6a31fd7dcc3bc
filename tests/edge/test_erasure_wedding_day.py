"""Saturday mode for erasure (fake clock): on a wedding's day (its profile's date in its
zone) ``DELETE /api/weddings/{id}`` answers 409 naming ``on_wedding_day`` and erases
nothing; with ``?on_wedding_day=true``, or the day after, it erases."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from crdt_server import clock
from crdt_server.app import FEATURES, create_app
from crdt_server.features import fragments_of
from crdt_server.settings import Settings
from crdt_server.testing.tokens import TokenMinter
from tests.features.test_feature_list import serving

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

SECRET = "erasure-day-test-secret-at-least-32-bytes"
ADMIN = {"Authorization": "Bearer erasure-day-admin-key"}
MINT = TokenMinter(SECRET)


async def test_erasure_refuses_on_the_wedding_day_without_the_flag(tmp_path: Path) -> None:
    # 23:30 UTC on 12 June is 13 June in Lisbon (UTC+1): the day of both weddings.
    fake = clock.FakeClock(datetime(2031, 6, 12, 23, 30, tzinfo=UTC))
    env = {
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        "CRDT_SERVER_DATA_DIR": str(tmp_path / "data"),
        "CRDT_SERVER_ADMIN_API_KEY": "erasure-day-admin-key",
    }
    with clock.use(fake):
        async with serving(
            create_app(Settings.from_env(env, fragments=fragments_of(FEATURES)))
        ) as http:
            for wedding in ("w1", "w2"):
                planner = MINT.headers("planner", "pat", wedding, ttl=3600)
                profile = {"op": "set_profile", "date": "2031-06-13", "time_zone": "Europe/Lisbon"}
                answer = await http.post(
                    f"/api/weddings/{wedding}/docs/timeline/ops", json=profile, headers=planner
                )
                assert answer.status_code == 200, answer.text
            refused = await http.delete("/api/weddings/w1", headers=ADMIN)
            assert refused.status_code == 409, refused.text
            assert refused.json()["errors"][0]["field"] == "on_wedding_day"
            planner = MINT.headers("planner", "pat", "w1", ttl=3600)
            kept = await http.get("/api/weddings/w1/docs/timeline", headers=planner)
            assert kept.status_code == 200 and kept.json()["profile"]["date"] == "2031-06-13"
            done = await http.delete("/api/weddings/w1?on_wedding_day=true", headers=ADMIN)
            assert done.status_code in (200, 202), done.text
            await fake.set(datetime(2031, 6, 13, 23, 0, tzinfo=UTC))  # 14 June in Lisbon
            later = await http.delete("/api/weddings/w2", headers=ADMIN)
            assert later.status_code in (200, 202), later.text
