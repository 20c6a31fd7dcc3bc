"""The ``/sync`` sessions' keepalive (its schedule: ``tests/test_ticks.py``): a session
silent for a tick is sent an empty awareness update."""

from __future__ import annotations

import pytest

from crdt_server.codec.awareness import encode_awareness_entries
from crdt_server.codec.protocol import encode_awareness
from crdt_server.core.keepalive import Keepalive, Ticked
from crdt_server.testing.inprocess import in_process_server

pytestmark = pytest.mark.asyncio

DEADLINE = 10.0


class _Kept(Keepalive):
    """Never ticks by itself (the test ticks): remembers every session added."""

    def __init__(self) -> None:
        super().__init__(3600.0)
        self.sessions: list[Ticked] = []

    def add(self, session: Ticked) -> int:
        self.sessions.append(session)
        return super().add(session)


async def test_a_sync_session_silent_for_a_tick_is_sent_an_empty_awareness_update() -> None:
    """A ``/sync`` connection that was sent nothing since the last tick is sent an empty
    awareness update (y-websocket drops a socket silent for 30 s); one that was sent
    something is not. A session that ends leaves the keepalive."""
    async with in_process_server() as server:
        keepalive = server.registry.keepalive = _Kept()
        client = await server.client()
        (room,) = server.registry.rooms.values()
        (conn,) = room.connections
        (session,) = keepalive.sessions
        assert len(keepalive) == 1
        session.keepalive_tick()  # the greeting went out since it joined: nothing
        sent = conn.frames_sent
        session.keepalive_tick()  # nothing since the last tick: the empty update
        assert conn.frames_sent == sent + 1
        conn.send(encode_awareness(encode_awareness_entries(())))  # any frame
        session.keepalive_tick()
        assert conn.frames_sent == sent + 2
        session.keepalive_tick()
        assert conn.frames_sent == sent + 3
        await client.close()
        await server.settle()
        assert len(keepalive) == 0
