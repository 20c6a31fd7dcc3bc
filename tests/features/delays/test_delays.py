"""Delays that ripple, with the fake clock: a delay's proposal moves exactly the dependent
items; applied, it is one change credited to the person, one ``timeline.delayed`` event
(the per-item ``timeline.item_rescheduled`` events still appear) and notifications to
exactly the vendors whose items moved; an emergency naming items reaches their vendors.
The app under real uvicorn, a real SQLite store, a real SMTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from pycrdt import Doc, Map

from crdt_server import clock
from crdt_server.app import FEATURES, create_app
from crdt_server.documents.vendors import VENDORS_ROOT
from crdt_server.features import fragments_of
from crdt_server.settings import Settings
from crdt_server.testing.tokens import TokenMinter
from crdt_server.testing.waits import until
from tests.features.conversations import Inbox, W, ok
from tests.features.test_feature_list import serving

pytestmark = [pytest.mark.timeout(120)]

SECRET = "day-delays-test-secret-at-least-32-bytes!"
MINT = TokenMinter(SECRET)
START = datetime(2031, 6, 13, 8, 0, tzinfo=UTC)
DAY = "2031-06-13"


def member(role: str, sub: str) -> dict[str, str]:
    return MINT.headers(role, sub, "w1", ttl=3600, name=sub.title(), email=f"{sub}@example.com")


PLANNER = ("planner", "pat")
COUPLE = ("couple", "cam")
FLO = ("vendor", "flo")  # the florist's member account
LUX = ("vendor", "lux")  # the photographer's
DJ = ("vendor", "dj")  # the band's
FRIEND = ("friend", "fred")

VENDORS = {
    "bloom": {"name": "Bloom & Co", "category": "florist", "members": ["flo"]},
    "lux": {"name": "Studio Lux", "category": "photographer", "members": ["lux"]},
    "band": {"name": "The Band", "category": "music", "members": ["dj"]},
}


def item(item_id: str, start: str, end: str, **more: Any) -> dict[str, Any]:
    return {
        "op": "add_timeline_item",
        "item_id": item_id,
        "title": item_id.replace("_", " ").title(),
        "start": f"{DAY}T{start}:00+01:00",
        "end": f"{DAY}T{end}:00+01:00",
    } | more


ITEMS = [
    item("flowers", "09:00", "10:00", vendor="Bloom & Co", vendor_id="bloom"),
    item("bouquets", "10:00", "10:30", vendor_id="bloom"),  # same vendor, back to back
    item("table_flowers", "16:00", "17:00", vendor_id="bloom"),  # same vendor, hours later
    item("prep_photos", "10:30", "11:30", vendor_id="lux", follows="flowers"),
    item("ceremony", "14:00", "15:00", vendor_id="lux", fixed=True),
    item("first_dance", "15:00", "15:30", vendor_id="band", follows="ceremony"),
    item("lunch", "12:00", "13:00"),  # depends on nothing
]


@asynccontextmanager
async def server(
    data: Path, controller: Controller, **more: str
) -> AsyncIterator[httpx.AsyncClient]:
    env = more | {
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        "CRDT_SERVER_DATA_DIR": str(data),
        "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
        "CRDT_SERVER_EMAIL_FROM": "plans@example.com",
        "CRDT_SERVER_PUBLIC_URL": "https://plan.example.com",
    }
    settings = Settings.from_env(env, fragments=fragments_of(FEATURES))
    async with serving(create_app(settings)) as http:
        yield http


async def put_vendors(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """Write the vendor directory as a client does (a Yjs update of the timeline)."""
    binary = {**headers, "Accept": "application/octet-stream"}
    state = await http.get(f"{W}/docs/timeline", headers=binary)
    assert state.status_code == 200, state.text
    doc: Doc[Any] = Doc()
    doc.apply_update(state.content)
    before = doc.get_state()
    vendors = doc.get(VENDORS_ROOT, type=Map)
    with doc.transaction():
        for vendor_id, entry in VENDORS.items():
            vendors[vendor_id] = Map(entry)
    update = doc.get_update(before)
    sent = await http.post(
        f"{W}/docs/timeline/update",
        content=update,
        headers={**headers, "Content-Type": "application/octet-stream"},
    )
    assert sent.status_code in (200, 204), sent.text


async def setup(http: httpx.AsyncClient) -> None:
    for role, sub in (PLANNER, COUPLE, FLO, LUX, DJ, FRIEND):
        await ok(await http.get(f"{W}/members", headers=member(role, sub)))
    planner = member(*PLANNER)
    profile = {"op": "set_profile", "date": DAY, "time_zone": "Europe/Lisbon"}
    await ok(await http.post(f"{W}/docs/timeline/ops", json=profile, headers=planner))
    for op in ITEMS:
        await ok(await http.post(f"{W}/docs/timeline/ops", json=op, headers=planner))
    await put_vendors(http, planner)


async def reasons(http: httpx.AsyncClient, who: tuple[str, str]) -> list[str]:
    body = await ok(await http.get(f"{W}/notifications", headers=member(*who)))
    return [n["reason"] for n in body["notifications"]]


async def mailed(inbox: Inbox, addresses: set[str]) -> bool:
    return addresses <= {m["To"] for m in inbox.messages}


def starts(moves: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    return {m["item"]: (m["new_start"][11:16], m["new_end"][11:16]) for m in moves}


@pytest.mark.asyncio
async def test_a_delay_moves_exactly_the_dependent_items_and_tells_exactly_their_vendors(
    tmp_path: Path, smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    with clock.use(clock.FakeClock(START)):
        async with server(tmp_path / "data", controller) as http:
            await setup(http)
            delays = f"{W}/day/delays"
            ask = {"item": "flowers", "minutes": 30}
            # A proposal moves nothing; a friend (a timeline reader) may ask for one.
            proposal = await ok(await http.post(delays, json=ask, headers=member(*FRIEND)))
            assert proposal["applied"] is False and proposal["event"] is None
            assert starts(proposal["moves"]) == {
                "flowers": ("09:30", "10:30"),
                "bouquets": ("10:30", "11:00"),
                "prep_photos": ("11:00", "12:00"),
            }
            assert proposal["fixed"] == ["ceremony"]
            told = {v["vendor"]: v["told"] for v in proposal["vendors"]}
            assert told == {"Bloom & Co": 1, "Studio Lux": 1}
            timeline = await ok(await http.get(f"{W}/docs/timeline", headers=member(*PLANNER)))
            assert timeline["items"]["flowers"]["start"].startswith(f"{DAY}T09:00")

            history_url = f"{W}/docs/timeline/history?limit=500"
            before = await ok(await http.get(history_url, headers=member(*PLANNER)))

            # Applying needs a timeline writer.
            refused = await http.post(delays, json={**ask, "apply": True}, headers=member(*FLO))
            assert refused.status_code == 403, refused.text
            applied = await ok(
                await http.post(delays, json={**ask, "apply": True}, headers=member(*PLANNER))
            )
            assert applied["applied"] is True and applied["event"].startswith("w1:")
            assert starts(applied["moves"]) == starts(proposal["moves"])
            timeline = await ok(await http.get(f"{W}/docs/timeline", headers=member(*PLANNER)))
            now = {k: v["start"][11:16] for k, v in timeline["items"].items()}
            assert now == {
                "flowers": "09:30",
                "bouquets": "10:30",
                "table_flowers": "16:00",
                "prep_photos": "11:00",
                "ceremony": "14:00",
                "first_dance": "15:00",
                "lunch": "12:00",
            }

            # One change credited to the planner.
            after = await ok(await http.get(history_url, headers=member(*PLANNER)))
            added = [e for e in after["history"] if e not in before["history"]]
            assert [e["sub"] for e in added] == ["pat"]

            # One timeline.delayed event listing the moves; the per-item events still appear.
            events = await ok(await http.get(f"{W}/events?limit=500", headers=member(*PLANNER)))
            types = [e["type"] for e in events["events"]]
            assert types.count("timeline.delayed") == 1
            [delayed] = [e for e in events["events"] if e["type"] == "timeline.delayed"]
            assert delayed["actor"]["sub"] == "pat"
            assert [m["item"] for m in delayed["data"]["moves"]] == [
                "flowers",
                "bouquets",
                "prep_photos",
            ]
            rescheduled = [
                e["data"].get("item_id") or e["data"].get("id")
                for e in events["events"]
                if e["type"] == "timeline.item_rescheduled"
            ]
            assert len(rescheduled) == 3

            # Exactly the vendors whose items moved: the florist and the photographer.
            for who in (FLO, LUX):
                assert (await reasons(http, who)).count("timeline_delayed") == 1
            assert "timeline_delayed" not in await reasons(http, DJ)
            assert "timeline_delayed" not in await reasons(http, PLANNER)  # who reported it
            await until(lambda: mailed(inbox, {"flo@example.com", "lux@example.com"}), deadline=10)
            to = sorted(m["To"] for m in inbox.messages)
            assert to == ["flo@example.com", "lux@example.com"]
            said = next(m for m in inbox.messages if m["To"] == "flo@example.com")
            body = said.get_body().get_content()  # type: ignore[union-attr]
            assert "30 minutes late" in body and "Bouquets" in body
            assert "Prep Photos" not in body  # the photographer's item, not the florist's


@pytest.mark.asyncio
async def test_bad_delays_name_their_field_and_change_nothing(
    tmp_path: Path, smtp: tuple[Controller, Inbox]
) -> None:
    controller, _ = smtp
    with clock.use(clock.FakeClock(START)):
        async with server(tmp_path / "data", controller) as http:
            await setup(http)
            delays, planner = f"{W}/day/delays", member(*PLANNER)
            cases = [
                ({"item": "ceremony", "minutes": 10, "apply": True}, 422, "item"),
                ({"item": "nope", "minutes": 10}, 422, "item"),
                ({"item": "flowers", "minutes": 0}, 422, "minutes"),
                ({"item": "flowers", "minutes": 100_000}, 422, "minutes"),
                ({"item": "flowers"}, 422, "minutes"),
                ({"item": "flowers", "minutes": 5, "moves": []}, 422, "moves"),
                (
                    {"item": "flowers", "minutes": 5, "apply": True,
                     "moves": [{"item": "ceremony", "start": f"{DAY}T15:00:00Z",
                                "end": f"{DAY}T16:00:00Z"}]},
                    422,
                    "moves[0].item",
                ),
            ]  # fmt: skip
            for body, status, field in cases:
                answer = await http.post(delays, json=body, headers=planner)
                assert answer.status_code == status, (body, answer.text)
                fields = [e["field"] for e in answer.json().get("errors", [])]
                assert field in fields, (body, answer.text)
            events = await ok(await http.get(f"{W}/events?limit=500", headers=planner))
            assert "timeline.delayed" not in [e["type"] for e in events["events"]]


@pytest.mark.asyncio
async def test_an_edited_list_moves_only_what_it_names(
    tmp_path: Path, smtp: tuple[Controller, Inbox]
) -> None:
    controller, _ = smtp
    with clock.use(clock.FakeClock(START)):
        async with server(tmp_path / "data", controller) as http:
            await setup(http)
            edited = {
                "item": "flowers",
                "minutes": 30,
                "apply": True,
                "moves": [
                    {
                        "item": "flowers",
                        "start": f"{DAY}T09:20:00+01:00",
                        "end": f"{DAY}T10:20:00+01:00",
                    }
                ],
            }
            done = await ok(
                await http.post(f"{W}/day/delays", json=edited, headers=member(*PLANNER))
            )
            assert [m["item"] for m in done["moves"]] == ["flowers"]
            assert [v["vendor"] for v in done["vendors"]] == ["Bloom & Co"]
            assert await reasons(http, LUX) == []


@pytest.mark.asyncio
async def test_an_emergency_naming_items_reaches_their_vendors(
    tmp_path: Path, smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    with clock.use(clock.FakeClock(START)):
        async with server(tmp_path / "data", controller) as http:
            await setup(http)
            emergency = {
                "type": "day.emergency",
                "data": {"what": "the van broke down"},
                "priority": "emergency",
                "items": ["bouquets", "first_dance"],
            }
            await ok(await http.post(f"{W}/events", json=emergency, headers=member(*COUPLE)), 201)
            # The florist and the band (their items), not the photographer, who is told as
            # every member is (the emergencies feature), not as the vendor of an item.
            for who in (FLO, DJ):
                assert (await reasons(http, who)).count("emergency_vendor") == 1
            assert await reasons(http, LUX) == ["emergency"]
            # The planner as ever (the emergencies feature).
            assert "emergency" in await reasons(http, PLANNER)
            await until(lambda: mailed(inbox, {"flo@example.com", "dj@example.com"}), deadline=10)


@pytest.mark.asyncio
async def test_a_vendor_without_a_member_account_is_told_at_its_contacts_email(
    tmp_path: Path, smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    with clock.use(clock.FakeClock(START)):
        async with server(tmp_path / "data", controller) as http:
            await setup(http)
            planner = member(*PLANNER)
            # The caterer: in the directory, with no member account, and a contact.
            binary = {**planner, "Accept": "application/octet-stream"}
            state = await http.get(f"{W}/docs/timeline", headers=binary)
            doc: Doc[Any] = Doc()
            doc.apply_update(state.content)
            before = doc.get_state()
            with doc.transaction():
                doc.get(VENDORS_ROOT, type=Map)["cater"] = Map({"name": "Harbour Catering"})
            await http.post(
                f"{W}/docs/timeline/update",
                content=doc.get_update(before),
                headers={**planner, "Content-Type": "application/octet-stream"},
            )
            lunch = {"op": "update_timeline_item", "item_id": "lunch", "vendor_id": "cater"}
            await ok(await http.post(f"{W}/docs/timeline/ops", json=lunch, headers=planner))
            contact = {"email": "kitchen@harbour.example"}
            await ok(
                await http.put(f"{W}/day/vendors/cater/contact", json=contact, headers=planner)
            )
            ask = {"item": "lunch", "minutes": 20, "apply": True}
            done = await ok(await http.post(f"{W}/day/delays", json=ask, headers=planner))
            assert done["vendors"] == [{"vendor": "Harbour Catering", "told": 1}]
            await until(lambda: mailed(inbox, {"kitchen@harbour.example"}), deadline=10)
            letter = next(m for m in inbox.messages if m["To"] == "kitchen@harbour.example")
            body = letter.get_body().get_content()  # type: ignore[union-attr]
            assert "20 minutes late" in body and "Lunch: 12:00 -> 12:20" in body
            # An emergency naming its item reaches the same address.
            emergency = {
                "type": "day.emergency",
                "data": {"what": "the oven failed"},
                "priority": "emergency",
                "items": ["lunch"],
            }
            await ok(await http.post(f"{W}/events", json=emergency, headers=member(*COUPLE)), 201)

            async def two_letters() -> bool:
                return [m["To"] for m in inbox.messages].count("kitchen@harbour.example") == 2

            await until(two_letters, deadline=10)
