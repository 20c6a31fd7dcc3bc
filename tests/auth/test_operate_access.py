"""The ``operate`` access level (issue 47): family reads the guest list and the seating over
its socket as a reader, and changes them only through the domain operations listed for the
level, over HTTP. Through a real server with real tokens."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio
from pycrdt import Map

from crdt_server.auth.permissions import (
    OPERATE_OPERATIONS,
    Access,
    PermissionMatrix,
    PermissionsError,
    operation_refusal,
)
from crdt_server.auth.tokens import TokenCodec
from tests.server import ServerProcess
from tests.yclient import YClient

pytestmark = [pytest.mark.timeout(60)]

SECRET = "test-secret-for-hs256-tokens-only"
CODEC = TokenCodec(algorithms=["HS256"], secret=SECRET.encode())
OPS = "/api/weddings/w1/docs/{doc}/ops"


def token(role: str, sub: str | None = None, **extra: Any) -> str:
    return CODEC.mint(sub=sub or role, role=role, wedding="w1", ttl=600, **extra)


def auth(role: str, **extra: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, **extra)}"}


ADMIN_KEY = "operate-tests-admin-key"


async def _server(tmp_path: Path, **env: str) -> AsyncIterator[ServerProcess]:
    settings = {"CRDT_SERVER_AUTH_SECRET": SECRET, "CRDT_SERVER_ADMIN_API_KEY": ADMIN_KEY, **env}
    async with ServerProcess(tmp_path / "data", env=settings, anonymous=False) as server:
        yield server


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    async for running in _server(tmp_path):
        yield running


async def _op(
    http: httpx.AsyncClient, doc: str, op: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    return await http.post(OPS.format(doc=doc), json=op, headers=headers)


async def _seed(http: httpx.AsyncClient) -> None:
    """The couple adds two guests and a table."""
    couple = auth("couple")
    for op in (
        {"op": "add_guest", "guest_id": "g1", "name": "Ada"},
        {"op": "add_guest", "guest_id": "g2", "name": "Bo"},
    ):
        assert (await _op(http, "guests", op, couple)).status_code == 200
    table = {"op": "add_table", "table_id": "t1", "name": "Roses", "capacity": 8}
    assert (await _op(http, "seating", table, couple)).status_code == 200


async def _json(http: httpx.AsyncClient, doc: str) -> dict[str, Any]:
    response = await http.get(f"/api/weddings/w1/docs/{doc}", headers=auth("couple"))
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


# -- the matrix -------------------------------------------------------------------------------


def test_family_operates_the_guests_and_seating_by_default() -> None:
    matrix = PermissionMatrix()
    for doc in ("guests", "seating"):
        access = matrix.access("family", doc)
        assert access is Access.OPERATE
        assert access.can_read and access.can_operate and not access.can_write
    assert set(OPERATE_OPERATIONS) == {"guests", "seating"}


def test_operate_is_accepted_in_a_matrix_and_refused_where_it_has_no_operations() -> None:
    matrix = PermissionMatrix.from_json(json.dumps({"vendor": {"seating": "operate"}}))
    assert matrix.access("vendor", "seating") is Access.OPERATE
    with pytest.raises(PermissionsError, match="operate has no operations on 'budget'"):
        PermissionMatrix.from_json(json.dumps({"vendor": {"budget": "operate"}}))
    with pytest.raises(PermissionsError, match="write, operate, read, none"):
        PermissionMatrix.from_json(json.dumps({"vendor": {"guests": "maybe"}}))


@pytest.mark.parametrize(
    ("doc", "op", "field"),
    [
        ("guests", {"op": "set_rsvp", "guest_id": "g1", "rsvp": "accepted"}, None),
        ("guests", {"op": "update_guest", "guest_id": "g1", "meal": "fish"}, None),
        ("guests", {"op": "update_guest", "guest_id": "g1", "name": "Eve"}, "name"),
        ("guests", {"op": "update_guest", "guest_id": "g1", "notes": "x"}, "notes"),
        ("guests", {"op": "add_guest", "name": "Eve"}, "op"),
        ("guests", {"op": "splice_notes", "guest_id": "g1"}, "op"),
        ("seating", {"op": "assign_seat", "guest_id": "g1", "table_id": "t1"}, None),
        ("seating", {"op": "unassign_seat", "guest_id": "g1"}, None),
        ("seating", {"op": "remove_table", "table_id": "t1"}, "op"),
        ("timeline", {"op": "add_timeline_item"}, "op"),
        ("guests", {"op": 3}, "op"),
    ],
)
def test_operation_refusal_names_the_field(doc: str, op: dict[str, Any], field: str | None) -> None:
    refusal = operation_refusal(doc, op)
    assert (refusal and refusal[1]) == field, refusal


# -- over a real server -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_family_cannot_write_the_guests_over_the_socket(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        await _seed(http)
    async with (
        YClient(server.ws_url, "w1/guests", token=token("couple")) as couple,
        YClient(server.ws_url, "w1/guests", token=token("family", "aunt")) as aunt,
    ):
        await couple.wait(couple.synced.is_set)
        # The aunt reads the guest list (state) as any reader does...
        await aunt.wait(lambda: "g1" in (aunt.doc.get("guests", type=Map).to_py() or {}))
        # ...and her writes are refused: not applied, not stored, not broadcast.
        aunt.doc.get("guests", type=Map)["g9"] = Map({"name": "Mallory"})
        await aunt.flush()
        await aunt.wait(lambda: len(aunt.denied) == 1)
        assert "read-only" in aunt.denied[0]
        couple.doc.get("guests", type=Map)["g3"] = Map({"name": "Cy"})
        await couple.flush()
        await couple.wait(couple.is_confirmed)
        await aunt.wait(lambda: "g3" in (aunt.doc.get("guests", type=Map).to_py() or {}))
        assert "g9" not in (couple.doc.get("guests", type=Map).to_py() or {})
        assert not aunt.closed.is_set()
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert set((await _json(http, "guests"))["guests"]) == {"g1", "g2", "g3"}
    async with YClient(server.ws_url, "w1/guests", token=token("couple", "fresh")) as fresh:
        await fresh.wait(fresh.synced.is_set)
        assert set(fresh.doc.get("guests", type=Map).to_py() or {}) == {"g1", "g2", "g3"}


@pytest.mark.asyncio
async def test_family_runs_each_listed_operation_over_http(server: ServerProcess) -> None:
    family = auth("family", sub="aunt")
    async with httpx.AsyncClient(base_url=server.url) as http:
        await _seed(http)
        runs = [
            ("guests", {"op": "set_rsvp", "guest_id": "g1", "rsvp": "accepted"}),
            (
                "guests",
                {
                    "op": "update_guest",
                    "guest_id": "g1",
                    "rsvp": "accepted",
                    "meal": "fish",
                    "dietary": ["nuts"],
                    "plus_one": True,
                },
            ),
            ("seating", {"op": "assign_seat", "guest_id": "g1", "table_id": "t1", "seat": 2}),
            ("seating", {"op": "assign_seat", "guest_id": "g2", "table_id": "t1"}),
            ("seating", {"op": "unassign_seat", "guest_id": "g2"}),
        ]
        for doc, op in runs:
            response = await _op(http, doc, op, family)
            assert response.status_code == 200, (op, response.text)
            assert response.json()["committed"] is True
        guest = (await _json(http, "guests"))["guests"]["g1"]
        assert guest["rsvp"] == "accepted" and guest["meal"] == "fish"
        assert guest["dietary"] == ["nuts"] and guest["plus_one"] is True
        seating = await _json(http, "seating")
        assert seating["assignments"] == {"g1": {"table_id": "t1", "seat": 2}}
        # Credited to the aunt, as any change is.
        history = await http.get("/api/weddings/w1/docs/guests/history", headers=family)
        assert history.json()["history"][0]["sub"] == "aunt"
        # What ``/access`` tells the app.
        access = await http.get("/api/weddings/w1/access", headers=family)
        assert access.status_code == 200
        docs = access.json()["docs"]
        assert docs["guests"] == docs["seating"] == "operate" and docs["timeline"] == "read"


@pytest.mark.asyncio
async def test_family_is_refused_every_other_change_with_403(server: ServerProcess) -> None:
    family = auth("family", sub="aunt")
    async with httpx.AsyncClient(base_url=server.url) as http:
        await _seed(http)
        refused = [
            ("guests", {"op": "update_guest", "guest_id": "g1", "name": "Eve"}, "name"),
            ("guests", {"op": "update_guest", "guest_id": "g1", "contact": "x@y"}, "contact"),
            (
                "guests",
                {"op": "update_guest", "guest_id": "g1", "meal": "a", "side": "both"},
                "side",
            ),
            ("guests", {"op": "add_guest", "guest_id": "g7", "name": "Eve"}, "op"),
            ("guests", {"op": "remove_guest", "guest_id": "g1"}, "op"),
            (
                "guests",
                {"op": "splice_notes", "guest_id": "g1", "index": 0, "delete": 0, "insert": "x"},
                "op",
            ),
            ("seating", {"op": "add_table", "table_id": "t2", "name": "X", "capacity": 2}, "op"),
            ("seating", {"op": "remove_table", "table_id": "t1"}, "op"),
        ]
        for doc, op, field in refused:
            response = await _op(http, doc, op, family)
            assert response.status_code == 403, (op, response.text)
            problem = response.json()
            assert problem["errors"][0]["field"] == field, problem
            assert field in problem["detail"]
        # A read-only document stays read-only; the binary routes stay closed.
        timeline = {"op": "add_timeline_item", "title": "x"}
        assert (await _op(http, "timeline", timeline, family)).status_code == 403
        update = await http.post(
            "/api/weddings/w1/docs/guests/update",
            content=b"\x00\x00",
            headers=family | {"Content-Type": "application/octet-stream"},
        )
        assert update.status_code == 403
        synced = await http.post(
            "/api/weddings/w1/docs/guests/sync",
            json={"state_vector": "AA==", "update": "AAA="},
            headers=family,
        )
        assert synced.status_code == 403
        guest = (await _json(http, "guests"))["guests"]["g1"]
        assert guest["name"] == "Ada" and not guest["contact"] and not guest["side"]
        assert set((await _json(http, "seating"))["tables"]) == {"t1"}


@pytest.mark.asyncio
async def test_a_token_override_grants_operate(server: ServerProcess) -> None:
    """A token's ``docs`` may say ``operate`` too (here: a couple's assistant)."""
    helper = auth("couple", sub="helper", docs={"guests": "operate"})
    async with httpx.AsyncClient(base_url=server.url) as http:
        await _seed(http)
        set_rsvp = {"op": "set_rsvp", "guest_id": "g2", "rsvp": "declined"}
        assert (await _op(http, "guests", set_rsvp, helper)).status_code == 200
        add = {"op": "add_guest", "guest_id": "g8", "name": "Eve"}
        assert (await _op(http, "guests", add, helper)).status_code == 403
        access = (await http.get("/api/weddings/w1/access", headers=helper)).json()
        assert access["docs"]["guests"] == "operate" and access["docs"]["seating"] == "write"
        # Where operate has no operations, a token saying so is malformed.
        now = int(time.time())
        claims = {"sub": "odd", "role": "couple", "wedding": "w1", "iat": now, "exp": now + 60}
        bad = jwt.encode(claims | {"docs": {"timeline": "operate"}}, SECRET, algorithm="HS256")
        odd = {"Authorization": f"Bearer {bad}"}
        assert (await http.get("/api/weddings/w1/access", headers=odd)).status_code == 401
        # The admin API mints such tokens, and refuses operate where it means nothing.
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        body = {"sub": "helper2", "role": "couple", "docs": {"seating": "operate"}}
        minted = await http.post("/api/weddings/w1/sessions", json=body, headers=admin)
        assert minted.status_code == 201, minted.text
        mine = {"Authorization": f"Bearer {minted.json()['token']}"}
        docs = (await http.get("/api/weddings/w1/access", headers=mine)).json()["docs"]
        assert docs["seating"] == "operate" and docs["guests"] == "write"
        body["docs"] = {"budget": "operate"}
        refused = await http.post("/api/weddings/w1/sessions", json=body, headers=admin)
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "docs"


@pytest.mark.asyncio
async def test_a_custom_matrix_gives_operate_to_another_role(tmp_path: Path) -> None:
    matrix = {
        "couple": {"guests": "write", "seating": "write", "timeline": "write", "budget": "write"},
        "vendor": {"guests": "read", "seating": "operate"},
    }
    async for server in _server(tmp_path, CRDT_SERVER_PERMISSIONS=json.dumps(matrix)):
        vendor = auth("vendor", sub="caterer")
        async with httpx.AsyncClient(base_url=server.url) as http:
            await _seed(http)
            seat = {"op": "assign_seat", "guest_id": "g1", "table_id": "t1"}
            assert (await _op(http, "seating", seat, vendor)).status_code == 200
            rsvp = {"op": "set_rsvp", "guest_id": "g1", "rsvp": "accepted"}
            assert (await _op(http, "guests", rsvp, vendor)).status_code == 403
            table = {"op": "add_table", "table_id": "t2", "name": "X", "capacity": 2}
            assert (await _op(http, "seating", table, vendor)).status_code == 403
            assert (await _json(http, "seating"))["assignments"]["g1"]["table_id"] == "t1"
            docs = (await http.get("/api/weddings/w1/access", headers=vendor)).json()["docs"]
            assert docs["seating"] == "operate" and docs["guests"] == "read"
            # Family is not in this matrix at all.
            family = auth("family")
            assert (await _op(http, "guests", rsvp, family)).status_code == 403
        async with YClient(server.ws_url, "w1/seating", token=token("vendor", "v2")) as socket:
            await socket.wait(socket.synced.is_set)
            socket.doc.get("tables", type=Map)["t9"] = Map({"name": "Mine"})
            await socket.flush()
            await socket.wait(lambda: len(socket.denied) == 1)


@pytest.mark.asyncio
async def test_write_restored_through_the_settings(tmp_path: Path) -> None:
    """The CHANGELOG's recipe: family back to ``write`` on the guests and the seating."""
    restore = {
        "couple": {"timeline": "write", "budget": "write", "guests": "write", "seating": "write"},
        "planner": {"timeline": "write", "budget": "write", "guests": "write", "seating": "write"},
        "family": {"timeline": "read", "budget": "none", "guests": "write", "seating": "write"},
        "vendor": {"timeline": "read", "budget": "none", "guests": "read", "seating": "read"},
        "friend": {"timeline": "read", "budget": "none", "guests": "none", "seating": "none"},
    }
    async for server in _server(tmp_path, CRDT_SERVER_PERMISSIONS=json.dumps(restore)):
        family = auth("family", sub="aunt")
        async with httpx.AsyncClient(base_url=server.url) as http:
            await _seed(http)
            rename = {"op": "update_guest", "guest_id": "g1", "name": "Ada Lovelace"}
            assert (await _op(http, "guests", rename, family)).status_code == 200
            access = (await http.get("/api/weddings/w1/access", headers=family)).json()
            assert access["docs"]["guests"] == "write"
        async with YClient(server.ws_url, "w1/guests", token=token("family", "aunt")) as aunt:
            await aunt.wait(aunt.synced.is_set)
            aunt.doc.get("guests", type=Map)["g5"] = Map({"name": "Flo"})
            await aunt.flush()
            await aunt.wait(aunt.is_confirmed)
            assert aunt.denied == []
        async with httpx.AsyncClient(base_url=server.url) as http:
            guests = (await _json(http, "guests"))["guests"]
            assert guests["g1"]["name"] == "Ada Lovelace" and guests["g5"]["name"] == "Flo"


async def _history(http: httpx.AsyncClient, doc: str) -> list[dict[str, Any]]:
    response = await http.get(f"/api/weddings/w1/docs/{doc}/history", headers=auth("couple"))
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["history"]
    return found


async def _events(http: httpx.AsyncClient, kind: str) -> list[dict[str, Any]]:
    response = await http.get(
        "/api/weddings/w1/events", params={"limit": 500}, headers=auth("couple")
    )
    assert response.status_code == 200, response.text
    return [e for e in response.json()["events"] if e["type"] == kind]


@pytest.mark.asyncio
async def test_an_idempotency_key_runs_an_operation_once(server: ServerProcess) -> None:
    """The family app's queue sends each operation with its own ``Idempotency-Key`` and
    sends it again when the answer was lost: the same key with the same body answers the
    first answer and changes nothing; with another body, 409; another subject's key of the
    same name is its own (API.md, Idempotency)."""
    couple, aunt = auth("couple", sub="cam"), auth("family", sub="aunt")
    async with httpx.AsyncClient(base_url=server.url) as http:
        await _seed(http)
        # The server names the guest: a replay must name the same one, not add another.
        add = {"op": "add_guest", "name": "Cy"}
        first = await _op(http, "guests", add, couple | {"Idempotency-Key": "k-1"})
        assert first.status_code == 200, first.text
        again = await _op(http, "guests", add, couple | {"Idempotency-Key": "k-1"})
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
        assert again.headers.get("idempotent-replayed") == "true"
        assert "idempotent-replayed" not in first.headers
        assert len((await _json(http, "guests"))["guests"]) == 3
        assert len(await _events(http, "guest.added")) == 3

        # The family's queue: an answer sent twice is one change, one event.
        rsvp = {"op": "set_rsvp", "guest_id": "g1", "rsvp": "accepted"}
        seqs = len(await _history(http, "guests"))
        for _ in range(2):
            sent = await _op(http, "guests", rsvp, aunt | {"Idempotency-Key": "q-1"})
            assert sent.status_code == 200, sent.text
        assert len(await _history(http, "guests")) == seqs + 1
        assert len(await _events(http, "guest.rsvp_changed")) == 1
        # Meanwhile the couple changes the answer: the aunt's retry does not put hers back.
        declined = {"op": "set_rsvp", "guest_id": "g1", "rsvp": "declined"}
        assert (await _op(http, "guests", declined, couple)).status_code == 200
        replay = await _op(http, "guests", rsvp, aunt | {"Idempotency-Key": "q-1"})
        assert replay.status_code == 200, replay.text
        assert (await _json(http, "guests"))["guests"]["g1"]["rsvp"] == "declined"

        # The same key with another body: 409, nothing changed.
        other = {"op": "set_rsvp", "guest_id": "g2", "rsvp": "accepted"}
        clash = await _op(http, "guests", other, aunt | {"Idempotency-Key": "q-1"})
        assert clash.status_code == 409, clash.text
        assert clash.headers["content-type"].startswith("application/problem+json")
        assert (await _json(http, "guests"))["guests"]["g2"]["rsvp"] == "pending"

        # Another subject's key of the same name, or another document's, is its own.
        uncle = auth("family", sub="uncle")
        assert (await _op(http, "guests", other, uncle | {"Idempotency-Key": "q-1"})).is_success
        assert (await _json(http, "guests"))["guests"]["g2"]["rsvp"] == "accepted"
        seat = {"op": "assign_seat", "guest_id": "g2", "table_id": "t1"}
        assert (await _op(http, "seating", seat, aunt | {"Idempotency-Key": "q-1"})).is_success
        assert (await _json(http, "seating"))["assignments"]["g2"]["table_id"] == "t1"

        # A key is 1 to 255 characters.
        long = await _op(http, "guests", rsvp, aunt | {"Idempotency-Key": "k" * 256})
        assert long.status_code == 400, long.text
        # A refusal is not kept: the same key may carry the operation once it can run.
        missing = {"op": "set_rsvp", "guest_id": "g9", "rsvp": "accepted"}
        refused = await _op(http, "guests", missing, couple | {"Idempotency-Key": "k-2"})
        assert refused.status_code == 422, refused.text
        assert (await _op(http, "guests", add, couple | {"Idempotency-Key": "k-2"})).is_success
