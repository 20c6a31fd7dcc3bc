"""Connection: frames written straight from ``send`` while nothing waits, handed to the writer
task when the transport makes them wait, and always delivered in order."""

from __future__ import annotations

import asyncio

import pytest

from crdt_server.auth.principals import ANONYMOUS
from crdt_server.core.connection import Connection

DEADLINE = 5.0


class GatedTransport:
    """Takes frames at once while its gate is open; with it closed, ``send`` waits."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.closed_with: int | None = None
        self.sends_waited = 0
        self._took = asyncio.Condition()

    async def receive(self) -> bytes | str:
        await asyncio.Event().wait()  # the tests never read
        raise AssertionError("unreachable")

    def receive_ready(self) -> bytes | str | None:
        return None

    async def send(self, data: bytes) -> None:
        if not self.gate.is_set():
            self.sends_waited += 1
            await self.gate.wait()
        self.sent.append(data)
        async with self._took:
            self._took.notify_all()

    async def wait_sent(self, count: int) -> None:
        async with asyncio.timeout(DEADLINE), self._took:
            await self._took.wait_for(lambda: len(self.sent) >= count)

    async def close(self, code: int, reason: str = "") -> None:
        self.closed_with = code


def _connection(transport: GatedTransport, max_messages: int = 100) -> Connection:
    conn = Connection(
        transport,
        ANONYMOUS,
        max_queue_bytes=1 << 20,
        max_queue_messages=max_messages,
        close_timeout=DEADLINE,
    )
    conn.start()
    return conn


@pytest.mark.asyncio
async def test_frames_are_written_from_send_while_nothing_waits() -> None:
    transport = GatedTransport()
    conn = _connection(transport)
    for i in range(3):
        conn.send(b"%d" % i)
        assert transport.sent == [b"%d" % k for k in range(i + 1)]  # no task switch needed
    await conn.finish()
    assert transport.closed_with == 1000


@pytest.mark.asyncio
async def test_a_send_that_waits_is_finished_by_the_writer_in_order() -> None:
    transport = GatedTransport()
    conn = _connection(transport)
    conn.send(b"a")
    transport.gate.clear()  # the peer stops taking bytes
    conn.send(b"b")  # starts, then has to wait
    conn.send(b"c")  # queued behind it
    conn.send(b"d")
    await asyncio.sleep(0)
    assert transport.sent == [b"a"] and transport.sends_waited == 1
    transport.gate.set()
    await transport.wait_sent(4)
    assert transport.sent == [b"a", b"b", b"c", b"d"]
    conn.send(b"e")  # idle again: straight through
    assert transport.sent[-1] == b"e"
    await conn.finish()
    assert transport.closed_with == 1000


@pytest.mark.asyncio
async def test_closing_while_a_send_waits_drops_it_and_closes() -> None:
    transport = GatedTransport()
    conn = _connection(transport)
    transport.gate.clear()
    conn.send(b"stuck")
    conn.send(b"queued")
    conn.request_close(1013, "slow consumer")
    await asyncio.wait_for(conn.wait_closed(), DEADLINE)
    assert transport.sent == []
    assert transport.closed_with == 1013 and conn.close_code == 1013


@pytest.mark.asyncio
async def test_overflow_behind_a_waiting_send_closes_with_1013() -> None:
    transport = GatedTransport()
    conn = _connection(transport, max_messages=2)
    transport.gate.clear()
    for i in range(4):  # one waiting, two queued, then one too many
        conn.send(b"%d" % i)
    assert conn.overflowed
    await asyncio.wait_for(conn.wait_closed(), DEADLINE)
    assert transport.closed_with == 1013


class InboxTransport(GatedTransport):
    """Hands out the frames put in ``inbox``, one per ``receive``."""

    def __init__(self) -> None:
        super().__init__()
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()

    async def receive(self) -> bytes | str:
        return await self.inbox.get()


@pytest.mark.asyncio
async def test_receiving_marks_activity_not_a_new_connection() -> None:
    """``last_activity`` follows the peer's frames; ``connected_at`` (what presence reports
    as "online since") stays the moment the connection was accepted."""
    transport = InboxTransport()
    conn = _connection(transport)
    accepted = conn.connected_at
    conn.last_activity = conn.connected_at = accepted - 60.0  # accepted a minute ago
    transport.inbox.put_nowait(b"\x00")
    async with asyncio.timeout(DEADLINE):
        assert await conn.receive() == b"\x00"
    assert conn.last_activity >= accepted
    assert conn.connected_at == accepted - 60.0
