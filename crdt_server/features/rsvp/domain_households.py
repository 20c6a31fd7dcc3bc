"""What an RSVP link needs of a wedding, read from its documents (pure): the profile, and
the households as :mod:`documents.households` reads them (entries of the ``households``
root, and free-text households nobody has made an entry for yet), and the guests in no
household, each of whom answers by a link of their own (with the plus-ones who name them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc

from crdt_server.documents.households import HouseholdView, households
from crdt_server.documents.model import household_id_of
from crdt_server.documents.schema import GuestList, Menu, read_guests, read_profile

__all__ = ["HouseholdView", "Wedding", "household_id_of", "read_wedding", "solo_guests"]


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
    solo: Mapping[str, HouseholdView]
    """The guests in no household by guest id (:func:`solo_guests`)."""


def solo_guests(
    guest_list: GuestList, held: Mapping[str, HouseholdView]
) -> dict[str, HouseholdView]:
    """Every guest in no household of ``held`` (the guest list's households), by guest id,
    in id order, as a household of their own for their link: the guest, and the guests
    who name them as their plus-one and are in no household either (they answer with
    their host, and have no link of their own). Nothing is written: the view exists only
    in this reading (``entry`` false, its ``id`` the guest's)."""
    housed = {g.id for h in held.values() for g in h.guests}
    alone = {gid: g for gid, g in guest_list.guests.items() if gid not in housed}
    companions: dict[str, list[str]] = {}
    for gid in sorted(alone):
        host = alone[gid].plus_one_of
        if host is not None and host != gid and host in alone:
            companions.setdefault(host, []).append(gid)
    riding = {gid for ids in companions.values() for gid in ids}
    views: dict[str, HouseholdView] = {}
    for gid in sorted(alone):
        guest = alone[gid]
        if gid in riding and guest.plus_one_of not in riding:
            continue  # answered for by their host's link
        people = (guest, *(alone[c] for c in companions.get(gid, ())))
        unnamed = (gid,) if guest.plus_one and gid not in companions else ()
        views[gid] = HouseholdView(gid, guest.name, False, None, None, people, unnamed)
    return views


def read_wedding(docs: Mapping[str, Doc[Any]]) -> Wedding:
    """The wedding's profile and households from its ``guests`` and ``timeline``."""
    guest_list = read_guests(docs.get("guests"))
    profile = read_profile(docs.get("timeline"))
    held = households(guest_list)
    return Wedding(
        profile.names or (),
        profile.date,
        profile.venue,
        profile.time_zone,
        profile.rsvp_deadline,
        held,
        guest_list.menu,
        solo_guests(guest_list, held),
    )
