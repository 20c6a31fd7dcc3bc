"""Each person's status, section and typing, read from their presence (awareness) and
activity, on the real rooms of an in-process server with the fake clock: online, away
after the away time without activity (a renewal of an unchanged state is not activity, a
document update is), busy when their presence says so (it wins over away), offline with
when they were last seen; and each change told once to the directory's listeners."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from pycrdt import Map

from crdt_server import clock
from crdt_server.auth.principals import Principal
from crdt_server.codec.awareness import AwarenessEntry, encode_awareness_entries
from crdt_server.codec.protocol import encode_awareness
from crdt_server.core.hooks import Core, Extension, Hooks, RoomView
from crdt_server.core.views import ConnectionView
from crdt_server.core.weddings import WeddingService
from crdt_server.documents.domain import WEDDINGS
from crdt_server.features.presence import PresenceChange, PresenceDirectory, PresenceSettings
from crdt_server.testing.inprocess import InProcessClient, InProcessServer, in_process_server
from crdt_server.testing.waits import until

pytestmark = [pytest.mark.timeout(20), pytest.mark.asyncio]

AWAY = PresenceSettings().away_after_seconds
ANN = Principal("ann", "Ann Lee", "couple", can_write=True)
BO = Principal("bo", "Bo Chen", "planner", can_write=True)
ROOM = "w1/guests"


class Heard(Extension):
    """Keeps what the core hands extensions of presence (a real hook user)."""

    name = "heard"

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, list[AwarenessEntry]]] = []

    def on_awareness(self, room: RoomView, conn: ConnectionView, entries: Any) -> None:
        self.entries.append((room.name, conn.principal.user_id, list(entries)))


@dataclass
class Setup:
    server: InProcessServer
    directory: PresenceDirectory
    heard: Heard
    changes: list[PresenceChange]
    fake: clock.FakeClock


@pytest_asyncio.fixture
async def setup() -> AsyncIterator[Setup]:
    fake = clock.FakeClock()
    with clock.use(fake):
        heard = Heard()
        changes: list[PresenceChange] = []
        async with in_process_server(hooks=Hooks([heard])) as server:
            core = core_of(server)
            directory = PresenceDirectory(core)
            directory.listen(changes.append)
            server.hooks.add([directory])
            await directory.start(core)
            try:
                yield Setup(server, directory, heard, changes, fake)
            finally:
                await directory.close()


def core_of(server: InProcessServer) -> Core:
    """The core an extension of ``server`` is built with."""
    weddings = WeddingService(server.registry, server.store, WEDDINGS)
    return Core(server.settings, server.store, server.registry, weddings)


async def say(setup: Setup, client: InProcessClient, state: dict[str, Any] | None) -> None:
    """``client`` sends its presence ``state`` at its next clock."""
    client.awareness_clock += 1
    entry = AwarenessEntry(client.doc.client_id, client.awareness_clock, json.dumps(state))
    await client.send_raw(encode_awareness(encode_awareness_entries([entry])))
    await setup.server.settle()


def entry_of(setup: Setup, user: str, docs: frozenset[str] = frozenset({"guests"})) -> Any:
    found = [e for e in setup.directory.presence("w1", set(docs)) if e.user_id == user]
    assert len(found) == 1, found
    return found[0]


async def test_the_core_hands_accepted_presence_to_extensions(setup: Setup) -> None:
    ann = await setup.server.client(ROOM, principal=ANN)
    await say(setup, ann, {"user": "ann", "here": {"section": "guests"}})
    room, user, entries = setup.heard.entries[-1]
    assert (room, user, len(entries)) == (ROOM, "ann", 1)
    # as accepted: stamped with who sent it
    assert json.loads(entries[0].state)["here"] == {"section": "guests"}
    assert json.loads(entries[0].state)["user"]["id"] == "ann"
    before = len(setup.heard.entries)
    # a stale clock is not accepted, so not handed on
    stale = AwarenessEntry(ann.doc.client_id, 1, json.dumps({"user": "old"}))
    await ann.send_raw(encode_awareness(encode_awareness_entries([stale])))
    await setup.server.settle()
    assert len(setup.heard.entries) == before


async def test_online_then_away_and_a_renewal_is_not_activity(setup: Setup) -> None:
    ann = await setup.server.client(ROOM, principal=ANN)
    state = {"user": "ann", "here": {"section": "seating"}, "typing": True}
    await say(setup, ann, state)
    first = entry_of(setup, "ann")
    assert (first.status, first.section, first.typing, first.last_seen) == (
        "online",
        "seating",
        True,
        None,
    )
    await setup.fake.advance(AWAY + 1)
    assert entry_of(setup, "ann").status == "away"
    await until(lambda: _told(setup, "ann", "away"), 5.0)
    # The 15-s renewal of the same state (a newer clock) does not bring her back.
    await say(setup, ann, state)
    assert entry_of(setup, "ann").status == "away"
    # A state whose content changed does.
    await say(setup, ann, {**state, "typing": False})
    assert entry_of(setup, "ann").status == "online"
    told = [(c.status, c.section, c.typing) for c in setup.changes if c.user_id == "ann"]
    # one process serves her: it speaks for the cluster of each change (webhooks)
    assert all(c.sender for c in setup.changes)
    assert told == [
        ("online", None, False),  # joined
        ("online", "seating", True),
        ("away", "seating", True),
        ("online", "seating", False),  # each change told once
    ]


async def _told(setup: Setup, user: str, status: str) -> bool:
    return _said(setup, user)[-1:] == [status]


def _said(setup: Setup, user: str) -> list[str]:
    return [c.status for c in setup.changes if c.user_id == user]


async def test_a_document_update_is_activity(setup: Setup) -> None:
    ann = await setup.server.client(ROOM, principal=ANN)
    await setup.fake.advance(AWAY + 1)
    assert entry_of(setup, "ann").status == "away"
    with ann.doc.transaction():
        ann.doc.get("guests", type=Map)["g1"] = "x"
    await ann.flush()
    await setup.server.settle()
    assert entry_of(setup, "ann").status == "online"


async def test_busy_wins_over_away_at_top_level_or_in_here(setup: Setup) -> None:
    ann = await setup.server.client(ROOM, principal=ANN)
    bo = await setup.server.client(ROOM, principal=BO)
    await say(setup, ann, {"status": "busy", "section": "menu"})
    await say(setup, bo, {"here": {"status": "busy", "section": "timeline"}})
    await setup.fake.advance(AWAY * 3)
    ann_now, bo_now = entry_of(setup, "ann"), entry_of(setup, "bo")
    assert (ann_now.status, ann_now.section) == ("busy", "menu")
    assert (bo_now.status, bo_now.section) == ("busy", "timeline")
    await say(setup, ann, {"status": "free", "section": "menu"})
    assert entry_of(setup, "ann").status == "online"


async def test_who_left_is_offline_with_when_they_were_last_seen(setup: Setup) -> None:
    ann = await setup.server.client(ROOM, principal=ANN)
    await say(setup, ann, {"here": {"section": "guests"}})
    left_at = clock.now()
    await ann.close()
    await setup.server.settle()
    gone = entry_of(setup, "ann")
    assert (gone.status, gone.connections, gone.section, gone.typing) == (
        "offline",
        0,
        None,
        False,
    )
    assert gone.last_seen is not None and gone.last_seen.endswith("Z")
    assert setup.changes[-1].status == "offline"
    assert setup.changes[-1].last_seen == pytest.approx(left_at)
    assert setup.changes[-1].documents == ("guests",)
    # not shown to a reader of other documents only
    assert setup.directory.presence("w1", {"budget"}) == []
    # back again: online, and no longer offline
    again = InProcessClient(9, room=ROOM, principal=ANN)
    await setup.server.connect(again)
    await setup.server.settle()
    assert entry_of(setup, "ann").status == "online"


async def test_an_oversized_or_odd_section_is_not_a_section(setup: Setup) -> None:
    ann = await setup.server.client(ROOM, principal=ANN)
    await say(setup, ann, {"here": {"section": "x" * 65}, "typing": "yes", "status": 7})
    got = entry_of(setup, "ann")
    assert (got.status, got.section, got.typing) == ("online", None, False)
    await say(setup, ann, {"here": {"section": ["a"]}, "section": "budget"})
    assert entry_of(setup, "ann").section == "budget"


async def test_reading_hostile_presence_is_bounded() -> None:
    """The largest presence a socket may send (the codec's limit) is read in bounded time,
    and a bus message's states are read no further than its people."""
    import time

    from crdt_server.features.presence.domain import here_of
    from crdt_server.settings import Settings

    limit = Settings().max_awareness_state_bytes
    wide = json.dumps({"here": {f"k{i}": i for i in range(limit // 12)}, "typing": True})
    deep = "[" * 31 + "]" * 31
    started = time.perf_counter()
    for state in (wide[:limit] if len(wide) > limit else wide, deep, "x" * limit):
        here_of(state)
    assert time.perf_counter() - started < 0.5
    async with in_process_server() as server:
        directory = PresenceDirectory(core_of(server))
        seen = [["guests", "u1", "Ann", "couple", 1, 1.0, 1.0]]
        many = [["guests", "u1", 1.0, True, "s", False]] * 100_000
        message = {"type": "presence", "wedding": "w1", "seen": seen, "states": many}
        started = time.perf_counter()
        directory.on_bus_event({**message, "origin": "p"})
        assert time.perf_counter() - started < 0.5
        assert [p.status for p in directory.presence("w1", {"guests"})] == ["busy"]


async def test_who_went_offline_is_kept_as_last_seen_in_the_member_directory() -> None:
    from crdt_server.features import install_tables
    from crdt_server.features import people as people_feature
    from crdt_server.features.people import People

    fake = clock.FakeClock()
    with clock.use(fake):
        async with in_process_server(hooks=Hooks()) as server:
            await install_tables(server.store, [people_feature.FEATURE])
            core = core_of(server)
            people = People(core)
            directory = PresenceDirectory(core, None, people)
            server.hooks.add([people, directory])
            await directory.start(core)
            try:
                ann = await server.client(ROOM, principal=ANN)

                async def member() -> bool:
                    return await people.member("w1", "ann") is not None

                await until(member, 5.0)
                assert await people.last_seen("w1") == {}
                await fake.advance(60)
                left_at = clock.now()
                await ann.close()
                await server.settle()

                async def kept() -> dict[str, float]:
                    return await people.last_seen("w1")

                assert await until(kept, 5.0) == {"ann": left_at}
            finally:
                await directory.close()
                await people.close()
