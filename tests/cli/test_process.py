"""The process as an operator runs it: start-up with bad settings, stop signals, file
modes of the data directory, and which proxies are believed (issue 15, items 9 and 10)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pycrdt import Doc, Text

from tests.server import ServerProcess
from tests.wire.test_wire import fresh_room, refusal, ws_connect

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]


async def run_cli(
    env: dict[str, str], data_dir: Path, timeout: float
) -> tuple[int, bytes, bytes, float]:
    """Run ``crdt-server serve`` to its end; returns (status, stdout, stderr, seconds)."""
    began = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crdt_server",
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out, err, time.monotonic() - began


@pytest.fixture(scope="session")  # not "module": its tests need not share a worker
def start_seconds() -> float:
    """Seconds ``crdt-server --version`` takes here and now: the interpreter's start and
    the command's imports, which a refused start pays too (more on a loaded machine)."""
    began = time.monotonic()
    subprocess.run([sys.executable, "-m", "crdt_server", "--version"], check=True, timeout=60)
    return time.monotonic() - began


@pytest.mark.parametrize(
    "env",
    [
        {"CRDT_SERVER_PERMISSIONS": "{bad"},
        {"CRDT_SERVER_PERMISSIONS": '{"vendor": {"timeline": "bogus"}}'},
        {"CRDT_SERVER_TRUSTED_PROXIES": "not-an-address"},
        {"CRDT_SERVER_MAX_ROOMS": "lots"},
        {"CRDT_SERVER_FEATURES": "events,bogus"},
        {"CRDT_SERVER_FEATURES": ","},
    ],
)
async def test_a_bad_setting_is_one_line_and_a_nonzero_exit(
    env: dict[str, str], tmp_path: Path, start_seconds: float
) -> None:
    # A start that listened would never end by itself: the deadline only bounds that.
    status, out, err, seconds = await run_cli(env, tmp_path / "data", timeout=50)
    assert status != 0
    # Refused at once: no longer than starting the command takes, with room to spare (a
    # start that waited on something, or retried, would not be).
    assert seconds < 2 * start_seconds + 2, (seconds, start_seconds)
    assert b"listening" not in out, out
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("crdt-server"), lines


@pytest.fixture
def silent_listener() -> Iterator[socket.socket]:
    """A listening TCP socket that never says a word (a hung database)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock
    finally:
        sock.close()


async def test_sigterm_ends_a_stuck_startup_within_the_shutdown_timeout(
    silent_listener: socket.socket, tmp_path: Path
) -> None:
    port = silent_listener.getsockname()[1]
    env = {
        "CRDT_SERVER_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/x",
        "CRDT_SERVER_SHUTDOWN_TIMEOUT_SECONDS": "2",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crdt_server",
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path / "data"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    assert process.stderr is not None
    silent_listener.setblocking(False)
    loop = asyncio.get_running_loop()
    peers: list[socket.socket] = []
    try:
        # Startup is under way once the server waits on the database (since issue 47 it
        # opens the store before anything listens, to refuse one it cannot serve).
        async with asyncio.timeout(10):
            peer, _ = await loop.sock_accept(silent_listener)
        peers.append(peer)  # kept open, silent, until the process is gone
        process.send_signal(signal.SIGTERM)
        began = time.monotonic()
        async with asyncio.timeout(6):
            out, _ = await process.communicate()
        assert time.monotonic() - began < 2 + 2  # the timeout, plus the interpreter's exit
        assert process.returncode != 0
        assert b"listening" not in out
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        for peer in peers:
            peer.close()


async def test_sigterm_stops_a_running_server_with_status_0(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    await server.start()
    began = time.monotonic()
    assert await server.stop(timeout=10) == 0
    assert time.monotonic() - began < 10


async def test_the_data_directory_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with ServerProcess(data, anonymous=True) as server:
        doc: Doc[Text] = Doc()
        doc.get("notes", type=Text).insert(0, "Aunt Mathilde")
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{server.url}/api/weddings/w1/docs/guests/update",
                content=doc.get_update(),
                headers={"content-type": "application/octet-stream"},
            )
            assert response.status_code < 300, response.text
        names = {p.name for p in data.iterdir()}
        assert {"crdt.sqlite3", "auth_secret"} <= names, names
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        for path in data.iterdir():
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == 0o600, f"{path.name} is {mode:o}"


@pytest.mark.parametrize("trusted", [False, True])
async def test_forwarded_for_is_believed_only_from_listed_proxies(
    trusted: bool, tmp_path: Path
) -> None:
    """One connection per address: two clients behind a trusted proxy are two addresses;
    a peer that merely claims to be a proxy is its own address."""
    env = {"CRDT_SERVER_MAX_CONNECTIONS_PER_ADDRESS": "1"}
    if trusted:
        env["CRDT_SERVER_TRUSTED_PROXIES"] = "127.0.0.1"
    async with ServerProcess(tmp_path / "data", env=env) as server:
        port = server.port
        alice = {"X-Forwarded-For": "203.0.113.7"}
        bob = {"X-Forwarded-For": "198.51.100.1"}
        async with await ws_connect(port, fresh_room(), alice) as first:
            await first.greeting()
            if trusted:
                async with await ws_connect(port, fresh_room(), bob) as second:
                    await second.greeting()
            else:
                response, body = await refusal(port, fresh_room(), bob)
                assert response.status == 429, (response, body)


def open_files_limits(pid: int) -> tuple[str, str]:
    """The soft and hard open-files limits of process ``pid``, as /proc shows them."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return soft, hard
    raise AssertionError("no open-files line in /proc/PID/limits")


async def test_serve_raises_its_open_files_limit_to_the_hard_limit_and_logs_both(
    tmp_path: Path,
) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = 256
    if hard != resource.RLIM_INFINITY and hard <= lowered:
        pytest.fail(f"this machine's hard open-files limit ({hard}) is below {lowered}")
    # The child inherits the lowered soft limit, as from `ulimit -Sn 256` in a shell.
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        server = ServerProcess(tmp_path / "data")
        await server.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        assert server.process is not None
        child_soft, child_hard = open_files_limits(server.process.pid)
        assert child_soft == child_hard
        shown = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
        assert f"open files: soft limit raised from {lowered} to {shown}" in server.log_text()
        assert f"(hard limit {shown})" in server.log_text()
    finally:
        await server.stop()


async def _serve_until_links(
    *args: str, data_dir: Path
) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    """Start ``crdt-server serve ARGS`` and read its output up to the last sign-in link
    (printed once the app has started); returns the process and ``{role: url}``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crdt_server", "serve", "--port", "0",
        "--data-dir", str(data_dir), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    links: dict[str, str] = {}
    async with asyncio.timeout(30):
        while "friend" not in links:
            line = (await process.stdout.readline()).decode()
            assert line, "serve exited before printing its links"
            words = line.split()
            if len(words) == 2 and words[1].startswith("http"):
                links[words[0]] = words[1]
    return process, links


async def _stop(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        await process.wait()


@pytest.mark.parametrize(
    "args", [("--allow-anonymous",), ("--allow-anonymous", "--allow-anonymous-on-network")]
)
async def test_anonymous_on_a_network_address_needs_its_own_flag(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    """``--allow-anonymous`` lets anyone who reaches the port write every wedding: on an
    address other than loopback the server refuses to start unless told twice."""
    command = ("serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path), *args)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crdt_server", *command,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    if "--allow-anonymous-on-network" not in args:
        async with asyncio.timeout(15):
            out, err = await process.communicate()
        assert process.returncode == 2 and b"listening" not in out
        lines = err.decode().splitlines()
        assert len(lines) == 1 and "--allow-anonymous-on-network" in lines[0], lines
        assert "local demo" in lines[0]
        return
    try:
        async with asyncio.timeout(30):
            while b"listening" not in (line := await process.stdout.readline()):
                assert line, "serve exited"
    finally:
        await _stop(process)


async def test_anonymous_on_loopback_prints_sign_in_links_that_let_a_person_in(
    tmp_path: Path,
) -> None:
    """The app opened on a "Sign in" page with no way in, even with ``--allow-anonymous``:
    now serve prints a link per role, as ``--demo`` does, and says it is a local demo."""
    process, links = await _serve_until_links("--allow-anonymous", data_dir=tmp_path)
    try:
        assert set(links) == {"couple", "planner", "family", "vendor", "friend"}
        base, token = links["couple"].split("/app/#token=", 1)
        assert base.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=base) as http:
            page = await http.get("/app/")
            assert page.status_code == 200
            access = await http.get(
                "/api/weddings/demo/access", headers={"Authorization": f"Bearer {token}"}
            )
            assert access.status_code == 200, access.text
            assert access.json()["role"] == "couple"
    finally:
        await _stop(process)


async def test_the_native_stack_serves_and_offers_no_permessage_deflate(tmp_path: Path) -> None:
    """permessage-deflate is not offered (it used to hand the connection over to uvicorn's
    websockets-sansio): the native stack serves, and a client offering deflate gets none."""
    async with ServerProcess(tmp_path / "data") as server:
        # The native stack's answer (uvicorn's websockets-sansio answered 400, naming none).
        response, _ = await refusal(server.port, fresh_room(), {"Sec-WebSocket-Version": "8"})
        assert response.status == 426
        offer = {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}
        async with await ws_connect(server.port, fresh_room(), offer) as ws:
            assert ws.response.header("sec-websocket-extensions") is None, ws.response
            await ws.greeting()
