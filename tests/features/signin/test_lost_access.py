"""Losing access, as a device session's refresh says it (issue 77, point 3): a member removed
from a wedding is answered the problem type ``not-a-member``, a session that ended
``session-ended``; an app forgets what it keeps of the wedding on either, and on nothing
else (an ordinary 403 stays ``about:blank``). Both stores."""

from __future__ import annotations

import pytest

from crdt_server.errors import PROBLEM_TYPES, NotAMember, SessionEnded
from tests.features.conversations import auth
from tests.features.signin.test_sessions import Running, cookie_of, put_member

pytestmark = [pytest.mark.timeout(120)]

NOT_A_MEMBER = "urn:crdt-server:problem:not-a-member"
SESSION_ENDED = "urn:crdt-server:problem:session-ended"


def test_the_types_are_listed() -> None:
    assert NotAMember.problem_type == NOT_A_MEMBER and SessionEnded.problem_type == SESSION_ENDED
    assert set(PROBLEM_TYPES) == {NOT_A_MEMBER, SESSION_ENDED}


@pytest.mark.asyncio
async def test_a_removed_member_is_told_not_a_member_and_a_signed_out_one_session_ended(
    running: Running,
) -> None:
    http = running.http
    await put_member(http, "w1", "kim", role="planner", name="Kim", email="kim@example.com")
    await put_member(http, "w2", "kim2", role="family", name="Kim", email="kim@example.com")
    cookie = cookie_of(await running.complete(await running.link("kim@example.com")))
    fresh = await running.session(cookie, "refresh", json={"wedding": "w1"})
    assert fresh.status_code == 200, fresh.text

    removed = await http.post("/api/weddings/w1/members/kim/remove", headers=auth("alex", "couple"))
    assert removed.status_code == 200, removed.text
    refused = await running.session(cookie, "refresh", json={"wedding": "w1"})
    assert refused.status_code == 403
    problem = refused.json()
    assert problem["type"] == NOT_A_MEMBER and problem["title"] == "Not a member", problem
    assert problem["errors"][0]["field"] == "wedding"
    # Her other wedding is hers still: the same session refreshes it.
    other = await running.session(cookie, "refresh", json={"wedding": "w2"})
    assert other.status_code == 200, other.text

    # Another origin's 403 is no loss of access: no type of its own.
    forged = await running.session(
        cookie, "refresh", json={"wedding": "w2"}, headers={"Origin": "http://evil.example"}
    )
    assert forged.status_code == 403 and forged.json()["type"] == "about:blank"

    assert (await running.session(cookie, "sign-out")).status_code == 204
    ended = await running.session(cookie, "refresh", json={"wedding": "w2"})
    assert ended.status_code == 401
    assert ended.json()["type"] == SESSION_ENDED and ended.json()["title"] == "Session ended"
    assert ended.headers["content-type"].startswith("application/problem+json")
