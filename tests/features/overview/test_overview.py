"""The overview (``GET /api/weddings/{id}/overview``), on SQLite and PostgreSQL: one read of
the figures the app draws, each section cut to what the caller's role may read, and every
figure the same as the documents' own JSON views say."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.features.conversations import CODEC, ENV
from tests.server import served

pytestmark = [pytest.mark.timeout(120)]

W = "/api/weddings/w1"
ZONE = "Europe/Lisbon"
DAY = "2031-06-13"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "postgres":
        return {"CRDT_SERVER_DATABASE_URL": request.getfixturevalue("scratch_postgres")}
    return {}


def auth(role: str, sub: str, wedding: str = "w1") -> dict[str, str]:
    # Minted at import (module constants): valid for the longest a loaded full tier runs.
    minted = CODEC.mint(sub=sub, role=role, wedding=wedding, ttl=4 * 3600, name=sub.title())
    return {"Authorization": f"Bearer {minted}"}


COUPLE = auth("couple", "cam")
PLANNER = auth("planner", "ada")
FLORIST = auth("vendor", "flo")
BAND = auth("vendor", "bo")
FAMILY = auth("family", "fay")
FRIEND = auth("friend", "fred")


async def op(http: httpx.AsyncClient, doc: str, body: dict[str, Any], base: str = W) -> None:
    answer = await http.post(f"{base}/docs/{doc}/ops", json=body, headers=PLANNER)
    assert answer.status_code == 200, answer.text


async def overview(http: httpx.AsyncClient, who: dict[str, str], base: str = W) -> Any:
    answer = await http.get(f"{base}/overview", headers=who)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def plan(http: httpx.AsyncClient) -> None:
    """A wedding with guests in two households and on two sides, a menu, a budget, tasks
    and a day with a directory florist and a free-text band."""
    await op(http, "timeline", {"op": "set_profile", "date": DAY, "time_zone": ZONE,
                                "names": ["Cam", "Ari"]})  # fmt: skip
    await op(http, "guests", {"op": "set_menu", "choices": ["Fish", "Risotto"]})
    await op(http, "guests", {"op": "add_household", "household_id": "lees", "name": "The Lees"})
    for guest in (
        {"guest_id": "ann", "name": "Ann Lee", "side": "partner_a", "household_id": "lees",
         "plus_one": True},
        {"guest_id": "bob", "name": "Bob Lee", "side": "partner_a", "household_id": "lees"},
        {"guest_id": "cy", "name": "Cy Roe", "side": "partner_b", "household": "Roe family"},
        {"guest_id": "dee", "name": "Dee Poe"},
    ):  # fmt: skip
        await op(http, "guests", {"op": "add_guest"} | guest)
    await op(http, "guests", {"op": "set_rsvp", "guest_id": "ann", "rsvp": "accepted"})
    await op(http, "guests", {"op": "update_guest", "guest_id": "ann", "meal": "fish"})
    await op(http, "guests", {"op": "set_rsvp", "guest_id": "cy", "rsvp": "declined"})
    await op(http, "guests", {"op": "set_rsvp", "guest_id": "cy", "rsvp": "accepted"})
    await op(http, "budget", {"op": "set_currency", "currency": "EUR"})
    await op(http, "budget", {"op": "set_budget_total", "total": 2_000_000})
    await op(http, "budget", {"op": "set_category", "category_id": "venue", "name": "Venue",
                              "planned": 900_000})  # fmt: skip
    await op(http, "budget", {"op": "set_category", "category_id": "flowers", "name": "Flowers",
                              "planned": 150_000})  # fmt: skip
    for payment in (
        {"payment_id": "p1", "amount": 300_000, "category_id": "venue", "date": "2031-01-15"},
        {"payment_id": "p2", "amount": 600_000, "category_id": "venue", "status": "scheduled",
         "due": "2031-05-01"},
        {"payment_id": "p3", "amount": 50_000, "category_id": "flowers", "date": "2031-01-20"},
    ):  # fmt: skip
        await op(http, "budget", {"op": "record_payment"} | payment)
    for task in (
        {"task_id": "venue", "title": "Book the venue", "due": "2020-01-10"},
        {"task_id": "cake", "title": "Taste cakes", "due": "2020-01-20"},
        {"task_id": "music", "title": "Pick the songs", "due_offset": "-1M"},
        {"task_id": "vows", "title": "Write vows"},
    ):
        await op(http, "tasks", {"op": "add_task"} | task)
    await op(http, "tasks", {"op": "complete_task", "task_id": "venue"})
    await op(http, "timeline", {"op": "add_vendor", "vendor_id": "flo", "name": "Bloom & Co",
                                "category": "florist", "members": ["flo"],
                                "call_time": f"{DAY}T07:00:00Z"})  # fmt: skip
    for item_id, title, start, end, vendor in (
        ("i1", "Flowers", f"{DAY}T07:30:00Z", f"{DAY}T08:30:00Z", {"vendor_id": "flo"}),
        ("i2", "Bouquets", f"{DAY}T09:00:00Z", f"{DAY}T09:30:00Z", {"vendor_id": "flo"}),
        ("i3", "First dance", f"{DAY}T20:00:00Z", f"{DAY}T21:00:00Z", {"vendor": "The Band"}),
    ):
        body = {"op": "add_timeline_item", "item_id": item_id, "title": title, "start": start,
                "end": end} | vendor  # fmt: skip
        await op(http, "timeline", body)
    contact = {"name": "Flo", "email": "flo@example.com", "phone": "+351 910 000 000"}
    put = await http.put(f"{W}/day/vendors/flo/contact", json=contact, headers=PLANNER)
    assert put.status_code == 200, put.text
    link = await http.post(f"{W}/day/run-sheets", json={"vendor": "flo"}, headers=PLANNER)
    assert link.status_code == 201, link.text


@pytest.mark.asyncio
async def test_the_overview_matches_the_documents_and_is_cut_to_each_role(
    backend: dict[str, str], tmp_path: Path
) -> None:
    async with served(tmp_path / "data", {**ENV, **backend}) as (_, http):
        await plan(http)
        seen = await overview(http, COUPLE)
        assert set(seen) == {"today", "wedding", "guests", "budget", "tasks", "vendors"}
        assert seen["wedding"] == {"names": ["Cam", "Ari"], "date": DAY, "time_zone": ZONE}
        today = datetime.now(ZoneInfo(ZONE)).date().isoformat()
        assert seen["today"] == today

        # The guests: the same totals as the guest list's JSON view.
        view = (await http.get(f"{W}/docs/guests", headers=COUPLE)).json()["totals"]
        guests = seen["guests"]
        assert guests["people"] == view["people"] == 5  # Ann's unnamed plus-one counts
        assert guests["rsvp"] == view["rsvp"] == {"pending": 2, "accepted": 3, "declined": 0}
        assert guests["meals"] == view["meals"] == {"Fish": 1}
        assert guests["no_meal"] == view["no_meal"]
        assert guests["menu"] == ["Fish", "Risotto"]
        assert guests["by_side"] == [
            {"side": "partner_a", "pending": 1, "accepted": 2, "declined": 0},
            {"side": "partner_b", "pending": 0, "accepted": 1, "declined": 0},
            {"side": None, "pending": 1, "accepted": 0, "declined": 0},
        ]
        lees = [h for h in guests["by_household"] if h["id"] == "lees"]
        assert lees == [{"id": "lees", "name": "The Lees", "people": 3, "pending": 1,
                         "accepted": 2, "declined": 0}]  # fmt: skip
        assert [h["name"] for h in guests["by_household"]] == ["The Lees", "Roe family"]
        assert guests["without_household"] == 1
        # Every answer recorded, by day: Ann accepted, Cy declined then accepted; two of
        # the guests had answered by the day's end.
        assert guests["answers_by_day"] == [
            {"day": today, "pending": 0, "accepted": 2, "declined": 1, "answered": 2}
        ]

        # The budget: sums of the payments as the budget holds them.
        budget = seen["budget"]
        assert budget["currency"] == "EUR" and budget["total"] == 2_000_000
        assert (budget["planned"], budget["paid"], budget["scheduled"]) == (
            1_050_000,
            350_000,
            600_000,
        )
        assert budget["by_category"] == [
            {"id": "flowers", "name": "Flowers", "planned": 150_000, "paid": 50_000,
             "scheduled": 0},
            {"id": "venue", "name": "Venue", "planned": 900_000, "paid": 300_000,
             "scheduled": 600_000},
        ]  # fmt: skip
        assert budget["by_month"] == [
            {"month": "2031-01", "paid": 350_000, "scheduled": 0},
            {"month": "2031-05", "paid": 0, "scheduled": 600_000},
        ]

        # The tasks: one done, two overdue (their days are past), one a month before the
        # wedding, one with no day.
        tasks = seen["tasks"]
        assert {k: tasks[k] for k in ("total", "done", "open", "overdue")} == {
            "total": 4, "done": 1, "open": 3, "overdue": 1,
        }  # fmt: skip
        assert tasks["by_month"] == [
            {"month": "2020-01", "due": 2, "done": 1},
            {"month": "2031-05", "due": 1, "done": 0},
            {"month": "undated", "due": 1, "done": 0},
        ]

        # The day's vendors, by arrival: the florist is ready (a contact, a call time, an
        # account and a run sheet link); the band has only its item's start.
        vendors = seen["vendors"]
        assert vendors["day"] == DAY
        flo, band = vendors["vendors"]
        assert flo == {
            "id": "flo", "name": "Bloom & Co", "category": "florist",
            "arrival": f"{DAY}T07:00:00Z", "items": 2, "has_contact": True, "run_sheet": True,
            "members": 1, "ready": True,
            "contact": {"name": "Flo", "email": "flo@example.com", "phone": "+351 910 000 000"},
        }  # fmt: skip
        assert band == {
            "id": "name:the band", "name": "The Band", "category": None,
            "arrival": f"{DAY}T20:00:00Z", "items": 1, "has_contact": False,
            "run_sheet": False, "members": 0, "ready": False,
        }  # fmt: skip
        assert await overview(http, PLANNER) == seen

        # A vendor reads the guest list and the timeline, not the money or the tasks; its
        # own contact, not another's.
        florist = await overview(http, FLORIST)
        assert set(florist) == {"today", "wedding", "guests", "vendors"}
        assert florist["guests"] == guests
        assert florist["vendors"]["vendors"][0]["contact"]["email"] == "flo@example.com"
        band_member = await overview(http, BAND)
        assert "contact" not in band_member["vendors"]["vendors"][0]
        assert band_member["vendors"]["vendors"][0]["has_contact"] is True
        # Family: the guests and the tasks, no budget; a friend: the day only.
        assert set(await overview(http, FAMILY)) == {"today", "wedding", "guests", "tasks",
                                                     "vendors"}  # fmt: skip
        assert set(await overview(http, FRIEND)) == {"today", "wedding", "vendors"}

        # Not a member of another wedding; no token.
        other = await http.get("/api/weddings/w2/overview", headers=COUPLE)
        assert other.status_code in (401, 403), other.text
        anonymous = await http.get(f"{W}/overview")
        assert anonymous.status_code == 401, anonymous.text


@pytest.mark.asyncio
async def test_a_wedding_without_guests_has_empty_figures(
    backend: dict[str, str], tmp_path: Path
) -> None:
    async with served(tmp_path / "data", {**ENV, **backend}) as (_, http):
        empty = auth("couple", "cam", "w9")
        seen = await overview(http, empty, "/api/weddings/w9")
        assert seen["guests"] == {
            "people": 0, "guests": 0, "rsvp": {"pending": 0, "accepted": 0, "declined": 0},
            "by_side": [], "by_household": [], "without_household": 0, "meals": {},
            "no_meal": 0, "dietary": {}, "menu": [], "answers_by_day": [],
        }  # fmt: skip
        assert seen["budget"] == {"currency": None, "total": None, "planned": 0, "paid": 0,
                                  "scheduled": 0, "by_category": [], "by_month": []}  # fmt: skip
        assert seen["tasks"]["total"] == 0 and seen["tasks"]["by_month"] == []
        assert seen["vendors"] == {"day": None, "vendors": []}
        assert seen["wedding"] == {"names": None, "date": None, "time_zone": None}
