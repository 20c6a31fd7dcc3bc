"""Collaborative notes over HTTP, against a stock JavaScript Yjs client: who reads them,
``set_notes`` keeping concurrent typing, ``splice_notes`` in UTF-16 units with emoji."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from crdt_server.auth.tokens import TokenCodec
from crdt_server.testing.waits import until
from tests.jsclient import JsClient, JsClientGroup, text_delete, text_insert
from tests.server import FreshWedding, ServerProcess

SECRET = "notes-http-test-secret-at-least-32-bytes"
CODEC = TokenCodec(algorithms=["HS256"], secret=SECRET.encode())
WEDDING = FreshWedding("notes")
NOTE = "Hi 😀 there"  # the emoji is one Python character, two UTF-16 units, four bytes
GUEST_NOTES = ["g1", "notes"]
GUEST = {"name": "Ann", "rsvp": "pending", "dietary": [], "plus_one": False}
"""The guest the tests add, as a Yjs client's toJSON shows it (notes apart)."""


@pytest.fixture(autouse=True)
def fresh_wedding() -> None:
    WEDDING.renew()


def token(role: str = "planner", sub: str = "pat") -> str:
    return CODEC.mint(sub=sub, role=role, wedding=WEDDING.id, ttl=600)


def auth(role: str = "planner") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role)}"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[ServerProcess, httpx.AsyncClient]]:
    env = {"CRDT_SERVER_AUTH_SECRET": SECRET}
    async with (
        ServerProcess(tmp_path_factory.mktemp("notes") / "data", env=env, anonymous=False) as s,
        httpx.AsyncClient(base_url=s.url, timeout=10) as http,
    ):
        yield s, http


async def op(http: httpx.AsyncClient, doc: str, body: dict[str, Any]) -> httpx.Response:
    return await http.post(WEDDING.at(f"/docs/{doc}/ops"), json=body, headers=auth())


async def read(http: httpx.AsyncClient, doc: str, role: str = "planner") -> httpx.Response:
    answer = await http.get(WEDDING.at(f"/docs/{doc}"), headers=auth(role))
    assert answer.status_code == 200, answer.text
    return answer


async def server_reads(http: httpx.AsyncClient, notes: str) -> httpx.Response:
    """The guest list's view once the server's copy of g1's notes reads ``notes``: a Yjs
    client's ``wait_for`` sees its own edit at once, before the server has it."""

    async def shown() -> httpx.Response | None:
        view = await read(http, "guests")
        return view if view.json()["guests"]["g1"]["notes"] == notes else None

    return await until(shown)


async def guest_with_notes(http: httpx.AsyncClient, notes: str) -> None:
    added = await op(
        http, "guests", {"op": "add_guest", "guest_id": "g1", "name": "Ann"} | {"notes": notes}
    )
    assert added.status_code == 200, added.text


async def js_editor(group: JsClientGroup, server: ServerProcess, client_id: int) -> JsClient:
    js = await group.start()
    await js.connect(
        server.ws_url, f"{WEDDING.id}/guests", params={"token": token()}, client_id=client_id
    )
    await js.wait_synced()
    return js


def utf16_splice(value: str, index: int, delete: int, insert: str) -> str:
    """What JavaScript's ``s.slice(0, i) + insert + s.slice(i + delete)`` gives."""
    units = value.encode("utf-16-le")
    head, tail = units[: 2 * index], units[2 * (index + delete) :]
    return (head + insert.encode("utf-16-le") + tail).decode("utf-16-le")


def relative_position(client: int, clock: int, assoc: int = 0) -> str:
    """Yjs's ``encodeRelativePosition`` of an item id (lib0: tag 0, client, clock, assoc)."""

    def var_uint(value: int) -> bytes:
        out = bytearray()
        while value > 0x7F:
            out.append(0x80 | (value & 0x7F))
            value >>= 7
        out.append(value)
        return bytes(out)

    assoc_byte = b"\x00" if assoc == 0 else b"\x41"  # lib0 varInt of 0 and -1
    return base64.b64encode(b"\x00" + var_uint(client) + var_uint(clock) + assoc_byte).decode()


@pytest.mark.asyncio(loop_scope="module")
async def test_guest_notes_are_private_the_run_of_show_is_not(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    await guest_with_notes(http, "Do not seat next to her ex")
    item = {"op": "add_timeline_item", "item_id": "i1", "title": "Ceremony", "notes": "Garden"}
    item |= {"start": "2026-06-13T14:00:00Z", "end": "2026-06-13T15:00:00Z"}
    assert (await op(http, "timeline", item)).status_code == 200
    for role in ("couple", "planner", "family"):
        guest = (await read(http, "guests", role)).json()["guests"]["g1"]
        assert guest["notes"] == "Do not seat next to her ex", role
    vendor = (await read(http, "guests", "vendor")).json()["guests"]["g1"]
    assert "notes" not in vendor and vendor["dietary"] == [] and vendor["name"] == "Ann"
    timeline = (await read(http, "timeline", "friend")).json()
    assert timeline["items"]["i1"]["notes"] == "Garden"
    assert "runofshow" in timeline  # null until an editor writes one; read by friends too


@pytest.mark.js
@pytest.mark.asyncio(loop_scope="module")
async def test_set_notes_keeps_what_someone_types_elsewhere(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = api
    await guest_with_notes(http, NOTE)
    async with JsClientGroup() as group:
        js = await js_editor(group, server, 4711)
        # The editor types at the start while its connection is down; the back office sets
        # the note with a new ending meanwhile: the smallest splice touches only the end,
        # so once the editor is back both edits are there, on both sides.
        await js.disconnect()
        await js.edit(text_insert("guests", 0, "Ada: ", path=GUEST_NOTES))
        done = await op(http, "guests", {"op": "set_notes", "guest_id": "g1", "notes": NOTE + "!"})
        assert done.status_code == 200, done.text
        await js.reconnect()
        expected = "Ada: " + NOTE + "!"
        await js.wait_for({"guests": {"g1": GUEST | {"notes": expected}}})
        await server_reads(http, expected)


@pytest.mark.js
@pytest.mark.asyncio(loop_scope="module")
async def test_splice_counts_utf16_units_as_yjs_does(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = api
    await guest_with_notes(http, NOTE)
    async with JsClientGroup() as group:
        js = await js_editor(group, server, 4712)
        # A stock Yjs client inserts after the emoji: UTF-16 index 5 ("Hi " + two units).
        await js.edit(text_insert("guests", 5, "🎉", path=GUEST_NOTES))
        after_js = utf16_splice(NOTE, 5, 0, "🎉")
        assert after_js == "Hi 😀🎉 there"
        await js.wait_for({"guests": {"g1": GUEST | {"notes": after_js}}})
        view = await server_reads(http, after_js)
        # The back office splices by index, in the same units, against the state it read:
        # replace the 🎉 (two units at 5) by "é!".
        splice = {"op": "splice_notes", "guest_id": "g1", "index": 5, "delete": 2}
        splice |= {"insert": "é!", "state_vector": view.headers["Yjs-State-Vector"]}
        done = await op(http, "guests", splice)
        assert done.status_code == 200, done.text
        expected = utf16_splice(after_js, 5, 2, "é!")
        assert expected == "Hi 😀é! there"
        assert done.json()["result"] | {"position": None} == {
            "op": "splice_notes",
            "id": "g1",
            "changed": True,
            "index": 5,
            "length": len(expected.encode("utf-16-le")) // 2,
            "position": None,
        }
        await js.wait_for({"guests": {"g1": GUEST | {"notes": expected}}})
        assert (await read(http, "guests")).json()["guests"]["g1"]["notes"] == expected
        # The same state vector again: the document changed since, so the index is refused.
        stale = await op(http, "guests", splice)
        assert stale.status_code == 409, stale.text
        assert stale.json()["errors"][0]["field"] == "state_vector"
        # The answer's position follows concurrent typing: the editor deletes "Hi ", then
        # the back office inserts at that position (just after "é!").
        position = done.json()["result"]["position"]
        await js.edit(text_delete("guests", 0, 3, path=GUEST_NOTES))
        await js.wait_for({"guests": {"g1": GUEST | {"notes": expected[3:]}}})
        await server_reads(http, expected[3:])
        more = {"op": "splice_notes", "guest_id": "g1", "position": position, "insert": "?"}
        moved = await op(http, "guests", more)
        assert moved.status_code == 200, moved.text
        final = "😀é!? there"
        assert moved.json()["result"]["index"] == 4
        await js.wait_for({"guests": {"g1": GUEST | {"notes": final}}})


@pytest.mark.js
@pytest.mark.asyncio(loop_scope="module")
async def test_splice_at_a_yjs_relative_position(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = api
    await guest_with_notes(http, NOTE)
    async with JsClientGroup() as group:
        js = await js_editor(group, server, 4713)
        await js.edit(text_insert("guests", 3, "🌱x", path=GUEST_NOTES))  # clocks 0-1 and 2
        await js.wait_for({"guests": {"g1": GUEST | {"notes": "Hi 🌱x😀 there"}}})
        await server_reads(http, "Hi 🌱x😀 there")
        # The editor's own cursor positions, made by Yjs: before the "x" (after the 🌱,
        # UTF-16 index 5), and the end of the text (the type form).
        before_x = await js.relative_position("guests", 5, path=GUEST_NOTES)
        assert before_x == relative_position(4713, 2)  # Yjs's encoding: the x's id
        at_x = {"op": "splice_notes", "guest_id": "g1", "position": before_x}
        done = await op(http, "guests", at_x | {"insert": "+"})
        assert done.status_code == 200, done.text
        assert done.json()["result"]["index"] == 5
        await js.wait_for({"guests": {"g1": GUEST | {"notes": "Hi 🌱+x😀 there"}}})
        end = await js.relative_position(
            "guests", len("Hi 🌱+x😀 there".encode("utf-16-le")) // 2, path=GUEST_NOTES
        )
        at_end = await op(http, "guests", at_x | {"position": end, "insert": " 🎂"})
        assert at_end.status_code == 200, at_end.text
        await js.wait_for({"guests": {"g1": GUEST | {"notes": "Hi 🌱+x😀 there 🎂"}}})
        # The answer's position (after what was inserted) as the Yjs client reads it.
        answer = base64.b64decode(at_end.json()["result"]["position"])
        assert answer[-1:] == b"\x41"  # assoc -1: sticks to the 🎂
        # A position of an item this document does not have, and one that is not base64.
        unknown = await op(http, "guests", at_x | {"position": relative_position(99, 0)})
        assert unknown.status_code in (409, 422), unknown.text
        assert unknown.json()["errors"][0]["field"] == "position"
        bad = await op(http, "guests", at_x | {"position": "%%"})
        assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "position"


@pytest.mark.asyncio(loop_scope="module")
async def test_splice_refusals_name_their_field(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    await guest_with_notes(http, NOTE)
    state = (await read(http, "guests")).headers["Yjs-State-Vector"]
    base = {"op": "splice_notes", "guest_id": "g1", "state_vector": state}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"index": 4}, 422, "index"),  # inside the emoji
        ({"index": 99}, 422, "index"),
        ({"index": 0, "delete": 99}, 422, "delete"),
        ({"index": -1}, 400, "index"),
        ({"index": 0, "insert": 3}, 400, "insert"),
        ({"index": 0, "colour": "red"}, 400, "colour"),
        ({"index": 0, "state_vector": "%%"}, 400, "state_vector"),
    ]
    for extra, status, field in cases:
        answer = await op(http, "guests", base | extra)
        assert answer.status_code == status, (extra, answer.text)
        assert answer.json()["errors"][0]["field"] == field, extra
    missing = await op(http, "guests", base | {"guest_id": "nobody", "index": 0})
    assert missing.status_code == 422
    assert (await read(http, "guests")).json()["guests"]["g1"]["notes"] == NOTE
