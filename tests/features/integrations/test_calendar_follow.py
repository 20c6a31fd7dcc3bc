"""The calendar feed's background step (in-process server, SQLite) reads what a change
touched, not the wedding: editing one item of a long timeline, or one payment, reads that
entry and its row alone and moves its SEQUENCE alone; a change that moves many entries (a
category renamed under its payments, a new wedding date under tasks due relative to it)
reads that kind whole."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from crdt_server.app import create_app
from crdt_server.features.integrations import FEATURE
from crdt_server.features.integrations import extension as integrations
from crdt_server.features.integrations.extension import IntegrationService
from crdt_server.settings import Settings
from tests.features.recorded import Recorded
from tests.features.test_feature_list import MINT, SECRET, serving

pytestmark = pytest.mark.timeout(90)

W = "/api/weddings/w1"
ITEMS = 30

RECORDED = Recorded(FEATURE, IntegrationService)


@asynccontextmanager
async def running(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, IntegrationService]]:
    app = create_app(Settings(data_dir=tmp_path, auth_secret=SECRET), features=RECORDED.features)
    async with serving(app) as client:
        yield client, RECORDED.last


async def op(client: httpx.AsyncClient, doc: str, body: dict[str, Any]) -> None:
    headers = MINT.headers(role="couple", sub="cam")
    answer = await client.post(f"{W}/docs/{doc}/ops", json=body, headers=headers)
    assert answer.status_code == 200, answer.text


def sequences(tmp_path: Path) -> dict[str, int]:
    with sqlite3.connect(tmp_path / "crdt.sqlite3") as db:
        rows = db.execute("SELECT item, sequence FROM calendar_items WHERE wedding = 'w1'")
        return {str(item): int(sequence) for item, sequence in rows}


@pytest.mark.asyncio
async def test_the_background_step_reads_what_changed_not_the_wedding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(tmp_path) as (client, service):
        await op(client, "timeline", {"op": "set_profile", "date": "2027-06-12"})
        for n in range(ITEMS):
            start = f"2027-06-12T{8 + n // 4:02d}:{n % 4 * 15:02d}:00Z"
            end = f"2027-06-12T{8 + n // 4:02d}:{n % 4 * 15 + 10:02d}:00Z"
            item = {"item_id": f"i{n}", "title": f"Item {n}", "start": start, "end": end}
            await op(client, "timeline", {"op": "add_timeline_item"} | item)
        await op(client, "budget", {"op": "set_category", "category_id": "venue", "name": "Venue"})
        for payment in ("balance", "rest"):
            paid = {"payment_id": payment, "amount": 1000, "category_id": "venue"}
            scheduled = paid | {"status": "scheduled", "due": "2027-05-01"}
            await op(client, "budget", {"op": "record_payment"} | scheduled)
        for task, offset in (("venue", "-6M"), ("cake", "-1M")):
            body = {"op": "add_task", "task_id": task, "title": task, "due_offset": offset}
            await op(client, "tasks", body)
        await service.settled()
        first = sequences(tmp_path)
        assert len(first) == ITEMS + 4 and set(first.values()) == {0}

        whole: list[str] = []

        def counted(name: str, read: Callable[..., Any]) -> Callable[..., Any]:
            def reading(*args: Any, **kwargs: Any) -> Any:
                whole.append(name)
                return read(*args, **kwargs)

            return reading

        for name in ("read_timeline", "read_budget", "read_tasks"):
            monkeypatch.setattr(integrations, name, counted(name, getattr(integrations, name)))

        def moved(since: dict[str, int]) -> set[str]:
            now = sequences(tmp_path)
            return {key for key, sequence in now.items() if sequence != since.get(key)}

        # One item's title, one payment's amount, one task's title: those entries alone.
        await op(client, "timeline", {"op": "update_timeline_item", "item_id": "i7", "title": "X"})
        await op(client, "budget", {"op": "update_payment", "payment_id": "rest", "amount": 9})
        await op(client, "tasks", {"op": "update_task", "task_id": "cake", "title": "Cake!"})
        await service.settled()
        assert whole == []
        assert moved(first) == {"i7", "payment:rest", "task:cake"}
        second = sequences(tmp_path)

        # A change the step does not show (a vendor's entry) reconciles nothing.
        vendor = {"op": "add_vendor", "vendor_id": "flo", "name": "Bloom", "category": "florist"}
        await op(client, "timeline", vendor)
        await service.settled()
        assert whole == [] and moved(second) == set()

        # The category's name is shown with each of its payments: the budget is read whole.
        await op(client, "budget", {"op": "set_category", "category_id": "venue", "name": "Villa"})
        await service.settled()
        assert whole == ["read_budget"]
        assert moved(second) == {"payment:balance", "payment:rest"}
        third = sequences(tmp_path)

        # A new wedding date moves every task due relative to it; the items stay as they were.
        await op(client, "timeline", {"op": "set_profile", "date": "2027-07-03"})
        await service.settled()
        assert whole == ["read_budget", "read_tasks"]
        assert moved(third) == {"task:venue", "task:cake"}
