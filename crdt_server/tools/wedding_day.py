"""Saturday mode for the data commands: which weddings have their day today.

A wedding's day is its profile's ``date`` (the stored timeline's ``profile``) in its
``time_zone`` (UTC when it names none): on that day, ``import --as W``, ``compact --wedding
W`` and the erasure of W refuse without ``--on-wedding-day``, and ``restore`` and
``compact`` of the whole store name every wedding whose day it is and refuse the same way.
The date is read from the store, never from a person: a wedding with no profile date has no
day. Reading costs one replay of each wedding's timeline (the whole store: one per wedding).
"""

from __future__ import annotations

import asyncio
from datetime import date

from crdt_server import clock
from crdt_server.core.crdt import replay
from crdt_server.documents.model import zone_of
from crdt_server.documents.schema import read_profile
from crdt_server.storage import DocumentStore

__all__ = [
    "ON_WEDDING_DAY",
    "day_of",
    "is_their_day",
    "timeline_is_today",
    "weddings_on_their_day",
]

ON_WEDDING_DAY = "--on-wedding-day"
"""The flag that lets a command run on a wedding's day anyway."""


def _profile_day(updates: list[bytes]) -> tuple[date, object] | None:
    document, _ = replay(updates)
    profile = read_profile(document.doc)
    if profile.date is None:
        return None
    return date.fromisoformat(profile.date), profile.time_zone


async def day_of(store: DocumentStore, wedding: str) -> tuple[date, object] | None:
    """The wedding's date and zone name from its stored timeline's profile (``None``
    without one)."""
    stored = await store.load(f"{wedding}/timeline")
    if stored is None:
        return None
    return await asyncio.to_thread(_profile_day, stored.updates)


def _today(found: tuple[date, object] | None) -> bool:
    if found is None:
        return False
    day, zone = found
    return clock.utcnow().astimezone(zone_of(zone)).date() == day


async def is_their_day(store: DocumentStore, wedding: str) -> bool:
    """Whether today, in the wedding's zone, is its date."""
    return _today(await day_of(store, wedding))


def timeline_is_today(update: bytes) -> bool:
    """Whether the timeline of ``update`` (an export's) names today as its date."""
    return _today(_profile_day([update]))


async def weddings_on_their_day(store: DocumentStore) -> list[str]:
    """Every stored wedding whose day it is, in id order."""
    names = await store.list()
    weddings = sorted({n.split("/", 1)[0] for n in names if n.endswith("/timeline")})
    return [w for w in weddings if await is_their_day(store, w)]
