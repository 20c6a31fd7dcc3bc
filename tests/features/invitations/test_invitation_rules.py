"""The ceiling and the codes as pure rules: what each role may grant under the default
matrix and under an operator's, and what a code is."""

from __future__ import annotations

import json
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crdt_server.app import permission_matrix
from crdt_server.auth.permissions import DEFAULT_MATRIX, ROLES, Access, PermissionMatrix
from crdt_server.core.hooks import Core
from crdt_server.features.events import EventLog
from crdt_server.features.invitations.domain import (
    code_matches,
    grant_refusal,
    member_edit_refusal,
    narrowing_refusal,
    new_code,
    split_code,
)
from crdt_server.settings import Settings

pytestmark = pytest.mark.timeout(30)

MATRIX = permission_matrix(Settings())
W, R, N = Access.WRITE, Access.READ, Access.NONE


def test_only_the_couple_grants_the_couple_and_nobody_grants_above_themselves() -> None:
    assert [r for r in ROLES if grant_refusal(MATRIX, "couple", {}, r) is None] == list(ROLES)
    planner = [r for r in ROLES if grant_refusal(MATRIX, "planner", {}, r) is None]
    assert planner == ["planner", "vendor", "family", "friend"]
    # Family reads the timeline and operates the guests: family and friends, never a vendor
    # (who posts events) nor a planner.
    family = [r for r in ROLES if grant_refusal(MATRIX, "family", {}, r) is None]
    assert family == ["family", "friend"]
    assert [r for r in ROLES if grant_refusal(MATRIX, "friend", {}, r) is None] == ["friend"]
    # A vendor reads the guests without their contact: never a role that reads it.
    refused = grant_refusal(MATRIX, "vendor", {}, "family")
    assert refused is not None and refused[1] == "role"
    # A planner whose token keeps them out of the budget grants nobody into it.
    assert grant_refusal(MATRIX, "planner", {"budget": N}, "planner") is not None
    assert grant_refusal(MATRIX, "planner", {"budget": N}, "planner", {"budget": N}) is None


def test_an_operators_matrix_moves_who_may_invite_not_the_ceiling() -> None:
    rows = {role: {d: a.value for d, a in docs.items()} for role, docs in DEFAULT_MATRIX.items()}
    rows["friend"] = {d: "write" for d in rows["friend"]}
    text = json.dumps({**rows, "capabilities": {"members.invite": list(ROLES)}})
    wide = permission_matrix(Settings(permissions=text))
    assert wide.can("friend", "members.invite")
    # A friend who writes everything still cannot make a couple, nor a planner (who holds
    # capabilities the friend does not).
    assert grant_refusal(wide, "friend", {}, "couple") is not None
    assert grant_refusal(wide, "friend", {}, "planner") is not None


def test_a_document_list_only_narrows() -> None:
    assert narrowing_refusal(MATRIX, "family", {"guests": R, "budget": N}) is None
    widened = narrowing_refusal(MATRIX, "family", {"budget": R})
    assert widened is not None and widened[1] == "documents.budget"
    assert narrowing_refusal(MATRIX, "friend", {"timeline": W}) is not None


def test_member_edits_under_the_ceiling() -> None:
    def edit(editor: str, **kw: object) -> tuple[str, str] | None:
        base: dict[str, object] = {
            "editor_sub": editor,
            "sub": "flo",
            "current_role": "vendor",
            "current_email": "flo@example.com",
            "role": "vendor",
            "email": "flo@example.com",
            "email_held_by_another": False,
        }
        base.update(kw)
        role = {"cam": "couple", "pat": "planner"}[editor]
        return member_edit_refusal(MATRIX, role, {}, **base)  # type: ignore[arg-type]

    assert edit("pat") is None
    assert edit("pat", role="friend") is None
    assert edit("pat", role="couple") == ("only the couple may grant the couple role", "role")
    assert edit("pat", sub="cam", current_role="couple", role="couple") is not None
    assert edit("pat", email="evil@example.com")[1] == "email"  # type: ignore[index]
    assert edit("cam", email="new@example.com") is None
    # A new member: an email, unless another member holds it.
    new = {"current_role": None, "current_email": None, "sub": "gran", "role": "family"}
    assert edit("pat", **new, email="g@example.com") is None
    held = edit("pat", **new, email="cam@example.com", email_held_by_another=True)
    assert held is not None and held[1] == "email"
    # One's own address is one's own (a sign-in link verifies it, issue 50 point 1).
    assert edit("pat", sub="pat", current_role="planner", role="planner", email="p@x.org") is None


@given(st.text(max_size=80))
def test_only_a_made_code_splits_and_matches(text: str) -> None:
    invitation, code, digest = new_code()
    parts = split_code(code)
    assert parts is not None and parts[0] == invitation and code_matches(parts[1], digest)
    split = split_code(text)
    if split is not None:
        assert not code_matches(split[1], digest) or text == code
    assert not code_matches(text, None)


def test_personal_events_are_read_by_their_person_and_the_capable() -> None:
    log = EventLog(cast(Core, None))  # who reads what: nothing of the server is used
    log.personal("session.", "members.manage")
    matrix = PermissionMatrix(capabilities={"members.manage": frozenset({"couple"})})
    event = {"type": "session.revoked", "doc": None, "data": {"sub": "flo"}}
    assert log.may_read(event, matrix, "couple", "cam")
    assert log.may_read(event, matrix, "vendor", "flo")
    assert not log.may_read(event, matrix, "vendor", "dj")
    assert not log.may_read({**event, "data": "flo"}, matrix, "vendor", "flo")
    assert not log.may_read({**event, "data": {}}, matrix, "vendor", "")
    assert log.may_read({**event, "type": "member.joined"}, matrix, "friend", "x")
