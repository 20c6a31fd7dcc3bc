"""After a store restore, the clients that hold the lost tail re-send it inside an adoption
window (crdt_server.core.adoption, ``crdt-server clients adopt --since SEQ``): every edit
survives, each credited to its writer, not to whoever re-sent it first; a relay of an
owner's ids once the owner is back is a squat again."""

from __future__ import annotations

import base64
import re
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from pycrdt import Doc, Map

from crdt_server.codec.updates import decode_state_vector
from crdt_server.core.adoption import split
from crdt_server.testing.tokens import TokenMinter, new_secret
from tests.server import ServerProcess, cli

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(180)]

MINT = TokenMinter(new_secret())
W = "w-restored"
URL = f"/api/weddings/{W}/docs/guests"
PEOPLE = {"ann": ("couple", 8101), "bob": ("couple", 8102), "pat": ("planner", 8103)}


def headers(sub: str, *, binary: bool = True) -> dict[str, str]:
    found = {"Authorization": f"Bearer {MINT(sub=sub, role=PEOPLE[sub][0], wedding=W)}"}
    if binary:
        found["Content-Type"] = "application/octet-stream"
    return found


def edit(doc: Doc[Any], key: str, value: str) -> bytes:
    before = doc.get_state()
    doc.get("guests", type=Map)[key] = {"name": value}
    return doc.get_update(before)


async def send(http: httpx.AsyncClient, sub: str, update: bytes) -> httpx.Response:
    return await http.post(f"{URL}/update", content=update, headers=headers(sub))


async def server_state(http: httpx.AsyncClient) -> bytes:
    response = await http.get(URL, headers=headers("ann", binary=False))
    assert response.status_code == 200, response.text
    return base64.b64decode(response.headers["Yjs-State-Vector"])


async def names(http: httpx.AsyncClient) -> dict[str, str]:
    response = await http.get(URL, headers=headers("ann", binary=False))
    return {k: v["name"] for k, v in response.json()["guests"].items()}


async def catch_up(http: httpx.AsyncClient, docs: dict[str, Doc[Any]]) -> None:
    """Each client receives what the others wrote (as their sockets would)."""
    body = {"state_vector": "", "update": ""}
    response = await http.post(f"{URL}/sync", json=body, headers=headers("ann", binary=False))
    assert response.status_code == 200, response.text
    for doc in docs.values():
        doc.apply_update(base64.b64decode(response.json()["update"]))


def resend(doc: Doc[Any], held: bytes) -> bytes:
    """A reconnecting client's sync step 2: all it holds past the server's state."""
    return doc.get_update(held)


async def test_split_parts_by_owner_keep_every_item() -> None:
    one: Doc[Any] = Doc(client_id=1)
    edit(one, "a", "A")
    two: Doc[Any] = Doc(client_id=2)
    two.apply_update(one.get_update())
    edit(two, "b", "B")
    del two.get("guests", type=Map)["a"]
    parts = split(two.get_update(), {1: "ann"})
    assert [owner for owner, _ in parts] == ["ann", None]
    again: Doc[Any] = Doc()
    for _, part in reversed(parts):  # in any order: a part waits on what it lacks
        again.apply_update(part)
    assert again.get("guests", type=Map).to_py() == two.get("guests", type=Map).to_py()


async def test_a_restored_store_takes_the_lost_tail_back_credited_to_its_writers(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    backup = tmp_path / "backup.sqlite3"
    server = ServerProcess(data, env=MINT.env)
    server.anonymous = False
    docs = {sub: Doc(client_id=client) for sub, (_, client) in PEOPLE.items()}
    async with server, httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for sub, doc in docs.items():
            response = await send(http, sub, edit(doc, f"g-{sub}", sub.title()))
            assert response.json() == {"committed": True, "changed": True}
        await catch_up(http, docs)
        code, _, err = await cli("backup", "--data-dir", str(data), str(backup))
        assert code == 0, err
        # The tail the backup lacks: ann and bob under their ids, pat from a new tab (a
        # fresh id, whose owner the restore loses with it).
        docs["pat"] = Doc(client_id=8104)
        docs["pat"].apply_update(docs["ann"].get_update())
        for sub, doc in docs.items():
            response = await send(http, sub, edit(doc, f"g-{sub}-2", f"{sub.title()} 2"))
            assert response.json() == {"committed": True, "changed": True}
        await catch_up(http, docs)
        everything = await names(http)
    assert len(everything) == 6

    code, out, err = await cli("restore", str(backup), "--data-dir", str(data), "--force")
    assert code == 0, err
    found = re.search(r"--since (\d+)", out)
    assert found, out
    since = found.group(1)
    code, out, err = await cli("clients", "adopt", "--since", since, "--data-dir", str(data))
    assert code == 0, err
    assert f"since seq {since}" in out

    async with server, httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        held = await server_state(http)
        assert len(await names(http)) == 3  # the tail is gone from the store
        # Ann comes back first: her step 2 carries her tail, bob's and pat's.
        relayed = resend(docs["ann"], held)
        assert {8101, 8102, 8104} <= set(decode_state_vector(docs["ann"].get_state()))
        response = await send(http, "ann", relayed)
        assert response.json() == {"committed": True, "changed": True}, response.text
        # Then the others: what they hold is there already, the same items: no-ops.
        for sub in ("bob", "pat"):
            response = await send(http, sub, resend(docs[sub], held))
            assert response.json()["committed"] is True, response.text
        assert await names(http) == everything
        # Ann is back (she wrote since the restore): a relay of new items under her id
        # is a squat again, window or not.
        squatter: Doc[Any] = Doc(client_id=8101)
        squatter.apply_update(docs["ann"].get_update())
        response = await send(http, "pat", edit(squatter, "g-x", "Squatter"))
        assert response.status_code == 422, response.text
        assert response.json()["errors"] == [{"field": "client_id", "message": "8101"}]
        # Each keeps writing under their own id.
        for sub, doc in docs.items():
            response = await send(http, sub, edit(doc, f"g-{sub}-3", f"{sub.title()} 3"))
            assert response.json() == {"committed": True, "changed": True}, response.text
        assert len(await names(http)) == 9

    with sqlite3.connect(data / "crdt.sqlite3") as conn:
        rows = conn.execute(
            "SELECT sub, origin FROM history WHERE seq > ? AND doc = ? ORDER BY seq",
            (int(since), f"{W}/guests"),
        ).fetchall()
    adopted = [(sub, origin) for sub, origin in rows if origin.startswith("adopted:")]
    # Bob's tail came back in ann's step 2, credited to bob through ann's channel.
    assert [sub for sub, _ in adopted] == ["bob"], rows
    assert rows[0][0] in ("ann", "bob") and ("ann", adopted[0][1][len("adopted:") :]) in rows
