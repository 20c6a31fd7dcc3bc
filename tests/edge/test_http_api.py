"""The HTTP API through a real server: every endpoint, its refusals and bad bodies."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pycrdt import Doc, Map, Text

from crdt_server.auth.tokens import TokenCodec
from crdt_server.codec.protocol import read_var_uint, write_var_uint
from crdt_server.documents import apply_operation
from tests.server import FreshWedding, ServerProcess
from tests.yclient import YClient

SECRET = "http-api-test-secret-at-least-32-bytes"
ADMIN = "http-admin-key"
CODEC = TokenCodec(algorithms=["HS256"], secret=SECRET.encode())


WEDDING = FreshWedding("api")
"""The running test's wedding: a fresh one per test on the module's server."""


@pytest.fixture(autouse=True)
def fresh_wedding() -> None:
    WEDDING.renew()


def auth(role: str = "planner", sub: str = "pat", wedding: str | None = None) -> dict[str, str]:
    token = CODEC.mint(sub=sub, role=role, wedding=wedding or WEDDING.id, ttl=600)
    return {"Authorization": f"Bearer {token}"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[ServerProcess, httpx.AsyncClient]]:
    """One server for the module; each test works on a wedding of its own (``WEDDING.id``)."""
    env = {"CRDT_SERVER_AUTH_SECRET": SECRET, "CRDT_SERVER_ADMIN_API_KEY": ADMIN}
    async with (
        ServerProcess(tmp_path_factory.mktemp("api") / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        yield server, http


def replica_state(update: bytes) -> bytes:
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    return doc.get_state()


def ws_token(role: str = "planner", sub: str = "ws") -> str:
    return CODEC.mint(sub=sub, role=role, wedding=WEDDING.id, ttl=600)


async def op(http: httpx.AsyncClient, doc: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
    return await http.post(
        f"/api/weddings/{WEDDING.id}/docs/{doc}/ops", json=body, headers=auth(**kw)
    )


@pytest.mark.asyncio(loop_scope="module")
async def test_operations_are_committed_and_broadcast(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = api
    async with YClient(server.ws_url, f"{WEDDING.id}/guests", token=ws_token()) as editor:
        await editor.wait(editor.synced.is_set)
        response = await op(
            http, "guests", {"op": "add_guest", "guest_id": "g1", "name": "Ann Lee"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["committed"] is True
        await editor.wait(lambda: "g1" in (editor.doc.get("guests", type=Map).to_py() or {}))
    read = await http.get(WEDDING.at("/docs/guests"), headers=auth("vendor"))
    assert read.status_code == 200
    assert read.json()["guests"]["g1"]["name"] == "Ann Lee"
    binary = await http.get(
        WEDDING.at("/docs/guests"),
        headers={**auth(), "Accept": "application/octet-stream"},
    )
    doc: Doc[Any] = Doc()
    doc.apply_update(binary.content)
    assert doc.get("guests", type=Map).to_py()["g1"]["name"] == "Ann Lee"
    history = await http.get(WEDDING.at("/docs/guests/history"), headers=auth())
    assert history.json()["history"][0]["origin"] == "http:pat"


@pytest.mark.asyncio(loop_scope="module")
async def test_invalid_operations_change_nothing(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    before = (await http.get(WEDDING.at("/docs/guests"), headers=auth())).json()
    cases = [
        ({"op": "add_guest"}, 400),  # missing name
        ({"op": "add_guest", "name": "A", "colour": "red"}, 400),  # unknown field
        ({"op": "set_rsvp", "guest_id": "g1", "rsvp": "maybe"}, 400),
        ({"op": "remove_guest", "guest_id": "nobody"}, 422),
        ({"op": "add_table", "name": "Rose", "capacity": 8}, 400),  # a seating op on guests
        ({"nope": 1}, 400),
    ]
    for body, status in cases:
        response = await op(http, "guests", body)
        assert response.status_code == status, (body, response.text)
        assert "error" in response.json()
    bad_json = await http.post(WEDDING.at("/docs/guests/ops"), content=b"{oops", headers=auth())
    assert bad_json.status_code == 400
    assert (await http.get(WEDDING.at("/docs/guests"), headers=auth())).json() == before
    history = await http.get(WEDDING.at("/docs/guests/history"), headers=auth())
    assert history.json()["history"] == []


@pytest.mark.asyncio(loop_scope="module")
async def test_permissions_are_those_of_the_rooms(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    assert (await http.get(WEDDING.at("/docs/guests"))).status_code == 401
    assert (await http.get(WEDDING.at("/docs/budget"), headers=auth("vendor"))).status_code == 403
    assert (await http.get("/api/weddings/w2/docs/guests", headers=auth())).status_code == 403
    assert (await http.get(WEDDING.at("/docs/menu"), headers=auth())).status_code == 404
    refused = await op(http, "guests", {"op": "add_guest", "name": "X"}, role="vendor")
    assert refused.status_code == 403
    update = await http.post(
        WEDDING.at("/docs/guests/update"), content=b"\x00\x00", headers=auth("vendor")
    )
    assert update.status_code == 403
    assert (await http.get(WEDDING.at("/presence"), headers=auth("friend"))).status_code == 200
    assert (await http.get("/api/weddings/w9/presence", headers=auth())).status_code == 403


@pytest.mark.asyncio(loop_scope="module")
async def test_binary_update_endpoint(api: tuple[ServerProcess, httpx.AsyncClient]) -> None:
    server, http = api
    doc: Doc[Any] = Doc()
    doc.get("notes", type=Text).insert(0, "call the florist")
    url = WEDDING.at("/docs/timeline/update")
    async with YClient(server.ws_url, f"{WEDDING.id}/timeline", token=ws_token()) as editor:
        await editor.wait(editor.synced.is_set)
        response = await http.post(url, content=doc.get_update(), headers=auth())
        assert response.json() == {"committed": True, "changed": True}
        await editor.wait(lambda: str(editor.doc.get("notes", type=Text)) == "call the florist")
    again = await http.post(url, content=doc.get_update(), headers=auth())
    assert again.json() == {"committed": True, "changed": False}
    assert (await http.post(url, content=b"\x05\x99\x99", headers=auth())).status_code == 400
    assert (await http.post(url, content=b"", headers=auth())).status_code == 400


@pytest.mark.asyncio(loop_scope="module")
async def test_offline_mobile_client_converges_with_live_editors(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    """A phone edits offline, then syncs over HTTP; live editors edited meanwhile."""
    server, http = api
    phone: Doc[Any] = Doc()
    url = WEDDING.at("/docs/guests/sync")
    first = await http.post(url, json={"state_vector": "", "update": ""}, headers=auth())
    assert first.status_code == 200
    phone.apply_update(base64.b64decode(first.json()["update"]))
    synced_state = phone.get_state()

    async with YClient(server.ws_url, f"{WEDDING.id}/guests", token=ws_token()) as editor:
        await editor.wait(editor.synced.is_set)
        # Offline on the phone; live on the laptop.
        phone.get("guests", type=Map)["from-phone"] = "Aunt May"
        editor.doc.get("guests", type=Map)["from-laptop"] = "Uncle Bob"
        await editor.flush()
        await editor.wait(editor.is_confirmed)

        pending = phone.get_update(synced_state)
        body = {
            "state_vector": base64.b64encode(phone.get_state()).decode(),
            "update": base64.b64encode(pending).decode(),
        }
        response = await http.post(url, json=body, headers=auth())
        assert response.status_code == 200, response.text
        phone.apply_update(base64.b64decode(response.json()["update"]))
        expected = {"from-phone": "Aunt May", "from-laptop": "Uncle Bob"}
        assert phone.get("guests", type=Map).to_py() == expected
        await editor.wait(lambda: editor.doc.get("guests", type=Map).to_py() == expected)

    # The binary form: two varUint8Arrays each way.
    binary = write_var_uint(1) + b"\x00" + write_var_uint(2) + b"\x00\x00"
    response = await http.post(
        url, content=binary, headers={**auth(), "Content-Type": "application/octet-stream"}
    )
    length, pos = read_var_uint(response.content, 0)
    fresh: Doc[Any] = Doc()
    fresh.apply_update(response.content[pos : pos + length])
    assert fresh.get("guests", type=Map).to_py() == expected
    for bad in (b"\x05ab", binary + b"\x00"):
        refused = await http.post(
            url, content=bad, headers={**auth(), "Content-Type": "application/octet-stream"}
        )
        assert refused.status_code == 400
    assert (await http.post(url, json={"update": "!!"}, headers=auth())).status_code == 400


@pytest.mark.asyncio(loop_scope="module")
async def test_presence_and_conflicts(api: tuple[ServerProcess, httpx.AsyncClient]) -> None:
    server, http = api
    await op(http, "seating", {"op": "add_table", "table_id": "t1", "name": "Rose", "capacity": 1})
    base = (
        await http.get(
            WEDDING.at("/docs/seating"),
            headers={**auth(), "Accept": "application/octet-stream"},
        )
    ).content
    # Two planners offline each seat a guest at the one-seat table: both valid alone, a
    # conflict together, which only the invariant check can report.
    for guest in ("g1", "g2"):
        await op(http, "guests", {"op": "add_guest", "guest_id": guest, "name": guest})
        replica: Doc[Any] = Doc()
        replica.apply_update(base)
        apply_operation(
            replica, "seating", {"op": "assign_seat", "guest_id": guest, "table_id": "t1"}
        )
        await http.post(
            WEDDING.at("/docs/seating/update"),
            content=replica.get_update(replica_state(base)),
            headers=auth(),
        )
    async with YClient(
        server.ws_url, f"{WEDDING.id}/seating", token=ws_token("family", "aunt")
    ) as aunt:
        await aunt.wait(aunt.synced.is_set)
        presence = (await http.get(WEDDING.at("/presence"), headers=auth())).json()
        assert {"doc": "seating", "user_id": "aunt", "role": "family"}.items() <= presence[
            "presence"
        ][0].items()
    # Editors watch the server-kept conflicts room; the finding shows up there too.
    async with YClient(server.ws_url, f"{WEDDING.id}/conflicts", token=ws_token()) as watcher:
        await watcher.wait(
            lambda: any(
                c["code"] == "seating.table_over_capacity"
                for c in (watcher.doc.get("conflicts", type=Map).to_py() or {}).values()
            )
        )
        watcher.doc.get("conflicts", type=Map)["forged"] = {"code": "x"}
        await watcher.flush()
        await watcher.wait(lambda: len(watcher.denied) == 1)  # nobody writes it but the server
    room_json = (await http.get(WEDDING.at("/docs/conflicts"), headers=auth())).json()
    assert any(c["code"] == "seating.table_over_capacity" for c in room_json["conflicts"])
    assert all(c.get("code") != "x" for c in room_json["conflicts"])
    assert (
        await http.get(WEDDING.at("/docs/conflicts"), headers=auth("vendor"))
    ).status_code == 403  # vendors may not read the budget, so not the conflicts either
    conflicts = (await http.get(WEDDING.at("/conflicts"), headers=auth())).json()["conflicts"]
    codes = {c["code"] for c in conflicts}
    assert "seating.table_over_capacity" in codes, conflicts
    friend = (await http.get(WEDDING.at("/conflicts"), headers=auth("friend"))).json()
    assert friend["conflicts"] == []  # friends cannot see the seating plan


@pytest.mark.asyncio(loop_scope="module")
async def test_delete_wedding_closes_rooms_with_4404(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = api
    await op(http, "guests", {"op": "add_guest", "guest_id": "g1", "name": "Ann"})
    async with YClient(server.ws_url, f"{WEDDING.id}/guests", token=ws_token()) as editor:
        await editor.wait(editor.synced.is_set)
        assert (await http.delete(WEDDING.at())).status_code == 401
        assert (await http.delete(WEDDING.at(), headers=auth())).status_code == 401
        admin = {"Authorization": f"Bearer {ADMIN}"}
        response = await http.delete(WEDDING.at(), headers=admin)
        assert response.status_code == 200 and response.json()["documents_deleted"] >= 1
        await editor.wait(editor.closed.is_set)
        assert editor.close_code == 4404
    # Erased and tombstoned (issue 15.8): gone for good, not an empty wedding.
    after = await http.get(WEDDING.at("/docs/guests"), headers=auth())
    assert after.status_code == 410
    assert (await http.get(WEDDING.at("/docs/guests/history"), headers=auth())).status_code == 410


@pytest.mark.asyncio(loop_scope="module")
async def test_openapi_describes_every_route(api: tuple[ServerProcess, httpx.AsyncClient]) -> None:
    from crdt_server.app import create_app
    from crdt_server.settings import Settings

    _, http = api
    spec = (await http.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    app = create_app(Settings())
    http_paths = {
        route.path
        for route in app.routes
        if getattr(route, "methods", None) and getattr(route, "include_in_schema", True)
    }
    assert http_paths == set(spec["paths"])
