"""The hand-off of a connection between workers (crdt_server/wire/affinity.py) on real
sockets: a TCP connection passed with SCM_RIGHTS over a worker's control socket keeps
working in the receiver, the sender's descriptor closes without ending it, a worker that
cannot take it says so at once, one that stops answers 503, and a process of another user
cannot hand anything over. Each hand-off has a deadline (issue 47): the sender keeps a
duplicate until the owner acknowledges it and takes the connection back when the owner
does not in time (stopped, or gone); an owner that reads it late closes it unread, so one
socket is never served twice; acknowledged hand-offs leave no descriptor behind."""

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

_HEAD = b"GET /sync/w/d HTTP/1.1\r\n\r\n"

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
    assert wedding_of_path("/api/weddings/w1") == "w1"
    assert wedding_of_path("/api/weddings/") is None
    assert wedding_of_path("/sync/") is None
    assert wedding_of_path("/metrics") is None
    # The Hocuspocus path: /collab/{w} is the wedding's; bare /collab serves any wedding
    # where it lands, and nothing deeper names one.
    assert wedding_of_path("/collab/w1") == "w1"
    assert wedding_of_path("/collab") is None
    assert wedding_of_path("/collab/") is None
    assert wedding_of_path("/collab/w1/guests") is None
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


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _pair(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    return client, accepted


@pytest.mark.asyncio
async def test_an_owner_that_takes_hand_offs_in_time_acknowledges_and_no_descriptor_leaks(
    run_dir: Path,
) -> None:
    loop = asyncio.get_running_loop()
    adopted: list[socket.socket] = []
    owner_end = Affinity(0, 2, run_dir)
    owner_end.listen(loop, lambda sock, head: adopted.append(sock))
    sender = Affinity(1, 2, run_dir, timeout=30)
    sender.listen(loop, lambda sock, head: pytest.fail("adopted by the sender"))
    rounds = 50
    try:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()

            async def hand_offs(count: int) -> None:
                for _ in range(count):
                    client, accepted = _pair(listener)
                    with client, accepted:
                        assert sender.hand_off(0, accepted.fileno(), _HEAD)
                    await _until(lambda: sender.pending == 0 and len(adopted) == 1)
                    adopted.pop().close()

            await hand_offs(1)  # the control connection, opened once
            before = _open_fds()
            await hand_offs(rounds)
            assert _open_fds() == before
            assert sender.taken_back == 0 and owner_end.closed_late == 0
    finally:
        owner_end.close()
        sender.close()


def _stop(owner_end: Affinity) -> None:
    """The owner's loop no longer reads its control socket (as if SIGSTOPped)."""
    assert owner_end._listener is not None
    asyncio.get_running_loop().remove_reader(owner_end._listener.fileno())


def _resume(owner_end: Affinity) -> None:
    assert owner_end._listener is not None
    asyncio.get_running_loop().add_reader(owner_end._listener.fileno(), owner_end._accept)


@pytest.mark.asyncio
async def test_a_hand_off_a_stopped_owner_does_not_take_in_time_is_served_by_its_sender_once(
    run_dir: Path, tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    client, accepted = tcp_pair
    loop = asyncio.get_running_loop()
    owner_end = Affinity(0, 2, run_dir)
    owner_end.listen(loop, lambda sock, head: pytest.fail("adopted after its deadline"))
    taken: asyncio.Future[tuple[socket.socket, bytes]] = loop.create_future()
    timeout = 0.3
    sender = Affinity(1, 2, run_dir, timeout=timeout)
    sender.listen(loop, lambda sock, head: None, lambda sock, head: taken.set_result((sock, head)))
    try:
        _stop(owner_end)
        started = loop.time()
        assert sender.hand_off(0, accepted.fileno(), _HEAD)
        accepted.close()  # what the protocol does after a hand-off: the sender keeps a copy
        served, head = await asyncio.wait_for(taken, timeout + 5)
        assert loop.time() - started >= timeout
        assert head == _HEAD and sender.taken_back == 1 and sender.pending == 0
        # The owner missed a deadline: its weddings are served where they are accepted for
        # a while, without waiting again.
        other_client, other = socket.socketpair()
        with other_client, other:
            assert not sender.hand_off(0, other.fileno(), _HEAD)
        # The owner wakes up: it reads the hand-off late and closes it unread.
        _resume(owner_end)
        await _until(lambda: owner_end.closed_late == 1)
        with served:
            served.setblocking(True)
            served.sendall(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
            client.settimeout(5)
            assert client.recv(1024).startswith(b"HTTP/1.1 101 ")
            client.sendall(b"still one server")
            served.settimeout(5)
            assert served.recv(64) == b"still one server"
    finally:
        owner_end.close()
        sender.close()


@pytest.mark.asyncio
async def test_the_hand_offs_of_an_owner_that_dies_are_served_by_their_sender_at_once(
    run_dir: Path, tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    _, accepted = tcp_pair
    loop = asyncio.get_running_loop()
    owner_end = Affinity(0, 2, run_dir)
    owner_end.listen(loop, lambda sock, head: pytest.fail("adopted by a dead owner"))
    taken: asyncio.Future[socket.socket] = loop.create_future()
    sender = Affinity(1, 2, run_dir, timeout=60)
    sender.listen(loop, lambda sock, head: None, lambda sock, head: taken.set_result(sock))
    try:
        _stop(owner_end)
        assert sender.hand_off(0, accepted.fileno(), _HEAD)
        # The owner dies with the hand-off queued: its control socket goes with it.
        assert owner_end._listener is not None
        owner_end._listener.close()
        owner_end._listener = None
        (await asyncio.wait_for(taken, 10)).close()  # long before the deadline
        assert sender.taken_back == 1
    finally:
        owner_end.close()
        sender.close()


@pytest.mark.asyncio
async def test_an_owner_late_by_the_time_it_acknowledged_closes_the_hand_off_unread(
    run_dir: Path, tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    client, accepted = tcp_pair
    loop = asyncio.get_running_loop()
    readings = iter([0.0, float("inf")])  # in time; then, just after the acknowledgement, late
    owner_end = Affinity(0, 2, run_dir, clock=lambda: next(readings, float("inf")))
    owner_end.listen(loop, lambda sock, head: pytest.fail("adopted although late"))
    sender = Affinity(1, 2, run_dir, timeout=60)
    sender.listen(loop, lambda sock, head: None, lambda sock, head: pytest.fail("taken back"))
    try:
        assert sender.hand_off(0, accepted.fileno(), _HEAD)
        accepted.close()
        # The sender may have let go on the acknowledgement, so the owner cannot serve it
        # either: the connection ends (the client connects again), never served twice.
        await _until(lambda: owner_end.closed_late == 1 and sender.pending == 0)
        client.settimeout(5)
        assert client.recv(64) == b""
    finally:
        owner_end.close()
        sender.close()
