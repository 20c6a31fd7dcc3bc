"""The invitations' tables on every backend (SQLite, PostgreSQL): a code's secret checked,
one use taken atomically (two people racing for the last use: one gets in), expired and
revoked invitations gone, the new member and the ``member.joined`` event written in the same
transaction, and the schema's version recorded."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from crdt_server.features.events import read_events
from crdt_server.features.invitations import INVITATIONS_SCHEMA, tables
from crdt_server.features.invitations.domain import new_code, split_code
from crdt_server.features.invitations.tables import InvitationRow
from crdt_server.features.people import SCHEMA
from crdt_server.features.people.tables import members
from crdt_server.storage import DocumentStore, Gateway, NewEvent

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]


async def installed(store: DocumentStore) -> Gateway:
    await store.install(SCHEMA)
    await store.install(INVITATIONS_SCHEMA)
    return Gateway.of(store)


async def made(
    db: Gateway, *, uses: int = 1, expires_in: float = 3600, role: str = "friend"
) -> tuple[InvitationRow, str]:
    invitation, code, digest = new_code()
    now = time.time()
    row = InvitationRow(
        invitation, "w1", digest, role, "Ann", "ann@example.com", '{"guests":"none"}',
        uses, uses, now + expires_in, now, "pat", "planner", 0.0,
    )  # fmt: skip
    event = NewEvent("w1", "member.invited", json.dumps({"invitation": invitation}))
    await db.run(tables.create(row, event))
    return row, code


async def redeem(db: Gateway, code: str, sub: str) -> tables.Joined:
    parts = split_code(code)
    assert parts is not None
    return await db.run(
        tables.redeem(*parts, sub=sub, name=sub.title(), email=None, unsubscribe="k")
    )


async def test_a_code_lets_in_as_many_people_as_it_has_uses(store: DocumentStore) -> None:
    db = await installed(store)
    row, code = await made(db, uses=2)
    invitation, _, secret = code.partition(".")
    wrong = await redeem(db, f"{invitation}.{'A' * 43}", "eve")
    assert wrong.outcome == "unknown" and wrong.invitation is None
    assert (await redeem(db, code, "ann")).outcome == "joined"
    assert (await redeem(db, code, "bob")).outcome == "joined"
    used = await redeem(db, code, "cal")
    assert used.outcome == "gone" and used.invitation is not None
    assert used.invitation.state(time.time()) == "used"
    # The members are in the directory without an email; how they joined is kept apart.
    assert [(m.sub, m.role, m.email) for m in await members(db, "w1")] == [
        ("ann", "friend", None),
        ("bob", "friend", None),
    ]
    assert await tables.joined_count(db, "w1") == 2
    assert await tables.weddings_of(db, "ann") == ["w1"]
    # Each acceptance is an event in the same transaction, naming invitation and inviter.
    joined = [
        e for e in await read_events(Gateway.of(store), "w1", limit=50) if e.type == "member.joined"
    ]
    assert [json.loads(e.data) for e in joined] == [
        {"sub": s, "name": s.title(), "role": "friend", "invitation": row.id, "inviter": "pat"}
        for s in ("ann", "bob")
    ]
    assert row.narrowing == {"guests": "none"}
    assert secret not in json.dumps([r.digest for r in await tables.invitations(db, "w1", limit=9)])


async def test_racing_for_the_last_use_lets_one_person_in(store: DocumentStore) -> None:
    db = await installed(store)
    _, code = await made(db, uses=1)
    outcomes = await asyncio.gather(*(redeem(db, code, f"p{n}") for n in range(8)))
    assert sorted(o.outcome for o in outcomes) == ["gone"] * 7 + ["joined"]
    assert len(await members(db, "w1")) == 1


async def test_expired_and_revoked_invitations_are_gone(store: DocumentStore) -> None:
    db = await installed(store)
    _, expired = await made(db, expires_in=-1)
    assert (await redeem(db, expired, "ann")).outcome == "gone"
    row, revoked = await made(db)
    assert await db.run(tables.revoke("w1", row.id, time.time()))
    assert not await db.run(tables.revoke("w2", row.id, time.time()))  # not that wedding's
    gone = await redeem(db, revoked, "bob")
    assert gone.outcome == "gone" and gone.invitation is not None
    assert gone.invitation.state(time.time()) == "revoked"
    assert await members(db, "w1") == []
    assert await tables.open_count(db, "w1", time.time()) == 0
    # Newest first, a page at a time.
    for _ in range(3):
        await made(db)
    first = await tables.invitations(db, "w1", limit=2)
    rest = await tables.invitations(db, "w1", limit=9, before=(first[-1].created_at, first[-1].id))
    assert len(first) == 2 and len(rest) == 3
    assert {r.id for r in first}.isdisjoint(r.id for r in rest)


async def test_the_schema_is_version_2_of_its_own_name(store: DocumentStore) -> None:
    await installed(store)
    rows = await Gateway.of(store).fetch("SELECT name, version FROM {t}schema_versions")
    versions = {str(name): int(version) for name, version in rows}
    # Version 2: a vendor's field set of the guest list; the people's 4: the same on the
    # directory.
    assert versions["invitations"] == 2 and versions["people"] == 4
