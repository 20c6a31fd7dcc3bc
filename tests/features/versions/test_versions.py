"""Version history through a real server: restore points with their actors, reading a
document as of a seq (through compaction), and restoring as one update that merges with
concurrent edits, attributed to the restorer with its events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map

from crdt_server.documents import apply_operation, to_json
from crdt_server.features.versions.domain import restore
from crdt_server.features.versions.tables import VersionPoint, to_thin
from crdt_server.testing.tokens import TokenMinter
from crdt_server.testing.waits import until
from tests.server import ServerProcess

SECRET = "versions-test-secret-at-least-32-bytes!!"
MINT = TokenMinter(SECRET)
ENV = {
    "CRDT_SERVER_AUTH_SECRET": SECRET,
    "CRDT_SERVER_VERSION_INTERVAL_SECONDS": "0.5",
    "CRDT_SERVER_VERSION_CHECK_SECONDS": "0.1",
}
GUESTS = "/api/weddings/w1/docs/guests"


auth = MINT.headers


async def run(http: httpx.AsyncClient, body: dict[str, Any], **who: str) -> None:
    answer = await http.post(f"{GUESTS}/ops", json=body, headers=auth(**who))
    assert answer.status_code == 200, answer.text


async def point_after(http: httpx.AsyncClient, seq: int) -> dict[str, Any]:
    """The newest restore point, once there is one at or after ``seq``."""

    async def newest() -> dict[str, Any] | None:
        versions = (await http.get(f"{GUESTS}/versions", headers=auth())).json()["versions"]
        return dict(versions[0]) if versions and versions[0]["seq"] >= seq else None

    found: dict[str, Any] = await until(newest)
    return found


async def last_seq(http: httpx.AsyncClient) -> int:
    history = (await http.get(f"{GUESTS}/history", headers=auth())).json()["history"]
    return int(history[0]["seq"])


@pytest_asyncio.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        ServerProcess(tmp_path / "data", env=ENV, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
    ):
        yield client


@pytest.mark.asyncio
async def test_restore_brings_back_a_deleted_list_and_merges_with_concurrent_edits(
    http: httpx.AsyncClient,
) -> None:
    for guest in ("g1", "g2", "g3"):
        await run(http, {"op": "add_guest", "guest_id": guest, "name": f"Guest {guest}"})
    point = await point_after(http, await last_seq(http))
    assert point["actors"] == [{"sub": "ada", "role": "planner"}]
    assert point["at"].endswith("Z")
    # the couple deletes two guests and renames the third
    await run(http, {"op": "remove_guest", "guest_id": "g1"}, role="couple", sub="bob")
    await run(http, {"op": "remove_guest", "guest_id": "g2"}, role="couple", sub="bob")
    await run(
        http, {"op": "update_guest", "guest_id": "g3", "name": "Oops"}, role="couple", sub="bob"
    )
    # an offline phone, synced now, edits while the restore happens
    base = (
        await http.get(GUESTS, headers={**auth(), "Accept": "application/octet-stream"})
    ).content
    phone: Doc[Any] = Doc()
    phone.apply_update(base)
    before = phone.get_state()
    apply_operation(phone, "guests", {"op": "add_guest", "guest_id": "g9", "name": "Nine"})
    apply_operation(phone, "guests", {"op": "update_guest", "guest_id": "g3", "meal": "fish"})

    # read as of the point: the three guests as they were
    then = await http.get(GUESTS, params={"at": point["seq"]}, headers=auth())
    assert then.status_code == 200 and then.headers["version-seq"] == str(point["seq"])
    assert sorted(then.json()["guests"]) == ["g1", "g2", "g3"]

    restored = await http.post(f"{GUESTS}/restore", json={"seq": point["seq"]}, headers=auth())
    assert restored.status_code == 200, restored.text
    answer = restored.json()
    assert answer["committed"] and answer["changed"] and answer["seq"] == point["seq"]
    now = (await http.get(GUESTS, headers=auth())).json()["guests"]
    assert sorted(now) == ["g1", "g2", "g3"] and now["g3"]["name"] == "Guest g3"

    sent = await http.post(
        f"{GUESTS}/update", content=phone.get_update(before), headers=auth("couple", "bob")
    )
    assert sent.status_code == 200
    merged = (await http.get(GUESTS, headers=auth())).json()["guests"]
    assert sorted(merged) == ["g1", "g2", "g3", "g9"]
    assert merged["g3"]["name"] == "Guest g3" and merged["g3"]["meal"] == "fish"

    # the restore's events are the restorer's; one document.restored says what happened
    async def restore_events() -> list[dict[str, Any]] | None:
        found = await http.get("/api/weddings/w1/events", params={"limit": 500}, headers=auth())
        events = found.json()["events"]
        tail = [e for e in events if e["seq"] > 0 and e["type"] == "document.restored"]
        return events if tail else None

    events = await until(restore_events)
    [marker] = [e for e in events if e["type"] == "document.restored"]
    assert marker["id"] == answer["event"]
    assert marker["data"] == {
        "doc": "guests",
        "seq": point["seq"],
        "changed": True,
        "point_at": point["at"],
    }
    assert marker["actor"] == {"sub": "ada", "role": "planner"}
    readded = [e for e in events if e["type"] == "guest.added" and e["seq"] > 3]
    assert {e["data"]["id"] for e in readded} >= {"g1", "g2"}
    assert all(
        e["actor"] == {"sub": "ada", "role": "planner"} for e in readded if e["data"]["id"] != "g9"
    )
    # the history credits the restore to the restorer
    history = (await http.get(f"{GUESTS}/history", headers=auth())).json()["history"]
    assert ("ada", "planner") in {(h["sub"], h["role"]) for h in history[:2]}


@pytest.mark.asyncio
async def test_who_may_restore_and_bad_requests(http: httpx.AsyncClient) -> None:
    await run(http, {"op": "add_guest", "guest_id": "g1", "name": "One"})
    point = await point_after(http, await last_seq(http))
    url = f"{GUESTS}/restore"
    # family may edit the guests but not restore; friends may not even list
    assert (await http.post(url, json={"seq": 1}, headers=auth("family", "f"))).status_code == 403
    assert (await http.get(f"{GUESTS}/versions", headers=auth("friend", "x"))).status_code == 403
    assert (await http.post(url, json={"seq": 1})).status_code == 401
    for body, status, field in (
        ({}, 422, "seq"),
        ({"seq": "one"}, 422, "seq"),
        ({"seq": -1}, 422, "seq"),
        ({"seq": 2**68}, 422, "seq"),  # was a 500 (found by schemathesis)
        ({"seq": 1, "colour": 1}, 422, "colour"),
        ({"seq": 0}, 404, "seq"),
    ):
        answer = await http.post(url, json=body, headers=auth())
        assert answer.status_code == status, (body, answer.text)
        assert any(e["field"] == field for e in answer.json()["errors"]), answer.text
    for params, field in (({"at": "x"}, "at"), ({"at": "0"}, "at")):
        answer = await http.get(GUESTS, params=params, headers=auth())
        assert answer.status_code in (400, 404)
        assert answer.json()["errors"][0]["field"] == field
    bad = await http.get(f"{GUESTS}/versions", params={"limit": 0}, headers=auth())
    assert bad.status_code == 400
    assert (
        await http.get("/api/weddings/w1/docs/conflicts/versions", headers=auth())
    ).status_code == 404
    # nothing changed: the one guest, one point
    assert list((await http.get(GUESTS, headers=auth())).json()["guests"]) == ["g1"]
    listed = (await http.get(f"{GUESTS}/versions", headers=auth())).json()
    assert listed["versions"][0]["seq"] == point["seq"]


@pytest.mark.asyncio
@pytest.mark.slow
async def test_restore_points_outlive_compaction(tmp_path: Path) -> None:
    env = {**ENV, "CRDT_SERVER_COMPACT_AFTER_UPDATES": "10"}
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        await run(http, {"op": "add_guest", "guest_id": "first", "name": "First"})
        point = await point_after(http, await last_seq(http))
        for i in range(30):
            await run(http, {"op": "add_guest", "guest_id": f"g{i}", "name": f"Guest {i}"})
        after = point["seq"] + 1

        async def compacted() -> bool:
            got = await http.get(GUESTS, params={"at": after}, headers=auth())
            return got.headers.get("version-seq") == str(point["seq"])

        # once the log is folded past the point, the point answers for the seqs after it
        await until(compacted, deadline=20)
        then = await http.get(GUESTS, params={"at": point["seq"]}, headers=auth())
        assert list(then.json()["guests"]) == ["first"]
        restored = await http.post(f"{GUESTS}/restore", json={"seq": point["seq"]}, headers=auth())
        assert restored.status_code == 200 and restored.json()["seq"] == point["seq"]
        assert list((await http.get(GUESTS, headers=auth())).json()["guests"]) == ["first"]


def test_thinning_keeps_hourly_points_for_a_week_then_one_a_day() -> None:
    day, hour = 86400.0, 3600.0
    now = 100 * day
    points = [VersionPoint("w/guests", i, now - i * hour, ()) for i in range(1, 24 * 100)]
    doomed = {p.seq for p in to_thin(points, now, hourly_for=7 * day, keep_for=90 * day)}
    kept = [p for p in points if p.seq not in doomed]
    assert all(p.seq not in doomed for p in points if now - p.at <= 7 * day)
    old = [p for p in kept if now - p.at > 7 * day]
    days = {int(p.at // day) for p in old}
    assert len(old) == len(days)  # one a day
    assert all(now - p.at <= 90 * day for p in kept)


names = st.sampled_from(["a", "b", "c", "d"])
guest_fields = st.fixed_dictionaries(
    {"name": st.sampled_from(["Ann", "Bo", "Cy"])},
    optional={
        "meal": st.sampled_from(["fish", "veg"]),
        "rsvp": st.sampled_from(["pending", "accepted"]),
    },
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(names, guest_fields), st.dictionaries(names, guest_fields))
def test_restore_makes_any_state_equal_to_any_other(
    before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]
) -> None:
    def build(guests: dict[str, dict[str, str]], client_id: int) -> Doc[Any]:
        doc: Doc[Any] = Doc(client_id=client_id)
        for gid, fields in guests.items():
            apply_operation(doc, "guests", {"op": "add_guest", "guest_id": gid, **fields})
        return doc

    target = build(before, 1)
    current = build(after, 2)
    restore(current, "guests", target)
    assert to_json(current, "guests")["guests"] == to_json(target, "guests")["guests"]
    # as one update another replica can take
    replica: Doc[Any] = Doc()
    replica.apply_update(current.get_update())
    assert to_json(replica, "guests")["guests"] == to_json(target, "guests")["guests"]
    assert isinstance(replica.get("guests", type=Map), Map)


@pytest.mark.asyncio
async def test_erasing_a_guest_rewrites_the_restore_points_without_them(tmp_path: Path) -> None:
    from tests.core.test_erasure import bytes_found

    canary = "Zebulon Quiggleworth"
    env = {**ENV, "CRDT_SERVER_ADMIN_API_KEY": "admin"}
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        await run(http, {"op": "add_guest", "guest_id": "z", "name": canary})
        await run(http, {"op": "add_guest", "guest_id": "k", "name": "Kept Person"})
        point = await point_after(http, await last_seq(http))
        erased = await http.post(
            "/api/weddings/w1/guests/z/erase", headers={"Authorization": "Bearer admin"}
        )
        assert erased.status_code == 200, erased.text
        then = await http.get(GUESTS, params={"at": point["seq"]}, headers=auth())
        assert then.status_code == 200 and list(then.json()["guests"]) == ["k"]
        assert bytes_found(server.data_dir, canary) == []
