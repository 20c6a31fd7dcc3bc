"""The hand-off of a connection between workers (crdt_server/wire/affinity.py) on real
sockets: a TCP connection passed with SCM_RIGHTS over a worker's control socket keeps
working in the receiver, the sender's descriptor closes without ending it, a worker that
cannot take it says so at once, one that stops answers 503, and a process of another user
cannot hand anything over."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from crdt_server.wire.affinity import Affinity, make_run_dir, owner, wedding_of_path

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def run_dir() -> Iterator[Path]:
    path = make_run_dir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest_asyncio.fixture
async def tcp_pair() -> AsyncIterator[tuple[socket.socket, socket.socket]]:
    """(client, accepted): both ends of one real TCP connection on 127.0.0.1."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
    try:
        yield client, accepted
    finally:
        client.close()
        accepted.close()


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the loop run until ``condition`` holds (what it waits for is a callback of the
    loop's reader, which sets no event)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.005)


def test_the_run_directory_is_private_and_short() -> None:
    path = make_run_dir()
    try:
        assert path.stat().st_mode & 0o777 == 0o700
        assert len(str(path / "w999")) < 108
    finally:
        path.rmdir()


def test_the_wedding_of_a_path() -> None:
    assert wedding_of_path("/sync/w1/guests") == "w1"
    assert wedding_of_path("/api/weddings/w1/documents/guests") == "w1"
    assert wedding_of_path("/api/weddings/w1") is None
    assert wedding_of_path("/sync/") is None
    assert wedding_of_path("/metrics") is None
    assert owner("w1", 4) == owner("w1", 4) in range(4)


@pytest.mark.asyncio
async def test_a_handed_off_connection_lives_on_in_the_owner(
    run_dir: Path, tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    client, accepted = tcp_pair
    loop = asyncio.get_running_loop()
    got: asyncio.Future[tuple[socket.socket, bytes]] = loop.create_future()
    owner_end = Affinity(0, 2, run_dir)
    owner_end.listen(loop, lambda sock, head: got.set_result((sock, head)))
    sender = Affinity(1, 2, run_dir)
    try:
        client.sendall(b"GET /sync/w/d HTTP/1.1\r\n\r\n")
        head = accepted.recv(1024)
        assert sender.hand_off(0, accepted.fileno(), head)
        accepted.close()  # the sender's descriptor: no shutdown, the peer sees nothing
        adopted, received = await asyncio.wait_for(got, 10)
        assert received == head
        with adopted:
            assert adopted.getpeername() == client.getsockname()
            adopted.setblocking(True)
            adopted.sendall(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
            client.settimeout(5)
            assert client.recv(1024).startswith(b"HTTP/1.1 101 ")
            client.sendall(b"after")
            assert adopted.recv(16) == b"after"
    finally:
        owner_end.close()
        sender.close()


@pytest.mark.asyncio
async def test_an_owner_that_is_not_listening_is_refused_at_once(
    run_dir: Path, tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    _, accepted = tcp_pair
    sender = Affinity(1, 2, run_dir)
    assert not sender.hand_off(0, accepted.fileno(), b"head")  # no socket file
    # A socket file left by a dead owner: nobody listens on it.
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as stale:
        stale.bind(str(run_dir / "w0"))
    assert not sender.hand_off(0, accepted.fileno(), b"head")
    assert not sender.hand_off(1, accepted.fileno(), b"head")  # itself


@pytest.mark.asyncio
async def test_a_stopping_owner_answers_what_is_queued_with_503(
    run_dir: Path, tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    client, accepted = tcp_pair
    loop = asyncio.get_running_loop()
    owner_end = Affinity(0, 2, run_dir)
    owner_end.listen(loop, lambda sock, head: pytest.fail("adopted by a stopping owner"))
    sender = Affinity(1, 2, run_dir)
    try:
        assert sender.hand_off(0, accepted.fileno(), b"GET /sync/w/d HTTP/1.1\r\n\r\n")
        accepted.close()
        # The owner stops before its loop took the hand-off (not even its accept ran).
        owner_end.close()
        client.settimeout(5)
        answer = client.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"retry-after: 1" in answer
    finally:
        sender.close()


_SYSTEM_PYTHON = "/usr/bin/python3"
"""A Python another user may run (the project's virtual environment may sit in a private
home directory)."""


@pytest.mark.skipif(
    os.getuid() != 0 or not os.access(_SYSTEM_PYTHON, os.X_OK),
    reason="needs root (to run a process as another user) and a system python3",
)
@pytest.mark.asyncio
async def test_a_process_of_another_user_cannot_hand_anything_over(run_dir: Path) -> None:
    loop = asyncio.get_running_loop()
    owner_end = Affinity(0, 2, run_dir)
    owner_end.listen(loop, lambda sock, head: pytest.fail("adopted from another user"))
    # Open the directory for this test only: the uid check is the second wall.
    os.chmod(run_dir, 0o755)
    os.chmod(run_dir / "w0", 0o777)
    script = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
        "s.connect(sys.argv[1])\n"
        "t = socket.create_connection(('127.0.0.1', int(sys.argv[2])))\n"
        "try:\n"
        "    socket.send_fds(s, [b'GET / HTTP/1.1\\r\\n\\r\\n'], [t.fileno()])\n"
        "except OSError:\n"
        "    pass\n"
    )
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        try:
            process = await asyncio.create_subprocess_exec(
                _SYSTEM_PYTHON,
                "-c",
                script,
                str(run_dir / "w0"),
                str(listener.getsockname()[1]),
                user=65534,
                stderr=subprocess.PIPE,
            )
            _, err = await asyncio.wait_for(process.communicate(), 20)
            assert process.returncode == 0, err
            await _until(lambda: owner_end.refused_peers == 1)
            assert not owner_end._readers
        finally:
            owner_end.close()
