"""What an RSVP link needs of a wedding, read from its documents (pure): the profile, and
the households as :mod:`documents.households` reads them (entries of the ``households``
root, and free-text households nobody has made an entry for yet).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc

from crdt_server.documents.households import HouseholdView, households
from crdt_server.documents.model import household_id_of
from crdt_server.documents.schema import Menu, read_guests, read_profile

__all__ = ["HouseholdView", "Wedding", "household_id_of", "read_wedding"]


@dataclass(frozen=True, slots=True)
class Wedding:
    """What an RSVP page and the links' sheet need of a wedding."""

    names: tuple[str, ...]
    date: str | None
    venue: str | None
    time_zone: str | None
    deadline: str | None
    """The profile's RSVP deadline."""
    households: Mapping[str, HouseholdView]
    menu: Menu
    """The meals on offer (no choices: any meal is taken)."""


def read_wedding(docs: Mapping[str, Doc[Any]]) -> Wedding:
    """The wedding's profile and households from its ``guests`` and ``timeline``."""
    guest_list = read_guests(docs.get("guests"))
    profile = read_profile(docs.get("timeline"))
    return Wedding(
        profile.names or (),
        profile.date,
        profile.venue,
        profile.time_zone,
        profile.rsvp_deadline,
        households(guest_list),
        guest_list.menu,
    )
