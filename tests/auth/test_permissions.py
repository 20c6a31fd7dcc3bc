"""The permission matrix: documents per role, and capabilities (actions on the wedding)."""

from __future__ import annotations

import json

import pytest

from crdt_server.app import FEATURES, permission_matrix
from crdt_server.auth.permissions import (
    Access,
    PermissionMatrix,
    PermissionsError,
)
from crdt_server.features import DuplicateCapability, Feature, capabilities_of
from crdt_server.settings import Settings

DECLARED = capabilities_of(FEATURES)
"""The capabilities the app's features declare, with their default roles."""


def test_default_capabilities_follow_the_wedding_hierarchy() -> None:
    matrix = PermissionMatrix(capabilities=DECLARED)
    assert matrix.can("couple", "webhooks.manage") and matrix.can("planner", "webhooks.manage")
    assert not matrix.can("vendor", "webhooks.manage")
    assert matrix.can("vendor", "events.post") and not matrix.can("friend", "events.post")
    # The wedding's export: the couple's alone (GDPR art. 15/20), as before it was a capability.
    assert [r for r in ("couple", "planner", "family", "vendor", "friend")
            if matrix.can(r, "weddings.export")] == ["couple"]  # fmt: skip
    assert not matrix.can("couple", "no.such.capability")
    assert set(matrix.capabilities()) == set(DECLARED)


def test_an_operator_replaces_one_capability_and_keeps_the_rest() -> None:
    text = json.dumps(
        {
            "couple": {"guests": "write"},
            "capabilities": {"webhooks.manage": ["couple"], "events.post": []},
        }
    )
    matrix = PermissionMatrix.from_json(text, DECLARED)
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
        PermissionMatrix.from_json(json.dumps(raw), DECLARED)


def test_each_capability_belongs_to_the_feature_that_checks_it() -> None:
    """Capabilities are declared by the features (``Feature.capabilities``), not listed
    centrally: the app's matrix knows those of the features it runs."""
    owners = {name: f.name for f in FEATURES for name in f.capabilities}
    assert owners == {
        "events.post": "events",
        "events.emergency": "events",
        "members.manage": "people",
        "members.invite": "invitations",
        "weddings.settings": "weddings",
        "weddings.export": "weddings",
        "threads.moderate": "threads",
        "conflicts.resolve": "conflicts",
        "versions.restore": "versions",
        "inbound.manage": "integrations",
        "calendar.tokens": "integrations",
        "webhooks.manage": "webhooks",
        "rsvp.links": "rsvp",
        "day.run_sheets": "runsheets",
        "calendars.manage": "calendars",
    }
    assert set(permission_matrix(Settings()).capabilities()) == set(owners)


def test_a_capability_of_a_feature_left_out_is_unknown() -> None:
    """An operator's matrix naming the capability of a feature the server does not run is
    refused like any unknown capability (at start: ``check_startup``, the app's lifespan)."""
    without = tuple(f for f in FEATURES if f.name != "webhooks")
    text = json.dumps({"couple": {}, "capabilities": {"webhooks.manage": ["couple"]}})
    assert permission_matrix(Settings(permissions=text)).can("couple", "webhooks.manage")
    with pytest.raises(PermissionsError, match="unknown capability 'webhooks.manage'"):
        permission_matrix(Settings(permissions=text), without)
    # Nor does anyone have it by default without the feature.
    assert "webhooks.manage" not in permission_matrix(Settings(), without).capabilities()


def test_two_features_may_not_declare_one_capability() -> None:
    twin = Feature("twin", lambda built: (), capabilities={"events.post": frozenset({"couple"})})
    with pytest.raises(DuplicateCapability, match="events.post"):
        capabilities_of([*FEATURES, twin])


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
    # Projections are named by what they hold: a vendor and a friend without a field set
    # read the same one (names_meals); a vendor member who reads names, another.
    matrix = PermissionMatrix()
    private = frozenset({"notes", "contact", "mailing_address", "rsvp_note", "rsvp_note_at"})
    assert matrix.projections() == {
        "guests": {"names_meals": private, "names": private | {"meal", "dietary"}}
    }
    assert matrix.projection_key("vendor", "guests") == "names_meals"
    assert matrix.projection_key("friend", "guests") == "names_meals"
    assert matrix.projection_key("vendor", "guests", "names_meals") == "names_meals"
    assert matrix.projection_key("vendor", "guests", "names") == "names"
    assert matrix.projection_key("couple", "guests") is None
    assert matrix.projection_key("vendor", "seating", "names") is None


def test_an_operators_matrix_without_tasks_gets_the_default_row_for_them() -> None:
    """A matrix written before the tasks document: each role it names gets its default
    access to tasks (the couple and planner write, family reads, vendors none), a role of
    its own gets none, a role naming tasks keeps what it names; the roles are recorded for
    the warning at start."""
    text = json.dumps(
        {
            "couple": {"guests": "write"},
            "family": {"timeline": "read"},
            "vendor": {"tasks": "read"},
            "usher": {"guests": "read"},
        }
    )
    matrix = PermissionMatrix.from_json(text, DECLARED)
    assert matrix.access("couple", "tasks") is Access.WRITE
    assert matrix.access("family", "tasks") is Access.READ
    assert matrix.access("vendor", "tasks") is Access.READ
    assert matrix.access("usher", "tasks") is Access.NONE
    assert matrix.access("planner", "tasks") is Access.NONE  # not in the operator's matrix
    assert matrix.access("couple", "budget") is Access.NONE  # the four keep their rule
    assert matrix.defaulted == {"tasks": ("couple", "family", "usher")}
    assert PermissionMatrix(capabilities=DECLARED).defaulted == {}
    full = json.dumps({"couple": {"tasks": "none"}})
    assert PermissionMatrix.from_json(full, DECLARED).defaulted == {}
    assert PermissionMatrix.from_json(full, DECLARED).access("couple", "tasks") is Access.NONE


def test_the_conflicts_room_needs_every_document_tasks_included() -> None:
    matrix = PermissionMatrix(capabilities=DECLARED)
    assert matrix.access("couple", "conflicts") is Access.READ
    text = json.dumps(
        {"planner": {d: "write" for d in ("timeline", "budget", "guests", "seating")}}
        | {"couple": {d: "write" for d in ("timeline", "budget", "guests", "seating")}}
    )
    text = text.replace('"couple": {', '"couple": {"tasks": "none", ', 1)
    custom = PermissionMatrix.from_json(text, DECLARED)
    assert custom.access("planner", "conflicts") is Access.READ
    assert custom.access("couple", "conflicts") is Access.NONE
