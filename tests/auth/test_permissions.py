"""The permission matrix: documents per role, and capabilities (actions on the wedding)."""

from __future__ import annotations

import json

import pytest

from crdt_server.auth.permissions import (
    DEFAULT_CAPABILITIES,
    Access,
    PermissionMatrix,
    PermissionsError,
)


def test_default_capabilities_follow_the_wedding_hierarchy() -> None:
    matrix = PermissionMatrix()
    assert matrix.can("couple", "webhooks.manage") and matrix.can("planner", "webhooks.manage")
    assert not matrix.can("vendor", "webhooks.manage")
    assert matrix.can("vendor", "events.post") and not matrix.can("friend", "events.post")
    assert not matrix.can("couple", "no.such.capability")
    assert set(matrix.capabilities()) == set(DEFAULT_CAPABILITIES)


def test_an_operator_replaces_one_capability_and_keeps_the_rest() -> None:
    text = json.dumps(
        {
            "couple": {"guests": "write"},
            "capabilities": {"webhooks.manage": ["couple"], "events.post": []},
        }
    )
    matrix = PermissionMatrix.from_json(text)
    assert matrix.roles == ("couple",)
    assert matrix.access("couple", "guests") is Access.WRITE
    assert matrix.can("couple", "webhooks.manage") and not matrix.can("planner", "webhooks.manage")
    assert not matrix.can("vendor", "events.post")
    assert matrix.can("planner", "members.manage")  # not named: the default


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"capabilities": {"fly": ["couple"]}, "couple": {}}, "unknown capability 'fly'"),
        ({"capabilities": {"events.post": "couple"}, "couple": {}}, "must be a list of roles"),
        ({"capabilities": []}, "capability -> roles"),
        ({"capabilities": {}}, "non-empty object"),
    ],
)
def test_a_malformed_capability_section_is_refused(raw: object, message: str) -> None:
    with pytest.raises(PermissionsError, match=message):
        PermissionMatrix.from_json(json.dumps(raw))


def test_only_roles_reading_every_field_of_every_document_read_the_conflicts_room() -> None:
    # The room's messages quote values (a schema finding quotes the field's): a vendor given
    # all four documents still has hidden fields in the guest list.
    every = {d: "read" for d in ("timeline", "budget", "guests", "seating")}
    matrix = PermissionMatrix.from_json(json.dumps({"vendor": every, "planner": every}))
    assert matrix.access("planner", "conflicts") is Access.READ
    assert matrix.access("vendor", "conflicts") is Access.NONE
    assert matrix.access("friend", "conflicts", dict.fromkeys(every, Access.READ)) is Access.NONE


def test_every_role_with_hidden_fields_is_projected_whatever_grants_the_document() -> None:
    # A friend reads no guest list by the matrix, but a token's override may give it one.
    projected = PermissionMatrix().projections()
    assert projected == {"guests": frozenset({"vendor", "friend"})}
