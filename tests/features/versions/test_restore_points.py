"""Restore points people can use (issue 78, point 4), through a real server on SQLite and
PostgreSQL: each burst of one person's work that another's follows is a point of its own,
credited to that person and saying what they changed (the feed's events); the newest work
gets a point once its first edit is the interval old; a change undone within it makes no
point equal to the one before; restoring a point that differs from now makes the document
equal to it, and the feed's event says who restored what, as it was when."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from crdt_server.testing.tokens import TokenMinter
from crdt_server.testing.waits import until
from tests.server import ServerProcess

pytestmark = [pytest.mark.timeout(120)]

SECRET = "versions-test-secret-at-least-32-bytes!!"
MINT = TokenMinter(SECRET)
SEATING = "/api/weddings/w1/docs/seating"
PRIYA = {"role": "planner", "sub": "priya"}
SAM = {"role": "couple", "sub": "sam"}


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> str:
    return "" if request.param == "sqlite" else str(request.getfixturevalue("scratch_postgres"))


@pytest_asyncio.fixture
async def http(database: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    env = {
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        "CRDT_SERVER_VERSION_INTERVAL_SECONDS": "2",
        "CRDT_SERVER_VERSION_CHECK_SECONDS": "0.1",
    }
    if database:
        env["CRDT_SERVER_DATABASE_URL"] = database
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
    ):
        yield client


async def run(http: httpx.AsyncClient, who: dict[str, str], *ops: dict[str, Any]) -> None:
    for op in ops:
        answer = await http.post(f"{SEATING}/ops", json=op, headers=MINT.headers(**who))
        assert answer.status_code == 200, answer.text


async def versions(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    answer = await http.get(f"{SEATING}/versions", headers=MINT.headers(**PRIYA))
    assert answer.status_code == 200, answer.text
    return list(answer.json()["versions"])


async def at_least(http: httpx.AsyncClient, n: int) -> list[dict[str, Any]]:
    async def enough() -> list[dict[str, Any]] | None:
        found = await versions(http)
        return found if len(found) >= n else None

    points: list[dict[str, Any]] = await until(enough, 15.0)
    return points


async def state(http: httpx.AsyncClient, seq: int | None = None) -> Any:
    params = {} if seq is None else {"at": seq}
    answer = await http.get(SEATING, params=params, headers=MINT.headers(**PRIYA))
    assert answer.status_code == 200, answer.text
    return {k: answer.json().get(k) for k in ("tables", "assignments")}


@pytest.mark.asyncio
async def test_each_burst_of_work_is_a_point_saying_who_did_what(http: httpx.AsyncClient) -> None:
    added = await http.post(
        "/api/weddings/w1/docs/guests/ops",
        json={"op": "add_guest", "guest_id": "anita", "name": "Anita"},
        headers=MINT.headers(**PRIYA),
    )
    assert added.status_code == 200, added.text
    await run(
        http,
        PRIYA,
        {"op": "add_table", "table_id": "rose", "name": "Rose", "capacity": 8},
        {"op": "add_table", "table_id": "lily", "name": "Lily", "capacity": 8},
        {"op": "assign_seat", "guest_id": "anita", "table_id": "lily"},
    )
    # Sam's work right after Priya's: Priya's burst is a point of its own at once.
    await run(http, SAM, {"op": "assign_seat", "guest_id": "anita", "table_id": "rose"})
    [priyas] = await at_least(http, 1)
    assert priyas["actors"] == [{"sub": "priya", "role": "planner"}]
    assert priyas["change_count"] == 3
    assert {c["type"] for c in priyas["changes"]} == {
        "seating.table_added",
        "seating.guest_seated",
    }
    # Sam's, once its first edit is the interval old: "Sam moved Anita to Rose".
    sams, first = await at_least(http, 2)
    assert first["seq"] == priyas["seq"]
    assert sams["actors"] == [{"sub": "sam", "role": "couple"}]
    [moved] = sams["changes"]
    assert moved["type"] == "seating.guest_moved"
    assert moved["data"]["guest_id"] == "anita"
    assert (moved["data"]["from"]["table_id"], moved["data"]["to"]["table_id"]) == ("lily", "rose")

    # A change undone within the interval makes no point equal to the one before.
    await run(
        http,
        SAM,
        {"op": "assign_seat", "guest_id": "anita", "table_id": "lily"},
        {"op": "assign_seat", "guest_id": "anita", "table_id": "rose"},
    )
    await run(http, PRIYA, {"op": "update_table", "table_id": "lily", "name": "Lilac"})
    points = await at_least(http, 3)
    assert [p["actors"] for p in points[:1]] == [[{"sub": "priya", "role": "planner"}]]
    assert all(p["change_count"] for p in points)
    states = [await state(http, p["seq"]) for p in points]
    assert all(a != b for a, b in zip(states, states[1:], strict=False))

    # Restoring Priya's first point (it differs from now) makes the seating that again.
    assert await state(http) != await state(http, priyas["seq"])
    restored = await http.post(
        f"{SEATING}/restore", json={"seq": priyas["seq"]}, headers=MINT.headers(**SAM)
    )
    assert restored.status_code == 200, restored.text
    assert restored.json()["changed"] is True
    assert await state(http) == await state(http, priyas["seq"])

    async def restored_event() -> dict[str, Any] | None:
        listed = await http.get("/api/weddings/w1/events", headers=MINT.headers(**PRIYA))
        found = [e for e in listed.json()["events"] if e["type"] == "document.restored"]
        return found[0] if found else None

    event = await until(restored_event)
    assert event["actor"] == {"sub": "sam", "role": "couple"}
    assert event["data"]["point_at"] == priyas["at"] and event["data"]["doc"] == "seating"


@pytest.mark.asyncio
async def test_a_store_of_version_1_gains_the_changes_of_its_points(open_store: Any) -> None:
    """A ``versions`` table as the previous release made it (schema version 1): installing
    version 2 adds ``changes``; its points read back with ``change_count: None``, new ones
    with their changes (SQLite and PostgreSQL)."""
    from crdt_server.actor import Actor
    from crdt_server.features.versions.tables import POINTS, VERSIONS, VersionPoint, VersionStore
    from crdt_server.storage import Gateway, schema_of
    from crdt_server.storage.gateway import statements

    earlier = await open_store()  # the previous release's server
    await earlier.install(schema_of("versions", POINTS))
    old = ("w1/seating", 3, "w1", 100.0, '[["priya","planner"]]', b"\x00\x00")
    sql = "INSERT INTO {t}versions VALUES (?, ?, ?, ?, ?, ?)"
    await Gateway.of(earlier).run(statements([(sql, old)], count=True))
    store = await open_store()  # this release's, over the same data
    await store.install(VERSIONS)
    rows = await Gateway.of(store).fetch("SELECT name, version FROM {t}schema_versions")
    assert {str(n): int(v) for n, v in rows}["versions"] == 2
    kept = VersionStore(store)
    changes = ({"type": "seating.guest_moved", "data": {"guest_id": "anita"}},)
    new = VersionPoint("w1/seating", 5, 200.0, (Actor("sam", "couple"),), changes, 1)
    assert await kept.add("w1", new, b"\x00\x00")
    [newer, older] = await kept.points("w1/seating")
    assert (older.seq, older.change_count, older.changes) == (3, None, ())
    assert (newer.change_count, newer.changes) == (1, changes)
    await kept.forget_changes("w1/seating", "anita")
    [scrubbed, _] = await kept.points("w1/seating")
    assert (scrubbed.change_count, scrubbed.changes) == (1, ())


def test_every_point_is_kept_for_a_day_then_one_an_hour_then_one_a_day() -> None:
    from crdt_server.features.versions.tables import VersionPoint, to_thin

    day, minute = 86400.0, 60.0
    now = 30 * day
    made = [VersionPoint("w/seating", i, now - i * minute, ()) for i in range(1, 14 * 24 * 60)]
    doomed = {p.seq for p in to_thin(made, now, hourly_for=7 * day, keep_for=10 * day, all_for=day)}
    kept = [p for p in made if p.seq not in doomed]
    assert all(p in kept for p in made if now - p.at <= day)
    hourly = [p for p in kept if day < now - p.at <= 7 * day]
    assert len(hourly) == len({int(p.at // 3600) for p in hourly})
    daily = [p for p in kept if now - p.at > 7 * day]
    assert len(daily) == len({int(p.at // day) for p in daily})
    assert all(now - p.at <= 10 * day for p in kept)


def test_what_changed_between_two_states_costs_what_the_difference_does() -> None:
    """A guest list of 5,000 and one more change: one event, at once; 5,000 new guests at
    once (a hostile burst): five kept, the count right, within a time budget."""
    import time

    from pycrdt import Doc

    from crdt_server.documents import apply_operation
    from crdt_server.features.versions.domain import changes_between

    before: Doc[Any] = Doc()
    for i in range(5000):
        apply_operation(before, "guests", {"op": "add_guest", "guest_id": f"g{i}", "name": "G"})
    after: Doc[Any] = Doc()
    after.apply_update(before.get_update())
    apply_operation(after, "guests", {"op": "set_rsvp", "guest_id": "g7", "rsvp": "accepted"})
    started = time.perf_counter()
    first, count = changes_between("guests", before, after, keep=5)
    assert count == 1 and first[0]["type"] == "guest.rsvp_changed"
    assert time.perf_counter() - started < 2.0
    started = time.perf_counter()
    first, count = changes_between("guests", Doc(), before, keep=5)
    assert count == 5000 and len(first) == 5
    assert time.perf_counter() - started < 10.0
