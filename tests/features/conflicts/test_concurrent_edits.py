"""No write disappears silently: races between stock y-websocket clients become findings.

Two people (stock JS clients, chosen client ids: in Yjs the higher id wins a map key) write
one key while one of them is offline; the server reports the write that lost as a
``concurrent_edit`` conflict with both values and both writers, records
``conflict.detected`` credited to the loser, keeps the winner's event honest, and closes
the finding when someone writes the key again having seen the winner.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from pycrdt import Doc, Map

from crdt_server.testing.tokens import TokenMinter
from crdt_server.testing.waits import until
from tests.features.conversations import Inbox
from tests.jsclient import JsClient, JsClientGroup, map_delete, map_set, ymap
from tests.server import FAMILY_WRITES, ServerProcess

pytestmark = [pytest.mark.asyncio, pytest.mark.js]

MINT = TokenMinter("concurrent-edits-test-secret-at-least-32-bytes")
ADMIN = {"Authorization": "Bearer admin-key-for-concurrent-edits"}
ENV = {**MINT.env, **FAMILY_WRITES, "CRDT_SERVER_ADMIN_API_KEY": ADMIN["Authorization"].split()[1]}
HI, LO = 900_001, 5_001
ROOTS: dict[str, Any] = {"guests": "map"}


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    async with ServerProcess(tmp_path / "data", env=ENV, anonymous=False) as process:
        yield process


async def person(
    group: JsClientGroup,
    server: ServerProcess,
    role: str,
    sub: str,
    client_id: int,
    doc: str = "guests",
) -> JsClient:
    client = await group.start(version=2)
    token = MINT(sub=sub, role=role)
    await client.connect(server.ws_url, f"w1/{doc}", params={"token": token}, client_id=client_id)
    await client.wait_synced()
    return client


def guest(**fields: Any) -> dict[str, Any]:
    """Guest g1 as a stock client holds it (what ``add_guest`` wrote, then ``fields``)."""
    base = {"name": "Ada", "rsvp": "pending", "meal": "fish", "dietary": [], "plus_one": False}
    base["notes"] = ""  # a Y.Text made with the entry
    return {**base, **fields}


async def add_guest(http: httpx.AsyncClient) -> None:
    body = {"op": "add_guest", "guest_id": "g1", "name": "Ada", "meal": "fish"}
    answer = await http.post(
        "/api/weddings/w1/docs/guests/ops", json=body, headers=MINT.headers("couple", "cam")
    )
    assert answer.status_code == 200, answer.text


async def conflicts(http: httpx.AsyncClient, role: str = "couple") -> list[dict[str, Any]]:
    answer = await http.get("/api/weddings/w1/conflicts", headers=MINT.headers(role, "x"))
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["conflicts"]
    return [c for c in found if c["code"] == "concurrent_edit"]


async def events(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    answer = await http.get(
        "/api/weddings/w1/events", params={"limit": 200}, headers=MINT.headers("couple", "x")
    )
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["events"]
    return found


async def stored(server: ServerProcess, http: httpx.AsyncClient, client: JsClient) -> None:
    """Wait until the server holds everything ``client`` wrote."""
    state = await client.state(ROOTS)

    async def caught_up() -> bool:
        answer = await http.get("/api/weddings/w1/docs/guests", headers=MINT.headers("couple", "x"))
        if answer.status_code != 200:
            return False
        shown = answer.json()["guests"]
        mine = state["json"]["guests"]
        return set(shown) == set(mine) and all(
            shown[g].get(k) == v for g, fields in mine.items() for k, v in fields.items()
        )

    await until(caught_up)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("offline", ["loser", "winner"])
async def test_two_people_set_one_field_and_the_lost_value_is_a_finding(
    server: ServerProcess, offline: str
) -> None:
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        JsClientGroup() as group,
    ):
        await add_guest(http)
        planner = await person(group, server, "planner", "pat", HI)
        aunt = await person(group, server, "family", "aunt", LO)
        away, here = (aunt, planner) if offline == "loser" else (planner, aunt)
        await away.call("disconnect")
        value = {planner: "vegan", aunt: "beef"}
        await here.edit(map_set("guests", "meal", value[here], path=["g1"]))
        await stored(server, http, here)
        await away.edit(map_set("guests", "meal", value[away], path=["g1"]))
        await away.call("reconnect")
        # The higher client id (the planner's) wins in both orders, on every replica.
        for client in (planner, aunt):
            await client.wait_for({"guests": {"g1": guest(meal="vegan")}}, roots=ROOTS)
        (finding,) = await until(lambda: conflicts(http))
        assert finding["concurrent"] == {
            "kind": "concurrent_edit",
            "doc": "guests",
            "path": ["guests", "g1", "meal"],
            "field": "meal",
            "lost": {
                "actor": {"sub": "aunt", "role": "family"},
                "value": "beef",
                "at": finding["concurrent"]["lost"]["at"],
            },
            "kept": {
                "actor": {"sub": "pat", "role": "planner"},
                "value": "vegan",
                "at": finding["concurrent"]["kept"]["at"],
            },
            "same_actor": False,
        }
        assert finding["paths"] == ["guests/guests/g1"] and finding["id"].startswith("cw:")
        # The planner ranks higher than the family: keep the planner's (current) value.
        assert finding["suggestion"]["keep"] == {"sub": "pat", "role": "planner"}
        log = await events(http)
        (detected,) = [e for e in log if e["type"] == "conflict.detected"]
        assert detected["actor"]["sub"] == "aunt"  # credited to the lost write's author
        assert detected["data"]["lost"]["value"] == "beef"
        meals = [e for e in log if e["type"] == "guest.updated"]
        if offline == "loser":
            # The lost write never took effect: no event of it.
            assert [e["actor"]["sub"] for e in meals] == ["pat"]
            assert meals[0]["data"]["changes"]["meal"] == {"from": "fish", "to": "vegan"}
        else:
            # The winner replaced a value its author never saw: said so.
            assert [e["actor"]["sub"] for e in meals] == ["aunt", "pat"]
            assert meals[1]["data"]["concurrent"] is True
            assert meals[1]["data"]["changes"]["meal"] == {"replaced": "beef", "to": "vegan"}
        # The conflicts room shows it too (its id is stable).
        # A later write by someone who saw the winner closes it.
        await aunt.edit(map_set("guests", "meal", "beef", path=["g1"]))
        await until(lambda: _none(http))
        resolved = [e for e in await events(http) if e["type"] == "conflict.resolved"]
        assert [e["data"]["resolution"] for e in resolved] == ["written"]
        assert resolved[0]["data"]["id"] == finding["id"]


async def _none(http: httpx.AsyncClient) -> bool:
    return await conflicts(http) == []


@pytest.mark.timeout(90)
@pytest.mark.parametrize("offline", ["loser", "winner"])
async def test_a_root_key_and_a_whole_entry_written_twice_are_findings(
    server: ServerProcess, offline: str
) -> None:
    """Two people seat guest g1 at different tables (a key of the seating's root map), and
    each adds table t9 (a whole entry) with another name; one of them is offline."""
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        JsClientGroup() as group,
    ):
        await add_guest(http)
        planner = await person(group, server, "planner", "pat", HI, "seating")
        aunt = await person(group, server, "family", "aunt", LO, "seating")
        away, here = (aunt, planner) if offline == "loser" else (planner, aunt)
        await away.call("disconnect")
        for who, table in (
            (here, "t2" if here is planner else "t5"),
            (away, "t5" if away is aunt else "t2"),
        ):
            await who.edit(
                map_set("assignments", "g1", {"table_id": table}),
                map_set("tables", "t9", ymap({"name": table, "capacity": 8})),
            )
            if who is here:
                await until(lambda: _seated(http))
        await away.call("reconnect")
        roots = {"assignments": "map", "tables": "map"}
        for client in (planner, aunt):
            await client.wait_for(
                {
                    "assignments": {"g1": {"table_id": "t2"}},
                    "tables": {"t9": {"name": "t2", "capacity": 8}},
                },
                roots=roots,
            )
        found = await until(lambda: _two(http))
        by_path = {tuple(c["concurrent"]["path"]): c["concurrent"] for c in found}
        assert set(by_path) == {("assignments", "g1"), ("tables", "t9")}
        seat = by_path["assignments", "g1"]
        assert (seat["lost"]["value"], seat["kept"]["value"]) == (
            {"table_id": "t5"},
            {"table_id": "t2"},
        )
        assert seat["lost"]["actor"] == {"sub": "aunt", "role": "family"} and seat["field"] is None
        table = by_path["tables", "t9"]
        assert table["lost"]["value"] == {"name": "t5", "capacity": 8}
        assert table["kept"]["value"] == {"name": "t2", "capacity": 8}


async def _seated(http: httpx.AsyncClient) -> bool:
    answer = await http.get("/api/weddings/w1/docs/seating", headers=MINT.headers("couple", "x"))
    return answer.status_code == 200 and "g1" in answer.json()["assignments"]


async def _two(http: httpx.AsyncClient) -> list[dict[str, Any]] | None:
    found = await conflicts(http)
    return found if len(found) == 2 else None


@pytest.mark.timeout(90)
@pytest.mark.parametrize("removal_first", [True, False])
async def test_an_edit_of_a_guest_removed_meanwhile_is_a_finding(
    server: ServerProcess, removal_first: bool
) -> None:
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        JsClientGroup() as group,
    ):
        await add_guest(http)
        couple = await person(group, server, "couple", "cam", HI)
        planner = await person(group, server, "planner", "pat", LO)
        first, second = (couple, planner) if removal_first else (planner, couple)
        await second.call("disconnect")
        ops = {
            couple: map_delete("guests", "g1"),
            planner: map_set("guests", "meal", "vegan", path=["g1"]),
        }
        await first.edit(ops[first])
        await stored(server, http, first)
        await second.edit(ops[second])
        await second.call("reconnect")
        for client in (couple, planner):
            await client.wait_for({"guests": {}}, roots=ROOTS)
        (finding,) = await until(lambda: conflicts(http))
        concurrent = finding["concurrent"]
        assert concurrent["kind"] == "edited_removed_entry"
        assert concurrent["path"] == ["guests", "g1", "meal"]
        assert concurrent["lost"]["actor"] == {"sub": "pat", "role": "planner"}
        assert concurrent["lost"]["value"] == "vegan"
        if removal_first:
            assert concurrent["kept"] is None  # the remover is not in the lost edit's items
        else:
            assert concurrent["kept"]["actor"] == {"sub": "cam", "role": "couple"}
        log = await events(http)
        assert [e["actor"]["sub"] for e in log if e["type"] == "conflict.detected"] == ["pat"]
        # The lost edit made no event (when it arrived second); the removal did.
        guest_events = [
            (e["type"], e["actor"]["sub"]) for e in log if e["type"].startswith("guest.")
        ]
        if removal_first:
            assert guest_events == [("guest.added", "cam"), ("guest.removed", "cam")]
        else:
            assert guest_events == [
                ("guest.added", "cam"),
                ("guest.updated", "pat"),
                ("guest.removed", "cam"),
            ]


@pytest.mark.timeout(90)
async def test_acknowledging_closes_a_finding_and_equal_values_make_none(
    server: ServerProcess,
) -> None:
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        JsClientGroup() as group,
    ):
        await add_guest(http)
        phone = await person(group, server, "couple", "cam", HI)
        laptop = await person(group, server, "couple", "cam", LO)
        planner = await person(group, server, "planner", "pat", LO + 1)
        # Equal values: no finding.
        await laptop.call("disconnect")
        await phone.edit(map_set("guests", "rsvp", "accepted", path=["g1"]))
        await stored(server, http, phone)
        await laptop.edit(map_set("guests", "rsvp", "accepted", path=["g1"]))
        await laptop.call("reconnect")
        await laptop.wait_synced()
        await stored(server, http, laptop)
        # Two devices of one person: same_actor.
        await laptop.call("disconnect")
        await phone.edit(map_set("guests", "rsvp", "declined", path=["g1"]))
        await stored(server, http, phone)
        await laptop.edit(map_set("guests", "rsvp", "pending", path=["g1"]))
        await laptop.call("reconnect")
        found = await until(lambda: conflicts(http))
        assert len(found) == 1, found
        (finding,) = found
        assert finding["concurrent"]["same_actor"] is True
        await planner.wait_for({"guests": {"g1": guest(rsvp="declined")}}, roots=ROOTS)
        answer = await http.post(
            f"/api/weddings/w1/conflicts/{finding['id']}/resolve",
            json={"acknowledge": True},
            headers=MINT.headers("couple", "cam"),
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "acknowledged" and answer.json()["event"]
        assert await conflicts(http) == []
        kinds = [e["type"] for e in await events(http) if e["type"].startswith("conflict.")]
        assert kinds == ["conflict.detected", "conflict.acknowledged"]


@pytest.mark.timeout(120)
async def test_findings_and_who_wrote_what_survive_kill_9(server: ServerProcess) -> None:
    """The finding is stored in its update's commit, and the client id -> writer table too:
    after kill -9 the finding is still listed, and a race against a write made before the
    kill names that write's author (no process memory left to guess from)."""
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        JsClientGroup() as group,
    ):
        await add_guest(http)
        planner = await person(group, server, "planner", "pat", HI)
        aunt = await person(group, server, "family", "aunt", LO)
        await planner.call("disconnect")
        await aunt.edit(map_set("guests", "rsvp", "declined", path=["g1"]))
        await stored(server, http, aunt)
        await server.kill()
        await server.start()
        # The planner, offline since before the aunt's answer, answers too (and wins).
        await planner.edit(map_set("guests", "rsvp", "accepted", path=["g1"]))
        await planner.call("reconnect")
        for client in (planner, aunt):
            await client.wait_for({"guests": {"g1": guest(rsvp="accepted")}}, roots=ROOTS)
        (finding,) = await until(lambda: conflicts(http))
        assert finding["concurrent"]["lost"]["actor"] == {"sub": "aunt", "role": "family"}
        assert finding["concurrent"]["lost"]["at"] is None  # written before this process
        await server.kill()
        await server.start()
        (after,) = await conflicts(http)
        assert after == finding
        detected = [e for e in await events(http) if e["type"] == "conflict.detected"]
        assert [e["data"]["id"] for e in detected] == [finding["id"]]


DAY = 24 * 3600
"""Tokens minted at import outlive a whole test run (the full tier takes minutes)."""
PAT = MINT.headers("planner", "pat", email="pat@example.com", ttl=DAY)
AUNT = MINT.headers("family", "aunt", email="aunt@example.com", ttl=DAY)


async def offline_answers(http: httpx.AsyncClient) -> list[tuple[Doc[Any], bytes]]:
    """Guest g1 added; the planner's phone (the higher client id) and the aunt's, offline
    since, answer for them: each phone with the update it will send."""
    await add_guest(http)
    base = await http.get(
        "/api/weddings/w1/docs/guests",
        headers={**MINT.headers("couple", "x"), "Accept": "application/octet-stream"},
    )
    phones = []
    for client, answer in ((HI, "accepted"), (LO, "declined")):
        phone: Doc[Any] = Doc(client_id=client)
        phone.apply_update(base.content)
        state = phone.get_state()
        phone.get("guests", type=Map)["g1"]["rsvp"] = answer
        phones.append((phone, phone.get_update(state)))
    return phones


async def race_over_http(http: httpx.AsyncClient) -> dict[str, Any]:
    """Both phones send their answer with ``/update``: one finding."""
    for (_, update), who in zip(await offline_answers(http), (PAT, AUNT), strict=True):
        sent = await http.post("/api/weddings/w1/docs/guests/update", content=update, headers=who)
        assert sent.status_code == 200, sent.text
    (finding,) = await conflicts(http)
    return finding


@pytest.mark.timeout(60)
async def test_http_update_and_sync_race_like_websocket_clients(server: ServerProcess) -> None:
    """The planner's phone syncs with ``/update``, the aunt's with ``/sync``: the lost answer
    is a finding as over WebSocket."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        (_, accepted), (loser, declined) = await offline_answers(http)
        sent = await http.post("/api/weddings/w1/docs/guests/update", content=accepted, headers=PAT)
        assert sent.status_code == 200, sent.text
        synced = await http.post(
            "/api/weddings/w1/docs/guests/sync",
            json={
                "state_vector": base64.b64encode(loser.get_state()).decode(),
                "update": base64.b64encode(declined).decode(),
            },
            headers=AUNT,
        )
        assert synced.status_code == 200, synced.text
        loser.apply_update(base64.b64decode(synced.json()["update"]))
        assert loser.get("guests", type=Map)["g1"]["rsvp"] == "accepted"
        (finding,) = await conflicts(http)
        assert finding["concurrent"]["lost"] == {
            "actor": {"sub": "aunt", "role": "family"},
            "value": "declined",
            "at": finding["concurrent"]["lost"]["at"],
        }
        assert finding["concurrent"]["kept"]["actor"] == {"sub": "pat", "role": "planner"}


@pytest.mark.timeout(60)
async def test_erasing_a_member_or_a_guest_reaches_the_findings(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        finding = await race_over_http(http)
        assert finding["concurrent"]["lost"]["actor"] == {"sub": "aunt", "role": "family"}
        joined = await http.get("/api/weddings/w1/members", headers=MINT.headers("family", "aunt"))
        assert joined.status_code == 200, joined.text
        erased = await http.delete("/api/weddings/w1/members/aunt", headers=ADMIN)
        assert erased.status_code == 204, erased.text
        (after,) = await conflicts(http)
        assert after["id"] == finding["id"] and after["concurrent"]["lost"]["actor"] is None
        gone = await http.post("/api/weddings/w1/guests/g1/erase", headers=ADMIN)
        assert gone.status_code == 200, gone.text
        assert await conflicts(http) == []


@pytest.mark.timeout(60)
async def test_the_author_of_a_lost_write_hears_of_it(
    tmp_path: Path,
    smtp: tuple[Controller, Inbox],  # noqa: F811 (the fixture imported from test_threads)
) -> None:
    """In their inbox (reason ``overwritten``, the finding's id) and by email; the writer who
    won is told nothing."""
    controller, mailbox = smtp
    env = {
        **ENV,
        "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
        "CRDT_SERVER_EMAIL_DIGEST_SECONDS": "0",
        "CRDT_SERVER_EMAIL_FROM": "plans@example.com",
    }
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        for who in (PAT, AUNT):  # the directory learns them (and their addresses)
            assert (await http.get("/api/weddings/w1/members", headers=who)).status_code == 200
        finding = await race_over_http(http)
        inbox = await http.get("/api/weddings/w1/notifications", headers=AUNT)
        assert inbox.status_code == 200, inbox.text
        (notice,) = inbox.json()["notifications"]
        assert notice["reason"] == "overwritten" and notice["conflict"] == finding["id"]
        assert notice["thread"] is None and notice["actor"] == {"sub": "pat", "role": "planner"}
        theirs = await http.get("/api/weddings/w1/notifications", headers=PAT)
        assert theirs.json()["notifications"] == []
        await until(lambda: _arrived(mailbox))
        (mail,) = mailbox.messages
        assert mail["To"] == "aunt@example.com"
        assert mail["Subject"] == "A change of yours was lost"
        text = mail.get_body().get_content()  # type: ignore[union-attr]
        assert '"declined"' in text and '"accepted"' in text


async def _arrived(mailbox: Inbox) -> bool:
    return bool(mailbox.messages)
