"""The wedding day on a real server (uvicorn, SQLite) with a fake clock: a missed call
time raises ``day.vendor_missing`` once, urgent to the couple and the planner, and a
restart does not repeat it; a vendor who checked in raises nothing; check-ins (who may,
Idempotency-Key, ``at``), the day's state and its live item states, day-of mode; a friend
(family role) reads the vendor directory but no contact; clients cannot forge the
server's ``day.`` events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from crdt_server import clock
from crdt_server.app import create_app
from crdt_server.features.day import FEATURE, MISSING_KIND, DayWatch
from crdt_server.settings import Settings
from crdt_server.testing.tokens import bearer
from crdt_server.testing.waits import until
from tests.features.recorded import Recorded
from tests.features.test_feature_list import MINT, SECRET, serving
from tests.yclient import YClient

pytestmark = pytest.mark.timeout(90)

W = "/api/weddings/w1"
START = datetime(2031, 6, 13, 6, 0, tzinfo=UTC)
MINUTE = 60.0
ADMIN = "day-test-admin-key"


def couple() -> dict[str, str]:
    # Minted when asked: tokens are checked against the (fake) clock.
    return MINT.headers(role="couple", sub="cam")


def planner() -> dict[str, str]:
    return MINT.headers(role="planner", sub="pat")


def florist() -> dict[str, str]:
    return MINT.headers(role="vendor", sub="flo")


def other_vendor() -> dict[str, str]:
    return MINT.headers(role="vendor", sub="dj")


def family() -> dict[str, str]:
    return MINT.headers(role="family", sub="fay")


RECORDED = Recorded(FEATURE, DayWatch)


@asynccontextmanager
async def running(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, DayWatch]]:
    settings = Settings(data_dir=tmp_path, auth_secret=SECRET, admin_api_key=ADMIN)
    app = create_app(settings, features=RECORDED.features)
    async with serving(app) as client:
        yield client, RECORDED.last


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def op(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    await ok(await client.post(f"{W}/docs/timeline/ops", json=body, headers=planner()))


async def events_of(client: httpx.AsyncClient, kind: str) -> list[dict[str, Any]]:
    body = await ok(await client.get(f"{W}/events?types={kind}", headers=couple()))
    return [e["data"] for e in body["events"]]


async def alerts(client: httpx.AsyncClient, headers: dict[str, str]) -> list[tuple[str, str]]:
    body = await ok(await client.get(f"{W}/notifications", headers=headers))
    return [
        (n["reason"], n["priority"])
        for n in body["notifications"]
        if n["reason"] == "day.vendor_missing"
    ]


async def wedding_day(client: httpx.AsyncClient) -> None:
    """The profile, a directory florist due at 08:00 and items: the florist's, and a
    free-text photographer's first item at 09:00 (its call time)."""
    await op(client, {"op": "set_profile", "date": "2031-06-13", "time_zone": "UTC"})
    await op(
        client,
        {
            "op": "add_vendor",
            "vendor_id": "flo",
            "name": "Bloom & Co",
            "category": "florist",
            "members": ["flo"],
            "call_time": "2031-06-13T08:00:00Z",
        },
    )
    for item_id, title, start, end, vendor in (
        ("i1", "Flowers", "2031-06-13T08:30:00Z", "2031-06-13T09:30:00Z", {"vendor_id": "flo"}),
        ("i2", "Portraits", "2031-06-13T09:00:00Z", "2031-06-13T10:00:00Z", {"vendor": "Snap"}),
        ("i3", "Group", "2031-06-13T11:00:00Z", "2031-06-13T12:00:00Z", {"vendor": " SNAP "}),
    ):
        await op(
            client,
            {"op": "add_timeline_item", "item_id": item_id, "title": title, "start": start,
             "end": end} | vendor,
        )  # fmt: skip


@pytest.mark.asyncio
async def test_a_missed_call_time_alerts_once_and_a_restart_does_not_repeat_it(
    tmp_path: Path,
) -> None:
    fake = clock.FakeClock(START)
    with clock.use(fake):
        async with running(tmp_path) as (client, watch):
            # The couple and the planner are members (who is alerted).
            for headers in (couple(), planner(), florist()):
                await ok(await client.get(f"{W}/notifications", headers=headers))
            await wedding_day(client)
            await watch.settled()
            jobs = await watch.scheduler.jobs("w1", MISSING_KIND, "flo")
            assert [(j.due_at, j.status) for j in jobs] == [
                (datetime(2031, 6, 13, 8, tzinfo=UTC).timestamp(), "pending")
            ]
            # The photographer (free text, one vendor for both spellings) checks in on time.
            checked = await client.post(
                f"{W}/day/check-ins",
                json={"vendor": "snap", "status": "arrived"},
                headers=other_vendor(),
            )
            assert (await ok(checked, 201))["vendor"] == "name:snap"
            await fake.advance(2 * 60 * MINUTE + MINUTE)  # 08:01: the florist is missing
            missing = await events_of(client, "day.vendor_missing")
            assert [(m["vendor"], m["name"], m["call_time"]) for m in missing] == [
                ("flo", "Bloom & Co", "2031-06-13T08:00:00+00:00")
            ]
            assert await alerts(client, couple()) == [("day.vendor_missing", "urgent")]
            assert await alerts(client, planner()) == [("day.vendor_missing", "urgent")]
            assert await alerts(client, florist()) == []
            await fake.advance(60 * MINUTE)  # 09:01: the photographer checked in
            assert len(await events_of(client, "day.vendor_missing")) == 1

        # A restart loads the timeline and plans its call times again: nothing twice.
        async with running(tmp_path) as (client, watch):
            await op(client, {"op": "set_profile", "venue": "The Barn"})
            await watch.settled()
            await fake.advance(10 * MINUTE)
            assert len(await events_of(client, "day.vendor_missing")) == 1
            assert await alerts(client, couple()) == [("day.vendor_missing", "urgent")]
            # A call time already past when the vendor is added alerts at once.
            await op(
                client,
                {"op": "add_vendor", "vendor_id": "band", "name": "The Band",
                 "call_time": "2031-06-13T07:00:00Z"},
            )  # fmt: skip
            await watch.settled()
            await fake.advance(MINUTE)
            assert [m["vendor"] for m in await events_of(client, "day.vendor_missing")] == [
                "flo",
                "band",
            ]


@pytest.mark.asyncio
async def test_check_ins_the_days_state_and_who_may_check_in(tmp_path: Path) -> None:
    fake = clock.FakeClock(START)
    with clock.use(fake):
        async with running(tmp_path) as (client, watch):
            await wedding_day(client)
            url = f"{W}/day/check-ins"
            # Only the florist's own member (or the leads) checks the florist in.
            refused = await client.post(
                url, json={"vendor": "flo", "status": "arrived"}, headers=other_vendor()
            )
            assert refused.status_code == 403, refused.text
            family_try = await client.post(
                url, json={"vendor": "snap", "status": "arrived"}, headers=family()
            )
            assert family_try.status_code == 403, family_try.text
            unknown = await client.post(
                url, json={"vendor": "nobody", "status": "arrived"}, headers=planner()
            )
            assert unknown.status_code == 422 and "vendor" in unknown.text
            bad = await client.post(
                url, json={"vendor": "flo", "status": "asleep"}, headers=planner()
            )
            assert bad.status_code in (400, 422) and "status" in bad.text
            # Tapped offline at 07:50, sent at 08:10 with an Idempotency-Key.
            await fake.advance(2 * 60 * MINUTE + 10 * MINUTE)
            tapped = {"vendor": "flo", "status": "arrived", "at": "2031-06-13T07:50:00Z"}
            key = {"Idempotency-Key": "tap-1"}
            first = await ok(await client.post(url, json=tapped, headers=florist() | key), 201)
            assert first["at"] == "2031-06-13T07:50:00.000Z"
            assert first["received"] == "2031-06-13T08:10:00.000Z"
            again = await ok(await client.post(url, json=tapped, headers=florist() | key))
            assert again == first
            clash = await client.post(
                url, json=tapped | {"status": "running_late"}, headers=florist() | key
            )
            assert clash.status_code == 409
            # A time in the future is not kept: receipt is.
            later = {"vendor": "Snap", "status": "running_late", "at": "2031-06-13T23:00:00Z",
                     "eta": "2031-06-13T09:20:00+00:00"}  # fmt: skip
            late = await ok(await client.post(url, json=later, headers=couple()), 201)
            assert late["at"] == "2031-06-13T08:10:00.000Z"
            assert len(await events_of(client, "day.vendor_checked_in")) == 2

            await fake.advance(50 * MINUTE)  # 09:00
            day = await ok(await client.get(f"{W}/day", headers=couple()))
            assert day["day"] == "2031-06-13"
            assert day["active"] is True and day["mode"] == "auto"
            assert day["window"] == {
                "start": "2031-06-13T05:00:00+00:00",
                "end": "2031-06-13T14:00:00+00:00",
            }
            states = {item["id"]: item["state"] for item in day["items"]}
            assert states == {"i1": "in_progress", "i2": "late", "i3": "upcoming"}
            checks = {v["vendor"]: v["check_in"] for v in day["vendors"]}
            assert checks["flo"]["at"] == "2031-06-13T07:50:00.000Z"
            assert checks["name:snap"]["status"] == "running_late"
            # A free-text vendor is named as the timeline spells it (its first item's), not
            # by its folded key: "Snap", whichever spelling was tapped.
            names = {v["vendor"]: v["name"] for v in day["vendors"]}
            assert names == {"flo": "Bloom & Co", "name:snap": "Snap"}
            assert checks["name:snap"]["name"] == "Snap"
            # The key the day's state shows is accepted as the vendor too (the app's tap).
            by_key = {"vendor": "name:snap", "status": "arrived"}
            assert (await ok(await client.post(url, json=by_key, headers=couple()), 201))[
                "vendor"
            ] == "name:snap"
            # Nothing was written into the document.
            timeline = await ok(await client.get(f"{W}/docs/timeline", headers=planner()))
            assert {i["status"] for i in timeline["items"].values()} == {"planned"}

            # Day-of mode: the planner's switch.
            off = {"mode": "off"}
            assert (
                await client.put(f"{W}/day/mode", json=off, headers=couple())
            ).status_code == 403
            await ok(await client.put(f"{W}/day/mode", json=off, headers=planner()))
            day = await ok(await client.get(f"{W}/day", headers=couple()))
            assert day["active"] is False and day["mode"] == "off"
            # Every open app hears of it (it reads the day again on a day.* event).
            await ok(await client.put(f"{W}/day/mode", json={"mode": "auto"}, headers=planner()))
            assert await events_of(client, "day.mode_changed") == [
                {"mode": "off"},
                {"mode": "auto"},
            ]


@pytest.mark.asyncio
async def test_a_friend_reads_the_directory_but_no_contact(tmp_path: Path) -> None:
    fake = clock.FakeClock(START)
    with clock.use(fake):
        async with running(tmp_path) as (client, watch):
            await wedding_day(client)
            contact = f"{W}/day/vendors/flo/contact"
            given = {"name": "Flo", "email": "flo@bloom.example", "phone": "+44 1"}
            saved = await ok(await client.put(contact, json=given, headers=planner()))
            assert saved == {"vendor_id": "flo"} | given
            assert await ok(await client.get(contact, headers=florist())) == saved
            assert await ok(await client.get(contact, headers=couple())) == saved
            # The family reads the timeline, its vendors root included, but no contact.
            timeline = await ok(await client.get(f"{W}/docs/timeline", headers=family()))
            assert timeline["vendors"]["flo"]["name"] == "Bloom & Co"
            assert "flo@bloom.example" not in str(timeline)
            for headers in (family(), other_vendor()):
                assert (await client.get(contact, headers=headers)).status_code == 403
                put = await client.put(contact, json=given, headers=headers)
                assert put.status_code == 403
            # Who hears of a vendor: its member accounts, else the email in its contact.
            await ok(await client.get(f"{W}/notifications", headers=florist()))
            members, email = await watch.recipients("w1", "flo")
            assert ([m.sub for m in members], email) == (["flo"], None)
            await op(client, {"op": "add_vendor", "vendor_id": "band", "name": "The Band"})
            band = f"{W}/day/vendors/band/contact"
            await ok(await client.put(band, json={"email": "b@band.example"}, headers=couple()))
            assert await watch.recipients("w1", "band") == ([], "b@band.example")
            assert await watch.recipients("w1", "name:snap") == ([], None)
            missing = await client.get(f"{W}/day/vendors/nobody/contact", headers=planner())
            assert missing.status_code == 404
            bad = await client.put(contact, json={"email": "no at sign"}, headers=planner())
            assert bad.status_code in (400, 422) and "email" in bad.text
            assert await ok(await client.get(contact, headers=planner())) == saved


@pytest.mark.asyncio
async def test_clients_cannot_forge_the_servers_day_events(tmp_path: Path) -> None:
    fake = clock.FakeClock(START)
    with clock.use(fake):
        async with running(tmp_path) as (client, _):
            for kind in (
                "day.vendor_checked_in",
                "day.vendor_missing",
                "day.member_offline",
                "day.mode_changed",
            ):
                forged = await client.post(
                    f"{W}/events", json={"type": kind, "data": {"vendor": "flo"}},
                    headers=planner(),
                )  # fmt: skip
                assert forged.status_code == 422, forged.text
                assert "made by the server only" in forged.text
            posted = await client.post(
                f"{W}/events", json={"type": "day.vendor_arrived", "data": {}}, headers=planner()
            )
            assert posted.status_code == 201, posted.text


@pytest.mark.asyncio
async def test_a_member_on_duty_without_a_connection_is_reported_once_per_window(
    tmp_path: Path,
) -> None:
    fake = clock.FakeClock(START)
    with clock.use(fake):
        async with running(tmp_path) as (client, watch):
            assert watch.grace == 600.0
            for headers in (couple(), planner(), florist()):
                await ok(await client.get(f"{W}/notifications", headers=headers))
            duty = {"sub": "flo", "start": "2031-06-13T07:00:00Z", "end": "2031-06-13T12:00:00Z"}
            put = await client.put(f"{W}/day/duty", json=duty, headers=florist())
            assert put.status_code == 403
            stranger = await client.put(
                f"{W}/day/duty", json=duty | {"sub": "nobody"}, headers=planner()
            )
            assert stranger.status_code == 422 and "sub" in stranger.text
            backwards = duty | {"end": "2031-06-13T06:00:00Z"}
            refused = await client.put(f"{W}/day/duty", json=backwards, headers=planner())
            assert refused.status_code == 422 and "end" in refused.text
            await ok(await client.put(f"{W}/day/duty", json=duty, headers=planner()))
            await fake.advance(60 * MINUTE + 5 * MINUTE)  # 07:05: within the grace
            assert await events_of(client, "day.member_offline") == []
            await fake.advance(6 * MINUTE)  # 07:11: ten minutes into the window, no connection
            [offline] = await events_of(client, "day.member_offline")
            assert (offline["sub"], offline["seen"]) == ("flo", None)
            reasons = await ok(await client.get(f"{W}/notifications", headers=couple()))
            assert [
                (n["reason"], n["priority"])
                for n in reasons["notifications"]
                if n["reason"] == "day.member_offline"
            ] == [("day.member_offline", "urgent")]
            await fake.advance(120 * MINUTE)
            assert len(await events_of(client, "day.member_offline")) == 1
            day = await ok(await client.get(f"{W}/day", headers=couple()))
            assert day["on_duty"] == [
                {"sub": "flo", "start": "2031-06-13T07:00:00.000Z",
                 "end": "2031-06-13T12:00:00.000Z"}
            ]  # fmt: skip

        async with running(tmp_path) as (client, watch):
            await fake.advance(60 * MINUTE)
            assert len(await events_of(client, "day.member_offline")) == 1


@pytest.mark.asyncio
async def test_a_wedding_whose_day_is_over_raises_nothing(tmp_path: Path) -> None:
    fake = clock.FakeClock(datetime(2031, 6, 20, 9, 0, tzinfo=UTC))
    with clock.use(fake):
        async with running(tmp_path) as (client, watch):
            await wedding_day(client)  # the 13th, a week ago
            await watch.settled()
            assert await watch.scheduler.jobs("w1", MISSING_KIND, "flo") == []
            await fake.advance(10 * MINUTE)
            assert await events_of(client, "day.vendor_missing") == []


@pytest.mark.asyncio
async def test_only_a_change_that_can_move_a_call_time_plans_the_day_again(
    tmp_path: Path,
) -> None:
    """Typing an item's title or notes re-reads nothing (planning reads the whole
    timeline); moving an item, changing its vendor or the wedding date plans again."""
    fake = clock.FakeClock(START)
    with clock.use(fake):
        async with running(tmp_path) as (client, watch):
            await wedding_day(client)
            await watch.settled()
            planned: list[str] = []
            plan = watch.plan

            async def counting(wedding: str) -> None:
                planned.append(wedding)
                await plan(wedding)

            watch.plan = counting  # type: ignore[method-assign]
            for title in ("Portraits by the lake", "Portraits by the lake, then the hill"):
                await op(client, {"op": "update_timeline_item", "item_id": "i2", "title": title})
            notes = {"op": "update_timeline_item", "item_id": "i3", "notes": "bring a ladder"}
            await op(client, notes)
            await op(client, {"op": "update_vendor", "vendor_id": "flo", "name": "Bloom"})
            await watch.settled()
            assert planned == ["w1"]  # the directory's entry, not the titles nor the notes
            moved = {"op": "move_timeline_item", "item_id": "i2"} | {
                "start": "2031-06-13T08:45:00Z", "end": "2031-06-13T09:45:00Z"
            }  # fmt: skip
            await op(client, moved)
            await watch.settled()
            assert planned == ["w1", "w1"]
            jobs = await watch.scheduler.jobs("w1", MISSING_KIND, "name:snap")
            due = datetime(2031, 6, 13, 8, 45, tzinfo=UTC).timestamp()
            assert due in [j.due_at for j in jobs if j.status == "pending"]
            await op(client, {"op": "update_timeline_item", "item_id": "i3", "vendor": "Other"})
            await op(client, {"op": "set_profile", "time_zone": "Europe/Paris"})
            await watch.settled()
            assert planned == ["w1", "w1", "w1", "w1"]


@pytest.mark.asyncio
async def test_a_connected_member_is_not_reported_and_the_grace_counts_from_their_leaving(
    tmp_path: Path,
) -> None:
    fake = clock.FakeClock(START)
    with clock.use(fake):
        async with running(tmp_path) as (client, watch):
            for headers in (couple(), planner(), florist()):
                await ok(await client.get(f"{W}/notifications", headers=headers))
            duty = {"sub": "flo", "start": "2031-06-13T07:00:00Z", "end": "2031-06-13T12:00:00Z"}
            await ok(await client.put(f"{W}/day/duty", json=duty, headers=planner()))
            ws_url = str(client.base_url).replace("http://", "ws://") + "/sync"
            token = MINT(sub="flo", role="vendor", ttl=86400)
            phone = YClient(ws_url, "w1/timeline")
            await phone.connect(additional_headers={"Authorization": f"Bearer {token}"})
            await phone.wait(phone.synced.is_set)
            await until(lambda: holds(watch.connected("w1", "flo")))
            await fake.advance(60 * MINUTE + 30 * MINUTE)  # 07:30: connected all along
            assert await events_of(client, "day.member_offline") == []
            await phone.close()  # 07:30: the phone goes in a pocket
            await until(lambda: holds(not watch.connected("w1", "flo")))
            await until(lambda: holds(not watch._writes))  # the leaving is noted
            await fake.advance(9 * MINUTE)  # 07:39: within the grace of the leaving
            assert await events_of(client, "day.member_offline") == []
            await fake.advance(2 * MINUTE)  # 07:41
            [offline] = await events_of(client, "day.member_offline")
            assert offline["seen"] == "2031-06-13T07:30:00+00:00"


async def holds(value: bool) -> bool:
    return value


@pytest.mark.asyncio
async def test_a_members_erasure_takes_their_check_ins_and_duty_windows(tmp_path: Path) -> None:
    fake = clock.FakeClock(START)
    with clock.use(fake):
        async with running(tmp_path) as (client, _):
            await wedding_day(client)
            for headers in (couple(), florist()):
                await ok(await client.get(f"{W}/notifications", headers=headers))
            tapped = {"vendor": "flo", "status": "arrived"}
            await ok(await client.post(f"{W}/day/check-ins", json=tapped, headers=florist()), 201)
            duty = {"sub": "flo", "start": "2031-06-13T07:00:00Z", "end": "2031-06-13T12:00:00Z"}
            await ok(await client.put(f"{W}/day/duty", json=duty, headers=planner()))
            day = await ok(await client.get(f"{W}/day", headers=couple()))
            assert [v["check_in"]["sub"] for v in day["vendors"] if v["check_in"]] == ["flo"]
            admin = {"Authorization": f"Bearer {ADMIN}"}
            await ok(await client.delete("/api/admin/members/flo", headers=admin))
            day = await ok(await client.get(f"{W}/day", headers=couple()))
            assert [v["check_in"] for v in day["vendors"]] == [None, None]
            assert day["on_duty"] == []


@pytest.mark.asyncio
async def test_a_caterer_reads_what_it_cooks_for_whatever_it_reads_of_the_guest_list(
    tmp_path: Path,
) -> None:
    fake = clock.FakeClock(START)
    with clock.use(fake):
        async with running(tmp_path) as (client, _):
            await wedding_day(client)
            await op(
                client,
                {"op": "add_vendor", "vendor_id": "food", "name": "Harbour Catering",
                 "category": "Caterer", "members": ["chef"]},
            )  # fmt: skip
            await op(
                client,
                {"op": "add_timeline_item", "item_id": "i4", "title": "Dinner",
                 "start": "2031-06-13T18:00:00Z", "end": "2031-06-13T20:00:00Z",
                 "vendor_id": "food"},
            )  # fmt: skip
            for guest_id, name, meal, dietary in (
                ("g1", "Ann Lee", "fish", ["vegan"]),
                ("g2", "Bo Chen", "beef", []),
                ("g3", "Cy Diaz", None, ["nut allergy"]),
            ):
                body: dict[str, Any] = {
                    "op": "add_guest", "guest_id": guest_id, "name": name, "rsvp": "accepted",
                    "dietary": dietary,
                }  # fmt: skip
                if meal:
                    body["meal"] = meal
                added = await client.post(f"{W}/docs/guests/ops", json=body, headers=planner())
                assert added.status_code == 200, added.text
            expected = {
                "people": 3,
                "meals": {"fish": 1, "beef": 1},
                "no_meal": 1,
                "dietary": {"vegan": 1, "nut allergy": 1},
            }
            # The caterer's own member, who reads nothing of the guest list, still reads
            # what it cooks for on the day (no one's name).
            chef = bearer(
                MINT.codec.mint(sub="chef", role="vendor", wedding="w1", guest_fields="nothing")
            )
            for headers in (couple(), planner(), chef):
                day = await ok(await client.get(f"{W}/day", headers=headers))
                shown = {v["vendor"]: v.get("catering") for v in day["vendors"]}
                assert shown["food"] == expected, (headers, shown)
                assert shown["flo"] is None
                assert "Ann Lee" not in json.dumps(day)
            # Another vendor is not told the caterer's counts.
            day = await ok(await client.get(f"{W}/day", headers=florist()))
            assert all(v.get("catering") is None for v in day["vendors"])
