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
