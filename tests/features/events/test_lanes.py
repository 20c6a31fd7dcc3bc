"""The event stream's two lanes through a real server: urgent and emergency events come
first on a lane of their own (``event: priority``, no ``id:`` line, the seq in the data),
then again in order on the normal lane; a subscriber reconnecting with ``Last-Event-ID``
misses nothing and sees each urgent event at most twice per connection, once per lane."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from crdt_server.auth.tokens import TokenCodec
from tests.server import FreshWedding, ServerProcess, served

SECRET = "lanes-test-secret-at-least-32-bytes!!!"
CODEC = TokenCodec(algorithms=["HS256"], secret=SECRET.encode())
ENV = {
    "CRDT_SERVER_AUTH_SECRET": SECRET,
    "CRDT_SERVER_SSE_HEARTBEAT_SECONDS": "0.5",
    # A backlog of more than one page (200 events) posted in a test.
    "CRDT_SERVER_RATE_EVENTS_PER_MINUTE": "100000",
}
WEDDING = FreshWedding("ln")


@pytest.fixture(autouse=True)
def fresh_wedding() -> None:
    WEDDING.renew()


def auth(role: str = "planner", sub: str = "ada") -> dict[str, str]:
    return {"Authorization": f"Bearer {CODEC.mint(sub=sub, role=role, wedding=WEDDING.id)}"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[ServerProcess, httpx.AsyncClient]]:
    async with served(tmp_path_factory.mktemp("lanes") / "data", ENV) as running:
        yield running


@dataclass(frozen=True)
class Record:
    """One Server-Sent Event as it came: its ``event:``, its ``id:`` (``None``: no such
    line) and its data."""

    event: str
    id: str | None
    data: dict[str, Any]


async def records(stream: httpx.Response) -> AsyncIterator[Record]:
    """Each record of ``stream`` (comments skipped), with its fields as sent."""
    fields: dict[str, str] = {}
    async for line in stream.aiter_lines():
        if not line:
            if "data" in fields:
                yield Record(
                    fields.get("event", "message"), fields.get("id"), json.loads(fields["data"])
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


async def post(
    http: httpx.AsyncClient,
    priority: str = "normal",
    role: str = "planner",
    kind: str = "custom.note",
) -> int:
    answer = await http.post(
        WEDDING.at("/events"),
        json={"type": kind, "priority": priority},
        headers=auth(role, sub="fay" if role == "family" else "ada"),
    )
    assert answer.status_code == 201, answer.text
    seq: int = answer.json()["seq"]
    return seq


async def read_until(
    http: httpx.AsyncClient, last: int, *, after: str | None, live: Sequence[str] = ()
) -> list[Record]:
    """What one connection receives until its normal lane has given seq ``last``
    (resuming with ``Last-Event-ID: after``); each of ``live`` is posted (at that
    priority) once the stream is open."""
    headers = auth()
    if after is not None:
        headers["Last-Event-ID"] = after
    got: list[Record] = []
    async with http.stream("GET", WEDDING.at("/events/stream"), headers=headers) as stream:
        assert stream.status_code == 200
        for priority in live:
            await post(http, priority)
        async with asyncio.timeout(20):
            async for record in records(stream):
                got.append(record)
                if record.id is not None and int(record.id) >= last:
                    break
    return got


def check(got: list[Record], after: int, last: int, urgent: set[int]) -> None:
    """The normal lane gave every seq after ``after`` up to ``last`` once, in order, with
    its ``id:``; the priority lane only urgent events above ``after``, without ``id:``,
    each at most once; so every event came at most twice."""
    normal = [r for r in got if r.event != "priority"]
    assert [int(r.id or 0) for r in normal] == list(range(after + 1, last + 1))
    assert all(r.data["seq"] == int(r.id or 0) for r in normal)
    ahead = [r for r in got if r.event == "priority"]
    assert all(r.id is None for r in ahead)
    seqs = [r.data["seq"] for r in ahead]
    assert len(seqs) == len(set(seqs))
    assert set(seqs) <= {s for s in urgent if s > after}
    assert all(r.data["priority"] in ("urgent", "emergency") for r in ahead)


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.timeout(60)
async def test_urgent_events_come_first_on_their_lane_and_again_in_order(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    # A backlog of more than a page, an emergency (by a family member) and an urgent
    # event behind it, and a few normal events after.
    for _ in range(230):
        await post(http)
    emergency = await post(http, "emergency", role="family")
    urgent = await post(http, "urgent")
    for _ in range(3):
        last = await post(http)
    pressing = {emergency, urgent}

    # From the start: the priority lane first, ahead of the whole backlog.
    got = await read_until(http, last, after=None)
    check(got, 0, last, pressing)
    assert [r.data["seq"] for r in got[:2]] == [emergency, urgent]
    assert got[0].event == "priority" and got[0].data["type"] == "custom.note"
    assert got[0].data["actor"] == {"sub": "fay", "role": "family"}
    assert got[0].data["id"] == f"{WEDDING.id}:{emergency}"

    # Reconnecting below the emergency: re-sent on the priority lane first, then in order.
    got = await read_until(http, last, after=str(emergency - 5))
    check(got, emergency - 5, last, pressing)
    assert [r.data["seq"] for r in got[:2]] == [emergency, urgent]

    # Reconnecting between them: only what is above Last-Event-ID comes again.
    got = await read_until(http, last, after=str(emergency))
    check(got, emergency, last, pressing)
    assert [r.data["seq"] for r in got if r.event == "priority"] == [urgent]

    # Reconnecting above both: no priority record at all.
    got = await read_until(http, last, after=str(urgent))
    check(got, urgent, last, pressing)
    assert not [r for r in got if r.event == "priority"]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.timeout(60)
async def test_a_live_emergency_comes_on_both_lanes_and_resuming_misses_nothing(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    first = await post(http)
    got = await read_until(
        http, first + 3, after=str(first), live=["normal", "emergency", "normal"]
    )
    emergency = first + 2
    check(got, first, first + 3, {emergency})
    laned = [(r.event, r.data["seq"]) for r in got if r.data["seq"] == emergency]
    assert sorted(laned) == [("custom.note", emergency), ("priority", emergency)]
    # The priority record comes no later than the normal one.
    assert laned[0] == ("priority", emergency)

    # The client's last event ID is the normal lane's last id (the priority record set
    # none): resuming there misses nothing, and the emergency is not sent again.
    last_id = next(r.id for r in reversed(got) if r.id is not None)
    assert last_id == str(first + 3)
    after = await post(http)
    got = await read_until(http, after, after=last_id)
    check(got, first + 3, after, {emergency})
    assert [r.data["seq"] for r in got] == [after]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.timeout(60)
async def test_the_priority_lane_keeps_the_readers_filters(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    await post(http, "emergency")
    wanted = await post(http, "urgent", kind="custom.wanted")
    headers = {**auth(), "Last-Event-ID": "0"}
    url = WEDDING.at("/events/stream") + "?types=custom.wanted"
    got: list[Record] = []
    async with http.stream("GET", url, headers=headers) as stream:
        assert stream.status_code == 200
        async with asyncio.timeout(20):
            async for record in records(stream):
                got.append(record)
                if record.id is not None:
                    break
    # The emergency of another type passes the filter on neither lane.
    assert [(r.event, r.data["seq"]) for r in got] == [
        ("priority", wanted),
        ("custom.wanted", wanted),
    ]
