"""A full disk (issue 47): every write route answers 503 problem+json with ``Retry-After``,
the documents' routes as the features' (which answered 500), and nothing was changed; once
there is room again, the same requests succeed.

The disk is filled at the SQL level, as ``tests/storage/conftest.py`` injects failures: from
another connection, a trigger on every table refuses every insert, update and delete with
SQLite's own message for a full disk (``SQLITE_FULL``), so reads go on and writes fail, on
the server's connections, whatever their statements.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from crdt_server.testing.tokens import TokenMinter
from tests.server import ServerProcess

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]

SECRET = "disk-full-secret-that-is-at-least-32-bytes"
MINT = TokenMinter(SECRET)
ADMIN_KEY = "disk-full-admin-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
ENV = {
    "CRDT_SERVER_AUTH_SECRET": SECRET,
    "CRDT_SERVER_ADMIN_API_KEY": ADMIN_KEY,
    "CRDT_SERVER_WEBHOOK_ALLOW_PRIVATE": "true",
}
W = "/api/weddings/w1"
DAY = 24 * 3600
"""Tokens minted at import outlive a whole test run (the full tier takes minutes)."""
PLANNER = MINT.headers("planner", "ada", ttl=DAY)
COUPLE = MINT.headers("couple", "bob", ttl=DAY)


@contextlib.contextmanager
def disk_full(store: Path) -> Iterator[None]:
    """While active, every write to the store at ``store`` fails as on a full disk."""
    conn = sqlite3.connect(store, isolation_level=None)
    try:
        tables = [
            str(name)
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'thread_search%'"
            )
        ]
        names = [f"disk_full_{i}_{op}" for i in range(len(tables)) for op in ("i", "u", "d")]
        for i, table in enumerate(tables):
            for op, verb in (("i", "INSERT"), ("u", "UPDATE"), ("d", "DELETE")):
                conn.execute(
                    f'CREATE TRIGGER disk_full_{i}_{op} BEFORE {verb} ON "{table}"'
                    " BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END"
                )
        yield
        for name in names:
            conn.execute(f"DROP TRIGGER {name}")
    finally:
        conn.close()


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    async with ServerProcess(tmp_path / "data", env=ENV, anonymous=False) as started:
        yield started


async def ok(answer: httpx.Response, *codes: int) -> Any:
    assert answer.status_code in (codes or (200, 201)), answer.text
    return answer.json() if answer.content else None


async def test_with_the_disk_full_every_write_route_answers_503_with_retry_after(
    server: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        # What the routes act on, made while there is room (bob becomes a member by
        # calling a route).
        await ok(await http.get(f"{W}/members", headers=COUPLE))
        add = {"op": "add_guest", "guest_id": "g1", "name": "Ann"}
        await ok(await http.post(f"{W}/docs/guests/ops", json=add, headers=PLANNER))
        thread = await ok(
            await http.post(
                f"{W}/threads", json={"subject": "Band", "participants": ["bob"]}, headers=PLANNER
            )
        )
        tid = thread["id"]
        await ok(
            await http.put(f"{W}/threads/{tid}/messages/m1", json={"body": "hi"}, headers=PLANNER)
        )
        hook = await ok(
            await http.post(
                f"{W}/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers=PLANNER
            )
        )
        token = await ok(
            await http.post(f"{W}/calendar-tokens", json={"label": "p"}, headers=COUPLE)
        )

        writes: list[tuple[str, str, dict[str, Any] | None, dict[str, str]]] = [
            (
                "POST",
                f"{W}/docs/guests/ops",
                {"op": "set_rsvp", "guest_id": "g1", "rsvp": "declined"},
                PLANNER,
            ),
            ("POST", f"{W}/events", {"type": "custom.hello"}, PLANNER),
            ("POST", f"{W}/threads", {"subject": "Cake", "participants": ["bob"]}, PLANNER),
            ("PUT", f"{W}/threads/{tid}/messages/m2", {"body": "later"}, PLANNER),
            ("PATCH", f"{W}/threads/{tid}/messages/m1", {"body": "edited"}, PLANNER),
            ("POST", f"{W}/threads/{tid}/read", {"up_to": "m1"}, COUPLE),
            ("POST", f"{W}/notifications/read", {}, COUPLE),
            ("PUT", f"{W}/members/gran", {"role": "family", "name": "Gran"}, PLANNER),
            ("POST", f"{W}/webhooks", {"url": "http://127.0.0.1:9/other"}, PLANNER),
            ("PATCH", f"{W}/webhooks/{hook['id']}", {"description": "CRM"}, PLANNER),
            ("DELETE", f"{W}/webhooks/{hook['id']}", None, PLANNER),
            ("POST", f"{W}/calendar-tokens", {"label": "q"}, COUPLE),
            ("DELETE", f"{W}/calendar-tokens/{token['id']}", None, COUPLE),
            (
                "POST",
                f"{W}/inbound-sources",
                {"source": "rsvp-form", "access": {"guests": "write"}},
                PLANNER,
            ),
            ("POST", "/api/admin/revoke", {"sub": "eve"}, ADMIN),
        ]
        wrong: list[tuple[str, str, int, str | None]] = []
        with disk_full(server.data_dir / "crdt.sqlite3"):
            for method, url, body, headers in writes:
                answer = await http.request(method, url, json=body, headers=headers)
                kind = answer.headers.get("content-type")
                retry = answer.headers.get("retry-after")
                if answer.status_code != 503 or kind != "application/problem+json" or not retry:
                    wrong.append((method, url, answer.status_code, retry))
            # Reads go on.
            await ok(await http.get(f"{W}/threads/{tid}/messages", headers=PLANNER))
        assert wrong == [], "\n".join(map(str, wrong))
        # Room again: the same kind of write succeeds.
        await ok(await http.post(f"{W}/events", json={"type": "custom.hello"}, headers=PLANNER))
        await ok(
            await http.put(
                f"{W}/threads/{tid}/messages/m2", json={"body": "later"}, headers=PLANNER
            )
        )
    log = server.log_text()
    assert "Traceback" not in log
    assert "the store could not serve POST /api/weddings/{wedding_id}/events" in log, log[-3000:]
