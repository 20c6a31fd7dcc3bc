"""Bus messages across a rolling restart: this release and the one before it share the bus.

``tests/fixtures/bus/previous_release.json`` holds every message exactly as the release
before typed Structs published it (captured from its ``RedisBus``). Both directions hold:
what this release sends is byte for byte what the previous one sent (so a process of that
release reads it: its presence reader drops any entry that is not a list of exactly seven
values), and what the previous release sends is read here into the same Structs. What a
newer release may add (an unknown field, an extra trailing item of a list-shaped entry,
bytes after an updates frame) is ignored, not refused. A message new in this release (the
stateless messages) travels on a channel the previous release never subscribed to, so a
process of that release never hears it: on ``crdt:events`` its admin extension would log
each one as an unknown admin event.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from crdt_server.cluster.messages import (
    AwarenessMessage,
    BusMessage,
    Commits,
    Delete,
    Interest,
    Lift,
    Revoke,
    StatelessMessage,
    UpdatesMessage,
    from_event,
    item_from_bus,
    read_rooms_message,
    to_event,
)
from crdt_server.cluster.redis_bus import RedisBus
from crdt_server.core.hooks import Core
from crdt_server.core.weddings import WeddingService
from crdt_server.documents.domain import WEDDINGS
from crdt_server.errors import ProtocolError
from crdt_server.features.conflicts.extension_concurrent import _Note, _Notes
from crdt_server.features.events.extension import EventsStored
from crdt_server.features.notifications.extension import OutboxQueued
from crdt_server.features.presence.domain_bus import PresenceMessage as _Presence
from crdt_server.features.presence.domain_bus import PresenceQuery as _Query
from crdt_server.features.presence.domain_bus import Seen as _Seen
from crdt_server.features.presence.domain_bus import State as _State
from crdt_server.features.presence.extension import PresenceDirectory
from crdt_server.testing.inprocess import in_process_server

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bus" / "previous_release.json"
PROCESS = "3f2a9c0d1e4b4a5f8c7d6e5f4a3b2c1d"

SEEN = [
    _Seen("guests", "u1", "Ann Lee", "couple", 2, 1764072000.25, 1764071000.5),
    _Seen("seating", "u2", "Bo Chen", "planner", 1, 1764072001.0, 1764072001.0),
]
NOTES = [
    _Note("w42", "seating", ["assignments", "g1"], "f-1", True),
    _Note("w42", "guests", ["guests", "g2", "meal"], "f-2", False),
]
EVENTS: dict[str, BusMessage] = {
    "presence": _Presence("w42", list(SEEN)),
    "presence_empty": _Presence("w42", []),
    "presence_query": _Query(),
    "events": EventsStored("w42"),
    "outbox": OutboxQueued("w42"),
    "concurrent_edits": _Notes(list(NOTES)),
    "delete": Delete("w42"),
    "lift": Lift("w42"),
    "revoke": Revoke("u2", "w42", 1764072002.125),
    "revoke_everywhere": Revoke("u2", None, 1764072002.125),
}
UPDATES = UpdatesMessage(PROCESS, "w42/guests", [17, 18], [b"\x01\x02\x03", b"\x00\x00"])
AWARENESS = AwarenessMessage(PROCESS, "w42/guests", b"\x01\x8f\x01\x03\x02{}")
STATELESS = '{"from":{"sub":"u1","name":"Ann Lee"},"payload":{"typing":true}}'
NEW_IN_THIS_RELEASE = {"stateless", "interest", "commits"}
"""Messages the previous release never sent (nor heard: see the tests below)."""
PREVIOUS_RELEASE_SUBSCRIBED = {"crdt:updates", "crdt:awareness", "crdt:events", "crdt:heartbeat"}
"""The channels the previous release's ``RedisBus`` subscribed to."""


def _previous() -> dict[str, tuple[str, bytes]]:
    messages = json.loads(FIXTURES.read_text())["messages"]
    return {
        name: (m["channel"], m["text"].encode() if "text" in m else bytes.fromhex(m["hex"]))
        for name, m in messages.items()
    }


PREVIOUS = _previous()


@pytest.fixture
def bus() -> Iterator[RedisBus]:
    """A bus that is never started: what it would publish stays in its outbox."""
    loop = asyncio.new_event_loop()
    redis_bus = RedisBus("redis://127.0.0.1:1/0")
    redis_bus.process_id = PROCESS
    yield redis_bus
    loop.run_until_complete(redis_bus._redis.aclose())
    loop.close()


def _sent(bus: RedisBus, publish: Callable[[], None]) -> tuple[str, bytes]:
    publish()
    channel, data = bus._outbox.get_nowait()
    return channel, data


def test_the_fixtures_cover_every_message_this_release_sends() -> None:
    assert set(PREVIOUS) | NEW_IN_THIS_RELEASE == {
        *EVENTS,
        "updates",
        "awareness",
        "stateless",
        "interest",
        "commits",
    }
    assert {channel for channel, _ in PREVIOUS.values()} <= PREVIOUS_RELEASE_SUBSCRIBED


@pytest.mark.timeout(10)
def test_a_stateless_message_goes_where_the_previous_release_does_not_listen(
    bus: RedisBus,
) -> None:
    """A process of the previous release (during a rolling restart) never hears one: not
    on a channel it reads, so neither refused nor logged there."""
    texts: list[str | dict[str, str]] = [STATELESS, {"couple": STATELESS, "vendor": "{}"}]
    for text in texts:
        bus.publish_stateless("w42/guests", text)
        channel, data = bus._outbox.get_nowait()
        assert channel not in PREVIOUS_RELEASE_SUBSCRIBED
        assert channel == "crdt:stateless"
        read = StatelessMessage.decode(data)
        assert (read.origin, read.room) == (PROCESS, "w42/guests")
        assert (read.text, read.by_role) == ((text, {}) if isinstance(text, str) else (None, text))


def test_a_stateless_message_from_a_newer_release_is_read_and_a_malformed_one_refused() -> None:
    newer = {
        "origin": PROCESS,
        "room": "w42/guests@vendor",
        "by_role": {"vendor": STATELESS},
        "expires": 1764072002.5,
        "priority": [1, 2],
    }
    read = StatelessMessage.decode(json.dumps(newer).encode())
    assert read == StatelessMessage(PROCESS, "w42/guests@vendor", by_role={"vendor": STATELESS})
    for bad in (b"{", b"[]", b'{"origin": "p"}', b'{"origin": "p", "room": 7}'):
        with pytest.raises(ProtocolError):
            StatelessMessage.decode(bad)


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_open_rooms_and_commits_go_where_the_previous_release_does_not_listen(
    bus: RedisBus,
) -> None:
    """A process of the previous release is sent no updates of a room (it never says
    which rooms it has open): it learns of each commit from the heartbeat, as a gap."""
    bus.watch("w42/guests")
    bus.watch("w42/seating")
    await asyncio.sleep(0)  # told at the end of the turn, in one message
    channel, data = bus._outbox.get_nowait()
    assert channel not in PREVIOUS_RELEASE_SUBSCRIBED
    assert read_rooms_message(data) == Interest(PROCESS, ["w42/guests", "w42/seating"])
    bus.publish_updates("w42/budget", [17, 18], [b"\x00\x00", b"\x00\x00"])
    assert bus._outbox.empty()  # nobody else has the room open
    bus._announce_commits()
    channel, data = bus._outbox.get_nowait()
    assert channel not in PREVIOUS_RELEASE_SUBSCRIBED
    assert read_rooms_message(data) == Commits(PROCESS, 18, {"w42/budget": [17, 18]})


def test_rooms_messages_from_a_newer_release_are_read_and_malformed_ones_refused() -> None:
    newer = msgspec.msgpack.encode(
        {"type": "interest", "origin": PROCESS, "opened": ["w42/guests"], "region": "eu"}
    )
    assert read_rooms_message(newer) == Interest(PROCESS, ["w42/guests"])
    for bad in (
        b"\xc1",
        msgspec.msgpack.encode({"type": "gossip", "origin": PROCESS}),
        msgspec.msgpack.encode({"type": "commits", "origin": PROCESS, "seqs": {"a": ["x"]}}),
    ):
        with pytest.raises(ProtocolError):
            read_rooms_message(bad)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", sorted(EVENTS))
def test_this_release_sends_each_event_as_the_previous_one_did(bus: RedisBus, name: str) -> None:
    message = EVENTS[name]
    assert _sent(bus, lambda: bus.publish_event(to_event(message))) == PREVIOUS[name]


@pytest.mark.timeout(10)
def test_this_release_sends_the_binary_frames_as_the_previous_one_did(bus: RedisBus) -> None:
    # Updates are published while another process has their room open.
    bus._heard_rooms(Interest("another-process", [UPDATES.doc]), 0.0)
    sent = _sent(bus, lambda: bus.publish_updates(UPDATES.doc, UPDATES.seqs, UPDATES.updates))
    assert sent == PREVIOUS["updates"]
    sent = _sent(bus, lambda: bus.publish_awareness(AWARENESS.doc, AWARENESS.payload))
    assert sent == PREVIOUS["awareness"]


def _previous_release_reads_seen(raw: Any) -> bool:
    """The previous release's presence reader (``_Seen.from_bus``), as it was."""
    if not isinstance(raw, list) or len(raw) != 7:
        return False
    doc, user, name, role, count, last, since = raw
    return (
        doc in {"timeline", "budget", "guests", "seating"}
        and all(isinstance(v, str) for v in (user, name, role))
        and isinstance(count, int)
        and all(isinstance(v, int | float) for v in (last, since))
    )


def test_the_previous_release_reads_every_presence_entry_this_one_sends() -> None:
    sent = json.loads(json.dumps(to_event(EVENTS["presence"])))
    assert [_previous_release_reads_seen(raw) for raw in sent["seen"]] == [True, True]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", sorted(EVENTS))
def test_this_release_reads_each_event_the_previous_one_sent(name: str) -> None:
    message = EVENTS[name]
    channel, data = PREVIOUS[name]
    assert channel == "crdt:events"
    event = json.loads(data)
    assert event["origin"] == PROCESS
    read = from_event(event, type(message))
    assert read is not None
    # Entries of lists are read one by one (see the next test): compared as sent.
    assert to_event(read) == to_event(message)
    others = {type(m) for m in EVENTS.values()} - {type(message)}
    assert all(from_event(event, other) is None for other in others)


def test_this_release_reads_the_entries_inside_the_previous_ones_events() -> None:
    presence = from_event(json.loads(PREVIOUS["presence"][1]), _Presence)
    assert presence is not None
    assert [_Seen.from_bus(raw) for raw in presence.seen] == SEEN
    notes = from_event(json.loads(PREVIOUS["concurrent_edits"][1]), _Notes)
    assert notes is not None
    assert [item_from_bus(raw, _Note) for raw in notes.notes] == NOTES


def test_this_release_reads_the_binary_frames_the_previous_one_sent() -> None:
    assert UpdatesMessage.decode(PREVIOUS["updates"][1]) == UPDATES
    assert AwarenessMessage.decode(PREVIOUS["awareness"][1]) == AWARENESS


def test_what_a_newer_release_adds_is_ignored() -> None:
    """An unknown field, an extra trailing item of a list-shaped entry, bytes after an
    updates frame: read as what this release knows of them."""
    event = json.loads(PREVIOUS["presence"][1])
    event["mood"] = "festive"
    event["seen"][0] = [*event["seen"][0], "typing", {"section": "menu"}]
    presence = from_event(event, _Presence)
    assert presence is not None
    assert [_Seen.from_bus(raw) for raw in presence.seen] == SEEN
    revoke = json.loads(PREVIOUS["revoke"][1]) | {"reason": "left the planning team"}
    assert from_event(revoke, Revoke) == EVENTS["revoke"]
    note = {**json.loads(PREVIOUS["concurrent_edits"][1])["notes"][0], "by": "u9"}
    assert item_from_bus(note, _Note) == NOTES[0]
    assert UpdatesMessage.decode(PREVIOUS["updates"][1] + b"\x05newer") == UPDATES


def test_a_malformed_message_or_entry_is_dropped_not_raised() -> None:
    assert from_event({"type": "revoke", "wedding": "w42"}, Revoke) is None  # no sub
    assert from_event({"type": "delete", "wedding": 42}, Delete) is None
    assert _Seen.from_bus(["guests", "u1", "Ann"]) is None  # too short for anyone
    assert _Seen.from_bus(["attic", "u1", "Ann", "couple", 1, 1.0, 1.0]) is None
    assert _Seen.from_bus(["guests", "u1", "Ann", "couple", True, 1.0, 1.0]) is None
    with pytest.raises(ProtocolError):
        UpdatesMessage.decode(PREVIOUS["updates"][1][:-1])  # the last update cut short


@asynccontextmanager
async def _directory() -> AsyncIterator[PresenceDirectory]:
    """A presence directory of an in-process server (its core: the rooms, the bus)."""
    async with in_process_server() as server:
        weddings = WeddingService(server.registry, server.store, WEDDINGS)
        yield PresenceDirectory(Core(server.settings, server.store, server.registry, weddings))


@pytest.mark.timeout(10)
@pytest.mark.asyncio
async def test_presence_heard_from_a_previous_release_process_is_served() -> None:
    """The presence directory takes the previous release's message as it always did."""
    async with _directory() as directory:
        directory.on_bus_event(json.loads(PREVIOUS["presence"][1]))
        seen = directory.presence("w42", {"guests", "seating"})
        assert [(p.doc, p.user_id, p.connections) for p in seen] == [
            ("guests", "u1", 2),
            ("seating", "u2", 1),
        ]
        # what it does not send (their presence state) is as if they said nothing
        assert [(p.section, p.typing) for p in seen] == [(None, False), (None, False)]
        directory.on_bus_event(json.loads(PREVIOUS["presence_empty"][1]))
        gone = directory.presence("w42", {"guests", "seating"})
        assert [(p.user_id, p.status, p.connections) for p in gone] == [
            ("u1", "offline", 0),
            ("u2", "offline", 0),
        ]


STATES = [
    _State("guests", "u1", 1764072000.25, True, "menu", False),
    _State("seating", "u2", 1764072001.0, False, None, True),
]


class _PresenceBefore(BusMessage, frozen=True, tag="presence"):
    """The presence message as the release before presence states reads it."""

    wedding: str
    seen: list[Any]


def _release_before_typed_structs_reads(event: dict[str, Any]) -> tuple[str, list[Any]] | None:
    """The presence reader of the release before typed Structs (``on_bus_event``), as it
    was: the wedding and the seen entries by key, any other key ignored."""
    wedding, raw = event.get("wedding"), event.get("seen")
    if not isinstance(wedding, str) or not isinstance(raw, list):
        return None
    return wedding, [seen for seen in raw if _previous_release_reads_seen(seen)]


def test_a_presence_message_with_states_is_read_by_the_previous_releases() -> None:
    """During a roll a process of either earlier release reads this release's presence
    (who is where) and ignores what it does not know (their states)."""
    sent = json.loads(json.dumps(to_event(_Presence("w42", list(SEEN), list(STATES)))))
    assert list(sent)[:3] == ["type", "wedding", "seen"]  # states come after
    read = _release_before_typed_structs_reads(sent)
    assert read is not None and read[0] == "w42" and len(read[1]) == 2
    before = from_event(sent | {"origin": PROCESS}, _PresenceBefore)
    assert before is not None
    assert [_Seen.from_bus(raw) for raw in before.seen] == SEEN
    # and this release reads the states back
    presence = from_event(sent, _Presence)
    assert presence is not None
    assert [_State.from_bus(raw) for raw in presence.states] == STATES


@pytest.mark.timeout(10)
@pytest.mark.asyncio
async def test_presence_states_heard_from_another_process_are_served() -> None:
    async with _directory() as directory:
        sent = to_event(_Presence("w42", list(SEEN), list(STATES)))
        directory.on_bus_event(json.loads(json.dumps(sent | {"origin": PROCESS})))
        got = {p.user_id: p for p in directory.presence("w42", {"guests", "seating"})}
        assert (got["u1"].status, got["u1"].section, got["u1"].typing) == ("busy", "menu", False)
        assert (got["u2"].section, got["u2"].typing) == (None, True)
        # a bad state is dropped, not the message
        bad = sent | {"origin": PROCESS, "states": [["guests", "u1", "x"], ["attic", "u2", 1.0]]}
        directory.on_bus_event(json.loads(json.dumps(bad)))
        got = {p.user_id: p for p in directory.presence("w42", {"guests", "seating"})}
        assert got["u1"].section is None and got["u2"].connections == 1


class _Heard:
    """A bus handler that keeps the stateless messages it hears."""

    def __init__(self) -> None:
        self.stateless: list[tuple[str, object]] = []

    def on_stateless(self, room: str, text: object) -> None:
        self.stateless.append((room, text))


@pytest.mark.timeout(10)
def test_the_bus_hands_on_another_process_s_stateless_message_and_drops_a_bad_one(
    bus: RedisBus, caplog: pytest.LogCaptureFixture
) -> None:
    heard = _Heard()
    bus._handler = heard  # type: ignore[assignment]
    other = StatelessMessage("another-process", "w42/guests", text=STATELESS)
    own = StatelessMessage(PROCESS, "w42/guests", text=STATELESS)
    roles = StatelessMessage("another-process", "w42/guests@vendor", by_role={"vendor": "{}"})
    bus._dispatch("crdt:stateless", b'{"origin": 7}')
    for message in (other, own, roles):
        bus._dispatch("crdt:stateless", message.encode())
    assert heard.stateless == [("w42/guests", STATELESS), ("w42/guests@vendor", {"vendor": "{}"})]
    assert "malformed message on crdt:stateless" in caplog.text
