"""The names the day's package exported before delays became a feature of their own are
still found there for one release, each with a DeprecationWarning naming its new place."""

from __future__ import annotations

import importlib

import pytest

from crdt_server.features import day, delays

MOVED = ("DELAYED", "DELAY_REASON", "EMERGENCY_VENDOR", "DayDelays")


@pytest.mark.parametrize("name", MOVED)
def test_a_moved_name_still_resolves_with_a_deprecation_warning(name: str) -> None:
    with pytest.warns(DeprecationWarning, match=f"crdt_server.features.delays.{name}"):
        found = getattr(day, name)
    assert found is getattr(delays, name)


def test_a_moved_name_imports_from_the_old_place_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="moved to crdt_server.features.delays"):
        from crdt_server.features.day import DayDelays
    assert DayDelays is delays.DayDelays


def test_the_moved_names_are_not_the_day_packages_public_face() -> None:
    """Listed, a star import (and the layer test's check of ``__all__``) would warn."""
    package = importlib.import_module("crdt_server.features.day")
    assert not set(MOVED) & set(package.__all__)
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        package.Nothing  # noqa: B018
