"""Every example in examples/ runs against a real server and does what the README says, run
the way the README runs it (``./scripts/example NAME``); and every README command block
marked runnable works as written on a fresh copy of the repository."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from pycrdt import Map, Text

from tests.server import ServerProcess
from tests.yclient import YClient

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
EXAMPLE = ROOT / "scripts" / "example"
README = ROOT / "README.md"


async def _run(*command: str, cwd: Path, timeout: float = 30) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(timeout):
        stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """A server as the README starts it: tokens required, secret generated on first start."""
    async with ServerProcess(tmp_path / "data", anonymous=False) as proc:
        yield proc


async def _cli_token(server: ServerProcess) -> str:
    """A token minted the way the README shows, with the server's own secret."""
    out = await _run(
        sys.executable,
        "-m",
        "crdt_server",
        "token",
        "--wedding",
        "w42",
        "--role",
        "planner",
        "--sub",
        "example",
        "--data-dir",
        str(server.data_dir),
        cwd=ROOT,
    )
    return out.strip().splitlines()[-1]


def _has_guest(client: YClient, guest_id: str) -> bool:
    return guest_id in (client.doc.get("guests", type=Map).to_py() or {})


@pytest.mark.asyncio
async def test_python_client_example(server: ServerProcess) -> None:
    tok = await _cli_token(server)
    async with YClient(server.ws_url, "w42/guests", token=tok) as watcher:
        command = (str(EXAMPLE), "python_client", server.ws_url, tok)
        out = await _run(*command, cwd=ROOT)
        assert json.loads(out.splitlines()[-1])["g-ada"]["name"] == "Ada Lovelace"
        await watcher.wait(lambda: _has_guest(watcher, "g-ada"))


@pytest.mark.asyncio
async def test_wedding_over_http_example(server: ServerProcess) -> None:
    tok = await _cli_token(server)
    async with YClient(server.ws_url, "w42/guests", token=tok) as editor:
        command = (str(EXAMPLE), "wedding_http", server.url, tok, "w42")
        out = json.loads((await _run(*command, cwd=ROOT)).splitlines()[-1])
        assert out["guests"]["grace"]["meal"] == "vegetarian"
        assert out["assignments"]["ada"]["table_id"] == "rose"
        assert out["conflicts"] == []
        # The live editor saw every change made over HTTP.
        await editor.wait(lambda: _has_guest(editor, "grace"))


@pytest.mark.js
@pytest.mark.asyncio
async def test_js_client_example(server: ServerProcess) -> None:
    # scripts/example installs the example's own pinned packages (examples/package-lock.json).
    tok = await _cli_token(server)
    async with YClient(server.ws_url, "w42/guests", token=tok) as watcher:
        out = await _run(str(EXAMPLE), "js_client", server.ws_url, tok, cwd=ROOT, timeout=120)
        assert json.loads(out.splitlines()[-1])["g-grace"]["rsvp"] == "accepted"
        await watcher.wait(lambda: _has_guest(watcher, "g-grace"))


@pytest.mark.js
@pytest.mark.asyncio
async def test_js_client_example_edits_an_existing_entry_in_place(server: ServerProcess) -> None:
    """Issue 48: the example replaced ``g-grace`` whole (``guests.set('g-grace', new
    Y.Map())``), so an entry another client had written lost its contact, household and
    notes; it now creates the entry only when absent and edits fields in place."""
    tok = await _cli_token(server)
    async with YClient(server.ws_url, "w42/guests", token=tok) as first:
        guests = first.doc.get("guests", type=Map)
        with first.doc.transaction():
            guests["g-grace"] = Map(
                {
                    "name": "Grace",
                    "contact": "grace@example.com",
                    "household": "Hopper household",
                    "notes": Text("Navy dress uniform."),
                }
            )
        await first.flush()
        await first.wait(first.is_confirmed)
        out = await _run(str(EXAMPLE), "js_client", server.ws_url, tok, cwd=ROOT, timeout=120)
        grace = json.loads(out.splitlines()[-1])["g-grace"]
        assert grace["rsvp"] == "accepted" and grace["name"] == "Grace Hopper"

        def kept() -> bool:
            entry = guests.to_py()["g-grace"]
            return bool(
                entry.get("rsvp") == "accepted"
                and entry.get("contact") == "grace@example.com"
                and entry.get("household") == "Hopper household"
                and str(entry.get("notes", "")).startswith("Navy dress uniform.")
            )

        await first.wait(kept)


@pytest.mark.js
@pytest.mark.asyncio
async def test_js_client_example_stops_when_refused_at_the_upgrade(server: ServerProcess) -> None:
    """A stock provider refused at the upgrade (a bad token: 401) sees only a failed socket
    and retries for ever; the example stops after a few refusals, says so, and exits 1."""
    process = await asyncio.create_subprocess_exec(
        str(EXAMPLE),
        "js_client",
        server.ws_url,
        "not-a-token",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        _, stderr = await process.communicate()
    assert process.returncode == 1, stderr.decode()
    assert "refused" in stderr.decode()
    assert "not-a-token" not in stderr.decode()


# -- the README and the docs, as written, on a fresh copy -----------------------------------

RUNNABLE = re.compile(
    r"<!-- runnable(?:: (server|file [\w.-]+))? -->\n```(?:sh|bash|python)\n(.*?)```", re.DOTALL
)
"""A block the README or a docs page marks runnable: ``<!-- runnable -->`` runs it to
completion (exit 0); ``<!-- runnable: server -->`` stops the server a block before it started
(as a reader would, with Ctrl-C), starts it, waits for the listening line, and keeps it
running for the blocks after it; ``<!-- runnable: file NAME -->`` saves the block as NAME
(a script a later block runs)."""


def documented_pages() -> list[Path]:
    """The README, then the docs pages in the order of the site's navigation (the order a
    reader follows, and the order their blocks run in)."""
    import yaml

    def walk(node: object) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, dict):
            return [page for value in node.values() for page in walk(value)]
        if isinstance(node, list):
            return [page for item in node for page in walk(item)]
        return []

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    return [README, *(ROOT / "docs" / page for page in walk(nav))]


def readme_blocks() -> list[tuple[str, str]]:
    blocks = [
        (kind or "run", body)
        for page in documented_pages()
        for kind, body in RUNNABLE.findall(page.read_text())
    ]
    assert blocks, "the README marks no block runnable"
    return blocks


def fresh_copy(target: Path) -> None:
    """What a clone of this tree holds: tracked and new files, nothing ignored (no .venv,
    no node_modules, no data), executable bits and symlinks kept (``crdt_server/documents``
    and ``crdt_server/storage`` are links, as git checks them out)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).symlink_to(os.readlink(source))
        elif source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def test_the_readme_marks_its_quick_start_runnable() -> None:
    blocks = readme_blocks()
    kinds = [kind for kind, _ in blocks]
    assert kinds[0] == "server" and "./scripts/serve" in blocks[0][1]
    text = "\n".join(body for _, body in blocks)
    for command in ("scripts/example python_client", "scripts/example js_client", "token"):
        assert command in text
    for command in ("check", "export", "import", "backup", "compact"):
        assert f"crdt-server {command}" in text
    # The guides' HTTP examples run too: sessions, threads, incoming webhooks, calendar.
    for path in ("/sessions", "/threads", "/inbound-sources", "/inbound/crm", "/calendar-tokens"):
        assert path in text, path


def test_every_shell_block_of_the_docs_is_runnable_or_says_why_not() -> None:
    """A shell block nobody runs rots: each one is marked runnable, or is one of the few
    that need what a fresh copy lacks (PostgreSQL and Redis hosts, a stream that never
    ends, a second shell's placeholders)."""
    unrun = re.compile(r"(?<!-->\n)```(?:sh|bash)\n(.*?)```", re.DOTALL)
    # The fault campaign needs root and minutes per schedule (its short run is a test).
    allowed = (
        "--workers 4",
        "events/stream?ticket",
        "./scripts/serve --demo",
        "scripts/test",
        "scripts/faults",
    )
    # The dated performance reports quote the (hours-long) commands behind their figures.
    for page in documented_pages():
        if page.parent.name == "performance":
            continue
        for body in unrun.findall(page.read_text()):
            assert any(mark in body for mark in allowed), f"{page.name}: not runnable:\n{body}"


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        os.killpg(process.pid, signal.SIGTERM)
        async with asyncio.timeout(30):
            await process.wait()


@pytest.mark.slow
@pytest.mark.js
@pytest.mark.timeout(900)
@pytest.mark.asyncio
async def test_every_runnable_readme_block_works_on_a_fresh_copy(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    await asyncio.to_thread(fresh_copy, clone)
    # The caller's environment minus the server's settings; port 0 so that `./scripts/serve`
    # as written picks a free port (its listening line says which, and the blocks after it
    # are run against that port instead of 8000). Nothing else is set: a block that needs a
    # setting (the admin key) sets it as written.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRDT_SERVER_", "VIRTUAL"))}
    env.update(CRDT_SERVER_PORT="0")
    servers: list[asyncio.subprocess.Process] = []
    port: int | None = None
    try:
        for kind, body in readme_blocks():
            if port is not None:
                body = body.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            if kind.startswith("file "):
                (clone / kind.removeprefix("file ")).write_text(body)
                continue
            if kind == "server":
                for running in servers:
                    await _stop(running)
                process = await asyncio.create_subprocess_exec(
                    "bash", "-euo", "pipefail", "-c", body,
                    cwd=clone, env=env, start_new_session=True,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                )  # fmt: skip
                servers.append(process)
                port = await _listening_port(process)
                continue
            process = await asyncio.create_subprocess_exec(
                "bash", "-euo", "pipefail", "-c", body,
                cwd=clone, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            async with asyncio.timeout(600):
                out, _ = await process.communicate()
            assert process.returncode == 0, f"block failed:\n{body}\n---\n{out.decode()}"
    finally:
        for process in servers:
            await _stop(process)
    assert (clone / "w42.json").is_file() and list(clone.glob("backup-*.sqlite3"))


async def _listening_port(process: asyncio.subprocess.Process) -> int:
    """Wait (bootstrap included) for the server's ``listening on`` line."""
    assert process.stdout is not None
    seen = bytearray()
    async with asyncio.timeout(600):
        while True:
            line = await process.stdout.readline()
            if not line:
                raise AssertionError(f"the server block exited:\n{seen.decode(errors='replace')}")
            seen += line
            match = re.search(rb"crdt-server listening on http://127\.0\.0\.1:(\d+)", line)
            if match:
                break
    # Keep reading its output so that a full pipe never blocks the server.
    drain = asyncio.create_task(_drain(process))
    _DRAINS.add(drain)
    drain.add_done_callback(_DRAINS.discard)
    return int(match.group(1))


_DRAINS: set[asyncio.Task[None]] = set()


async def _drain(process: asyncio.subprocess.Process) -> None:
    assert process.stdout is not None
    while await process.stdout.readline():
        pass
