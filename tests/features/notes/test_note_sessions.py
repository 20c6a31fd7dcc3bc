"""Edit sessions: a person's typing in one note is one ``*.notes_edited`` event, written
when they stop (idle), leave, or after a crash, never once per keystroke."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from crdt_server.auth.tokens import TokenCodec
from crdt_server.testing.waits import until
from tests.jsclient import JsClient, JsClientGroup, text_insert
from tests.server import FAMILY_WRITES, FreshWedding, ServerProcess

pytestmark = [pytest.mark.asyncio, pytest.mark.js]

SECRET = "note-sessions-test-secret-at-least-32-bytes"
CODEC = TokenCodec(algorithms=["HS256"], secret=SECRET.encode())
WEDDING = FreshWedding("sessions")
NOTES = ["g1", "notes"]


def token(role: str = "planner", sub: str = "pat") -> str:
    return CODEC.mint(sub=sub, role=role, wedding=WEDDING.id, ttl=600)


def server(tmp_path: Path, idle: float) -> ServerProcess:
    env = {
        "CRDT_SERVER_AUTH_SECRET": SECRET,
        **FAMILY_WRITES,
        "CRDT_SERVER_NOTES_SESSION_IDLE_SECONDS": str(idle),
        "CRDT_SERVER_NOTES_SESSION_MAX_SECONDS": "60",
    }
    return ServerProcess(tmp_path / "data", env=env, anonymous=False)


async def add_guest(http: httpx.AsyncClient) -> None:
    op = {"op": "add_guest", "guest_id": "g1", "name": "Ann", "notes": "Hi"}
    answer = await http.post(
        WEDDING.at("/docs/guests/ops"), json=op, headers={"Authorization": f"Bearer {token()}"}
    )
    assert answer.status_code == 200, answer.text


async def sessions(http: httpx.AsyncClient, role: str = "planner") -> list[dict[str, Any]]:
    answer = await http.get(
        WEDDING.at("/events?types=guest.*"), headers={"Authorization": f"Bearer {token(role)}"}
    )
    assert answer.status_code == 200, answer.text
    return [e for e in answer.json()["events"] if e["type"] == "guest.notes_edited"]


async def typist(group: JsClientGroup, live: ServerProcess) -> JsClient:
    js = await group.start()
    params = {"token": token("family", "fay")}
    await js.connect(live.ws_url, f"{WEDDING.id}/guests", params=params)
    await js.wait_synced()
    return js


async def type_in(js: JsClient) -> None:
    """Three keystrokes (three updates) at the end of "Hi"."""
    for at, key in ((2, " "), (3, "😀"), (5, "!")):
        await js.edit(text_insert("guests", at, key, path=NOTES))


async def test_typing_is_one_event_with_excerpts_that_follow_read_rules(tmp_path: Path) -> None:
    WEDDING.renew()
    async with server(tmp_path, 0.5) as live, httpx.AsyncClient(base_url=live.url) as http:
        await add_guest(http)
        async with JsClientGroup() as group:
            js = await typist(group, live)
            await type_in(js)

            async def closed() -> list[dict[str, Any]]:
                return await sessions(http)

            found = await until(closed, 20)
        assert len(found) == 1, found
        event = found[0]
        assert event["actor"] == {"sub": "fay", "role": "family"}
        data = event["data"]
        assert (data["id"], data["field"], data["before"], data["after"]) == (
            "g1",
            "notes",
            "Hi",
            "Hi 😀!",
        )
        # three updates, one event; keystrokes sent back to back may share one commit (and
        # seq) when the machine is busy, so the span may be a single seq
        assert data["seqs"]["first"] <= data["seqs"]["last"]
        # The couple, the planner and family read a guest's notes; a vendor gets the event
        # without the excerpts.
        family = await sessions(http, "family")
        assert family[0]["data"]["after"] == "Hi 😀!"
        vendor = await sessions(http, "vendor")
        assert vendor and "before" not in vendor[0]["data"] and "after" not in vendor[0]["data"]
        assert vendor[0]["data"]["session"] == data["session"]
        assert await sessions(http) == found  # nothing more came


async def test_leaving_closes_the_session_at_once(tmp_path: Path) -> None:
    WEDDING.renew()
    async with server(tmp_path, 300) as live, httpx.AsyncClient(base_url=live.url) as http:
        await add_guest(http)
        async with JsClientGroup() as group:
            js = await typist(group, live)
            await type_in(js)
            await js.destroy()

            async def closed() -> list[dict[str, Any]]:
                return await sessions(http)

            found = await until(closed, 20)
        assert [e["data"]["after"] for e in found] == ["Hi 😀!"]


async def crash_and_recover(tmp_path: Path, database_url: str = "") -> None:
    """A session open when the server is killed is closed, once, by the next start."""
    WEDDING.renew()
    live = server(tmp_path, 300)
    if database_url:
        live.env["CRDT_SERVER_DATABASE_URL"] = database_url

    async def open_rows() -> int:
        if database_url:
            conn = await asyncpg.connect(database_url)
            try:
                return int(await conn.fetchval("SELECT count(*) FROM note_sessions"))
            finally:
                await conn.close()
        path = live.data_dir / "crdt.sqlite3"
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT count(*) FROM note_sessions").fetchone()[0])

    async with live, httpx.AsyncClient(base_url=live.url) as http:
        await add_guest(http)
        async with JsClientGroup() as group:
            js = await typist(group, live)
            await type_in(js)

            async def row_written() -> bool:
                return await open_rows() == 1

            await until(row_written, 20)
            await live.kill()  # SIGKILL: the session row is all that is left of it
        await live.start()
        async with httpx.AsyncClient(base_url=live.url) as again:

            async def closed() -> list[dict[str, Any]]:
                return await sessions(again)

            found = await until(closed, 20)
            assert [e["data"]["before"] for e in found] == ["Hi"]
            assert found[0]["data"]["after"].startswith("Hi")  # what was committed
            assert await open_rows() == 0
        await live.restart()
        async with httpx.AsyncClient(base_url=live.url) as third:
            assert len(await sessions(third)) == 1


async def test_a_session_open_at_a_crash_is_closed_once_at_the_next_start(tmp_path: Path) -> None:
    await crash_and_recover(tmp_path)


async def test_a_session_open_at_a_crash_is_closed_on_postgres(
    tmp_path: Path, postgres_url: str
) -> None:
    await crash_and_recover(tmp_path, postgres_url)
