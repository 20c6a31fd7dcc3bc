"""Members leaving through a real server: removed by who runs the wedding (the revocation
cascade: their socket closes with 4401, their tokens stop, their open invitations are
revoked), never one above the remover; a person erased from every wedding with the admin
key; ``session.*`` events read only by the person and who manages the members."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from crdt_server.auth.permissions import DEFAULT_MATRIX
from crdt_server.features.events import EVENT_TABLES, add_events
from crdt_server.storage import Gateway, NewEvent, store_for
from tests.features.conversations import (
    ADMIN_AUTH,
    CODEC,
    COUPLE,
    ENV,
    FRIEND,
    OTHER_VENDOR,
    PLANNER,
    VENDOR,
    W,
    join,
    ok,
)
from tests.server import ServerProcess, served
from tests.yclient import YClient

pytestmark = pytest.mark.timeout(60)

Api = tuple[ServerProcess, httpx.AsyncClient]


async def subs(http: httpx.AsyncClient, wedding: str = "w1") -> set[str]:
    """Who the wedding's directory holds, as its couple (not in it themselves) reads it."""
    reader = CODEC.mint(sub="cam", role="couple", wedding=wedding, ttl=600)
    found = await ok(
        await http.get(
            f"/api/weddings/{wedding}/members", headers={"Authorization": f"Bearer {reader}"}
        )
    )
    return {m["sub"] for m in found["members"]}


@pytest.mark.asyncio
async def test_a_removed_member_is_cut_off_everywhere(api: Api) -> None:
    server, http = api
    await join(http, COUPLE, PLANNER, VENDOR, FRIEND)
    made = await ok(
        await http.post(f"{W}/invitations", json={"role": "friend"}, headers=PLANNER), 201
    )
    vendor_token = VENDOR["Authorization"].removeprefix("Bearer ")
    # Who may not manage members may not remove; nobody removes a member above them.
    assert (await http.post(f"{W}/members/pat/remove", headers=VENDOR)).status_code == 403
    above = await http.post(f"{W}/members/cam/remove", headers=PLANNER)
    assert above.status_code == 403 and above.json()["errors"][0]["field"] == "sub"
    assert (await http.post(f"{W}/members/nobody/remove", headers=PLANNER)).status_code == 404

    async with YClient(server.ws_url, "w1/timeline", token=vendor_token) as socket:
        await socket.wait(socket.synced.is_set)
        removed = await ok(await http.post(f"{W}/members/flo/remove", headers=PLANNER))
        assert (removed["sub"], removed["role"]) == ("flo", "vendor")
        await socket.wait(socket.closed.is_set, timeout=10)
    assert socket.close_code == 4401
    # Their tokens stop; the directory forgets them; every member reads that they left.
    assert (await http.get(f"{W}/access", headers=VENDOR)).status_code == 401
    assert "flo" not in await subs(http)
    seen = await ok(await http.get(f"{W}/events?types=member.removed", headers=FRIEND))
    assert [(e["data"], e["actor"]["sub"]) for e in seen["events"]] == [
        ({"sub": "flo", "role": "vendor"}, "pat")
    ]
    # The couple removes the planner: what the planner set up (their invitation) stops.
    await ok(await http.post(f"{W}/members/pat/remove", headers=COUPLE))
    late = await http.post("/api/invitations/accept", json={"code": made["code"], "name": "Al"})
    assert late.status_code == 410
    assert await subs(http) == {"cam", "fred"}


@pytest.mark.asyncio
async def test_a_person_is_erased_from_every_wedding_at_once(api: Api) -> None:
    _, http = api
    both = CODEC.mint(sub="tia", role="friend", wedding=["w1", "w2"], ttl=600)
    for wedding in ("w1", "w2"):
        headers = {"Authorization": f"Bearer {both}"}
        await ok(await http.get(f"/api/weddings/{wedding}/access", headers=headers))
    await join(http, PLANNER)
    assert "tia" in await subs(http, "w1") and "tia" in await subs(http, "w2")
    refused = await http.delete("/api/admin/members/tia", headers=PLANNER)
    assert refused.status_code in (401, 403)
    erased = await ok(await http.delete("/api/admin/members/tia", headers=ADMIN_AUTH))
    assert erased == {"sub": "tia", "weddings": ["w1", "w2"]}
    assert "tia" not in await subs(http, "w1") and "tia" not in await subs(http, "w2")
    assert "pat" in await subs(http, "w1")
    # Their tokens are revoked everywhere, and a second erasure finds nobody.
    headers = {"Authorization": f"Bearer {both}"}
    assert (await http.get("/api/weddings/w2/access", headers=headers)).status_code == 401
    again = await http.delete("/api/admin/members/tia", headers=ADMIN_AUTH)
    assert again.status_code == 404


def _session_event(sub: str, label: str) -> NewEvent:
    data = json.dumps({"sub": sub, "device": label})
    return NewEvent("w1", "session.revoked", data, sub=sub, role="vendor")


@pytest.mark.asyncio
async def test_session_events_are_read_by_the_person_and_who_manages_members(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = store_for(None, data / "crdt.sqlite3")
    await store.open()
    try:
        await store.install(
            EVENT_TABLES.schema
        )  # seeded before the server (which installs them) starts
        events = [_session_event("flo", "Flo's phone"), _session_event("dj", "DJ laptop")]
        await add_events(Gateway.of(store), [*events, NewEvent("w1", "custom.note", "{}")])
    finally:
        await store.close()
    # members.manage moved from the planner to vendors: the rule follows the capability.
    matrix = {role: {d: a.value for d, a in docs.items()} for role, docs in DEFAULT_MATRIX.items()}
    matrix["capabilities"] = {"members.manage": ["couple", "vendor"]}  # type: ignore[assignment]
    env = {**ENV, "CRDT_SERVER_PERMISSIONS": json.dumps(matrix)}
    async with served(data, env) as (_, http):

        async def devices(who: dict[str, str]) -> list[Any]:
            found = await ok(await http.get(f"{W}/events?types=session.*", headers=who))
            return sorted(e["data"]["device"] for e in found["events"])

        assert await devices(COUPLE) == ["DJ laptop", "Flo's phone"]
        assert await devices(VENDOR) == ["DJ laptop", "Flo's phone"]
        assert await devices(PLANNER) == []
        assert await devices(FRIEND) == []
        # Everything else stays as readable as before.
        found = await ok(await http.get(f"{W}/events", headers=FRIEND))
        assert [e["type"] for e in found["events"]] == ["custom.note"]

    couple_only = {"members.manage": ["couple"]}
    env = {**ENV, "CRDT_SERVER_PERMISSIONS": json.dumps({**matrix, "capabilities": couple_only})}
    async with served(data, env) as (_, http):
        found = await ok(await http.get(f"{W}/events?types=session.*", headers=OTHER_VENDOR))
        assert [e["data"]["device"] for e in found["events"]] == ["DJ laptop"]
        found = await ok(await http.get(f"{W}/events?types=session.*", headers=PLANNER))
        assert [e["data"]["device"] for e in found["events"]] == []


@pytest.mark.asyncio
async def test_invited_joined_and_removed_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    env = {**ENV, "CRDT_SERVER_DATABASE_URL": postgres_url}
    async with served(tmp_path / "data", env) as (server, http):
        await join(http, COUPLE)
        made = await ok(
            await http.post(f"{W}/invitations", json={"role": "vendor"}, headers=COUPLE), 201
        )
        body = {"code": made["code"], "name": "Flo"}
        joined = await ok(await http.post("/api/invitations/accept", json=body), 201)
        assert (await http.post("/api/invitations/accept", json=body)).status_code == 410
        token = joined["token"]
        async with YClient(server.ws_url, "w1/timeline", token=token) as socket:
            await socket.wait(socket.synced.is_set)
            assert joined["sub"] in await subs(http)
            await ok(await http.post(f"{W}/members/{joined['sub']}/remove", headers=COUPLE))
            await socket.wait(socket.closed.is_set, timeout=10)
        assert socket.close_code == 4401
        assert joined["sub"] not in await subs(http)
        kinds = await ok(await http.get(f"{W}/events?types=member.*", headers=COUPLE))
        assert [e["type"] for e in kinds["events"]] == [
            "member.invited",
            "member.joined",
            "member.removed",
        ]
