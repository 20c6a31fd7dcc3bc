"""Conflict resolution through a real server: stable ids, first-seen times, the actors
whose writes collided, the wedding hierarchy's suggestion, resolving by operations made as
the resolver (``conflict.resolved`` credited to them) and acknowledging."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pycrdt import Doc, Map

from crdt_server.actor import Actor
from crdt_server.documents import apply_operation
from crdt_server.documents.model import Conflict
from crdt_server.features.conflicts.domain_resolution import suggest
from crdt_server.testing.tokens import TokenMinter
from crdt_server.testing.waits import until
from tests.server import FAMILY_WRITES, ServerProcess

SECRET = "conflicts-test-secret-at-least-32-bytes!"
MINT = TokenMinter(SECRET)


auth = MINT.headers


@pytest_asyncio.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    env = {"CRDT_SERVER_AUTH_SECRET": SECRET, **FAMILY_WRITES}
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
    ):
        yield client


async def op(http: httpx.AsyncClient, doc: str, body: dict[str, Any], **who: str) -> None:
    answer = await http.post(f"/api/weddings/w1/docs/{doc}/ops", json=body, headers=auth(**who))
    assert answer.status_code == 200, answer.text


async def double_book(http: httpx.AsyncClient) -> dict[str, Any]:
    """The aunt (family) and the groom (couple), each offline, put a guest on seat 1 of
    table t1: both valid alone, a double booking together."""
    await op(http, "seating", {"op": "add_table", "table_id": "t1", "name": "Rose", "capacity": 4})
    for guest in ("g1", "g2"):
        await op(http, "guests", {"op": "add_guest", "guest_id": guest, "name": guest})
    base = (
        await http.get(
            "/api/weddings/w1/docs/seating",
            headers={**auth(), "Accept": "application/octet-stream"},
        )
    ).content
    for guest, who in (("g1", auth("family", "aunt")), ("g2", auth("couple", "bob"))):
        replica: Doc[Any] = Doc()
        replica.apply_update(base)
        before = replica.get_state()
        seat = {"op": "assign_seat", "guest_id": guest, "table_id": "t1", "seat": 1}
        apply_operation(replica, "seating", seat)
        sent = await http.post(
            "/api/weddings/w1/docs/seating/update",
            content=replica.get_update(before),
            headers=who,
        )
        assert sent.status_code == 200, sent.text

    async def found() -> dict[str, Any] | None:
        answer = await http.get("/api/weddings/w1/conflicts", headers=auth())
        for c in answer.json()["conflicts"]:
            if c["code"] == "seating.seat_double_booked" and len(c["actors"]) == 2:
                return dict(c)
        return None

    conflict: dict[str, Any] = await until(found)
    return conflict


async def events(http: httpx.AsyncClient, types: str) -> list[dict[str, Any]]:
    answer = await http.get("/api/weddings/w1/events", params={"types": types}, headers=auth())
    return list(answer.json()["events"])


@pytest.mark.asyncio
async def test_a_conflict_has_an_id_actors_and_a_suggestion_by_role(
    http: httpx.AsyncClient,
) -> None:
    conflict = await double_book(http)
    assert conflict["id"].startswith("seating.seat_double_booked:")
    assert conflict["first_seen"].endswith("Z")
    assert conflict["actors"] == [
        {"sub": "aunt", "role": "family"},
        {"sub": "bob", "role": "couple"},
    ]
    # the couple outranks the family: keep bob's guest, unseat the aunt's
    assert conflict["suggestion"] == {
        "strategy": "role_priority",
        "keep": {"sub": "bob", "role": "couple"},
        "ops": [{"op": "unassign_seat", "guest_id": "g1"}],
        "message": "Keep the seat of the highest role's assignment.",
    }
    again = (await http.get("/api/weddings/w1/conflicts", headers=auth())).json()["conflicts"]
    same = [c for c in again if c["id"] == conflict["id"]]
    assert same and same[0]["first_seen"] == conflict["first_seen"]
    detected = await events(http, "conflict.detected")
    assert [e["data"]["id"] for e in detected] == [conflict["id"]]


@pytest.mark.asyncio
async def test_resolving_runs_the_operations_as_the_resolver(http: httpx.AsyncClient) -> None:
    conflict = await double_book(http)
    url = f"/api/weddings/w1/conflicts/{conflict['id']}/resolve"
    fix = {"ops": conflict["suggestion"]["ops"]}
    # who may resolve: the conflicts.resolve capability (couple and planner)
    for role in ("family", "vendor", "friend"):
        assert (await http.post(url, json=fix, headers=auth(role, "x"))).status_code == 403
    assert (await http.post(url, json=fix)).status_code == 401
    # bad requests name the field and change nothing
    for body, status, field in (
        ({}, 400, "body"),
        ({"ops": [], "acknowledge": True}, 400, "body"),
        ({"ops": []}, 400, "ops"),
        ({"ops": [{"op": "explode"}]}, 400, "ops[0].op"),
        ({"ops": [{"op": "unassign_seat"}]}, 400, "ops[0]"),
        ({"ops": [{"op": "unassign_seat", "guest_id": "nobody"}]}, 422, "ops[0]"),
        ({"ops": [{"op": "update_table", "table_id": "t1", "name": "Lily"}]}, 422, "ops"),
        ({"acknowledge": False}, 422, "acknowledge"),
        ({"ops": fix["ops"], "colour": "red"}, 422, "colour"),
    ):
        answer = await http.post(url, json=body, headers=auth())
        assert answer.status_code == status, (body, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert any(e["field"].startswith(field) for e in answer.json()["errors"]), answer.text
    missing = await http.post(
        "/api/weddings/w1/conflicts/seating.seat_double_booked:000000000000/resolve",
        json=fix,
        headers=auth(),
    )
    assert missing.status_code == 404
    seating = (await http.get("/api/weddings/w1/docs/seating", headers=auth())).json()
    assert set(seating["assignments"]) == {"g1", "g2"}

    done = await http.post(url, json=fix, headers=auth("planner", "ada"))
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "resolved" and done.json()["event"]
    seating = (await http.get("/api/weddings/w1/docs/seating", headers=auth())).json()
    assert set(seating["assignments"]) == {"g2"}
    resolved = await events(http, "conflict.resolved")
    assert len(resolved) == 1
    assert resolved[0]["id"] == done.json()["event"]
    assert resolved[0]["actor"] == {"sub": "ada", "role": "planner"}
    assert resolved[0]["data"]["resolution"] == "ops"
    assert resolved[0]["data"]["ops"] == fix["ops"]
    unseated = await events(http, "seating.guest_unseated")
    assert unseated[-1]["actor"] == {"sub": "ada", "role": "planner"}
    listed = (await http.get("/api/weddings/w1/conflicts", headers=auth())).json()["conflicts"]
    assert conflict["id"] not in {c["id"] for c in listed}
    assert (await http.post(url, json=fix, headers=auth())).status_code == 404
    await asyncio.sleep(0.5)  # the keeper's own refresh must not record it a second time
    assert len(await events(http, "conflict.resolved")) == 1


@pytest.mark.asyncio
async def test_acknowledging_keeps_the_state_and_records_who_saw_it(
    http: httpx.AsyncClient,
) -> None:
    conflict = await double_book(http)
    url = f"/api/weddings/w1/conflicts/{conflict['id']}/resolve"
    first = await http.post(url, json={"acknowledge": True}, headers=auth("couple", "bob"))
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "acknowledged" and first.json()["event"]
    again = await http.post(url, json={"acknowledge": True}, headers=auth("couple", "bob"))
    assert again.status_code == 200 and again.json()["event"] is None
    listed = (await http.get("/api/weddings/w1/conflicts", headers=auth())).json()["conflicts"]
    [same] = [c for c in listed if c["id"] == conflict["id"]]
    assert [(a["sub"], a["role"]) for a in same["acknowledged"]] == [("bob", "couple")]
    seen = await events(http, "conflict.acknowledged")
    assert [e["actor"]["sub"] for e in seen] == ["bob"]
    seating = (await http.get("/api/weddings/w1/docs/seating", headers=auth())).json()
    assert set(seating["assignments"]) == {"g1", "g2"}


def test_the_hierarchy_unseats_the_lowest_roles_at_an_over_full_table() -> None:
    doc: Doc[Any] = Doc()
    apply_operation(
        doc, "seating", {"op": "add_table", "table_id": "t1", "name": "Rose", "capacity": 1}
    )
    assignments = doc.get("assignments", type=Map)
    for guest in ("g1", "g2", "g3"):  # three guests at a one-seat table, as merges allow
        assignments[guest] = Map({"table_id": "t1"})
    conflict = Conflict("seating.table_over_capacity", ("seating/tables/t1",), "full")
    writers = {
        "seating/assignments/g1": Actor("v", "vendor"),
        "seating/assignments/g2": Actor("p", "planner"),
    }
    found = suggest(conflict, writers, {"seating": doc})
    assert found.keep == Actor("p", "planner")
    # g3's writer is unknown (last), then the vendor's g1
    assert found.ops == [
        {"op": "unassign_seat", "guest_id": "g1"},
        {"op": "unassign_seat", "guest_id": "g3"},
    ]


def test_the_hierarchy_counts_people_and_seats_a_split_household_together() -> None:
    seating: Doc[Any] = Doc()
    guests: Doc[Any] = Doc()
    for name, capacity in (("t1", 3), ("t2", 4)):
        apply_operation(
            seating,
            "seating",
            {"op": "add_table", "table_id": name, "name": name} | {"capacity": capacity},
        )
    apply_operation(guests, "guests", {"op": "add_household", "household_id": "h1", "name": "H"})
    for guest, extra in (("g1", {"plus_one": True}), ("g2", {}), ("g3", {"household_id": "h1"})):
        apply_operation(
            guests, "guests", {"op": "add_guest", "guest_id": guest, "name": guest} | extra
        )
    apply_operation(
        guests,
        "guests",
        {"op": "add_guest", "guest_id": "g4", "name": "g4"} | {"household_id": "h1"},
    )
    assignments = seating.get("assignments", type=Map)
    for guest, table in (("g1", "t1"), ("g2", "t1"), ("g3", "t1"), ("g4", "t2")):
        assignments[guest] = {"table_id": table}
    docs = {"seating": seating, "guests": guests}
    # g1 and their unnamed plus-one, g2, g3: four people at three seats; g3's writer (the
    # couple) ranks first, then g1's (planner): g2 is unseated, g1 keeps two seats.
    writers = {
        "seating/assignments/g3": Actor("c", "couple"),
        "seating/assignments/g1": Actor("p", "planner"),
    }
    over = Conflict("seating.table_over_capacity", ("seating/tables/t1",), "full")
    assert suggest(over, writers, docs).ops == [{"op": "unassign_seat", "guest_id": "g2"}]
    split = Conflict(
        "seating.household_split",
        ("seating/assignments/g3", "seating/assignments/g4"),
        "split",
    )
    found = suggest(split, writers, docs)
    assert found.keep == Actor("c", "couple")
    assert found.ops == [{"op": "seat_household", "household_id": "h1", "table_id": "t1"}]


@pytest.mark.asyncio
async def test_the_commit_that_makes_a_conflict_records_it_within_milliseconds(
    http: httpx.AsyncClient,
) -> None:
    """No refresh to wait for: the findings the commit touched are evaluated right after
    it (the event's stored time is within 200 ms of the seating event committed with the
    update; the old debounce alone was 250 ms)."""
    await op(http, "seating", {"op": "add_table", "table_id": "t1", "name": "Rose", "capacity": 1})
    for guest in ("g1", "g2"):
        await op(http, "guests", {"op": "add_guest", "guest_id": guest, "name": guest})
    await op(http, "seating", {"op": "assign_seat", "guest_id": "g1", "table_id": "t1"})
    seated = await http.post(
        "/api/weddings/w1/docs/seating/update",
        content=await _assigned_elsewhere(http, "g2"),
        headers=auth("planner", "ada"),
    )
    assert seated.status_code == 200, seated.text

    async def detected() -> list[dict[str, Any]]:
        return [
            e
            for e in await events(http, "conflict.detected")
            if e["data"]["code"] == "seating.table_over_capacity"
        ]

    [event] = await until(detected, deadline=5)
    commit = (await events(http, "seating.guest_seated"))[-1]
    assert commit["data"]["guest_id"] == "g2"
    gap = _instant(event["at"]) - _instant(commit["at"])
    assert 0 <= gap < 0.2, gap


async def _assigned_elsewhere(http: httpx.AsyncClient, guest: str) -> bytes:
    """An update seating ``guest`` at t1 made on a replica (as an offline client would,
    without the server's capacity check)."""
    base = (
        await http.get(
            "/api/weddings/w1/docs/seating",
            headers={**auth(), "Accept": "application/octet-stream"},
        )
    ).content
    replica: Doc[Any] = Doc()
    replica.apply_update(base)
    before = replica.get_state()
    replica.get("assignments", type=Map)[guest] = {"table_id": "t1"}
    return replica.get_update(before)


def _instant(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@pytest.mark.asyncio
async def test_a_finding_is_written_again_when_its_last_writer_changes_not_at_each_write(
    http: httpx.AsyncClient,
) -> None:
    """The same person writing an entry of a finding again leaves the conflicts room as it
    is (each of a planner's edits of an item's notes rewrote its findings, with the time of
    the write: a conflicts update committed, broadcast and derived per edit); another
    person's write names them at once."""
    for item, start in (("i1", "2027-06-12T14:00Z"), ("i2", "2027-06-12T14:30Z")):
        timed = {"title": item, "start": start, "end": "2027-06-12T15:30Z", "location": "Garden"}
        await op(http, "timeline", {"op": "add_timeline_item", "item_id": item, **timed})

    async def found(people: int) -> dict[str, Any] | None:
        answer = await http.get("/api/weddings/w1/conflicts", headers=auth())
        for c in answer.json()["conflicts"]:
            if c["code"] == "timeline.location_overlap" and len(c["actors"]) == people:
                return dict(c)
        return None

    async def written() -> int:
        answer = await http.get(
            "/api/weddings/w1/docs/conflicts/history", params={"limit": 100}, headers=auth()
        )
        assert answer.status_code == 200, answer.text
        return len(answer.json()["history"])

    await until(lambda: found(1))
    before = await written()
    for n in range(5):
        await op(http, "timeline", {"op": "update_timeline_item", "item_id": "i1", "notes": f"{n}"})
    couple = auth("couple", "bob")
    answer = await http.post(
        "/api/weddings/w1/docs/timeline/ops",
        json={"op": "update_timeline_item", "item_id": "i2", "notes": "Photos"},
        headers=couple,
    )
    assert answer.status_code == 200, answer.text
    conflict = await until(lambda: found(2))
    assert conflict["actors"] == [
        {"sub": "ada", "role": "planner"},
        {"sub": "bob", "role": "couple"},
    ]
    assert await written() == before + 1
