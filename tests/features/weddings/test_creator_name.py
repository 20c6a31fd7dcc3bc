"""The creator of a wedding is one person with her own name (issue 78, point 1), on SQLite
and PostgreSQL: the couple's member is called what she said (``your_name``), and the
wedding's first feed lines (its profile, currency and checklist) are hers, not an
operator's ("Someone (admin)"), whoever's key made the call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.features.conversations import ADMIN_AUTH, CODEC, ENV
from tests.server import served

pytestmark = [pytest.mark.timeout(120)]

NEW = {
    "names": ["Maya Patel", "Jordan Lee"],
    "your_name": "Maya Patel",
    "date": "2027-06-12",
    "time_zone": "Europe/Lisbon",
    "currency": "EUR",
    "email": "maya@example.com",
}


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "postgres":
        return {"CRDT_SERVER_DATABASE_URL": request.getfixturevalue("scratch_postgres")}
    return {}


def planner(wedding: str) -> dict[str, str]:
    minted = CODEC.mint(sub="pat", role="planner", wedding=wedding, ttl=600, name="Pat")
    return {"Authorization": f"Bearer {minted}"}


async def create(http: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await http.post("/api/weddings", json=body, headers=ADMIN_AUTH)


@pytest.mark.asyncio
async def test_the_creator_is_named_and_credited_as_herself(
    backend: dict[str, str], tmp_path: Path
) -> None:
    async with served(tmp_path / "data", {**ENV, **backend}) as (_, http):
        made = await create(http, {**NEW, "your_name": "  Jordan   Lee "})
        assert made.status_code == 201, made.text
        wedding, sub = made.json()["id"], made.json()["member"]["sub"]
        members = await http.get(f"/api/weddings/{wedding}/members", headers=planner(wedding))
        mine = [m for m in members.json()["members"] if m["sub"] == sub]
        assert [m["name"] for m in mine] == ["Jordan Lee"]
        events = await http.get(f"/api/weddings/{wedding}/events", headers=planner(wedding))
        assert events.status_code == 200, events.text
        first = events.json()["events"]
        assert {e["type"].split(".")[0] for e in first} >= {"task"}, first
        # Every line the creation wrote is the creator's: her sub, the couple's role.
        assert {(e["actor"]["sub"], e["actor"]["role"]) for e in first} == {(sub, "couple")}


@pytest.mark.asyncio
async def test_a_bad_own_name_is_refused_naming_the_field(
    backend: dict[str, str], tmp_path: Path
) -> None:
    async with served(tmp_path / "data", {**ENV, **backend}) as (_, http):
        for bad in ("", "   ", "x" * 101, "Ann\x07", 7):
            answer = await create(http, {**NEW, "your_name": bad})
            assert answer.status_code == 400, (bad, answer.text)
            assert answer.json()["errors"][0]["field"] == "your_name", answer.text
