"""Vendors' calendars over CalDAV against a real Radicale (tests/radicale.py) and the app
under real uvicorn, on SQLite and PostgreSQL: the timeline's items written as VEVENTs in
the wedding's zone, moved and removed with it; a vendor's move in their calendar read
back as a ``calendar.changed`` event with a delay proposal (the timeline unchanged, our
own writes never read back); a removed calendar left alone; Radicale down and back
(nothing lost, nothing twice); a wrong password shown as the calendar's error; 503 without
the credentials key; who may add which calendar."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from crdt_server.app import FEATURES, create_app
from crdt_server.features import fragments_of
from crdt_server.settings import Settings
from crdt_server.testing.tokens import TokenMinter
from crdt_server.testing.waits import until
from tests.features.test_feature_list import serving
from tests.radicale import USERS, Radicale

pytestmark = [pytest.mark.services, pytest.mark.timeout(120)]

SECRET = "calendars-test-secret-at-least-32-bytes!"
MINT = TokenMinter(SECRET)
KEY = base64.b64encode(bytes(range(32))).decode()
NEW_KEY = base64.b64encode(bytes(range(32, 64))).decode()
W = "/api/weddings/w1"
DAY = "2031-06-13"
ZONE = "Europe/Lisbon"

PLANNER = ("planner", "pat")
COUPLE = ("couple", "cam")
FLO = ("vendor", "flo")  # the florist's member account
LUX = ("vendor", "lux")  # the photographer's
FRIEND = ("friend", "fred")


def member(role: str, sub: str) -> dict[str, str]:
    return MINT.headers(role, sub, "w1", ttl=3600, name=sub.title())


def item(item_id: str, start: str, end: str, **more: Any) -> dict[str, Any]:
    return {
        "op": "add_timeline_item",
        "item_id": item_id,
        "title": item_id.replace("_", " ").title(),
        "start": f"{DAY}T{start}:00+01:00",
        "end": f"{DAY}T{end}:00+01:00",
    } | more


def move(item_id: str, start: str, end: str) -> dict[str, Any]:
    return {
        "op": "move_timeline_item",
        "item_id": item_id,
        "start": f"{DAY}T{start}:00+01:00",
        "end": f"{DAY}T{end}:00+01:00",
    }


ITEMS = [
    item("flowers", "09:00", "10:00", vendor_id="bloom"),
    item("bouquets", "10:00", "10:30", vendor_id="bloom"),
    item("prep_photos", "10:30", "11:30", vendor_id="lux", follows="flowers"),
    item("ceremony", "14:00", "15:00", fixed=True, location="Chapel"),
]


def uid(item_id: str) -> str:
    return f"w1.{item_id}@crdt-server"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return ""


@asynccontextmanager
async def server(
    data: Path, database_url: str = "", **more: str
) -> AsyncIterator[httpx.AsyncClient]:
    env = {
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        "CRDT_SERVER_DATA_DIR": str(data),
        "CRDT_SERVER_CREDENTIALS_KEY": KEY,
        "CRDT_SERVER_CALDAV_ALLOW_HOSTS": "127.0.0.1",
        "CRDT_SERVER_CALDAV_POLL_SECONDS": "1",
        "CRDT_SERVER_CALDAV_TIMEOUT_SECONDS": "5",
    } | more
    if database_url:
        env["CRDT_SERVER_DATABASE_URL"] = database_url
    settings = Settings.from_env(env, fragments=fragments_of(FEATURES))
    async with serving(create_app(settings)) as http:
        yield http


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def op(http: httpx.AsyncClient, body: dict[str, Any], who: tuple[str, str] = PLANNER) -> None:
    await ok(await http.post(f"{W}/docs/timeline/ops", json=body, headers=member(*who)))


async def setup(http: httpx.AsyncClient) -> None:
    for who in (PLANNER, COUPLE, FLO, LUX, FRIEND):
        await ok(await http.get(f"{W}/members", headers=member(*who)))
    await op(http, {"op": "set_profile", "date": DAY, "time_zone": ZONE})
    await op(http, {"op": "add_vendor", "vendor_id": "bloom", "name": "Bloom", "members": ["flo"]})
    await op(http, {"op": "add_vendor", "vendor_id": "lux", "name": "Lux", "members": ["lux"]})
    for body in ITEMS:
        await op(http, body)


async def add_calendar(
    http: httpx.AsyncClient,
    url: str,
    who: tuple[str, str] = PLANNER,
    scope: str = "wedding",
    user: str = "pat",
    password: str | None = None,
) -> dict[str, Any]:
    body = {"url": url, "username": user, "password": password or USERS[user], "scope": scope}
    return await ok(await http.post(f"{W}/calendars", json=body, headers=member(*who)), 201)


async def listed(http: httpx.AsyncClient, who: tuple[str, str] = PLANNER) -> list[dict[str, Any]]:
    answer = await ok(await http.get(f"{W}/calendars", headers=member(*who)))
    calendars: list[dict[str, Any]] = answer["calendars"]
    return calendars


async def status_of(http: httpx.AsyncClient, calendar: str, status: str) -> dict[str, Any] | None:
    found = [c for c in await listed(http) if c["id"] == calendar]
    return found[0] if found and found[0]["status"] == status else None


async def in_calendar(radicale: Radicale, user: str, name: str) -> dict[str, Any]:
    return await asyncio.to_thread(radicale.events, user, name)


def starts(events: dict[str, Any]) -> dict[str, datetime]:
    return {u: e.decoded("DTSTART") for u, e in events.items()}


def at(clock: str) -> datetime:
    return datetime.fromisoformat(f"{DAY}T{clock}:00+01:00")


async def calendar_events(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    answer = await ok(await http.get(f"{W}/events?limit=500", headers=member(*PLANNER)))
    return [e for e in answer["events"] if e["type"] == "calendar.changed"]


@pytest.mark.asyncio
async def test_items_are_written_in_the_wedding_zone_moved_and_removed(
    tmp_path: Path, radicale: Radicale, database_url: str
) -> None:
    wedding = await asyncio.to_thread(radicale.make_calendar, "pat", "wedding")
    florist = await asyncio.to_thread(radicale.make_calendar, "flo", "work")
    async with server(tmp_path / "data", database_url) as http:
        await setup(http)
        added = await add_calendar(http, wedding)
        assert added["status"] == "pending" and "password" not in added
        mine = await add_calendar(http, florist, FLO, "vendor:bloom", "flo")

        async def written(user: str, name: str, n: int) -> dict[str, Any] | None:
            found = await in_calendar(radicale, user, name)
            return found if len(found) == n else None

        events = await until(lambda: written("pat", "wedding", 4), deadline=30)
        assert set(events) == {uid(i["item_id"]) for i in ITEMS}
        flowers = events[uid("flowers")]
        assert str(flowers["SUMMARY"]) == "Flowers"
        assert flowers["DTSTART"].params["TZID"] == ZONE  # the wedding's zone, not UTC
        assert flowers.decoded("DTSTART") == at("09:00")
        assert flowers.decoded("DTEND") == at("10:00")
        assert str(events[uid("ceremony")]["LOCATION"]) == "Chapel"
        # The florist's calendar holds the florist's items only.
        theirs = await until(lambda: written("flo", "work", 2), deadline=30)
        assert set(theirs) == {uid("flowers"), uid("bouquets")}
        assert await until(lambda: status_of(http, added["id"], "ok"), deadline=30)
        assert await until(lambda: status_of(http, mine["id"], "ok"), deadline=30)
        for calendar in await listed(http):
            assert "password" not in calendar and calendar["error"] is None

        # Moved in the timeline: moved in both calendars; removed: removed from both.
        await op(http, move("flowers", "09:30", "10:30"))
        await op(http, {"op": "remove_timeline_item", "item_id": "bouquets"})

        async def moved(user: str, name: str, n: int) -> bool:
            found = await in_calendar(radicale, user, name)
            return len(found) == n and starts(found)[uid("flowers")] == at("09:30")

        await until(lambda: moved("pat", "wedding", 3), deadline=30)
        await until(lambda: moved("flo", "work", 1), deadline=30)
        # Our own writes are never read back as a vendor's change.
        assert await calendar_events(http) == []


@pytest.mark.asyncio
async def test_a_vendors_move_is_proposed_back_never_applied(
    tmp_path: Path, radicale: Radicale, database_url: str
) -> None:
    url = await asyncio.to_thread(radicale.make_calendar, "flo", "work")
    async with server(tmp_path / "data", database_url) as http:
        await setup(http)
        added = await add_calendar(http, url, FLO, "vendor:bloom", "flo")
        await until(lambda: status_of(http, added["id"], "ok"), deadline=30)
        await until(lambda: _has(radicale, "flo", "work", 2), deadline=30)

        # The florist runs 30 minutes late, and says so in their calendar app.
        await asyncio.to_thread(
            radicale.edit, "flo", "work", uid("flowers"),
            {"DTSTART": at("09:30"), "DTEND": at("10:30")},
        )  # fmt: skip
        [changed] = await until(lambda: calendar_events(http), deadline=30)
        data = changed["data"]
        assert changed["actor"] == {"sub": f"calendar:{added['id']}", "role": "integration"}
        assert data["item"] == "flowers" and data["removed"] is False
        assert datetime.fromisoformat(data["new_start"]) == at("09:30")
        assert datetime.fromisoformat(data["start"]) == at("09:00")
        # The delay proposal: the flowers, the bouquets after them (same vendor) and the
        # photos that follow them move by 30 minutes; the fixed ceremony does not.
        delay = data["delay"]
        assert delay["minutes"] == 30
        assert [m["item"] for m in delay["moves"]] == ["flowers", "bouquets", "prep_photos"]
        # The timeline is unchanged.
        view = await ok(await http.get(f"{W}/docs/timeline", headers=member(*PLANNER)))
        assert datetime.fromisoformat(view["items"]["flowers"]["start"]) == at("09:00")

        # A timeline writer applies it: the calendar gets the applied times, and nothing
        # more is reported (the vendor's version, seen once; then our own write).
        apply = {"item": "flowers", "minutes": 30, "apply": True}
        await ok(await http.post(f"{W}/day/delays", json=apply, headers=member(*PLANNER)))

        async def applied() -> bool:
            found = starts(await in_calendar(radicale, "flo", "work"))
            return found[uid("bouquets")] == at("10:30")

        await until(applied, deadline=30)
        # Two more polls: still the one report.
        before = (await listed(http, FLO))[0]["synced_at"]
        await until(lambda: _synced_after(http, before, 2), deadline=30)
        assert len(await calendar_events(http)) == 1

        # Removed in the calendar: reported (once), the timeline keeps the item.
        await asyncio.to_thread(radicale.remove, "flo", "work", uid("bouquets"))
        reports = await until(lambda: _reports(http, 2), deadline=30)
        assert reports[1]["data"]["item"] == "bouquets" and reports[1]["data"]["removed"]
        view = await ok(await http.get(f"{W}/docs/timeline", headers=member(*PLANNER)))
        assert "bouquets" in view["items"]


async def _has(radicale: Radicale, user: str, name: str, n: int) -> bool:
    return len(await in_calendar(radicale, user, name)) == n


async def _reports(http: httpx.AsyncClient, n: int) -> list[dict[str, Any]] | None:
    found = await calendar_events(http)
    return found if len(found) >= n else None


async def _synced_after(http: httpx.AsyncClient, before: str, seconds: int) -> bool:
    now = (await listed(http))[0]["synced_at"]
    was = datetime.fromisoformat(before)
    return datetime.fromisoformat(now) >= was + timedelta(seconds=seconds)


@pytest.mark.asyncio
async def test_a_removed_calendar_stops_syncing(
    tmp_path: Path, radicale: Radicale, database_url: str
) -> None:
    kept = await asyncio.to_thread(radicale.make_calendar, "pat", "kept")
    gone = await asyncio.to_thread(radicale.make_calendar, "pat", "gone")
    async with server(tmp_path / "data", database_url) as http:
        await setup(http)
        await add_calendar(http, kept)
        removed = await add_calendar(http, gone)
        await until(lambda: _has(radicale, "pat", "kept", 4), deadline=30)
        await until(lambda: _has(radicale, "pat", "gone", 4), deadline=30)
        # Only the couple, the planner (or the vendor's members) may remove it.
        refused = await http.delete(f"{W}/calendars/{removed['id']}", headers=member(*FLO))
        assert refused.status_code == 403, refused.text
        answer = await ok(
            await http.delete(f"{W}/calendars/{removed['id']}", headers=member(*PLANNER))
        )
        assert answer == {"id": removed["id"], "deleted": True}
        missing = await http.delete(f"{W}/calendars/{removed['id']}", headers=member(*PLANNER))
        assert missing.status_code == 404, missing.text
        assert [c["id"] for c in await listed(http)] != [removed["id"]]

        await op(http, item("speeches", "16:00", "16:30"))
        # The calendar still attached gets it; the removed one is left as it was.
        await until(lambda: _has(radicale, "pat", "kept", 5), deadline=30)
        before = (await listed(http))[0]["synced_at"]
        await until(lambda: _synced_after(http, before, 2), deadline=30)
        assert set(await in_calendar(radicale, "pat", "gone")) == {uid(i["item_id"]) for i in ITEMS}


@pytest.mark.asyncio
async def test_radicale_down_and_back_loses_nothing_and_doubles_nothing(
    tmp_path: Path, radicale: Radicale, database_url: str
) -> None:
    url = await asyncio.to_thread(radicale.make_calendar, "pat", "wedding")
    async with server(tmp_path / "data", database_url) as http:
        await setup(http)
        added = await add_calendar(http, url)
        await until(lambda: _has(radicale, "pat", "wedding", 4), deadline=30)

        await radicale.stop()
        await op(http, move("ceremony", "14:30", "15:30"))
        await op(http, item("speeches", "16:00", "16:30"))
        await op(http, {"op": "remove_timeline_item", "item_id": "bouquets"})
        down = await until(lambda: status_of(http, added["id"], "error"), deadline=30)
        assert down["error"] == "could not reach the calendar"

        await radicale.start()  # the same port, the same storage
        await until(lambda: status_of(http, added["id"], "ok"), deadline=30)

        async def caught_up() -> dict[str, Any] | None:
            found = await in_calendar(radicale, "pat", "wedding")  # fails on a UID twice
            return found if uid("speeches") in found and uid("bouquets") not in found else None

        events = await until(caught_up, deadline=30)
        assert set(events) == {uid(i) for i in ("flowers", "prep_photos", "ceremony", "speeches")}
        assert starts(events)[uid("ceremony")] == at("14:30")
        assert await calendar_events(http) == []  # our writes, never a vendor's change


@pytest.mark.asyncio
async def test_a_wrong_password_shows_as_the_calendars_error(
    tmp_path: Path, radicale: Radicale, database_url: str
) -> None:
    url = await asyncio.to_thread(radicale.make_calendar, "pat", "wedding")
    async with server(tmp_path / "data", database_url) as http:
        await setup(http)
        added = await add_calendar(http, url, password="not-the-password")
        shown = await until(lambda: status_of(http, added["id"], "error"), deadline=30)
        assert shown["error"] == "the calendar refused the username or password"
        assert (
            "not-the-password"
            not in (await http.get(f"{W}/calendars", headers=member(*PLANNER))).text
        )
        assert await in_calendar(radicale, "pat", "wedding") == {}


@pytest.mark.asyncio
async def test_who_may_add_which_calendar_and_bad_input(tmp_path: Path, radicale: Radicale) -> None:
    url = radicale.calendar_url("flo", "work")
    async with server(tmp_path / "data") as http:
        await setup(http)

        async def refused(who: tuple[str, str], body: dict[str, Any], status: int) -> Any:
            full = {"url": url, "username": "flo", "password": "x"} | body
            answer = await http.post(f"{W}/calendars", json=full, headers=member(*who))
            assert answer.status_code == status, answer.text
            return answer.json()

        # A vendor's member: their own vendor only, never another's nor the wedding's.
        await refused(FLO, {"scope": "vendor:lux"}, 403)
        await refused(FLO, {"scope": "wedding"}, 403)
        await refused(FRIEND, {"scope": "vendor:bloom"}, 403)
        await refused(LUX, {"scope": "vendor:bloom"}, 403)
        # Bad input names its field; nothing is added.
        problem = await refused(PLANNER, {"scope": "vendors"}, 400)
        assert problem["errors"][0]["field"] == "scope"
        problem = await refused(PLANNER, {"scope": "vendor:nobody"}, 422)
        assert problem["errors"][0]["field"] == "scope"
        problem = await refused(PLANNER, {"url": "ftp://127.0.0.1/cal/"}, 400)
        assert problem["errors"][0]["field"] == "url"
        # A private address not on the allowlist: the SSRF guard refuses it.
        problem = await refused(PLANNER, {"url": "http://10.0.0.1/cal/"}, 422)
        assert problem["errors"][0]["field"] == "url"
        problem = await refused(PLANNER, {"url": "http://u:p@127.0.0.1/cal/"}, 400)
        assert problem["errors"][0]["field"] == "url"
        unknown = await http.post(
            f"{W}/calendars", json={"url": url, "username": "flo", "password": "x", "pin": 1},
            headers=member(*PLANNER),
        )  # fmt: skip
        assert unknown.status_code == 422, unknown.text
        assert unknown.json()["errors"][0]["field"] == "pin"
        assert await listed(http) == []
        # The florist's own: allowed; the photographer sees none of it.
        await add_calendar(http, url, FLO, "vendor:bloom", "flo")
        assert [c["scope"] for c in await listed(http, FLO)] == ["vendor:bloom"]
        assert await listed(http, LUX) == []
        refused_list = await http.get(f"{W}/calendars", headers=member(*FRIEND))
        assert refused_list.status_code == 403, refused_list.text


@pytest.mark.asyncio
async def test_without_the_credentials_key_the_routes_answer_503(tmp_path: Path) -> None:
    async with server(tmp_path / "data", CRDT_SERVER_CREDENTIALS_KEY="") as http:
        await setup(http)
        body = {"url": "http://127.0.0.1:1/cal/", "username": "u", "password": "p"}
        for answer in (
            await http.post(f"{W}/calendars", json=body, headers=member(*PLANNER)),
            await http.get(f"{W}/calendars", headers=member(*PLANNER)),
            await http.delete(f"{W}/calendars/cd_0123456789abcdef", headers=member(*PLANNER)),
        ):
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert "CRDT_SERVER_CREDENTIALS_KEY" in answer.json()["detail"]


@pytest.mark.asyncio
async def test_a_new_key_first_re_encrypts_every_password_at_start(
    tmp_path: Path, radicale: Radicale
) -> None:
    url = await asyncio.to_thread(radicale.make_calendar, "pat", "wedding")
    data = tmp_path / "data"
    async with server(data, CRDT_SERVER_CREDENTIALS_KEY=f"old:{KEY}") as http:
        await setup(http)
        added = await add_calendar(http, url)
        await until(lambda: status_of(http, added["id"], "ok"), deadline=30)

    def stored() -> tuple[str, str]:
        with sqlite3.connect(data / "crdt.sqlite3") as db:
            row = db.execute("SELECT kid, secret FROM calendars").fetchone()
        return str(row[0]), str(row[1])

    kid, sealed = stored()
    assert kid == "old" and USERS["pat"] not in sealed
    assert USERS["pat"].encode() not in (data / "crdt.sqlite3").read_bytes()
    rotated = f"new:{NEW_KEY},old:{KEY}"
    async with server(data, CRDT_SERVER_CREDENTIALS_KEY=rotated) as http:
        assert stored()[0] == "new"
        await op(http, item("speeches", "16:00", "16:30"))
        await until(lambda: _has(radicale, "pat", "wedding", 5), deadline=30)
    # The old key dropped: the password still opens.
    async with server(data, CRDT_SERVER_CREDENTIALS_KEY=f"new:{NEW_KEY}") as http:
        await op(http, {"op": "remove_timeline_item", "item_id": "speeches"})
        await until(lambda: _has(radicale, "pat", "wedding", 4), deadline=30)
        assert (await listed(http))[0]["status"] == "ok"
    # A key the ring lacks: the calendar says so, nothing breaks.
    async with server(data, CRDT_SERVER_CREDENTIALS_KEY=f"other:{KEY}") as http:
        shown = await until(lambda: status_of(http, added["id"], "error"), deadline=30)
        assert "'new'" in shown["error"]


@pytest.mark.asyncio
async def test_a_revoked_vendors_calendars_go_with_their_passwords(
    tmp_path: Path, radicale: Radicale
) -> None:
    url = await asyncio.to_thread(radicale.make_calendar, "flo", "work")
    data = tmp_path / "data"
    admin = {"Authorization": "Bearer calendars-admin-key"}
    async with server(data, CRDT_SERVER_ADMIN_API_KEY="calendars-admin-key") as http:
        await setup(http)
        mine = await add_calendar(http, url, FLO, "vendor:bloom", "flo")
        kept = await add_calendar(http, url, PLANNER, "vendor:bloom", "flo")
        await until(lambda: status_of(http, mine["id"], "ok"), deadline=30)
        revoke = {"sub": "flo", "wedding": "w1"}
        await ok(await http.post("/api/admin/revoke", json=revoke, headers=admin))
        assert [c["id"] for c in await listed(http)] == [kept["id"]]
    with sqlite3.connect(data / "crdt.sqlite3") as db:
        rows = db.execute("SELECT id FROM calendars").fetchall()
        events = db.execute("SELECT DISTINCT calendar FROM calendar_events").fetchall()
    assert rows == [(kept["id"],)] and mine["id"] not in {e[0] for e in events}
