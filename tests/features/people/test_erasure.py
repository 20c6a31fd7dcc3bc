"""Erasure is complete, on both stores: a person erased from their last wedding leaves no
row behind in any table (their person, device sessions (ended first: their sockets close
with 4401), sign-in codes, "add your email" claims, the invitation that named them, the
member and session events they caused, which carry their name and devices), read straight
from the store's tables after the erasure, and the SQLite file's bytes hold their address
nowhere; a person still a member elsewhere keeps their person and devices, and only the
erased wedding's traces go; a wedding its erased creator made keeps no digest of their
address."""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any

import asyncpg
import pytest

from crdt_server.testing.waits import until
from tests.features.conversations import ADMIN_AUTH, CODEC, COUPLE, W, ok
from tests.features.signin.test_sessions import Running, cookie_of, put_member
from tests.yclient import YClient

pytestmark = [pytest.mark.timeout(120)]

_TABLES = (
    "persons",
    "memberships",
    "verified_emails",
    "device_sessions",
    "sign_in_codes",
    "email_claims",
    "members",
    "invitations",
    "invitation_members",
    "mail_outbox",
    "weddings_created",
    "events",
    "idempotency",
)


async def _rows(running: Running, database: str) -> dict[str, list[str]]:
    """Every row of the people tables (and the bare-address outbox), each as its text."""
    found: dict[str, list[str]] = {}
    if database:
        conn = await asyncpg.connect(database)
        try:
            for table in _TABLES:
                rows = await conn.fetch(f"SELECT * FROM {table}")  # noqa: S608 (our names)
                found[table] = [repr(tuple(r.values())) for r in rows]
        finally:
            await conn.close()
        return found
    path = running.server.data_dir / "crdt.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
        for table in _TABLES:
            rows = db.execute(f"SELECT * FROM {table}").fetchall()  # noqa: S608 (our names)
            found[table] = [repr(r) for r in rows]
    return found


def _holding(rows: dict[str, list[str]], *needles: str) -> list[str]:
    return [
        f"{table}: {row}"
        for table, texts in rows.items()
        for row in texts
        if any(n.lower() in row.lower() for n in needles)
    ]


def _file_bytes(running: Running) -> bytes:
    data = running.server.data_dir
    return b"".join(p.read_bytes() for p in sorted(data.glob("crdt.sqlite3*")))


@pytest.mark.asyncio
async def test_a_person_erased_from_their_last_wedding_leaves_nothing(
    running: Running, database: str
) -> None:
    http = running.http
    await put_member(http, "w1", "ana", role="friend", name="Ana", email="ana@example.com")
    signed_in = await running.complete(await running.link("ana@example.com"), "Ana's laptop")
    answer = await ok(signed_in)
    cookie = cookie_of(signed_in)
    person_rows = _holding(await _rows(running, database), "ana@example.com")
    assert any(r.startswith("persons:") for r in person_rows), person_rows
    # A second link waits unused: its code is stored for the address.
    await running.link("ana@example.com", 2)

    # Zoe joins by an invitation that named her, then asks to add her address.
    made = await ok(
        await http.post(
            f"{W}/invitations",
            json={"role": "friend", "name": "Zoe Q", "email": "zoe@example.com"},
            headers=COUPLE,
        ),
        201,
    )
    joined = await http.post(
        "/api/invitations/accept",
        json={"code": made["code"], "name": "Zoe Q"},
        headers=running.origin,
    )
    zoe = (await ok(joined, 201))["sub"]
    zoe_cookie = cookie_of(joined)
    claim = await running.session(zoe_cookie, "email", json={"email": "zoe@example.com"})
    assert claim.status_code == 202, claim.text
    assert _holding(await _rows(running, database), "zoe@example.com")

    async with YClient(running.server.ws_url, "w1/timeline", token=answer["token"]) as socket:
        await socket.wait(socket.synced.is_set)
        erased = await ok(await http.delete("/api/admin/members/ana", headers=ADMIN_AUTH))
        assert erased == {"sub": "ana", "weddings": ["w1"]}
        # Their device session ended first, as a revocation ends it: 4401.
        await socket.wait(socket.closed.is_set, timeout=10)
    assert socket.close_code == 4401
    gone = await http.delete(f"{W}/members/{zoe}", headers=ADMIN_AUTH)
    assert gone.status_code == 204, gone.text

    for who in (cookie, zoe_cookie):
        assert (await running.session(who, "refresh", json={})).status_code == 401
    rows = await _rows(running, database)
    left = _holding(rows, "ana@example.com", "zoe@example.com", "Ana's laptop", "Zoe Q")
    assert left == [], left
    for table in ("persons", "device_sessions", "sign_in_codes", "email_claims"):
        assert rows[table] == [], (table, rows[table])
    if not database:
        # The canary: the address is nowhere in the database's files (secure_delete and the
        # erasure's checkpoint zeroed what held it).
        async def scrubbed() -> bool:
            content = _file_bytes(running)
            return b"ana@example.com" not in content and b"zoe@example.com" not in content

        await until(scrubbed, 10)


@pytest.mark.asyncio
async def test_a_person_still_a_member_elsewhere_keeps_only_their_other_weddings(
    running: Running, database: str
) -> None:
    http = running.http
    await put_member(http, "w1", "bo", role="friend", name="Bo", email="bo@example.com")
    await put_member(http, "w2", "bo2", role="planner", name="Bo", email="bo@example.com")
    signed_in = await running.complete(await running.link("bo@example.com"), "Bo's phone")
    cookie = cookie_of(signed_in)

    assert (await http.delete(f"{W}/members/bo", headers=ADMIN_AUTH)).status_code == 204
    rows = await _rows(running, database)
    assert len([r for r in rows["persons"] if "bo@example.com" in r]) == 1
    assert len([r for r in rows["device_sessions"] if "Bo's phone" in r]) == 1
    for table in ("memberships", "verified_emails", "members"):
        assert not [r for r in rows[table] if "'w1'" in r], (table, rows[table])
        assert len([r for r in rows[table] if "'w2'" in r]) == 1, (table, rows[table])
    # Their device goes on, for the wedding they are still in only.
    fresh: Any = await ok(await running.session(cookie, "refresh", json={}))
    assert [(w["wedding"], w["sub"]) for w in fresh["weddings"]] == [("w2", "bo2")]
    assert CODEC.decode(fresh["token"]).sub == "bo2"
    refused = await running.session(cookie, "refresh", json={"wedding": "w1"})
    assert refused.status_code == 403


@pytest.mark.asyncio
async def test_an_erased_creator_s_address_leaves_no_digest_behind(
    running: Running, database: str
) -> None:
    http = running.http
    new = {"names": ["Eve", "Max"], "date": "2027-06-12", "time_zone": "Europe/Lisbon"}
    made = await ok(
        await http.post(
            "/api/weddings",
            json={**new, "currency": "EUR", "email": "Eve@Example.com"},
            headers=ADMIN_AUTH,
        ),
        201,
    )
    wedding, sub = made["id"], made["member"]["sub"]
    # The creation emailed the first link; the newer one asked for here replaces it.
    await ok(await running.complete(await running.link("eve@example.com", 2)))
    digest = hashlib.sha256(b"eve@example.com").hexdigest()
    assert _holding(await _rows(running, database), digest)

    erased = await ok(await http.delete(f"/api/admin/members/{sub}", headers=ADMIN_AUTH))
    assert erased["weddings"] == [wedding]
    rows = await _rows(running, database)
    assert _holding(rows, digest, "eve@example.com") == []
    # The wedding keeps its record (whether its creator was verified), under no digest.
    assert [r for r in rows["weddings_created"] if wedding in r]


@pytest.mark.asyncio
async def test_an_erased_member_s_older_token_neither_reads_nor_brings_them_back(
    running: Running, database: str
) -> None:
    """Erasing a member (``eraseMember``) refuses the tokens they hold for that wedding, as
    removing them does: a token minted before the erasure would otherwise read the wedding
    and, as every authenticated call registers its caller, put them back in the directory."""
    http = running.http
    token = CODEC.mint(sub="ida", role="friend", wedding="w1", ttl=3600, name="Ida Erased")
    held = {"Authorization": f"Bearer {token}"}
    assert (await http.get(f"{W}/access", headers=held)).status_code == 200
    assert (await http.delete(f"{W}/members/ida", headers=ADMIN_AUTH)).status_code == 204
    assert (await http.get(f"{W}/access", headers=held)).status_code == 401
    assert (await http.get(f"{W}/docs/guests", headers=held)).status_code == 401
    members = await ok(await http.get(f"{W}/members", headers=COUPLE))
    assert "ida" not in {m["sub"] for m in members["members"]}, members
    assert _holding(await _rows(running, database), "Ida Erased") == []


NOTE = "the gate code of Ana is 4471, ring twice"
NESTED = "ana.private@canary.example"
KEY = "Ana-allergic-to-lilies"
ARRIVED = "Ana parked behind the barn"


@pytest.mark.asyncio
async def test_an_erased_member_s_custom_events_keep_their_place_and_lose_their_text(
    running: Running, database: str
) -> None:
    """The custom events a member posted (``custom.*`` and the clients' ``day.*``) are
    theirs: erasing them replaces each one's data with ``{"erased": true}``, keeping its
    seq, type, time, priority, document and actor, so the feed keeps its numbering; the
    idempotency keys of what they posted (a digest of its body) go. Another member's
    custom events and the server's own events are untouched."""
    http = running.http
    token = CODEC.mint(sub="ana", role="vendor", wedding="w1", ttl=3600, name="Ana")
    ana = {"Authorization": f"Bearer {token}"}
    theirs = [
        (
            {
                "type": "custom.gate_note",
                "priority": "urgent",
                "doc": "timeline",
                "data": {"text": NOTE, "more": {"list": [NESTED, 7]}, KEY: True},
            },
            {"Idempotency-Key": "ana-1"},
        ),
        ({"type": "day.vendor_arrived", "data": {"where": ARRIVED}}, {}),
    ]
    seqs = []
    for body, extra in theirs:
        seqs.append(
            (await ok(await http.post(f"{W}/events", json=body, headers={**ana, **extra}), 201))[
                "seq"
            ]
        )
    kept = {"type": "custom.toast", "data": {"by": "the couple", "text": "thank you all"}}
    other = (await ok(await http.post(f"{W}/events", json=kept, headers=COUPLE), 201))["seq"]
    canaries = (NOTE, NESTED, KEY, ARRIVED)
    assert len(_holding(await _rows(running, database), *canaries)) == 2  # the test sees them
    before = {
        e["seq"]: e
        for e in (await ok(await http.get(f"{W}/events?types=custom.*,day.*", headers=COUPLE)))[
            "events"
        ]
    }

    assert (await http.delete(f"{W}/members/ana", headers=ADMIN_AUTH)).status_code == 204
    after = {
        e["seq"]: e
        for e in (await ok(await http.get(f"{W}/events?types=custom.*,day.*", headers=COUPLE)))[
            "events"
        ]
    }
    assert sorted(after) == sorted(before)  # no seq went: the feed keeps its numbering
    for seq in seqs:
        assert after[seq] == {**before[seq], "data": {"erased": True}}, after[seq]
    assert after[seq]["actor"] == {"sub": "ana", "role": "vendor"}
    assert after[other] == before[other]
    rows = await _rows(running, database)
    assert _holding(rows, *canaries) == []
    assert _holding(rows, "w1:ana:events") == []  # the idempotency key of their event
    if not database:

        async def scrubbed() -> bool:
            content = _file_bytes(running)
            return not any(c.encode() in content for c in canaries)

        await until(scrubbed, 10)
