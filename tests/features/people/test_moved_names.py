"""The names the people package exported before invitations and sign-in became features
of their own are still served from it for one release, each with a DeprecationWarning that
names its new place (CHANGELOG: ``people`` is three features)."""

from __future__ import annotations

import importlib

import pytest

from crdt_server.features import people

pytestmark = [pytest.mark.timeout(30)]


@pytest.mark.parametrize("name", sorted(people.MOVED))
def test_a_moved_name_is_found_with_a_warning(name: str) -> None:
    where = people.MOVED[name]
    with pytest.warns(DeprecationWarning, match=rf"moved to {where}\.{name}"):
        found = getattr(people, name)
    assert found is getattr(importlib.import_module(where), name)
    assert name not in people.__all__


def test_every_moved_name_is_public_where_it_went() -> None:
    for name, where in people.MOVED.items():
        assert name in importlib.import_module(where).__all__, (name, where)


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        _ = people.NoSuchName  # type: ignore[attr-defined]
