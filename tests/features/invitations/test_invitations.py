"""Invitations through a real server: made, listed, accepted, revoked; the ceiling that
CRDT_SERVER_PERMISSIONS cannot widen; hostile codes and bodies; the members' events."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from crdt_server.auth.permissions import DEFAULT_MATRIX
from tests.features.conversations import (
    ADMIN_AUTH,
    CODEC,
    COUPLE,
    ENV,
    FRIEND,
    PLANNER,
    VENDOR,
    W,
    auth,
    join,
    ok,
)
from tests.server import ServerProcess, served

pytestmark = pytest.mark.timeout(60)

Api = tuple[ServerProcess, httpx.AsyncClient]
SMALL_BODIES = {**ENV, "CRDT_SERVER_MAX_JSON_BODY_BYTES": "65536"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def invite(http: httpx.AsyncClient, who: dict[str, str], **body: Any) -> Any:
    return await ok(await http.post(f"{W}/invitations", json=body, headers=who), 201)


async def accept(http: httpx.AsyncClient, code: str, name: str = "Ann", **more: Any) -> Any:
    return await http.post("/api/invitations/accept", json={"code": code, "name": name, **more})


def problem_field(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["field"])


async def events_of(http: httpx.AsyncClient, who: dict[str, str], types: str) -> list[Any]:
    found = await ok(await http.get(f"{W}/events?types={types}", headers=who))
    return list(found["events"])


@pytest.mark.asyncio
async def test_an_invitation_lets_one_person_in_once(api: Api) -> None:
    _, http = api
    await join(http, PLANNER)
    made = await invite(http, PLANNER, role="vendor", name="Flo's Flowers", email="f@x.org")
    assert set(made) == {
        "id",
        "url",
        "code",
        "expires_at",
        "uses_left",
        "emailed",
        "not_sent_because",
    }
    # This server sends no email: the invitation is made, and says its link was not sent.
    assert made["emailed"] == "not_sent" and made["not_sent_because"] == "email_off"
    assert made["uses_left"] == 1 and made["expires_at"].endswith("Z")
    # The code is in the fragment only: a GET of the link (a mail scanner) sends none of it.
    page, _, fragment = made["url"].partition("#")
    assert fragment == f"code={made['code']}" and made["code"] not in page
    scanned = await http.get(page.removeprefix(str(http.base_url).rstrip("/")))
    assert scanned.status_code in (200, 404)

    joined = await ok(await accept(http, made["code"], "Flo", email="cam@example.com"), 201)
    assert (joined["wedding"], joined["role"]) == ("w1", "vendor")
    claims = CODEC.decode(joined["token"])
    assert (claims.sub, claims.role, claims.weddings) == (joined["sub"], "vendor", ("w1",))
    access = await ok(await http.get(f"{W}/access", headers=bearer(joined["token"])))
    assert access["role"] == "vendor" and access["docs"]["budget"] == "none"
    # Used up: 410, and nobody else gets in with it.
    again = await accept(http, made["code"], "Eve")
    assert again.status_code == 410 and problem_field(again) == "code"

    assert joined["email"] == "unconfirmed"  # not the address the invitation went to
    # An email given at the door is nobody's identity: not in the directory (unconfirmed).
    members = (await ok(await http.get(f"{W}/members", headers=COUPLE)))["members"]
    newcomer = [m for m in members if m["sub"] == joined["sub"]]
    assert newcomer == [
        {
            "sub": joined["sub"],
            "role": "vendor",
            "name": "Flo",
            "guest_fields": "counts",  # the invitation chose nothing: the counts only
            "email": None,
            "participation": "all",
            "email_notifications": True,
            "email_confirmed": False,
        }
    ]
    # The list shows it used, to who may invite; others may not list.
    listed = (await ok(await http.get(f"{W}/invitations", headers=COUPLE)))["invitations"]
    assert [(i["id"], i["state"], i["uses_left"]) for i in listed] == [(made["id"], "used", 0)]
    assert listed[0]["inviter"] == {"sub": "pat", "role": "planner"}
    assert "code" not in listed[0] and "digest" not in listed[0]
    assert (await http.get(f"{W}/invitations", headers=VENDOR)).status_code == 403

    # Every member reads member.*: a friend sees who was invited and who joined, by whom.
    await join(http, FRIEND)
    seen = await events_of(http, FRIEND, "member.*")
    assert [e["type"] for e in seen] == ["member.invited", "member.joined"]
    assert seen[0]["actor"] == {"sub": "pat", "role": "planner"}
    assert seen[1]["data"] == {
        "sub": joined["sub"],
        "name": "Flo",
        "role": "vendor",
        "invitation": made["id"],
        "inviter": "pat",
    }
    assert "f@x.org" not in json.dumps(seen) and "cam@example.com" not in json.dumps(seen)


@pytest.mark.asyncio
async def test_guessed_malformed_and_revoked_codes_get_nothing(tmp_path: Path) -> None:
    env = {**SMALL_BODIES, "CRDT_SERVER_INVITATION_ATTEMPTS_PER_MINUTE": "1000"}
    async with served(tmp_path / "data", env) as (server, http):
        await _guessed_malformed_and_revoked(server, http)


async def _guessed_malformed_and_revoked(server: ServerProcess, http: httpx.AsyncClient) -> None:
    made = await invite(http, COUPLE, role="friend", uses=3)
    invitation, _, secret = made["code"].partition(".")
    wrong = f"{invitation}.{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    unknown = f"{'x' * 16}.{secret}"
    # A wrong secret answers as an unknown invitation does: 404, not 410.
    for code in (wrong, unknown, "not-a-code", "a" * 128):
        refused = await accept(http, code)
        assert refused.status_code == 404, (code, refused.text)
        assert problem_field(refused) == "code"
    nul = await accept(http, f"{made['code']}\x00")
    assert nul.status_code == 400 and problem_field(nul) == "code"
    assert (await accept(http, "a" * 129)).status_code in (400, 422)
    # Nothing was used by the guesses.
    listed = (await ok(await http.get(f"{W}/invitations", headers=COUPLE)))["invitations"]
    assert listed[0]["uses_left"] == 3
    await ok(await accept(http, made["code"], "Cousin One"), 201)
    assert (await http.delete(f"{W}/invitations/{made['id']}", headers=COUPLE)).status_code == 204
    revoked = await accept(http, made["code"], "Cousin Two")
    assert revoked.status_code == 410
    gone = await http.delete(f"{W}/invitations/{'y' * 16}", headers=COUPLE)
    assert gone.status_code == 404
    # Names are plain text; bodies are bounded.
    made = await invite(http, COUPLE, role="friend")
    assert problem_field(await accept(http, made["code"], "\x1b[31mred")) == "name"
    assert problem_field(await accept(http, made["code"], "   ")) == "name"
    assert problem_field(await accept(http, made["code"], "Al", email="nope")) == "email"
    unknown_field = await http.post(
        "/api/invitations/accept", json={"code": made["code"], "name": "Al", "role": "couple"}
    )
    assert unknown_field.status_code == 422
    huge = await http.post(
        "/api/invitations/accept",
        content=b'{"code": "' + b"a" * 70_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert huge.status_code == 413
    # None of these used it, and no code reached the log.
    await ok(await accept(http, made["code"], "Al"), 201)
    assert secret not in server.log_text()


@pytest.mark.asyncio
async def test_codes_are_tried_at_a_bounded_rate(tmp_path: Path) -> None:
    env = {**ENV, "CRDT_SERVER_INVITATION_ATTEMPTS_PER_MINUTE": "3"}
    async with served(tmp_path / "data", env) as (_, http):
        made = await invite(http, COUPLE, role="friend")
        guess = f"{made['id']}.{'A' * 43}"
        assert [(await accept(http, guess)).status_code for _ in range(3)] == [404] * 3
        limited = await accept(http, made["code"])
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        listed = (await ok(await http.get(f"{W}/invitations", headers=COUPLE)))["invitations"]
        assert listed[0]["uses_left"] == 1


@pytest.mark.asyncio
async def test_the_ceiling_holds_whatever_the_permissions_say(tmp_path: Path) -> None:
    # Family may invite (an operator's choice), and even so grants nothing above itself.
    matrix = {role: {d: a.value for d, a in docs.items()} for role, docs in DEFAULT_MATRIX.items()}
    permissions = {"capabilities": {"members.invite": ["couple", "planner", "family"]}}
    env = {**SMALL_BODIES, "CRDT_SERVER_PERMISSIONS": json.dumps({**matrix, **permissions})}
    async with served(tmp_path / "data", env) as (_, http):
        family = auth("gran", "family")

        async def refused(who: dict[str, str], body: dict[str, Any]) -> httpx.Response:
            response = await http.post(f"{W}/invitations", json=body, headers=who)
            assert response.status_code in (403, 422), response.text
            return response

        # Only the couple grants the couple.
        assert problem_field(await refused(PLANNER, {"role": "couple"})) == "role"
        await invite(http, COUPLE, role="couple")
        await invite(http, PLANNER, role="planner")
        # Nobody grants above their own access: family reads the timeline only.
        assert (await refused(family, {"role": "planner"})).status_code == 403
        assert (await refused(family, {"role": "vendor"})).status_code == 403  # events.post
        await invite(http, family, role="friend", uses=5)
        # A document list only narrows the role's matrix, checked at creation.
        widened = await refused(PLANNER, {"role": "friend", "documents": {"budget": "write"}})
        assert widened.status_code == 422 and problem_field(widened) == "documents.budget"
        unknown = await refused(PLANNER, {"role": "friend", "documents": {"secrets": "read"}})
        assert problem_field(unknown) == "documents"
        # ... and never above the granter's own token: a planner kept out of the budget.
        narrowed = CODEC.mint(sub="pip", role="planner", wedding="w1", docs={"budget": "none"})
        above = await refused(bearer(narrowed), {"role": "planner"})
        assert above.status_code == 403
        narrowing = {"guests": "read", "budget": "none"}
        made = await invite(http, PLANNER, role="planner", documents=narrowing)
        joined = await ok(await accept(http, made["code"], "Assistant"), 201)
        claims = CODEC.decode(joined["token"])
        assert {d: a.value for d, a in claims.docs.items()} == narrowing
        # Several uses are for family and friends only; a vendor's seat is not passed on.
        many = await refused(PLANNER, {"role": "vendor", "uses": 2})
        assert problem_field(many) == "uses"
        # Who may not invite may not list or revoke either.
        by_friend = await http.post(f"{W}/invitations", json={"role": "friend"}, headers=FRIEND)
        assert by_friend.status_code == 403
        assert (await http.get(f"{W}/invitations", headers=FRIEND)).status_code == 403
        couple_seat = await invite(http, COUPLE, role="couple")
        revoke = await http.delete(f"{W}/invitations/{couple_seat['id']}", headers=PLANNER)
        assert revoke.status_code == 403
        # Oversized bodies: 413 before any parsing.
        big = await http.post(
            f"{W}/invitations",
            content=b'{"role": "friend", "name": "' + b"n" * 70_000 + b'"}',
            headers={**PLANNER, "Content-Type": "application/json"},
        )
        assert big.status_code == 413


@pytest.mark.asyncio
async def test_a_planner_cannot_take_over_the_couple(api: Api) -> None:
    _, http = api
    await join(http, COUPLE, PLANNER, VENDOR)

    async def put(who: dict[str, str], sub: str, body: dict[str, Any]) -> httpx.Response:
        return await http.put(f"{W}/members/{sub}", json=body, headers=who)

    couple = {"role": "couple", "name": "Cam", "email": "cam@example.com"}
    # Not the couple's entry, nor a new couple member, nor a promotion to couple.
    assert (await put(PLANNER, "cam", {**couple, "email": "pat@evil.org"})).status_code == 403
    assert (await put(PLANNER, "cam2", couple)).status_code == 403
    promoted = await put(PLANNER, "flo", {"role": "couple", "name": "Flo"})
    assert promoted.status_code == 403 and problem_field(promoted) == "role"
    # Not another member's email, nor the couple's address on anyone.
    changed = await put(PLANNER, "flo", {"role": "vendor", "email": "new@evil.org"})
    assert changed.status_code == 403 and problem_field(changed) == "email"
    taken = await put(PLANNER, "evil", {"role": "friend", "email": "cam@example.com"})
    assert taken.status_code == 403 and problem_field(taken) == "email"
    # What a planner may do: a role change below them, recorded as an event.
    await ok(await put(PLANNER, "flo", {"role": "friend", "email": "flo@example.com"}))
    await ok(await put(PLANNER, "gran", {"role": "family", "email": "g@example.com"}), 201)
    # The couple and the admin key may do what the planner may not.
    await ok(await put(COUPLE, "flo", {"role": "vendor", "email": "flo2@example.com"}))
    await ok(await put(ADMIN_AUTH, "cam2", couple), 201)
    changes = await events_of(http, COUPLE, "member.role_changed")
    assert [(e["data"], e["actor"]["sub"]) for e in changes] == [
        ({"sub": "flo", "from": "vendor", "to": "friend"}, "pat"),
        ({"sub": "flo", "from": "friend", "to": "vendor"}, "cam"),
    ]
    members = {
        m["sub"]: m for m in (await ok(await http.get(f"{W}/members", headers=COUPLE)))["members"]
    }
    assert members["cam"]["email"] == "cam@example.com" and members["cam"]["role"] == "couple"


@pytest.mark.asyncio
async def test_every_authenticated_call_registers_its_caller(api: Api) -> None:
    _, http = api
    newcomer = auth("nia", "friend", "nia@example.com")
    await ok(await http.get(f"{W}/access", headers=newcomer))
    members = (await ok(await http.get(f"{W}/members", headers=PLANNER)))["members"]
    assert {m["sub"] for m in members} == {"nia", "pat"}
    # A token for another wedding registers nobody here.
    elsewhere = bearer(CODEC.mint(sub="zed", role="couple", wedding="w2", ttl=600))
    assert (await http.get(f"{W}/access", headers=elsewhere)).status_code == 403
    members = (await ok(await http.get(f"{W}/members", headers=PLANNER)))["members"]
    assert "zed" not in {m["sub"] for m in members}
    # A known member stays as the directory has them: their token does not overwrite it.
    # (The role change revokes tokens issued before it, whole seconds: a token minted in
    # the next second still says "friend".)
    body = {"role": "family", "name": "Nia", "email": "nia@example.com"}
    await ok(await http.put(f"{W}/members/nia", json=body, headers=PLANNER))
    assert (await http.get(f"{W}/access", headers=newcomer)).status_code == 401
    deadline = time.monotonic() + 5
    while True:
        again = auth("nia", "friend", "nia@example.com")
        if (await http.get(f"{W}/access", headers=again)).status_code == 200:
            break
        assert time.monotonic() < deadline, "a token minted after the change is still refused"
        await asyncio.sleep(0.1)
    members = (await ok(await http.get(f"{W}/members", headers=PLANNER)))["members"]
    assert [m["role"] for m in members if m["sub"] == "nia"] == ["family"]
