"""The ``crdt-server`` command as an operator runs it: real processes, real SQLite files, a
real PostgreSQL (a scratch database), real servers on ephemeral ports."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import io
import json
import os
import re
import sqlite3
import stat
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pycrdt import Doc, Map, TransactionEvent

from crdt_server.app import EVENT_TABLES, FEATURES
from crdt_server.auth.tokens import TokenCodec
from crdt_server.cli import main
from crdt_server.documents import apply_operation, seed
from crdt_server.features import event_namespaces_of
from crdt_server.storage import Migration, NewUpdate, Schema, SqliteStore, Table, schema_of
from crdt_server.tools import commands as data_commands
from crdt_server.tools.check import check_store
from crdt_server.tools.export import export_wedding, import_wedding, parse_export
from tests.server import ServerProcess, cli

NAMESPACES = event_namespaces_of(FEATURES)
"""The event types this server's import takes (its features' and the core's)."""

ROOT = Path(__file__).resolve().parents[2]
SECRET = "cli-test-secret-that-is-at-least-32-bytes"
ADMIN = "cli-admin-key"
CODEC = TokenCodec(algorithms=["HS256"], secret=SECRET.encode())


def run_main(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, cwd: Path, *args: str
) -> tuple[int, str, str]:
    """``crdt-server ARGS`` in this process (the same ``main``; no interpreter start-up)."""
    for name in [k for k in os.environ if k.startswith("CRDT_SERVER_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's usage errors and --version
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _edits(kind: str, wedding: str, ops: list[dict[str, Any]]) -> list[bytes]:
    """The Yjs updates a client makes seeding ``kind`` and running ``ops``, one per step."""
    doc: Doc[Any] = Doc()
    updates: list[bytes] = []

    def capture(event: TransactionEvent) -> None:
        updates.append(event.update)

    subscription = doc.observe(capture)
    seed(doc, kind, wedding)
    for op in ops:
        apply_operation(doc, kind, op)
    doc.unobserve(subscription)
    return updates


GUEST_OPS = [
    {"op": "add_guest", "guest_id": "ada", "name": "Ada Lovelace", "side": "partner_a"},
    {"op": "add_guest", "guest_id": "grace", "name": "Grace Hopper", "side": "partner_b"},
    {"op": "set_rsvp", "guest_id": "ada", "rsvp": "accepted"},
]
BUDGET_OPS = [{"op": "set_budget_total", "total": 2_000_000, "currency": "EUR"}]


async def _store_with(path: Path, wedding: str = "w1") -> None:
    """A SQLite store holding a wedding's guests and budget, written update by update."""
    store = SqliteStore(path)
    await store.open()
    try:
        for kind, ops in (("guests", GUEST_OPS), ("budget", BUDGET_OPS)):
            for update in _edits(kind, wedding, ops):
                await store.append([NewUpdate(f"{wedding}/{kind}", update, "ws:ada")])
    finally:
        await store.close()


def _one_line_refusal(code: int, err: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# -- errors, version, tokens -------------------------------------------------------------


def test_every_refusal_is_one_line_on_stderr_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "not.json").write_text("{nope")
    cases = [
        (("token", "--wedding", "bad id", "--role", "planner", "--sub", "a"), "bad id"),
        (("token", "--wedding", "w1", "--role", "pope", "--sub", "a"), "pope"),
        (("token", "--wedding", "w1", "--role", "planner", "--sub", "a", "--ttl", "x"), "x"),
        (("token", "--wedding", "w1", "--role", "planner", "--sub", "a"), "--create-secret"),
        (("frobnicate",), "frobnicate"),
        (("export", "--wedding", "w1"), "no store"),
        (("export", "--wedding", "../etc"), "not a wedding id"),
        (("import", str(tmp_path / "not.json")), "not JSON"),
        (("import", str(tmp_path / "missing.json")), "missing.json"),
        (("restore", str(tmp_path / "missing.sqlite3")), "does not exist"),
        (("backup", str(tmp_path / "b.sqlite3")), "no store to back up"),
        (("check",), "no store"),
        (("backup", "b.sqlite3", "--database-url", "postgresql://u@h/db"), "pg_dump"),
        (("restore", "b.sqlite3", "--database-url", "postgresql://u@h/db"), "pg_dump"),
        (("check", "--database-url", "postgresql://nobody@127.0.0.1:1/none"), "cannot open"),
    ]
    for args, needle in cases:
        code, out, err = run_main(capsys, monkeypatch, tmp_path, *args)
        line = _one_line_refusal(code, err)
        assert needle in line, (args, line)
        assert line.startswith("crdt-server"), line
        assert out == "", (args, out)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("variable", "value", "replacement"),
    [
        ("CRDT_SERVER_WEBSOCKET_STACK", "uvicorn", "the native stack"),
        ("CRDT_SERVER_WEBSOCKET_COMPRESSION", "true", "no permessage-deflate"),
        ("CRDT_SERVER_TOKEN_MAX_LIFETIME_SECONDS", "3600", "CRDT_SERVER_SESSION_MAX_LIFETIME"),
    ],
)
async def test_a_start_with_a_withdrawn_setting_is_one_line_naming_its_replacement(
    tmp_path: Path, variable: str, value: str, replacement: str
) -> None:
    """Issue 49: the deprecated stack's settings and the renamed variable are no longer read;
    a start that sets one (to anything but its old default) stops before anything listens."""
    code, out, err = await cli(
        "serve", "--port", "0", "--data-dir", str(tmp_path), env={variable: value}
    )
    line = _one_line_refusal(code, err)
    assert line.startswith(f"crdt-server serve: {variable} is withdrawn"), line
    assert replacement in line, line
    assert "listening" not in out, out


@pytest.mark.asyncio
async def test_the_installed_command_prints_no_traceback_and_knows_its_version() -> None:
    code, out, err = await cli("token", "--wedding", "bad id", "--role", "planner", "--sub", "a")
    assert "not a wedding id" in _one_line_refusal(code, err)
    code, out, _ = await cli("--version")
    assert code == 0 and out.startswith("crdt-server 0.") and len(out.splitlines()) == 1


@pytest.mark.slow
@pytest.mark.asyncio
async def test_token_signs_with_the_secret_of_the_server_it_is_for(tmp_path: Path) -> None:
    data = tmp_path / "data"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    async with (
        ServerProcess(data, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        mint = ("token", "--wedding", "w1", "--role", "planner", "--sub", "ada")
        # From another directory, without saying where the data is: refused, nothing created.
        code, out, err = await cli(*mint, cwd=elsewhere)
        assert "no signing secret" in _one_line_refusal(code, err) and out == ""
        assert not (elsewhere / "data").exists()
        # The same variable serve reads, or --data-dir: the server's own secret.
        by_env = await cli(*mint, cwd=elsewhere, env={"CRDT_SERVER_DATA_DIR": str(data)})
        by_flag = await cli(*mint, "--data-dir", str(data), cwd=elsewhere)
        for code, out, err in (by_env, by_flag):
            assert code == 0, err
            assert str(data / "auth_secret") in err  # says which secret it used
            token = out.strip().splitlines()[-1]
            headers = {"Authorization": f"Bearer {token}"}
            response = await http.get("/api/weddings/w1/docs/guests", headers=headers)
            assert response.status_code == 200, response.text
    # --create-secret makes one on purpose; a server started on it later accepts the token.
    fresh = tmp_path / "fresh"
    code, out, err = await cli(*mint, "--data-dir", str(fresh), "--create-secret")
    assert code == 0, err
    assert stat.S_IMODE((fresh / "auth_secret").stat().st_mode) == 0o600
    token = out.strip().splitlines()[-1]
    async with (
        ServerProcess(fresh, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        headers = {"Authorization": f"Bearer {token}"}
        assert (await http.get("/api/weddings/w1/docs/guests", headers=headers)).status_code == 200


# -- check and compact ---------------------------------------------------------------------


def test_check_reports_counts_and_a_corrupted_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    asyncio.run(_store_with(data / "crdt.sqlite3"))

    def cli(*args: str) -> tuple[int, str, str]:
        return run_main(capsys, monkeypatch, tmp_path, *args)

    code, out, err = cli("check", "--data-dir", str(data))
    assert code == 0, err + out
    assert "ok       w1/guests: 4 rows" in out and "ok       w1/budget: 2 rows" in out
    assert out.strip().splitlines()[-1].endswith("0 damaged")
    # A wedding the store does not have is a mistyped id, not a clean bill of health.
    for command in ("check", "compact"):
        code, out, err = cli(command, "--data-dir", str(data), "--wedding", "w9")
        assert "wedding 'w9' has no stored document" in _one_line_refusal(code, err)
    # Damage one stored row, as a bad disk or a hand edit would.
    with sqlite3.connect(data / "crdt.sqlite3") as db:
        db.execute(
            "UPDATE updates SET data = X'01020304ff' WHERE seq ="
            " (SELECT MAX(seq) FROM updates WHERE doc = 'w1/guests')"
        )
    code, out, err = cli("check", "--data-dir", str(data), "--json")
    assert code == 1, err
    report = json.loads(out)
    assert report["damaged"] == 1
    guests = next(d for d in report["documents"] if d["doc"] == "w1/guests")
    assert any("row 4 of 4 is not a Yjs update" in p for p in guests["problems"])
    budget = next(d for d in report["documents"] if d["doc"] == "w1/budget")
    assert budget["problems"] == [] and budget["rows"] == 2 and budget["history"] == 2
    # compact leaves a damaged log alone rather than folding the bad row away.
    code, out, err = cli("compact", "--data-dir", str(data), "--wedding", "w1")
    assert code == 0, err
    assert "kept      w1/guests: 4 rows (1 rows cannot be read" in out


def test_check_finds_a_log_that_is_gone_and_a_damaged_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Damage under the rows: a document whose rows were deleted while its history stayed,
    then a page of an index overwritten. Both are damage (exit 1), never a refusal (2)."""
    data = tmp_path / "data"
    asyncio.run(_store_with(data / "crdt.sqlite3"))

    def check(*args: str) -> tuple[int, str, str]:
        return run_main(capsys, monkeypatch, tmp_path, "check", "--data-dir", str(data), *args)

    with contextlib.closing(sqlite3.connect(data / "crdt.sqlite3")) as db:
        db.execute("DELETE FROM updates WHERE doc = 'w1/budget'")
        db.commit()
    code, out, err = check()
    assert code == 1, err + out
    assert "DAMAGED  w1/budget: 0 rows, 0 bytes, 2 history entries" in out
    assert "- 2 history entries but no row in its log" in out
    assert "ok       w1/guests: 4 rows" in out
    assert out.strip().splitlines()[-1].endswith("; 1 damaged")
    code, out, err = check("--json")
    assert code == 1, err
    report = json.loads(out)
    assert [d["doc"] for d in report["documents"]] == ["w1/budget", "w1/guests"]
    assert report["damaged"] == 1 and report["store_problems"] == []

    with contextlib.closing(sqlite3.connect(data / "crdt.sqlite3")) as db:
        (page,) = db.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'history_doc_seq'"
        ).fetchone()
        (size,) = db.execute("PRAGMA page_size").fetchone()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(data / "crdt.sqlite3", "r+b") as handle:
        handle.seek((page - 1) * size)
        handle.write(b"\xa5" * size)
    code, out, err = check()
    assert code == 1, err + out
    assert f"DAMAGED  store file {data / 'crdt.sqlite3'}:" in out
    assert "- SQLite integrity check:" in out
    assert out.strip().splitlines()[-1].endswith("the store file is damaged")
    code, out, err = check("--json")
    assert code == 1, err
    assert json.loads(out)["store_problems"]


@pytest.mark.asyncio
async def test_compact_folds_each_log_and_keeps_the_content(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"

    async def cli(*args: str) -> tuple[int, str, str]:
        # In a worker thread: main() runs its own event loop (asyncio.run).
        return await asyncio.to_thread(run_main, capsys, monkeypatch, tmp_path, *args)

    await _store_with(data / "crdt.sqlite3", "w1")
    await _store_with(data / "crdt.sqlite3", "w2")
    store = SqliteStore(data / "crdt.sqlite3")
    await store.open()
    before = await export_wedding(store, "w1", events=EVENT_TABLES)
    await store.close()
    code, out, err = await cli("compact", "--data-dir", str(data), "--wedding", "w1")
    assert code == 0, err
    assert "compacted w1/guests: 4 rows" in out and "2 of 2 documents compacted" in out
    await store.open()
    try:
        after = await export_wedding(store, "w1", events=EVENT_TABLES)
        assert before is not None and after is not None
        for kind in ("guests", "budget"):
            log = await store.load(f"w1/{kind}")
            assert log is not None and len(log.updates) == 1
            assert after.documents[kind].json == before.documents[kind].json
        assert after.history == before.history  # history survives compaction
        other = await store.load("w2/guests")
        assert other is not None and len(other.updates) == 4  # another wedding: untouched
    finally:
        await store.close()
    code, out, err = await cli("check", "--data-dir", str(data))
    assert code == 0, out


# -- backup and restore --------------------------------------------------------------------


def _auth(role: str = "planner", wedding: str = "w1") -> dict[str, str]:
    token = CODEC.mint(sub=f"{role}-1", role=role, wedding=wedding, ttl=600)
    return {"Authorization": f"Bearer {token}"}


@pytest_asyncio.fixture
async def live(tmp_path: Path) -> AsyncIterator[tuple[ServerProcess, httpx.AsyncClient]]:
    env = {"CRDT_SERVER_AUTH_SECRET": SECRET, "CRDT_SERVER_ADMIN_API_KEY": ADMIN}
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        yield server, http


async def _op(http: httpx.AsyncClient, kind: str, body: dict[str, Any]) -> None:
    response = await http.post(f"/api/weddings/w1/docs/{kind}/ops", json=body, headers=_auth())
    assert response.status_code == 200, response.text


@pytest.mark.slow
@pytest.mark.asyncio
async def test_backup_while_the_server_writes_then_restore(
    live: tuple[ServerProcess, httpx.AsyncClient], tmp_path: Path
) -> None:
    server, http = live
    acknowledged: list[str] = []
    stop, twenty = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        for i in range(10_000):
            if stop.is_set():
                return
            await _op(http, "guests", {"op": "add_guest", "guest_id": f"g{i}", "name": f"G {i}"})
            acknowledged.append(f"g{i}")
            if len(acknowledged) == 20:
                twenty.set()

    task = asyncio.create_task(writer())
    async with asyncio.timeout(30):
        await twenty.wait()
    before = list(acknowledged)
    backup = tmp_path / "backup.sqlite3"
    code, out, err = await cli("backup", "--data-dir", str(server.data_dir), str(backup))
    after = list(acknowledged)
    stop.set()
    await task
    assert code == 0, err
    assert "backed up" in out
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert not backup.with_name(backup.name + "-wal").exists()  # noqa: ASYNC240 (one file)

    # Into a fresh data directory: every update acknowledged before the backup began is there.
    restored = tmp_path / "restored"
    code, out, err = await cli("restore", str(backup), "--data-dir", str(restored))
    assert code == 0, err
    code, out, err = await cli("export", "--wedding", "w1", "--data-dir", str(restored))
    assert code == 0, err
    guests = json.loads(out)["documents"]["guests"]["json"]["guests"]
    assert set(before) <= set(guests) <= set(after) | {"ada"}
    code, out, err = await cli("check", "--data-dir", str(restored))
    assert code == 0, out

    # A store that holds documents is not replaced unless forced.
    code, out, err = await cli("restore", str(backup), "--data-dir", str(restored))
    assert "--force" in _one_line_refusal(code, err)
    code, out, err = await cli("restore", str(backup), "--data-dir", str(restored), "--force")
    assert code == 0, err


# -- export and import -------------------------------------------------------------------


async def _conversation(http: httpx.AsyncClient) -> dict[str, Any]:
    """A thread with messages (one a reply, one edited, one deleted), a reaction and a
    read mark, made through the HTTP API; returns the ``threads`` section the HTTP export
    shows for it."""
    w = "/api/weddings/w1"
    planner, vendor = _auth("planner"), _auth("vendor")
    member = {"role": "vendor", "name": "Flo Rist", "email": "flo@example.com"}
    put = await http.put(f"{w}/members/vendor-1", json=member, headers=planner)
    assert put.status_code == 201, put.text
    created = await http.post(
        f"{w}/threads",
        json={"subject": "Florist deposit", "kind": "vendor", "participants": ["vendor-1"]},
        headers=planner,
    )
    assert created.status_code == 201, created.text
    tid = created.json()["id"]
    messages = f"{w}/threads/{tid}/messages"
    for mid, body, who in (
        ("m1", {"body": "Peonies or ranunculus for the arch?"}, planner),
        ("m2", {"body": "Peonies, @planner-1. Deposit due Friday", "reply_to": "m1"}, vendor),
        ("m3", {"body": "Typo, ignore", "priority": "urgent"}, vendor),
        ("m4", {"body": "Noted, thanks"}, planner),
    ):
        posted = await http.put(f"{messages}/{mid}", json=body, headers=who)
        assert posted.status_code == 201, posted.text
    edited = await http.patch(
        f"{messages}/m2", json={"body": "Peonies. Deposit due Monday"}, headers=vendor
    )
    assert edited.status_code == 200, edited.text
    assert (await http.delete(f"{messages}/m3", headers=vendor)).status_code == 200
    reacted = await http.post(
        f"{messages}/m2/reactions", json={"emoji": "\U0001f338"}, headers=planner
    )
    assert reacted.status_code == 200, reacted.text
    read = await http.post(f"{w}/threads/{tid}/read", json={"up_to": "m2"}, headers=vendor)
    assert read.status_code == 200, read.text
    exported = await http.get(f"{w}/export", headers={"Authorization": f"Bearer {ADMIN}"})
    section: dict[str, Any] = exported.json()["threads"]
    (thread,) = section["threads"]
    assert [m["id"] for m in thread["messages"]] == ["m1", "m2", "m3", "m4"]
    assert [m["seq"] for m in thread["messages"]] == [1, 2, 3, 4]
    assert thread["messages"][1]["reactions"] == {"\U0001f338": ["planner-1"]}
    assert thread["messages"][1]["edited_at"] is not None and thread["messages"][2]["deleted"]
    assert {r["sub"]: r["up_to"] for r in thread["reads"]} == {"planner-1": 4, "vendor-1": 3}
    assert {m["sub"] for m in section["members"]} >= {"planner-1", "vendor-1"}
    return section


async def _conversation_is_found(
    http: httpx.AsyncClient, wedding: str, threads: dict[str, Any], *, go_on: bool = False
) -> None:
    """On the server the wedding moved to: full-text search finds the imported messages
    and subject and the read mark still counts; ``go_on``: the thread goes on from its
    last seq, and a retried post is answered with the imported message."""
    w = f"/api/weddings/{wedding}"
    planner, vendor = _auth("planner", wedding), _auth("vendor", wedding)
    tid = threads["threads"][0]["id"]
    for q in ("ranunculus", "Monday", "florist"):
        found = await http.get(f"{w}/threads", params={"q": q}, headers=planner)
        assert found.status_code == 200, found.text
        assert [t["id"] for t in found.json()["threads"]] == [tid], q
    nothing = await http.get(f"{w}/threads", params={"q": "Typo"}, headers=planner)
    assert nothing.json()["threads"] == []  # the deleted message's words are gone
    thread = await http.get(f"{w}/threads/{tid}", headers=vendor)
    assert thread.json()["unread"] == 1  # m4, after the vendor's mark at m3
    if not go_on:
        return
    more = await http.put(f"{w}/threads/{tid}/messages/m5", json={"body": "Great"}, headers=vendor)
    assert more.status_code == 201 and more.json()["seq"] == 5, more.text
    again = await http.put(
        f"{w}/threads/{tid}/messages/m1",
        json={"body": "Peonies or ranunculus for the arch?"},
        headers=planner,
    )
    assert again.status_code == 200 and again.json()["seq"] == 1  # a retried post, answered


def _same_wedding(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Two exports carry the same documents, and each document's history in ``b`` begins
    with its history in ``a`` (an import renumbers, document by document, in order)."""
    assert {k: d["json"] for k, d in a["documents"].items()} == {
        k: d["json"] for k, d in b["documents"].items()
    }
    for kind in a["documents"]:
        keep = ("origin", "created_at", "size")
        old = [{k: e[k] for k in keep} for e in a["history"] if e["doc"] == kind]
        new = [{k: e[k] for k in keep} for e in b["history"] if e["doc"] == kind]
        assert old and new[: len(old)] == old
    # Events keep everything but their number (an import renumbers after the target's last).
    kept = ("type", "doc", "actor", "priority", "at", "created_at", "data", "audience")
    assert [{k: e.get(k) for k in kept} for e in a["events"]] == [
        {k: e.get(k) for k in kept} for e in b["events"]
    ]


@pytest.mark.slow
@pytest.mark.asyncio
async def test_export_moves_a_wedding_sqlite_to_postgres_and_back(
    live: tuple[ServerProcess, httpx.AsyncClient], tmp_path: Path, scratch_postgres: str
) -> None:
    server, http = live
    for body in GUEST_OPS:
        await _op(http, "guests", body)
    await _op(http, "budget", BUDGET_OPS[0])
    await _op(
        http, "seating", {"op": "add_table", "table_id": "rose", "name": "Rose", "capacity": 8}
    )
    threads = await _conversation(http)

    # The HTTP route and the CLI give the same format and content.
    admin_key = {"Authorization": f"Bearer {ADMIN}"}
    response = await http.get("/api/weddings/w1/export", headers=admin_key)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    by_http = response.json()
    assert by_http["threads"] == threads
    # A thread's events keep their audience (its participants): private after a move too.
    posted = [e for e in by_http["events"] if e["type"] == "thread.message_posted"]
    assert len(posted) == 4
    assert all(e["audience"] == ["planner-1", "vendor-1"] for e in posted)
    assert all("audience" not in e for e in by_http["events"] if e["type"].startswith("guest."))
    code, out, err = await cli("export", "--wedding", "w1", "--data-dir", str(server.data_dir))
    assert code == 0, err
    by_cli = json.loads(out)
    assert by_http["format"] == by_cli["format"] == "crdt-server-wedding"
    assert by_http["version"] == by_cli["version"] == 1
    assert by_http["events"] == by_cli["events"]
    assert {"guest.added", "guest.rsvp_changed"} <= {e["type"] for e in by_cli["events"]}
    assert by_cli["events"][0]["actor"] == {"sub": "planner-1", "role": "planner"}
    assert {k: v for k, v in by_http.items() if k != "exported_at"} == {
        k: v for k, v in by_cli.items() if k != "exported_at"
    }
    assert by_cli["documents"]["guests"]["json"]["guests"]["ada"]["rsvp"] == "accepted"
    assert [e["origin"] for e in by_cli["history"]][-1] == "http:planner-1"

    # Who may export: the couple and the admin key; nobody else.
    couple = await http.get("/api/weddings/w1/export", headers=_auth("couple"))
    assert couple.status_code == 200 and couple.json()["documents"] == by_cli["documents"]
    assert (await http.get("/api/weddings/w1/export", headers=_auth("planner"))).status_code == 403
    other = await http.get("/api/weddings/w1/export", headers=_auth("couple", "w2"))
    assert other.status_code == 403
    assert (await http.get("/api/weddings/w1/export")).status_code == 401
    in_url = await http.get("/api/weddings/w1/export", params={"token": ADMIN})
    assert in_url.status_code == 401  # the admin key counts from the header only
    assert (await http.get("/api/weddings/nothing/export", headers=admin_key)).status_code == 404
    # The couple's call registered them in the directory (every caller is): the section the
    # move must keep is the one as of now.
    threads = (await http.get("/api/weddings/w1/export", headers=admin_key)).json()["threads"]
    assert {m["sub"] for m in threads["members"]} == {"couple-1", "planner-1", "vendor-1"}

    # --out: a new file only its owner can read (it holds personal data), never overwritten.
    exported = tmp_path / "w1.json"
    code, _, err = await cli(
        "export", "--wedding", "w1", "--data-dir", str(server.data_dir), "--out", str(exported)
    )
    assert code == 0, err
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    written = json.loads(exported.read_text())
    assert written["documents"] == by_cli["documents"] and written["history"] == by_cli["history"]
    code, _, err = await cli(
        "export", "--wedding", "w1", "--data-dir", str(server.data_dir), "--out", str(exported)
    )
    assert "already exists" in _one_line_refusal(code, err)

    # SQLite -> PostgreSQL, then read it back through a server running on PostgreSQL.
    pg = {"CRDT_SERVER_DATABASE_URL": scratch_postgres}
    code, out, err = await cli("import", str(exported), env=pg)
    assert code == 0, err
    assert "imported wedding w1: 3 documents" in out
    code, out, err = await cli("import", str(exported), env=pg)  # never merges or overwrites
    assert "already has rows" in _one_line_refusal(code, err)
    env = {"CRDT_SERVER_AUTH_SECRET": SECRET, "CRDT_SERVER_ADMIN_API_KEY": ADMIN, **pg}
    async with (
        ServerProcess(tmp_path / "pg-data", env=env, anonymous=False) as on_pg,
        httpx.AsyncClient(base_url=on_pg.url, timeout=10) as pg_http,
    ):
        guests = await pg_http.get("/api/weddings/w1/docs/guests", headers=_auth())
        # The read adds the totals it derives (headcounts, meals); the export is the data.
        read = {k: v for k, v in guests.json().items() if k != "totals"}
        assert read == by_cli["documents"]["guests"]["json"]
        history = await pg_http.get("/api/weddings/w1/docs/guests/history", headers=_auth())
        assert [h["origin"] for h in history.json()["history"]][0] == "import"
        # The conversation came along, exactly (HTTP export), and its messages are found.
        on_pg_export = await pg_http.get("/api/weddings/w1/export", headers=admin_key)
        assert on_pg_export.status_code == 200, on_pg_export.text
        assert on_pg_export.json()["threads"] == threads
        await _conversation_is_found(pg_http, "w1", threads)

    # ... and back, from PostgreSQL into another SQLite store under another id (stdin).
    code, out, err = await cli("export", "--wedding", "w1", env=pg)
    assert code == 0, err
    from_pg = json.loads(out)
    _same_wedding(by_cli, from_pg)
    back = tmp_path / "back"
    code, _, err = await cli(
        "import", "-", "--as", "w9", "--data-dir", str(back), stdin=out.encode()
    )
    assert code == 0, err
    code, out, err = await cli("export", "--wedding", "w9", "--data-dir", str(back))
    assert code == 0, err
    again = json.loads(out)
    assert again["wedding"] == "w9"
    _same_wedding(by_cli, again)
    assert from_pg["threads"] == again["threads"] == threads
    async with (
        ServerProcess(back, env={"CRDT_SERVER_AUTH_SECRET": SECRET}, anonymous=False) as on_back,
        httpx.AsyncClient(base_url=on_back.url, timeout=10) as back_http,
    ):
        await _conversation_is_found(back_http, "w9", threads, go_on=True)
    code, out, err = await cli("check", "--data-dir", str(back))
    assert code == 0, out
    # check and compact on the PostgreSQL store too.
    code, out, err = await cli("check", env=pg)
    assert code == 0 and "ok       w1/guests" in out, out + err
    code, out, err = await cli("compact", "--wedding", "w1", env=pg)
    # An import stores each document as one row already: nothing to fold.
    assert code == 0 and "kept      w1/guests: 1 rows (already one row)" in out, out + err
    code, out, err = await cli("export", "--wedding", "w1", env=pg)
    assert code == 0, err
    _same_wedding(by_cli, json.loads(out))


@pytest.mark.asyncio
async def test_content_waiting_on_a_dependency_survives_export_and_import(
    tmp_path: Path,
) -> None:
    doc: Doc[Any] = Doc()
    for update in _edits("guests", "w1", GUEST_OPS[:1]):
        doc.apply_update(update)
    first = doc.get_update()
    state = doc.get_state()
    doc.get("guests", type=Map)["ada"]["name"] = "Ada King"
    second = doc.get_update(state)  # builds on `first`, which the store never gets
    source = SqliteStore(tmp_path / "a.sqlite3")
    target = SqliteStore(tmp_path / "b.sqlite3")
    await source.open()
    await target.open()
    try:
        await source.append([NewUpdate("w1/guests", second, "ws:ada")])
        exported = await export_wedding(source, "w1", events=EVENT_TABLES)
        assert exported is not None and exported.documents["guests"].held == [second]
        text = json.dumps(exported.to_json())
        await import_wedding(
            target, parse_export(json.loads(text), namespaces=NAMESPACES), events=EVENT_TABLES
        )
        # The missing content arrives later: the moved document integrates it.
        await target.append([NewUpdate("w1/guests", first, "ws:ada")])
        moved = await export_wedding(target, "w1", events=EVENT_TABLES)
        assert moved is not None and moved.documents["guests"].held == []
        assert moved.documents["guests"].json["guests"]["ada"]["name"] == "Ada King"
    finally:
        await source.close()
        await target.close()


def _small_export(depth: int = 0) -> dict[str, Any]:
    """A valid export file of one wedding (its guest list, one history entry, one event);
    with ``depth``, a root the schema does not know holds a chain of that many nested maps
    (its JSON view, as the server shows it, matching)."""
    doc: Doc[Any] = Doc()
    for update in _edits("guests", "w1", GUEST_OPS):
        doc.apply_update(update)
    if depth:
        chain: Map[Any] = Map({"nuts": "none"})
        for _ in range(depth - 1):
            chain = Map({"more": chain})
        doc.get("notes", type=Map)["chain"] = chain
    from crdt_server.storage import HistoryEntry
    from crdt_server.tools.export import ExportedEvent, WeddingExport
    from crdt_server.tools.export import _export_document as build

    exported: dict[str, Any] = WeddingExport(
        "w1",
        {"guests": build("w1/guests", "guests", [doc.get_update()])},
        [("guests", HistoryEntry(1, "w1/guests", "ws:ada", 1.5, 10))],
        [ExportedEvent(1, "guest.added", "guests", "ada", "planner", "normal", 1.5, '{"id":"a"}')],
    ).to_json()
    return exported


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(format="other"), "format"),
        (lambda d: d.update(version=2), "version"),
        (lambda d: d.update(wedding="bad id"), "wedding"),
        (lambda d: d["documents"]["guests"].update(update="!!"), "documents.guests.update"),
        (lambda d: d["documents"]["guests"].update(update="AAAA"), "documents.guests.update"),
        (lambda d: d["documents"]["guests"]["json"].update(guests={}), "documents.guests.json"),
        (lambda d: d["documents"].update(cake={}), "documents.cake"),
        (lambda d: d["history"][0].update(created_at=1e309), "history[0].created_at"),
        (lambda d: d["history"][0].update(doc="seating"), "history[0].doc"),
        (lambda d: d.update(events={"type": "guest.added"}), "events"),
        (lambda d: d.update(events=[{"type": "guest.added"}]), "events[0].created_at"),
        (lambda d: d["events"][0].update(type=""), "events[0].type"),
        (lambda d: d["events"][0].update(doc="cake"), "events[0].doc"),
        (lambda d: d["events"][0].update(priority="asap"), "events[0].priority"),
        (lambda d: d["events"][0].update(actor={"sub": 7}), "events[0].actor.sub"),
        (lambda d: d["events"][0].pop("data"), "events[0].data"),
        (lambda d: d["events"][0].update(audience="ada"), "events[0].audience"),
        (lambda d: d["events"][0].update(audience=[7]), "events[0].audience"),
        # What the event routes refuse: types outside the namespaces, oversized custom data.
        (lambda d: d["events"][0].update(data=["a"]), "events[0].data"),
        (lambda d: d["events"][0].update(type="admin.granted"), "events[0].type"),
        (lambda d: d["events"][0].update(type="custom.Bad Name"), "events[0].type"),
        (
            lambda d: d["events"][0].update(type="custom.note", data={"n": "x" * 8200}),
            "events[0].data",
        ),
        (lambda d: d["events"][0].update(data={"n": "x" * 70_000}), "events[0].data"),
        # Content nested deeper than the server's views go (64 levels): the update's...
        (lambda d: d.update(documents=_small_export(depth=70)["documents"]), "documents.guests"),
        # ... and a JSON view deeper than the update's.
        (
            lambda d: d["documents"]["guests"]["json"]["guests"]["ada"].update(
                dietary=json.loads("[" * 500 + "]" * 500)
            ),
            "documents.guests.json",
        ),
        (lambda d: d.update(threads=[{"id": "t1"}]), "threads"),
    ],
)
def test_a_bad_export_file_is_refused_naming_the_field(change: Any, field: str) -> None:
    from crdt_server.tools.export import ExportError

    good = _small_export()
    parse_export(json.loads(json.dumps(good)), namespaces=NAMESPACES)  # the untouched file is fine
    bad = json.loads(json.dumps(good))
    change(bad)
    with pytest.raises(ExportError) as raised:
        parse_export(bad, namespaces=NAMESPACES)
    assert raised.value.field == field


def test_an_imported_event_must_be_of_a_namespace_a_feature_the_server_runs_declares() -> None:
    """The event types an import may hold come from the features (``Feature.event_namespaces``)
    and the core: a thread's event is refused by a server that runs no threads feature."""
    from crdt_server.tools.export import ExportError

    good = _small_export()
    good["events"][0].update(type="thread.created")
    assert parse_export(json.loads(json.dumps(good)), namespaces=NAMESPACES).events
    without = event_namespaces_of(f for f in FEATURES if f.name != "threads")
    assert "thread." not in without and "system." in without and "guest." in without
    with pytest.raises(ExportError) as raised:
        parse_export(json.loads(json.dumps(good)), namespaces=without)
    assert raised.value.field == "events[0].type"


def test_a_document_as_deep_as_the_views_show_is_imported() -> None:
    exported = parse_export(json.loads(json.dumps(_small_export(depth=60))), namespaces=NAMESPACES)
    chain = exported.documents["guests"].json["other"]["notes"]["chain"]
    for _ in range(59):
        chain = chain["more"]
    assert chain == {"nuts": "none"}


def _thread_section() -> dict[str, Any]:
    message = {
        "id": "m1", "thread": "t_1", "seq": 1, "author": {"sub": "ada", "role": "planner"},
        "body": "Peonies?", "reply_to": None, "mentions": [], "priority": "normal",
        "created_at": "2026-11-17T08:26:40.500Z", "edited_at": None, "deleted": False,
        "reactions": {"\U0001f338": ["bo"]},
    }  # fmt: skip
    return {
        "members": [
            {"sub": "ada", "role": "planner", "name": "Ada", "email": "ada@example.com",
             "participation": "all", "email_notifications": True},
        ],  # fmt: skip
        "threads": [
            {
                "id": "t_1", "subject": "Flowers", "kind": "general", "status": "open",
                "priority": "normal", "anchors": [{"doc": "guests", "id": "g1"}],
                "creator": {"sub": "ada", "role": "planner"},
                "participants": [{"sub": "ada", "role": "planner"}],
                "created_at": "2026-11-17T08:26:40Z", "updated_at": "2026-11-17T08:26:40.500Z",
                "last_seq": 2, "messages": [message, {**message, "id": "m2", "seq": 2}],
                "reads": [{"sub": "ada", "up_to": 1}],
            }
        ],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda t: t.update(members={}), "threads.members"),
        (lambda t: t["members"][0].update(sub=""), "threads.members[0].sub"),
        (lambda t: t["members"].append(dict(t["members"][0])), "threads.members[1].sub"),
        (lambda t: t["members"][0].update(participation="x"), "threads.members[0].participation"),
        # What PUT .../members/{sub} refuses.
        (lambda t: t["members"][0].update(email="ada at home"), "threads.members[0].email"),
        (lambda t: t["members"][0].update(sub="ada\nbo"), "threads.members[0].sub"),
        (lambda t: t["members"][0].update(sub="a" * 257), "threads.members[0].sub"),
        (lambda t: t["members"][0].update(role="king"), "threads.members[0].role"),
        (lambda t: t["members"][0].update(name="n" * 257), "threads.members[0].name"),
        (
            lambda t: t["threads"][0]["participants"][0].update(sub="ada\x00"),
            "threads.threads[0].participants[0].sub",
        ),
        (lambda t: t["threads"][0].update(kind="x"), "threads.threads[0].kind"),
        (lambda t: t["threads"][0].update(created_at="yesterday"), "threads.threads[0].created_at"),
        (lambda t: t["threads"][0].update(last_seq="2"), "threads.threads[0].last_seq"),
        (lambda t: t["threads"][0].update(color="red"), "threads.threads[0].color"),
        (
            lambda t: t["threads"][0]["anchors"][0].update(doc="x"),
            "threads.threads[0].anchors[0].doc",
        ),
        (lambda t: t["threads"].append(t["threads"][0]), "threads.threads[1].id"),
        (
            lambda t: t["threads"][0]["messages"][1].update(seq=1),
            "threads.threads[0].messages[1].seq",
        ),
        (
            lambda t: t["threads"][0]["messages"][1].update(id="m1"),
            "threads.threads[0].messages[1].id",
        ),
        (
            lambda t: t["threads"][0]["messages"][0].update(reply_to="m2"),
            "threads.threads[0].messages[0].reply_to",
        ),
        (
            lambda t: t["threads"][0]["messages"][0].update(body="x" * 9000),
            "threads.threads[0].messages[0].body",
        ),
        (
            lambda t: t["threads"][0]["messages"][0].update(reactions={"x": "bo"}),
            "threads.threads[0].messages[0].reactions",
        ),
        (
            lambda t: t["threads"][0]["messages"][0].update(deleted=0),
            "threads.threads[0].messages[0].deleted",
        ),
        (
            lambda t: t["threads"][0]["reads"][0].update(up_to=5),
            "threads.threads[0].reads[0].up_to",
        ),
    ],  # fmt: skip
)
def test_a_bad_threads_section_is_refused_naming_the_field(change: Any, field: str) -> None:
    from crdt_server.features.threads.export import THREADS
    from crdt_server.tools.export import ExportError

    doc: Doc[Any] = Doc()
    for update in _edits("guests", "w1", GUEST_OPS):
        doc.apply_update(update)
    good = {
        "format": "crdt-server-wedding",
        "version": 1,
        "wedding": "w1",
        "documents": {"guests": {"update": base64.b64encode(doc.get_update()).decode()}},
        "threads": _thread_section(),
    }
    assert parse_export(json.loads(json.dumps(good)), [THREADS], NAMESPACES).sections["threads"]
    bad = json.loads(json.dumps(good))
    change(bad["threads"])
    with pytest.raises(ExportError) as raised:
        parse_export(bad, [THREADS])
    assert raised.value.field == field
    with pytest.raises(ExportError) as raised:
        parse_export(good)  # a server not given the section refuses it rather than drop it
    assert raised.value.field == "threads"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(documents=_small_export(depth=70)["documents"]), "documents.guests"),
        (
            lambda d: d["events"][0].update(type="custom.note", data={"n": "x" * 8200}),
            "events[0].data",
        ),
        (
            lambda d: d.update(
                threads={"members": [{"sub": "bo", "role": "family", "email": "bo@"}]}
            ),
            "threads.members[0].email",
        ),
    ],
)
def test_import_refuses_what_the_api_refuses_and_stores_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    change: Any,
    field: str,
) -> None:
    """Exit 2, one line naming the field, no store written."""
    data = _small_export()
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    target = tmp_path / "d"
    code, _, err = run_main(
        capsys, monkeypatch, tmp_path, "import", str(path), "--data-dir", str(target)
    )
    assert f"{field}: " in _one_line_refusal(code, err)
    assert not (target / "crdt.sqlite3").exists()


@pytest.mark.asyncio
async def test_import_of_a_bad_threads_section_stores_nothing(tmp_path: Path) -> None:
    """From the command line: refused naming the field, exit 2, no document written."""
    doc: Doc[Any] = Doc()
    for update in _edits("guests", "w1", GUEST_OPS):
        doc.apply_update(update)
    section = _thread_section()
    section["threads"][0]["messages"][1]["author"] = {"sub": 7, "role": "planner"}
    data = {
        "format": "crdt-server-wedding",
        "version": 1,
        "wedding": "w1",
        "documents": {"guests": {"update": base64.b64encode(doc.get_update()).decode()}},
        "threads": section,
    }
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    code, _, err = await cli("import", str(path), "--data-dir", str(tmp_path / "d"))
    refusal = _one_line_refusal(code, err)
    assert "threads.threads[0].messages[1].author.sub" in refusal
    store = SqliteStore(tmp_path / "d" / "crdt.sqlite3")
    if (tmp_path / "d" / "crdt.sqlite3").exists():
        await store.open()
        try:
            assert await store.list("w1/") == []
        finally:
            await store.close()
    # The same file, corrected, goes in whole: documents and conversations.
    section["threads"][0]["messages"][1]["author"] = {"sub": "ada", "role": "planner"}
    path.write_text(json.dumps(data))
    code, out, err = await cli("import", str(path), "--data-dir", str(tmp_path / "d"))
    assert code == 0, err
    code, out, err = await cli("export", "--wedding", "w1", "--data-dir", str(tmp_path / "d"))
    assert code == 0, err
    back = json.loads(out)["threads"]
    assert back["threads"][0]["messages"] == section["threads"][0]["messages"]
    assert back["threads"][0]["reads"] == section["threads"][0]["reads"]
    assert back["members"] == section["members"]


@pytest.mark.slow
@pytest.mark.asyncio
async def test_compact_beside_a_running_server_loses_nothing(
    live: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = live
    acknowledged: list[str] = []

    async def writer(first: int, count: int) -> None:
        for i in range(first, first + count):
            await _op(http, "guests", {"op": "add_guest", "guest_id": f"g{i}", "name": f"G {i}"})
            acknowledged.append(f"g{i}")

    await writer(0, 20)
    # Compact twice while the server keeps writing to the same room.
    writing = asyncio.create_task(writer(20, 40))
    for _ in range(2):
        code, out, err = await cli("compact", "--data-dir", str(server.data_dir))
        assert code == 0, err
    await writing
    await server.restart()  # the room reloads from what the store holds
    response = await http.get(f"{server.url}/api/weddings/w1/docs/guests", headers=_auth())
    assert set(acknowledged) <= set(response.json()["guests"])
    code, out, err = await cli("check", "--data-dir", str(server.data_dir))
    assert code == 0, out


@pytest.mark.asyncio
async def test_check_accepts_a_document_written_by_many_clients(tmp_path: Path) -> None:
    # Twelve writers: the encoded state vector lists clients in hash-map order, which differs
    # between the log's document and the snapshot's; check compares the decoded vectors.
    updates: list[bytes] = []
    for i in range(12):
        writer: Doc[Any] = Doc()
        for update in updates:
            writer.apply_update(update)
        state = writer.get_state()
        writer.get("guests", type=Map)[f"k{i}"] = i
        updates.append(writer.get_update(state))
    store = SqliteStore(tmp_path / "crdt.sqlite3")
    await store.open()
    try:
        for update in updates:
            await store.append([NewUpdate("w1/guests", update, "ws:x")])
        (report,) = await check_store(store)
    finally:
        await store.close()
    assert report.problems == [] and report.rows == 12


@pytest.mark.asyncio
async def test_demo_links_start_from_the_public_url(tmp_path: Path) -> None:
    """Behind a TLS proxy the sign-in links ``serve --demo`` prints must be the proxy's
    (``CRDT_SERVER_PUBLIC_URL``), not the inside address the process listens on."""
    env = {"CRDT_SERVER_PUBLIC_URL": "https://plan.example.com/"}
    async with ServerProcess(tmp_path / "data", env=env, args=["--demo"], anonymous=False) as srv:
        link = re.compile(rb"^(couple|planner|family|vendor|friend) (\S+)$", re.M)
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            found = dict(link.findall(bytes(srv.log)))
            if len(found) == 5:
                break
            assert asyncio.get_running_loop().time() < deadline, srv.log_text()
            await asyncio.sleep(0.02)
    for role, url in found.items():
        assert url.startswith(b"https://plan.example.com/app/#token="), (role, url)


@pytest.mark.asyncio
async def test_import_creates_private_files_and_serve_repairs_modes(tmp_path: Path) -> None:
    exported = tmp_path / "w1.json"
    exported.write_text(json.dumps(_small_export()))
    data = tmp_path / "data"
    previous = os.umask(0o022)  # an operator's usual umask: files 0644 unless told
    try:
        code, out, err = await cli("import", str(exported), env={"CRDT_SERVER_DATA_DIR": str(data)})
    finally:
        os.umask(previous)
    assert code == 0, err
    made = [p for p in data.iterdir() if p.name.startswith("crdt.sqlite3")]
    assert made and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in made), made
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    # Copied in by hand with loose modes: serve puts them right and says so, once.
    data.chmod(0o755)
    for p in made:
        p.chmod(0o644)
    async with ServerProcess(data, anonymous=True) as server:
        pass
    lines = [line for line in server.log_text().splitlines() if "repaired file modes" in line]
    assert len(lines) == 1 and "crdt.sqlite3 0644 -> 0600" in lines[0], server.log_text()
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in made if p.exists())
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


@pytest.mark.asyncio
async def test_restore_refuses_a_backup_with_objects_the_server_never_made(
    live: tuple[ServerProcess, httpx.AsyncClient], tmp_path: Path
) -> None:
    """A backup carrying a trigger (which would run on every insert), a view or a table of
    its own is refused by ``restore`` (exit 2, one line naming it) and reported by
    ``check`` (exit 1); the server's own backup restores and checks clean."""
    server, http = live
    await _op(http, "guests", {"op": "add_guest", "guest_id": "g1", "name": "Ann"})
    good = tmp_path / "good.sqlite3"
    code, _, err = await cli("backup", str(good), "--data-dir", str(server.data_dir))
    assert code == 0, err
    hostile = {
        "trigger": "CREATE TRIGGER spy AFTER INSERT ON updates BEGIN DELETE FROM history; END",
        "view": "CREATE VIEW everyone AS SELECT * FROM updates",
        "table": "CREATE TABLE stash (x)",
        "column": "ALTER TABLE updates ADD COLUMN extra TEXT",
        "replaced trigger": "DROP TRIGGER updates_tombstoned; CREATE TRIGGER"
        " updates_tombstoned BEFORE INSERT ON updates BEGIN SELECT 1; END",
    }
    for kind, sql in hostile.items():
        bad = tmp_path / f"{kind.replace(' ', '-')}.sqlite3"
        bad.write_bytes(good.read_bytes())
        with contextlib.closing(sqlite3.connect(bad)) as db:
            db.executescript(sql)
        target = tmp_path / f"restored-{kind.replace(' ', '-')}"
        code, out, err = await cli("restore", str(bad), "--data-dir", str(target))
        assert code == 2, (kind, out, err)
        assert len(err.strip().splitlines()) == 1 and "not a store this server made" in err, err
        assert not (target / "crdt.sqlite3").exists(), kind
        # The same object in a live store: check reports it as damage.
        copy = tmp_path / f"store-{kind.replace(' ', '-')}"
        copy.mkdir()
        (copy / "crdt.sqlite3").write_bytes(bad.read_bytes())
        code, out, err = await cli("check", "--data-dir", str(copy))
        assert code == 1 and "server" in out, (kind, out, err)
    code, out, err = await cli("restore", str(good), "--data-dir", str(tmp_path / "fine"))
    assert code == 0, err
    code, out, err = await cli("check", "--data-dir", str(tmp_path / "fine"))
    assert code == 0, out + err


LEGACY = ROOT / "tests" / "fixtures" / "legacy"


def _schemas() -> list[Schema]:
    """The core's and every feature's tables, as ``crdt-server`` passes them."""
    from crdt_server.app import CORE_SCHEMAS, FEATURES
    from crdt_server.features import schemas_of

    return [*CORE_SCHEMAS, *schemas_of(FEATURES)]


def _declared_versions() -> dict[str, int]:
    """Every schema this release declares, at the version its code writes."""
    return {"store": 2} | {s.name: s.version for s in _schemas()}


def _versions_of(path: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT name, version FROM schema_versions").fetchall()
    return {str(name): int(version) for name, version in rows}


async def _this_release_store(path: Path, schemas: Sequence[Schema] | None = None) -> None:
    """The store at ``path`` as this release (or one with ``schemas``) leaves it once it
    has opened it."""
    store = SqliteStore(path)
    await store.open()
    try:
        for schema in _schemas() if schemas is None else schemas:
            await store.install(schema)
    finally:
        await store.close()


def test_restore_migrates_a_backup_from_an_older_release(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup written by an earlier release (the legacy fixture, from before schema
    versions) is restored, then brought to this release's schemas before it takes the
    store's place (issue 47); it serves every row as it did, and checks clean."""
    from tests.storage.test_legacy_fixtures import _expected, _serves_as_before

    data = tmp_path / "data"
    code, out, err = run_main(
        capsys,
        monkeypatch,
        tmp_path,
        "restore",
        str(LEGACY / "store.sqlite3"),
        "--data-dir",
        str(data),
    )
    assert code == 0, err
    assert _versions_of(data / "crdt.sqlite3") == _declared_versions()
    assert "migrated" in out, out
    assert not [p.name for p in data.iterdir() if p.name.startswith("crdt.sqlite3.")]
    asyncio.run(_serves_as_before(SqliteStore(data / "crdt.sqlite3"), _expected("sqlite")))
    code, out, err = run_main(capsys, monkeypatch, tmp_path, "check", "--data-dir", str(data))
    assert code == 0, out + err


def test_restore_migrates_a_table_an_older_release_named_otherwise(tmp_path: Path) -> None:
    """A table an older release made under another name, renamed by a later migration (as
    the house issue's renames are), is restored: the objects are judged once the backup
    is migrated, not before (issue 47)."""
    table = Table("memo_old", "(id {text} PRIMARY KEY, body {text} NOT NULL)", wedding=False)
    rename = Migration(
        2,
        ("ALTER TABLE memo_old RENAME TO memo_new",),
        ("ALTER TABLE {s}.memo_old RENAME TO memo_new",),
    )
    older, this = schema_of("memo", table), schema_of("memo", table, migrations=(rename,))
    backup = tmp_path / "older.sqlite3"
    backup.write_bytes((LEGACY / "store.sqlite3").read_bytes())
    asyncio.run(_this_release_store(backup, [*_schemas(), older]))
    with contextlib.closing(sqlite3.connect(backup)) as db:
        db.execute("INSERT INTO memo_old VALUES ('m1', 'kept')")
        db.commit()
    data = tmp_path / "data"
    args = argparse.Namespace(
        command="restore", file=backup, force=False, data_dir=data, database_url=None
    )
    assert data_commands.run(args, io.StringIO(), schemas=[*_schemas(), this]) == 0
    with contextlib.closing(sqlite3.connect(data / "crdt.sqlite3")) as db:
        assert db.execute("SELECT id, body FROM memo_new").fetchall() == [("m1", "kept")]
    assert _versions_of(data / "crdt.sqlite3")["memo"] == 2


def test_restore_migrates_a_backup_from_before_the_thread_tables_were_renamed(
    tmp_path: Path,
) -> None:
    """A backup of the release before the directory's and the inbox's tables left their
    ``thread_`` names (people and notifications at schema version 1, recording
    ``thread_members``...) is restored and renamed (version 2) before it takes the store's
    place, its rows kept; erasing a wedding then empties the renamed tables."""
    at_one = [
        dataclasses.replace(s, wedding_tables=s.first_wedding_tables, migrations=())
        if s.name in ("people", "notifications")
        else s
        for s in _schemas()
    ]
    backup = tmp_path / "before-rename.sqlite3"
    backup.write_bytes((LEGACY / "store.sqlite3").read_bytes())
    asyncio.run(_this_release_store(backup, at_one))
    assert {"people": 1, "notifications": 1}.items() <= _versions_of(backup).items()

    def counts(path: Path, *tables: str) -> list[int]:
        with contextlib.closing(sqlite3.connect(path)) as db:
            return [db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables]

    before = counts(backup, "thread_members", "thread_notifications", "thread_outbox")
    assert all(before)
    data = tmp_path / "data"
    args = argparse.Namespace(
        command="restore", file=backup, force=False, data_dir=data, database_url=None
    )
    assert data_commands.run(args, io.StringIO(), schemas=_schemas()) == 0
    restored = data / "crdt.sqlite3"
    assert _versions_of(restored) == _declared_versions()
    assert counts(restored, "members", "notifications", "notification_outbox") == before
    with contextlib.closing(sqlite3.connect(restored)) as db:
        names = {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master")}
        listed = dict(db.execute("SELECT name, wedding_tables FROM schema_versions").fetchall())
    assert not {n for n in names if n.startswith(("thread_members", "thread_notif", "thread_out"))}
    assert listed["people"] == "members"
    assert listed["notifications"] == "notifications,notification_outbox"

    async def erase() -> None:
        store = SqliteStore(restored)
        await store.open()  # no feature installs its schema: erasure still knows the tables
        try:
            await store.erase_wedding("w1")
        finally:
            await store.close()

    asyncio.run(erase())
    assert counts(restored, "members", "notifications", "notification_outbox") == [0, 0, 0]


@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        ("INSERT INTO schema_versions VALUES ('crystal_ball', 1, '')", "'crystal_ball'"),
        ("UPDATE schema_versions SET version = 99 WHERE name = 'threads'", "newer release"),
        ("UPDATE schema_versions SET version = 3 WHERE name = 'store'", "newer release"),
        ("UPDATE schema_versions SET version = 'soon' WHERE name = 'store'", "'soon'"),
        ("UPDATE schema_versions SET version = 0 WHERE name = 'webhooks'", "not a version"),
        (
            "UPDATE schema_versions SET wedding_tables = 'threads,tombstones'"
            " WHERE name = 'threads'",
            "'tombstones'",
        ),
        ("UPDATE schema_versions SET wedding_tables = 'events' WHERE name = 'store'", "'events'"),
    ],
    ids=["unknown schema", "newer feature", "newer store", "garbage", "zero", "table", "store"],
)
def test_restore_refuses_schema_versions_this_release_does_not_declare(
    sql: str,
    needle: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A backup whose ``schema_versions`` names a schema this release does not declare, a
    version newer than the code (or no version at all), or a wedding table that is not
    the feature's (erasing a wedding would empty it: a tombstone, and the wedding is back)
    is refused with one line, exit 2, and nothing restored (issue 47)."""
    good = tmp_path / "good.sqlite3"
    good.write_bytes((LEGACY / "store.sqlite3").read_bytes())
    asyncio.run(_this_release_store(good))
    bad = tmp_path / "bad.sqlite3"
    with contextlib.closing(sqlite3.connect(good)) as db:
        db.execute(sql)
        db.commit()
        db.execute("VACUUM INTO ?", (str(bad),))
    target = tmp_path / "target"
    code, out, err = run_main(
        capsys, monkeypatch, tmp_path, "restore", str(bad), "--data-dir", str(target)
    )
    line = _one_line_refusal(code, err)
    assert needle in line and "schema" in line, line
    assert not (target / "crdt.sqlite3").exists()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        ("UPDATE schema_versions SET version = 7 WHERE name = 'store'", "newer release"),
        ("UPDATE schema_versions SET version = 'soon' WHERE name = 'store'", "not a version"),
        ("UPDATE schema_versions SET version = 99 WHERE name = 'threads'", "newer release"),
        ("UPDATE schema_versions SET version = x'00' WHERE name = 'webhooks'", "not a version"),
    ],
    ids=["newer store", "garbage store", "newer feature", "garbage feature"],
)
async def test_a_store_this_release_cannot_read_is_refused_at_start_in_one_line(
    sql: str, needle: str, tmp_path: Path
) -> None:
    """A store written by a newer release, or whose schema versions are garbage, is refused
    by ``serve`` before anything listens, and by every command that opens a store: one line
    naming the schema, exit 2, no traceback, nothing changed (issue 47)."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    store = data / "crdt.sqlite3"
    store.write_bytes((LEGACY / "store.sqlite3").read_bytes())
    await _this_release_store(store)
    with contextlib.closing(sqlite3.connect(store)) as db:
        db.execute(sql)
        db.commit()
    store.chmod(0o600)  # else serve repairs the mode, and says so in a line of its own
    before = store.read_bytes()
    commands = [
        ("serve", "--port", "0"),
        ("check",),
        ("export", "--wedding", "w1"),
        ("compact",),
        ("quarantine", "list"),
        ("webhooks", "list"),
    ]
    for command in commands:
        code, out, err = await cli(*command, "--data-dir", str(data))
        line = _one_line_refusal(code, out + err)
        assert line.startswith(f"crdt-server {command[0]}:") and needle in line, (command, line)
        assert "schema" in line, line
    assert store.read_bytes() == before


@pytest.mark.asyncio
async def test_a_postgresql_store_of_a_newer_release_is_refused_at_start_in_one_line(
    tmp_path: Path, scratch_postgres: str
) -> None:
    """The same on PostgreSQL (issue 47): a feature's schema recorded at a version above
    this release's is one line and exit 2 from ``serve``, not a traceback."""
    from crdt_server.storage import Gateway, PostgresStore
    from crdt_server.storage.gateway import statements

    store = PostgresStore(scratch_postgres)
    await store.open()
    try:
        for schema in _schemas():
            await store.install(schema)
        newer = "UPDATE {t}schema_versions SET version = 99 WHERE name = 'threads'"
        await Gateway.of(store).run(statements([(newer, ())]))
    finally:
        await store.close()
    env = {"CRDT_SERVER_DATABASE_URL": scratch_postgres}
    for command in (("serve", "--port", "0"), ("check",)):
        code, out, err = await cli(*command, "--data-dir", str(tmp_path / "data"), env=env)
        line = _one_line_refusal(code, out + err)
        assert "schema 'threads' is at version 99" in line and "newer release" in line, line
