"""Households and the people in them, read from a guest list.

A household is who is invited, answered for and seated as a unit. It is an entry of the
guests document's ``households`` root, which a guest names by ``household_id``. Guest lists
written before households name theirs in free text (``household``): a guest with no
``household_id`` belongs to the entry whose name is the same text (spaces and case aside,
:func:`documents.model.household_key`), or, while nobody has created one, to a household that
exists only in this reading, under the id :func:`documents.model.household_id_of` derives from
the text. Creating an entry with that id (``add_household``) keeps every link and seat made
for it; the server never rewrites the stored guests.

A named plus-one (a guest whose ``plus_one_of`` names another) belongs to their host's
household unless they name one of their own; a host with ``plus_one: true`` whom no guest
names so brings one unnamed person. Headcounts count people: guests and unnamed plus-ones.

Pure, and linear in the guest list: one pass over the guests the reader read, never a
library's own iteration of a stored shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .model import household_id_of, household_key
from .schema import Guest, GuestList, Household

__all__ = [
    "HouseholdView",
    "household_guests",
    "household_of",
    "households",
    "named_plus_ones",
    "own_household",
    "unnamed_plus_ones",
]


@dataclass(frozen=True)
class HouseholdView:
    """One household as the guest list reads it.

    ``entry`` says whether it is an entry of ``households`` (else it is a free-text
    household, ``rsvp_deadline``, ``mailing_address`` and the RSVP note ``None``).
    ``guests`` are its people who are guests (named plus-ones included), in id order;
    ``unnamed_plus_ones`` the ids of its guests who bring an unnamed plus-one (one person
    each)."""

    id: str
    name: str
    entry: bool
    rsvp_deadline: str | None
    mailing_address: str | None
    guests: tuple[Guest, ...]
    unnamed_plus_ones: tuple[str, ...]
    rsvp_note: str | None = None
    rsvp_note_at: str | None = None

    @property
    def people(self) -> int:
        """Its headcount: guests and unnamed plus-ones."""
        return len(self.guests) + len(self.unnamed_plus_ones)


def named_plus_ones(guest_list: GuestList) -> dict[str, tuple[str, ...]]:
    """Host id -> the ids of the guests whose ``plus_one_of`` names them (hosts on the
    list only), in id order."""
    found: dict[str, list[str]] = {}
    for guest in guest_list.guests.values():
        host = guest.plus_one_of
        if host is not None and host != guest.id and host in guest_list.guests:
            found.setdefault(host, []).append(guest.id)
    return {host: tuple(sorted(ids)) for host, ids in found.items()}


def unnamed_plus_ones(guest_list: GuestList) -> list[str]:
    """The ids of the guests who bring an unnamed plus-one (``plus_one: true``, and no
    guest names them as host), in id order."""
    named = named_plus_ones(guest_list)
    return [
        g for g in sorted(guest_list.guests) if guest_list.guests[g].plus_one and g not in named
    ]


def _by_name(entries: Mapping[str, Household]) -> dict[str, str]:
    """Normalised name -> the id of the entry of that name (the smallest id where several
    share one)."""
    found: dict[str, str] = {}
    for household_id in sorted(entries):
        found.setdefault(household_key(entries[household_id].name), household_id)
    return found


def own_household(
    guest: Guest, entries: Mapping[str, Household], match: Callable[[str], str | None]
) -> tuple[str, str] | None:
    """The id and name of the household a guest names themself, or ``None``. ``match``
    gives the id of the entry whose normalised name is the one given (the smallest id where
    several share one), ``None`` when no entry has it."""
    if guest.household_id is not None:
        entry = entries.get(guest.household_id)
        # A household entry not (or no longer) on the list: the guest still names it.
        return guest.household_id, entry.name if entry else (guest.household or guest.household_id)
    if guest.household is None:
        return None
    derived = household_id_of(guest.household)
    if derived in entries:
        return derived, entries[derived].name
    matched = match(household_key(guest.household))
    if matched is not None:
        return matched, entries[matched].name
    return derived, guest.household


def _assign(guest_list: GuestList) -> dict[str, tuple[str, str]]:
    """Guest id -> the id and name of their household (guests in none left out)."""
    entries = guest_list.households
    names = _by_name(entries)
    guests = guest_list.guests
    found: dict[str, tuple[str, str]] = {}
    for guest in guests.values():
        own = own_household(guest, entries, names.get)
        if own is not None:
            found[guest.id] = own
    for guest in guests.values():
        # A plus-one with no household of their own comes with their host (one hop: a
        # plus-one's plus-one is not followed further).
        host = guest.plus_one_of
        if guest.id not in found and host is not None and host in found:
            found[guest.id] = found[host]
    return found


def household_of(guest_list: GuestList, guest_id: str) -> str | None:
    """The id of the household guest ``guest_id`` belongs to, ``None`` if none (or no such
    guest)."""
    if guest_id not in guest_list.guests:
        return None
    found = _assign(guest_list).get(guest_id)
    return found[0] if found else None


def households(guest_list: GuestList) -> dict[str, HouseholdView]:
    """Every household of the guest list by id, in id order: the entries (with no guests
    too) and the free-text households nobody has created an entry for."""
    assigned = _assign(guest_list)
    hosts = named_plus_ones(guest_list)
    members: dict[str, list[Guest]] = {}
    names: dict[str, str] = {}
    for guest_id in sorted(assigned):
        household_id, name = assigned[guest_id]
        members.setdefault(household_id, []).append(guest_list.guests[guest_id])
        names.setdefault(household_id, name)
    views: dict[str, HouseholdView] = {}
    for household_id in sorted({*guest_list.households, *members}):
        entry = guest_list.households.get(household_id)
        people = tuple(members.get(household_id, ()))
        views[household_id] = HouseholdView(
            id=household_id,
            name=entry.name if entry else names[household_id],
            entry=entry is not None,
            rsvp_deadline=entry.rsvp_deadline if entry else None,
            mailing_address=entry.mailing_address if entry else None,
            guests=people,
            unnamed_plus_ones=tuple(g.id for g in people if g.plus_one and g.id not in hosts),
            rsvp_note=entry.rsvp_note if entry else None,
            rsvp_note_at=entry.rsvp_note_at if entry else None,
        )
    return views


def household_guests(guest_list: GuestList, household_id: str) -> HouseholdView | None:
    """One household and its people (named plus-ones included, unnamed ones counted), or
    ``None`` when there is no such household: no entry and no guest naming it."""
    return households(guest_list).get(household_id)
