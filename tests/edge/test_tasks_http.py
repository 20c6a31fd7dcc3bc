"""The tasks document over HTTP, on a real server (uvicorn on an ephemeral port, a SQLite
file): its operations and their refusals, the owner checked against the member directory,
due dates that follow the wedding date, ``task.completed`` events, the export and erasure,
and an operator's matrix that does not name ``tasks`` (the couple still writes tasks; one
warning at start)."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from crdt_server.app import create_app
from crdt_server.documents.tasks import CHECKLIST
from crdt_server.settings import Settings
from tests.features.test_feature_list import MINT, SECRET, serving

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

ADMIN_KEY = "tasks-admin-key-at-least-some-bytes"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
W = "w1"
OPS = f"/api/weddings/{W}/docs/tasks/ops"


def headers(role: str, sub: str | None = None) -> dict[str, str]:
    return MINT.headers(role=role, sub=sub or f"{role}-1", wedding=W)


async def op(client: httpx.AsyncClient, body: dict[str, Any], role: str = "couple") -> Any:
    return await client.post(OPS, json=body, headers=headers(role))


async def tasks_view(client: httpx.AsyncClient, role: str = "couple") -> dict[str, Any]:
    answer = await client.get(f"/api/weddings/{W}/docs/tasks", headers=headers(role))
    assert answer.status_code == 200, answer.text
    view: dict[str, Any] = answer.json()
    return view


async def test_tasks_operations_refusals_due_dates_events_export_and_erasure(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, auth_secret=SECRET, admin_api_key=ADMIN_KEY)
    async with serving(create_app(settings)) as client:
        # The default checklist, twice: the second adds nothing.
        first = await op(client, {"op": "seed_checklist"})
        assert first.status_code == 200, first.text
        assert first.json()["result"]["added"] == [task_id for task_id, _, _ in CHECKLIST]
        again = (await op(client, {"op": "seed_checklist"})).json()["result"]
        assert again == {"op": "seed_checklist", "id": None, "changed": False, "added": []}
        view = await tasks_view(client)
        assert len(view["tasks"]) == len(CHECKLIST)
        # No wedding date yet: tasks relative to it have no day.
        assert view["due_dates"]["t-venue"] is None
        profile = {"op": "set_profile", "date": "2027-06-12"}
        timeline = f"/api/weddings/{W}/docs/timeline/ops"
        moved = await client.post(timeline, json=profile, headers=headers("couple"))
        assert moved.status_code == 200, moved.text
        assert (await tasks_view(client))["due_dates"]["t-venue"] == "2026-08-12"
        # The wedding moves: every relative task moves with it, nothing is rewritten.
        later = {"op": "set_profile", "date": "2027-09-04"}
        assert (await client.post(timeline, json=later, headers=headers("couple"))).is_success
        view = await tasks_view(client)
        assert view["due_dates"]["t-venue"] == "2026-11-04"
        assert view["tasks"]["t-venue"]["due_offset"] == "-10M"

        # A task of the couple's own, with a day; the owner must be a member reading tasks.
        for role in ("couple", "planner", "vendor"):  # each one calls once: in the directory
            await client.get(f"/api/weddings/{W}/access", headers=headers(role))
        band = {"op": "add_task", "task_id": "band", "title": "Book the band", "due": "2027-01-10"}
        nobody = await op(client, {**band, "owner": "stranger"})
        assert nobody.status_code == 422 and nobody.json()["errors"][0]["field"] == "owner"
        vendor = await op(client, {**band, "owner": "vendor-1"})
        assert vendor.status_code == 422 and "may not read tasks" in vendor.json()["detail"]
        made = await op(client, {**band, "owner": "planner-1"})
        assert made.status_code == 200, made.text
        assert (await tasks_view(client))["due_dates"]["band"] == "2027-01-10"
        # Clear refusals, nothing changed.
        both = await op(
            client,
            {"op": "update_task", "task_id": "band", "due": "2027-01-01"} | {"due_offset": "-1M"},
        )
        assert both.status_code == 400 and both.json()["errors"][0]["field"] == "due_offset"
        bad = await op(client, {"op": "update_task", "task_id": "band", "due_offset": "6 months"})
        assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "due_offset"
        missing = await op(client, {"op": "complete_task", "task_id": "nope"})
        assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "task_id"
        twice = await op(client, {"op": "add_task", "task_id": "band", "title": "Again"})
        assert twice.status_code == 422
        # An offset replaces the day (one due date at a time).
        relative = await op(client, {"op": "update_task", "task_id": "band", "due_offset": "-6M"})
        assert relative.status_code == 200
        band_now = (await tasks_view(client))["tasks"]["band"]
        assert band_now["due"] is None and band_now["due_offset"] == "-6M"

        # Ticked: a task.completed event, credited to who ticked it; reopened likewise.
        done = await op(client, {"op": "complete_task", "task_id": "band"}, role="planner")
        assert done.json()["result"]["changed"] is True
        same = await op(client, {"op": "complete_task", "task_id": "band"}, role="planner")
        assert same.json()["result"]["changed"] is False
        assert (await op(client, {"op": "reopen_task", "task_id": "t-rings"})).is_success
        events = await client.get(
            f"/api/weddings/{W}/events?types=task.*&limit=500", headers=headers("couple")
        )
        assert events.status_code == 200, events.text
        kinds = [
            (e["type"], e["data"].get("id"), e["actor"]["sub"]) for e in events.json()["events"]
        ]
        assert ("task.completed", "band", "planner-1") in kinds
        assert all(e["doc"] == "tasks" for e in events.json()["events"])
        # Family reads the checklist and may not change it; vendors and friends see none.
        assert (await tasks_view(client, "family"))["tasks"]["band"]["done"] is True
        refused = await op(client, {"op": "reopen_task", "task_id": "band"}, role="family")
        assert refused.status_code == 403
        for role in ("vendor", "friend"):
            hidden = await client.get(f"/api/weddings/{W}/docs/tasks", headers=headers(role))
            assert hidden.status_code == 403
            none = await client.get(f"/api/weddings/{W}/events?types=task.*", headers=headers(role))
            assert none.status_code in (200, 403)
            if none.status_code == 200:
                assert none.json()["events"] == []

        # The export carries the tasks document.
        exported = await client.get(f"/api/weddings/{W}/export", headers=ADMIN)
        assert exported.status_code == 200, exported.text
        documents = exported.json()["documents"]
        assert "tasks" in documents, sorted(documents)
        # Erasure removes it with the rest of the wedding.
        erased = await client.delete(f"/api/weddings/{W}", headers=ADMIN)
        assert erased.status_code in (200, 202), erased.text
        assert erased.json()["documents_deleted"] == 2  # the tasks and the timeline
        gone = await client.get(f"/api/weddings/{W}/docs/tasks", headers=headers("couple"))
        assert gone.status_code == 410
    with sqlite3.connect(tmp_path / "crdt.sqlite3") as conn:
        left = conn.execute("SELECT count(*) FROM updates WHERE doc LIKE ?", (f"{W}/%",)).fetchone()
    assert left == (0,)


async def test_a_matrix_without_tasks_still_lets_the_couple_write_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An operator's matrix written before tasks existed.
    matrix = {
        "couple": {"timeline": "write", "budget": "write", "guests": "write", "seating": "write"},
        "planner": {"timeline": "write", "guests": "write", "seating": "write"},
        "family": {"timeline": "read", "guests": "read"},
        "vendor": {"timeline": "read", "tasks": "read"},
        "usher": {"guests": "read"},
    }
    settings = Settings(data_dir=tmp_path, auth_secret=SECRET, permissions=json.dumps(matrix))
    caplog.set_level(logging.WARNING, logger="crdt_server.app")
    async with serving(create_app(settings)) as client:
        added = await op(client, {"op": "add_task", "task_id": "k1", "title": "Cake tasting"})
        assert added.status_code == 200, added.text
        assert (await op(client, {"op": "complete_task", "task_id": "k1"}, "planner")).is_success
        assert (await tasks_view(client, "family"))["tasks"]["k1"]["done"] is True
        # What the operator named stays as named: the vendor reads tasks here.
        assert (await tasks_view(client, "vendor"))["tasks"]["k1"]["title"] == "Cake tasting"
        assert (
            await op(client, {"op": "reopen_task", "task_id": "k1"}, "vendor")
        ).status_code == 403
        # A role the operator's matrix leaves out has no access at all, tasks included.
        friend = await client.get(f"/api/weddings/{W}/docs/tasks", headers=headers("friend"))
        assert friend.status_code == 403
        access = await client.get(f"/api/weddings/{W}/access", headers=headers("couple"))
        assert access.json()["docs"]["tasks"] == "write"
    warnings = [r for r in caplog.records if "does not name 'tasks'" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    message = warnings[0].getMessage()
    assert "couple write" in message and "family read" in message and "usher none" in message
    assert "vendor" not in message
