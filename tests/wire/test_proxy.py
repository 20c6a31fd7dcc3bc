"""A wedding's HTTP request run by its owner worker (crdt_server/wire/proxy.py), in one
process on real Unix sockets: the request's head, body and disconnect reach the owner's
app, its answer streams back, channels are reused one request at a time, an owner past the
deadline runs nothing (its sender serves the request), and a process of another user
cannot pass a request."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from crdt_server.wire.affinity import make_run_dir
from crdt_server.wire.proxy import MAX_CHUNK, PROXIED_KEY, Message, ProxyClient, ProxyServer, Scope

pytestmark = pytest.mark.timeout(30)

_SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture
def run_dir() -> Iterator[Path]:
    path = make_run_dir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class _Echo:
    """An ASGI app: answers with what it was asked, in several body parts; on ``/stream``,
    parts until the client disconnects."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []
        self.disconnected = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]})
        if scope["path"] == "/api/weddings/w/stream":
            for i in range(1000):
                await send(
                    {"type": "http.response.body", "body": b"part%d\n" % i, "more_body": True}
                )
                if i == 2:
                    assert (await receive())["type"] == "http.disconnect"
                    self.disconnected.set()
                    break
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": scope["method"].encode()})


def _scope(path: str = "/api/weddings/w/docs/guests", method: str = "POST") -> Scope:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"a=1",
        "headers": [(b"authorization", b"Bearer t")],
        "client": ("10.0.0.9", 4242),
        "server": ("127.0.0.1", 8000),
    }


class _Client:
    """The accepting side's ASGI ``receive`` and ``send`` of one request."""

    def __init__(self, body: bytes, *, hold: bool = False) -> None:
        parts = [body[i : i + 70_000] for i in range(0, len(body), 70_000)] or [b""]
        self.incoming: asyncio.Queue[Message] = asyncio.Queue()
        for i, part in enumerate(parts):
            self.incoming.put_nowait(
                {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
            )
        self.hold = hold
        self.sent: list[Message] = []
        self.got_body = asyncio.Event()

    async def receive(self) -> Message:
        return await self.incoming.get()

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            self.got_body.set()

    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


@pytest_asyncio.fixture
async def pair(run_dir: Path) -> AsyncIterator[tuple[_Echo, ProxyServer, ProxyClient]]:
    app = _Echo()
    owner = ProxyServer(1, run_dir, app, lambda: {"k": "v"})
    await owner.start()
    sender = ProxyClient(0, 2, run_dir, timeout=2.0)
    try:
        yield app, owner, sender
    finally:
        sender.close()
        owner.close()


@pytest.mark.asyncio
async def test_a_request_runs_on_the_owner_and_its_answer_streams_back(
    pair: tuple[_Echo, ProxyServer, ProxyClient],
) -> None:
    app, _, sender = pair
    proxied: list[int] = []
    sender.on_proxied = proxied.append
    body = os.urandom(3 * MAX_CHUNK + 5)
    client = _Client(body)
    assert await sender.forward(1, _scope(), client.receive, client.send)
    assert client.sent[0] == {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"x-a", b"1")],
    }
    assert client.body() == body + b"POST"
    assert client.sent[-1].get("more_body") is False
    scope = app.scopes[0]
    assert scope[PROXIED_KEY] == 0 and scope["state"] == {"k": "v"}
    assert scope["client"] == ("10.0.0.9", 4242) and scope["query_string"] == b"a=1"
    assert scope["headers"] == [(b"authorization", b"Bearer t")]
    # The next request reuses the channel (one request at a time on it).
    again = _Client(b"")
    assert await sender.forward(1, _scope(method="GET"), again.receive, again.send)
    assert again.body() == b"GET"
    assert len(sender._idle[1]) == 1
    assert proxied == [1, 1]


@pytest.mark.asyncio
async def test_a_streamed_answer_ends_when_the_client_disconnects(
    pair: tuple[_Echo, ProxyServer, ProxyClient],
) -> None:
    app, _, sender = pair
    client = _Client(b"")
    forwarding = asyncio.create_task(
        sender.forward(1, _scope("/api/weddings/w/stream", "GET"), client.receive, client.send)
    )
    await asyncio.wait_for(client.got_body.wait(), 10)
    client.incoming.put_nowait({"type": "http.disconnect"})
    await asyncio.wait_for(app.disconnected.wait(), 10)
    assert await asyncio.wait_for(forwarding, 10)
    assert client.body().startswith(b"part0\npart1\n")


@pytest.mark.asyncio
async def test_an_owner_past_the_deadline_runs_nothing_and_the_sender_serves_it(
    run_dir: Path,
) -> None:
    app = _Echo()
    # The owner's clock is an hour ahead: every request it reads is past its deadline.
    owner = ProxyServer(1, run_dir, app, dict, clock=lambda: time.monotonic() + 3600)
    await owner.start()
    sender = ProxyClient(0, 2, run_dir, timeout=0.5)
    try:
        client = _Client(b"body")
        assert not await sender.forward(1, _scope(), client.receive, client.send)
        assert client.sent == [] and sender.served_here == 1
        assert await client.receive() == {
            "type": "http.request",
            "body": b"body",
            "more_body": False,
        }
        assert app.scopes == [] and owner.closed_late == 1
        # An owner that is not listening: served here at once.
        owner.close()
        assert not await sender.forward(1, _scope(), client.receive, client.send)
        assert sender.served_here == 2
    finally:
        sender.close()
        owner.close()


@pytest.mark.skipif(
    os.getuid() != 0 or not os.access(_SYSTEM_PYTHON, os.X_OK),
    reason="needs root (to run a process as another user) and a system python3",
)
@pytest.mark.asyncio
async def test_a_process_of_another_user_cannot_pass_a_request(
    pair: tuple[_Echo, ProxyServer, ProxyClient], run_dir: Path
) -> None:
    app, owner, _ = pair
    # Open the directory for this test only: the uid check is the second wall.
    os.chmod(run_dir, 0o755)
    os.chmod(run_dir / "h1", 0o777)
    script = (
        "import json, socket, struct, sys, time\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "s.connect(sys.argv[1])\n"
        "head = json.dumps({'from': 0, 'method': 'GET', 'path': '/api/weddings/w/x'}).encode()\n"
        "payload = struct.pack('!d', time.monotonic() + 60) + head\n"
        "try:\n"
        "    s.sendall(struct.pack('!IB', len(payload), 1) + payload)\n"
        "    s.recv(16)\n"
        "except OSError:\n"
        "    pass\n"
    )
    process = await asyncio.create_subprocess_exec(
        _SYSTEM_PYTHON, "-c", script, str(run_dir / "h1"), user=65534, stderr=subprocess.PIPE
    )
    _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err
    assert owner.refused_peers == 1
    assert app.scopes == []
