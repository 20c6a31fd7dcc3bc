"""Conversations through a real server: threads and their visibility, idempotent messages
across a restart, unread counts, notifications of mentions, search, events on the stream,
erasure and the export, rate limits."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from crdt_server.features.threads.routes import PostedMessage
from crdt_server.testing.waits import until
from tests.features.conversations import (
    ADMIN_AUTH,
    COUPLE,
    ENV,
    FRIEND,
    OTHER_VENDOR,
    PLANNER,
    VENDOR,
    W,
    absent,
    join,
    ok,
)
from tests.server import ServerProcess


@pytest.mark.asyncio
async def test_threads_visibility_forged_author_and_idempotent_messages_across_a_restart(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = api
    await join(http, PLANNER, COUPLE, VENDOR, OTHER_VENDOR, FRIEND)
    created = await http.post(
        f"{W}/threads",
        json={"subject": "Florist deposit", "kind": "vendor", "participants": ["flo"]},
        headers=PLANNER,
    )
    thread = await ok(created, 201)
    tid = thread["id"]
    assert {p["sub"] for p in thread["participants"]} == {"pat", "flo"}
    # Idempotency-Key: a retried POST answers the same thread; another body under it, 409.
    body = {"subject": "Seating chart", "participants": ["flo"]}
    keyed = {**PLANNER, "Idempotency-Key": "k-1"}
    once = await ok(await http.post(f"{W}/threads", json=body, headers=keyed), 201)
    twice = await ok(await http.post(f"{W}/threads", json=body, headers=keyed))
    assert twice["id"] == once["id"]
    other = await http.post(f"{W}/threads", json={**body, "subject": "x"}, headers=keyed)
    assert other.status_code == 409
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert thread["status"] == "open" and thread["unread"] == 0
    # Visibility: the couple sees it, the vendor in it too; another vendor and a friend not.
    for headers in (COUPLE, VENDOR):
        assert (await http.get(f"{W}/threads/{tid}", headers=headers)).status_code == 200
    for headers in (OTHER_VENDOR, FRIEND):
        refused = await http.get(f"{W}/threads/{tid}", headers=headers)
        assert refused.status_code == 404
        assert refused.headers["content-type"] == "application/problem+json"
        listed = await ok(await http.get(f"{W}/threads", headers=headers))
        assert listed["threads"] == []
        put = await http.put(f"{W}/threads/{tid}/messages/x1", json={"body": "hi"}, headers=headers)
        assert put.status_code == 404
    # Anchored to the guest list: a friend in the thread still may not see it.
    anchored = await ok(
        await http.post(
            f"{W}/threads",
            json={
                "subject": "Dietary needs of Grace",
                "kind": "guest",
                "anchors": [{"doc": "guests", "id": "grace_h"}],
                "participants": ["fred"],
            },
            headers=PLANNER,
        ),
        201,
    )
    assert (await http.get(f"{W}/threads/{anchored['id']}", headers=FRIEND)).status_code == 404
    for anchor, found in (("guests:grace_h", [anchored["id"]]), ("guests:gracexh", [])):
        by_anchor = await http.get(f"{W}/threads", params={"anchor": anchor}, headers=COUPLE)
        assert [t["id"] for t in (await ok(by_anchor))["threads"]] == found
    friend_anchor = await http.post(
        f"{W}/threads",
        json={"subject": "x", "anchors": [{"doc": "guests", "id": "g"}]},
        headers=FRIEND,
    )
    assert friend_anchor.status_code == 403
    # Authorship comes from the token; an "author" in the body is ignored.
    forged = await http.put(
        f"{W}/threads/{tid}/messages/m0",
        json={"body": "pay now", "author": {"sub": "cam", "role": "couple"}},
        headers=VENDOR,
    )
    assert (await ok(forged, 201))["author"] == {"sub": "flo", "role": "vendor"}
    await ok(await http.delete(f"{W}/threads/{tid}/messages/m0", headers=VENDOR))
    # The same PUT three times, across a restart: one message.
    url = f"{W}/threads/{tid}/messages/m1"
    first = await ok(await http.put(url, json={"body": "Deposit due Friday"}, headers=VENDOR), 201)
    assert first["author"] == {"sub": "flo", "role": "vendor"} and first["seq"] == 2
    again = await ok(await http.put(url, json={"body": "Deposit due Friday"}, headers=VENDOR))
    assert again == first
    await server.restart()
    after = await ok(await http.put(url, json={"body": "Deposit due Friday"}, headers=VENDOR))
    assert after == first
    other = await http.put(url, json={"body": "something else"}, headers=VENDOR)
    assert other.status_code == 409
    listed = await ok(await http.get(f"{W}/threads/{tid}/messages", headers=PLANNER))
    assert [m["id"] for m in listed["messages"]] == ["m0", "m1"] and listed["next"] is None
    # Bad input names the field and changes nothing.
    too_big = await http.put(
        f"{W}/threads/{tid}/messages/m9", json={"body": "x" * 9000}, headers=VENDOR
    )
    assert too_big.status_code == 413 and too_big.json()["errors"][0]["field"] == "body"
    bad_id = await http.put(f"{W}/threads/{tid}/messages/b%20d", json={"body": "x"}, headers=VENDOR)
    assert bad_id.status_code == 400
    bad_kind = await http.post(f"{W}/threads", json={"subject": "s", "kind": "x"}, headers=PLANNER)
    assert bad_kind.status_code in (400, 422) and bad_kind.json()["errors"][0]["field"] == "kind"
    # Edit and delete: own messages; the planner moderates.
    assert (
        await http.patch(url, json={"body": "Deposit due Monday"}, headers=COUPLE)
    ).status_code == 403
    edited = await ok(await http.patch(url, json={"body": "Deposit due Monday"}, headers=VENDOR))
    assert edited["body"] == "Deposit due Monday" and edited["edited_at"] is not None
    reacted = await ok(
        await http.post(f"{url}/reactions", json={"emoji": "\U0001f44d"}, headers=PLANNER)
    )
    assert reacted["reactions"] == {"\U0001f44d": ["pat"]}
    deleted = await ok(await http.delete(url, headers=PLANNER))
    assert deleted["deleted"] and deleted["body"] == "" and deleted["author"]["sub"] == "flo"
    # Resolve.
    resolved = await ok(
        await http.patch(f"{W}/threads/{tid}", json={"status": "resolved"}, headers=VENDOR)
    )
    assert resolved["status"] == "resolved"
    only = await ok(await http.get(f"{W}/threads", params={"status": "resolved"}, headers=PLANNER))
    assert [t["id"] for t in only["threads"]] == [tid]


@pytest.mark.asyncio
async def test_unread_counts_mentions_notifications_and_search(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    await join(http, PLANNER, COUPLE, VENDOR)
    tid = (
        await ok(
            await http.post(
                f"{W}/threads",
                json={"subject": "Table 4 flowers", "participants": ["flo"]},
                headers=PLANNER,
            ),
            201,
        )
    )["id"]
    base = f"{W}/threads/{tid}/messages"
    await ok(await http.put(f"{base}/a", json={"body": "Peonies or roses?"}, headers=PLANNER), 201)
    await ok(
        await http.put(
            f"{base}/b",
            json={"body": "Peonies, @pat. Ask @cam too", "reply_to": "a"},
            headers=VENDOR,
        ),
        201,
    )
    await ok(await http.put(f"{base}/c", json={"body": "Noted"}, headers=VENDOR), 201)
    thread = await ok(await http.get(f"{W}/threads/{tid}", headers=PLANNER))
    assert thread["unread"] == 2 and thread["last_seq"] == 3
    # Posting marks read up to one's own message.
    assert (await ok(await http.get(f"{W}/threads/{tid}", headers=VENDOR)))["unread"] == 0
    marked = await ok(
        await http.post(f"{W}/threads/{tid}/read", json={"up_to": "b"}, headers=PLANNER)
    )
    assert marked["unread"] == 1
    # Notifications: pat mentioned (and replied to) in b, a message in c; cam mentioned.
    inbox = await ok(
        await http.get(f"{W}/notifications", params={"unread": "true"}, headers=COUPLE)
    )
    assert inbox["unread"] == 1
    assert [(n["reason"], n["message"]) for n in inbox["notifications"]] == [("mention", "b")]
    assert inbox["notifications"][0]["actor"] == {"sub": "flo", "role": "vendor"}
    pats = await ok(await http.get(f"{W}/notifications", headers=PLANNER))
    assert [(n["reason"], n["read"]) for n in pats["notifications"]] == [
        ("message", False),
        ("mention", True),  # read up to b marked it read
    ]
    read = await ok(await http.post(f"{W}/notifications/read", json={}, headers=COUPLE))
    assert read == {"marked": 1}
    assert (await ok(await http.get(f"{W}/notifications", headers=COUPLE)))["unread"] == 0
    # Participation "mentions": no notification for plain messages.
    await ok(
        await http.put(
            f"{W}/notifications/settings", json={"participation": "mentions"}, headers=PLANNER
        )
    )
    await ok(await http.put(f"{base}/d", json={"body": "Delivered at 9"}, headers=VENDOR), 201)
    assert (await ok(await http.get(f"{W}/notifications", headers=PLANNER)))["unread"] == 1
    # Urgent: the couple hears of it though not in the thread.
    await ok(
        await http.put(
            f"{base}/e", json={"body": "Van broke down", "priority": "urgent"}, headers=VENDOR
        ),
        201,
    )
    urgent = await ok(await http.get(f"{W}/notifications", headers=COUPLE))
    assert urgent["notifications"][0]["reason"] == "urgent"
    # Full-text search over subjects and messages.
    for q, found in (("peonies", [tid]), ("flowers", [tid]), ("tulips", [])):
        answer = await ok(await http.get(f"{W}/threads", params={"q": q}, headers=PLANNER))
        assert [t["id"] for t in answer["threads"]] == found, q


@pytest.mark.asyncio
async def test_mentions_of_members_who_cannot_see_the_thread_are_reported_not_notified(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    await join(http, PLANNER, COUPLE, VENDOR, OTHER_VENDOR)

    async def thread(body: dict[str, Any]) -> str:
        tid: str = (await ok(await http.post(f"{W}/threads", json=body, headers=PLANNER), 201))[
            "id"
        ]
        return tid

    cake = await thread({"subject": "Cake", "participants": ["flo"]})
    body = {"body": "@flo @dj @cam @pat @nobody: tiers?"}
    first = await ok(
        await http.put(f"{W}/threads/{cake}/messages/m1", json=body, headers=PLANNER), 201
    )
    # dj (a vendor not in the thread) is not notified, and the author is told why; flo
    # (a participant) and cam (the couple sees every thread) are; pat is the author;
    # @nobody names no member, so it is no mention at all.
    assert first["unnotified_mentions"] == [{"sub": "dj", "reason": "cannot_see_thread"}]
    again = await ok(await http.put(f"{W}/threads/{cake}/messages/m1", json=body, headers=PLANNER))
    assert again["unnotified_mentions"] == first["unnotified_mentions"]
    assert (await ok(await http.get(f"{W}/notifications", headers=OTHER_VENDOR)))["unread"] == 0
    assert (await ok(await http.get(f"{W}/notifications", headers=COUPLE)))["unread"] == 1
    events = (await ok(await http.get(f"{W}/events", headers=PLANNER)))["events"]
    posted = [e for e in events if e["type"] == "thread.message_posted"]
    assert posted[0]["data"]["unnotified_mentions"] == first["unnotified_mentions"]

    # A participant whose role may not read the document the thread is anchored to does
    # not see the thread: mentioning them notifies nothing (no subject in their inbox).
    deposit = await thread(
        {"subject": "Florist deposit", "anchors": [{"doc": "budget", "id": "p1"}],
         "participants": ["flo"]}
    )  # fmt: skip
    answer = await ok(
        await http.put(
            f"{W}/threads/{deposit}/messages/m1", json={"body": "@flo paid?"}, headers=PLANNER
        ),
        201,
    )
    assert answer["unnotified_mentions"] == [{"sub": "flo", "reason": "cannot_see_thread"}]
    flos = (await ok(await http.get(f"{W}/notifications", headers=VENDOR)))["notifications"]
    assert [n["thread"]["id"] for n in flos] == [cake]
    # Everyone who can see it: an empty list.
    seen = await ok(
        await http.put(f"{W}/threads/{cake}/messages/m2", json={"body": "@flo ok"}, headers=COUPLE),
        201,
    )
    assert seen["unnotified_mentions"] == []


@pytest.mark.asyncio
async def test_thread_events_reach_the_stream_filtered_by_audience(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    await join(http, PLANNER, VENDOR, OTHER_VENDOR)
    tid = (
        await ok(
            await http.post(
                f"{W}/threads", json={"subject": "Cake", "participants": ["flo"]}, headers=PLANNER
            ),
            201,
        )
    )["id"]
    await ok(
        await http.put(f"{W}/threads/{tid}/messages/m1", json={"body": "3 tiers"}, headers=VENDOR),
        201,
    )
    planner = await ok(await http.get(f"{W}/events", headers=PLANNER))
    assert [e["type"] for e in planner["events"]] == ["thread.created", "thread.message_posted"]
    posted = planner["events"][1]
    assert posted["actor"] == {"sub": "flo", "role": "vendor"}
    assert posted["data"]["thread"] == tid and posted["data"]["body"] == "3 tiers"
    assert len((await ok(await http.get(f"{W}/events", headers=VENDOR)))["events"]) == 2
    assert (await ok(await http.get(f"{W}/events", headers=OTHER_VENDOR)))["events"] == []
    # The stream through a one-use ticket keeps the same audience.
    for headers, expected in (
        (VENDOR, ["thread.created", "thread.message_posted"]),
        (OTHER_VENDOR, []),
    ):
        ticket = (await ok(await http.post(f"{W}/events/stream-tickets", headers=headers), 201))[
            "ticket"
        ]
        assert await streamed_until_heartbeat(http, ticket) == expected


async def streamed_until_heartbeat(http: httpx.AsyncClient, ticket: str) -> list[str]:
    """The event types a stream sends before its first heartbeat (it is caught up then)."""
    types: list[str] = []
    async with http.stream("GET", f"{W}/events/stream", params={"ticket": ticket}) as answer:
        assert answer.status_code == 200
        async for line in answer.aiter_lines():
            if line.startswith("event:"):
                types.append(line[6:].strip())
            elif line.startswith(":"):
                return types
    return types


@pytest.mark.asyncio
async def test_erasure_of_a_member_and_the_export(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    server, http = api
    await join(http, PLANNER, COUPLE, VENDOR)
    tid = (
        await ok(
            await http.post(
                f"{W}/threads", json={"subject": "Music", "participants": ["flo"]}, headers=PLANNER
            ),
            201,
        )
    )["id"]
    await ok(
        await http.put(
            f"{W}/threads/{tid}/messages/m1",
            json={"body": "secret plan quixotically"},
            headers=VENDOR,
        ),
        201,
    )
    await ok(
        await http.put(f"{W}/threads/{tid}/messages/m2", json={"body": "ok"}, headers=PLANNER), 201
    )
    op = {"op": "add_guest", "guest_id": "g1", "name": "Ann Lee"}
    await ok(await http.post(f"{W}/docs/guests/ops", json=op, headers=PLANNER))
    exported = await ok(await http.get(f"{W}/export", headers=ADMIN_AUTH))
    assert [m["body"] for m in exported["threads"]["threads"][0]["messages"]] == [
        "secret plan quixotically",
        "ok",
    ]
    assert {m["sub"] for m in exported["threads"]["members"]} == {"pat", "cam", "flo"}
    assert (await http.delete(f"{W}/members/flo", headers=PLANNER)).status_code == 401
    assert (await http.delete(f"{W}/members/flo", headers=ADMIN_AUTH)).status_code == 204
    # Every feature forgot them (people their entry, threads their messages, notifications
    # their inbox): a second erasure, like one of a stranger, finds no one.
    members = (await ok(await http.get(f"{W}/members", headers=PLANNER)))["members"]
    assert "flo" not in {m["sub"] for m in members}
    for sub in ("flo", "nobody"):
        assert (await http.delete(f"{W}/members/{sub}", headers=ADMIN_AUTH)).status_code == 404
    messages = (await ok(await http.get(f"{W}/threads/{tid}/messages", headers=PLANNER)))[
        "messages"
    ]
    assert (
        messages[0]["body"] == "" and messages[0]["author"]["sub"] == "" and messages[0]["deleted"]
    )
    assert messages[1]["body"] == "ok"
    events = (await ok(await http.get(f"{W}/events", headers=PLANNER)))["events"]
    assert all(e["actor"]["sub"] != "flo" for e in events)
    search = await ok(await http.get(f"{W}/threads", params={"q": "secret"}, headers=PLANNER))
    assert search["threads"] == []
    # The erased words are nowhere in the store's files (rows, search index, WAL).
    assert await until(lambda: absent(server.data_dir, b"quixotically"))
    put = await http.put(
        f"{W}/threads/{tid}/messages/m3", json={"body": "zanzibarish flamingos"}, headers=PLANNER
    )
    await ok(put, 201)
    assert not await absent(server.data_dir, b"zanzibarish")
    # Wedding deletion removes everything, search index included.
    assert (await http.delete(W, headers=ADMIN_AUTH)).status_code in (200, 202, 204)
    assert await until(lambda: absent(server.data_dir, b"zanzibarish"))
    with sqlite3.connect(server.data_dir / "crdt.sqlite3") as db:
        for table in (
            "members", "threads", "thread_participants", "thread_messages",
            "thread_reads", "notifications", "notification_outbox", "thread_search",
            "thread_requests",
        ):  # fmt: skip
            assert db.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,), table


@pytest.mark.asyncio
async def test_thread_writes_are_rate_limited_except_emergencies_of_the_couple_and_planner(
    tmp_path: Path,
) -> None:
    env = {
        **ENV,
        "CRDT_SERVER_RATE_THREADS_PER_MINUTE": "3",
        "CRDT_SERVER_RATE_EMERGENCY_PER_HOUR": "2",
    }
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        await join(http, PLANNER, VENDOR)
        created = await http.post(
            f"{W}/threads", json={"subject": "Day of", "participants": ["flo"]}, headers=PLANNER
        )
        tid = (await ok(created, 201))["id"]
        base = f"{W}/threads/{tid}/messages"
        statuses = [
            (await http.put(f"{base}/v{i}", json={"body": "hi"}, headers=VENDOR)).status_code
            for i in range(4)
        ]
        assert statuses == [201, 201, 201, 429]
        limited = await http.put(f"{base}/v9", json={"body": "hi"}, headers=VENDOR)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert limited.headers["content-type"] == "application/problem+json"
        # The planner has used 1 of 3; emergencies pass whatever the count.
        for i in range(5):
            body = {"body": "Fire alarm, move to hall B", "priority": "emergency"}
            put = await http.put(f"{base}/e{i}", json=body, headers=PLANNER)
            assert put.status_code == 201, put.text
        # An emergency from a vendor passes the spent threads budget, and is counted
        # against the emergency budget of its own (2 an hour here).
        body = {"body": "help", "priority": "emergency"}
        statuses = [
            (await http.put(f"{base}/v1{i}", json=body, headers=VENDOR)).status_code
            for i in range(3)
        ]
        assert statuses == [201, 201, 429]


@pytest.mark.asyncio
async def test_mentions_by_display_name_notify_and_a_shared_name_is_reported(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    await join(http, PLANNER, COUPLE)
    for sub, name in (("priya", "Priya Shah"), ("sam1", "Sam Lee"), ("sam2", "Sam Lee")):
        body = {"role": "family", "name": name}
        await ok(await http.put(f"{W}/members/{sub}", json=body, headers=PLANNER), 201)
    thread = await ok(
        await http.post(
            f"{W}/threads",
            json={"subject": "Rehearsal", "participants": ["priya", "sam1", "sam2"]},
            headers=PLANNER,
        ),
        201,
    )
    body = {"body": "@priya shah can you drive? @Sam Lee too, and @[Cam](cam)."}
    answer = await ok(
        await http.put(f"{W}/threads/{thread['id']}/messages/m1", json=body, headers=PLANNER), 201
    )
    # Resolved names are stored as subs; the shared one is neither, and is said so.
    assert answer["mentions"] == ["priya", "cam"]
    assert answer["unnotified_mentions"] == [{"name": "Sam Lee", "reason": "ambiguous_name"}]
    again = await ok(
        await http.put(f"{W}/threads/{thread['id']}/messages/m1", json=body, headers=PLANNER)
    )
    assert again["unnotified_mentions"] == answer["unnotified_mentions"]
    inbox = (await ok(await http.get(f"{W}/notifications", headers=COUPLE)))["notifications"]
    assert [n["reason"] for n in inbox] == ["mention"]


@pytest.mark.asyncio
async def test_names_that_reach_nobody_come_back_as_unknown_members_never_refused(
    api: tuple[ServerProcess, httpx.AsyncClient],
) -> None:
    _, http = api
    await join(http, PLANNER, COUPLE)
    body = {"role": "family", "name": "Sam Lee"}
    await ok(await http.put(f"{W}/members/sam1", json=body, headers=PLANNER), 201)
    thread = await ok(
        await http.post(f"{W}/threads", json={"subject": "Cake"}, headers=PLANNER), 201
    )
    body = {"body": "@[Ghost](zed) and @Ghost, ask @sam; I'm @home, mail me at pat@example.com"}
    answer = await ok(
        await http.put(f"{W}/threads/{thread['id']}/messages/m1", json=body, headers=PLANNER), 201
    )
    # Posted; nobody mentioned; each name that was meant and reached nobody comes back.
    assert answer["mentions"] == []
    assert answer["unnotified_mentions"] == [
        {"name": "Ghost", "sub": "zed", "reason": "unknown_member"},
        {"name": "Ghost", "reason": "unknown_member"},
        {"name": "sam", "reason": "unknown_member"},
    ]
    # The answer is what the OpenAPI document says it is (PostedMessage), field for field.
    assert set(answer) == set(PostedMessage.__struct_fields__)
    assert msgspec.to_builtins(msgspec.convert(answer, PostedMessage)) == answer
    again = await ok(
        await http.put(f"{W}/threads/{thread['id']}/messages/m1", json=body, headers=PLANNER)
    )
    assert again["unnotified_mentions"] == answer["unnotified_mentions"]
    events = (await ok(await http.get(f"{W}/events", headers=PLANNER)))["events"]
    posted = [e for e in events if e["type"] == "thread.message_posted"]
    assert posted[0]["data"]["unnotified_mentions"] == answer["unnotified_mentions"]
    for headers in (COUPLE, PLANNER):
        assert (await ok(await http.get(f"{W}/notifications", headers=headers)))["unread"] == 0
