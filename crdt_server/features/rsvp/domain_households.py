"""The households RSVP links are for, read from the wedding's documents (pure).

A household's people are the guests whose ``household_id`` names it or, for a guest with
none, whose free-text ``household`` reads as it (:func:`household_id_of`). Its deadline is
its own, else the profile's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc

from crdt_server.documents.schema import Guest, read_guests, read_profile

__all__ = ["Household", "Wedding", "household_id_of", "read_wedding"]


def household_id_of(name: str) -> str:
    """The id a free-text household with no entry reads under."""
    key = " ".join(name.split()).casefold()
    return "n-" + hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Household:
    id: str
    name: str
    deadline: str | None
    """Its own RSVP deadline (``YYYY-MM-DD``), if any."""
    people: tuple[Guest, ...]


@dataclass(frozen=True, slots=True)
class Wedding:
    """What an RSVP page and the links' sheet need of a wedding."""

    names: tuple[str, ...]
    date: str | None
    venue: str | None
    time_zone: str | None
    deadline: str | None
    """The profile's RSVP deadline."""
    households: Mapping[str, Household]
    menu: tuple[str, ...] | None
    """The meals on the menu; ``None`` when there is no menu (any meal is taken)."""


def read_wedding(docs: Mapping[str, Doc[Any]]) -> Wedding:
    """The wedding's profile and households from its ``guests`` and ``timeline``."""
    guests = read_guests(docs.get("guests")).guests
    profile = read_profile(docs.get("timeline"))
    grouped: dict[str, list[Guest]] = {}
    names: dict[str, str] = {}
    for guest in guests.values():
        if not guest.household:
            continue
        hid = household_id_of(guest.household)
        grouped.setdefault(hid, []).append(guest)
        names.setdefault(hid, guest.household)
    households = {
        hid: Household(hid, names[hid], None, tuple(sorted(people, key=lambda g: g.id)))
        for hid, people in grouped.items()
    }
    return Wedding(
        profile.names or (),
        profile.date,
        profile.venue,
        profile.time_zone,
        profile.rsvp_deadline,
        households,
        None,
    )
