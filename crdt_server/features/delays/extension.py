"""Delays that ripple, and emergencies that reach the vendors of the items they name.

- A delay (:meth:`DayDelays.propose`) reads the timeline as it is and gives the moves of
  :func:`crdt_server.documents.delays.ripple`; applied (:meth:`DayDelays.apply`), the
  moves are one change of the timeline credited to the person (each move still makes its
  ``timeline.item_rescheduled`` event), then one ``timeline.delayed`` event listing them,
  stored with the notifications of exactly the vendors whose items moved: each member
  account a vendor of the directory lists (never the person who reported it), in their
  inbox, and by email when they take emails.
- An emergency that names timeline ``items`` (``POST .../events`` with ``priority:
  emergency``) also reaches those items' vendors: their members, on every channel they
  have, in the transaction that stores it (:meth:`DayDelays.prepare`).

A vendor of the directory with no member account (none listed, or none in the wedding's
member directory) is told by an email to the address of its contact (``PUT .../day/vendors/
{id}/contact``) instead. A free-text vendor (no directory entry) has neither: it is listed
among the vendors with nobody told.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pycrdt import Doc

from crdt_server import clock
from crdt_server.actor import Actor
from crdt_server.core.hooks import Core, Extension, Sender
from crdt_server.documents import apply_operation, to_json
from crdt_server.documents.delays import Move, Planned, Ripple, ripple
from crdt_server.documents.model import parse_instant, zone_of
from crdt_server.documents.schema import read_profile
from crdt_server.documents.vendors import (
    Vendor,
    read_directory,
    spellings,
    vendor_key,
    vendor_name,
)
from crdt_server.features.day import contact_of
from crdt_server.features.events import EventLog
from crdt_server.features.notifications import Notifications, notify, queued_email
from crdt_server.features.people import Member, People
from crdt_server.storage import EventFilter, Gateway, NewEvent, StoredEvent
from crdt_server.storage.gateway import Tx

__all__ = ["DELAYED", "DELAY_REASON", "EMERGENCY_VENDOR", "DayDelays", "Delay", "TimelineNow"]

DELAYED = "timeline.delayed"
"""The event of an applied delay (its data lists the moves)."""
DELAY_REASON = "timeline_delayed"
"""The notifications' ``reason`` of a delay that moved a vendor's items (``message``: the
event's seq)."""
EMERGENCY_VENDOR = "emergency_vendor"
"""The reason of an emergency that names a vendor's items (``message``: its seq)."""


@dataclass(frozen=True)
class TimelineNow:
    """The timeline as a delay reads it: its items for the ripple, their titles, the
    directory, and the wedding's day of an instant."""

    items: Mapping[str, Planned]
    titles: Mapping[str, str]
    directory: Mapping[str, Vendor]
    zone: object
    spelled: Mapping[str, str] = field(default_factory=dict)
    """Each free-text vendor's key -> its name as the timeline writes it."""

    def day_of(self, moment: datetime) -> date:
        return moment.astimezone(zone_of(self.zone)).date()

    def vendor_name(self, key: str) -> str:
        """The vendor ``key`` named for people: the directory's name, or a free-text
        vendor's name as the timeline spells it ("Harbour Strings", not the folded key)."""
        return vendor_name(key, self.directory, self.spelled)


@dataclass(frozen=True)
class Delay:
    """A delay's proposal (or, applied, what it did)."""

    item: str
    minutes: int
    ripple: Ripple
    told: Mapping[str, int]
    """Vendor key -> how many member accounts were (or would be) told."""
    event: str | None = None
    """``{wedding}:{seq}`` of the ``timeline.delayed`` event, once applied."""


def read_now(doc: Doc[Any] | None) -> TimelineNow:
    """What a delay reads of a timeline document (an empty one when there is none)."""
    if doc is None:
        return TimelineNow({}, {}, {}, None)
    view = to_json(doc, "timeline")
    directory = read_directory(view)
    items: dict[str, Planned] = {}
    titles: dict[str, str] = {}
    raw = view.get("items")
    for item_id, entry in (raw if isinstance(raw, dict) else {}).items():
        if not isinstance(entry, dict):
            continue
        try:
            start, end = parse_instant(entry["start"]), parse_instant(entry["end"])
        except (KeyError, TypeError, ValueError):
            continue
        follows = entry.get("follows")
        items[item_id] = Planned(
            item_id,
            start,
            end,
            vendor_key(entry, directory),
            follows if isinstance(follows, str) else None,
            entry.get("fixed") is True,
        )
        titles[item_id] = str(entry.get("title") or "")
    profile = view.get("profile")
    zone = profile.get("time_zone") if isinstance(profile, dict) else None
    return TimelineNow(items, titles, directory, zone, spellings(view))


def members_of(key: str, now: TimelineNow, members: Sequence[Member]) -> list[Member]:
    """The member accounts that act for vendor ``key`` (a directory entry's ``members``
    that are in the wedding's member directory; none for a free-text vendor)."""
    vendor = now.directory.get(key)
    if vendor is None:
        return []
    subs = set(vendor.members)
    return [m for m in members if m.sub in subs]


def moves_json(moves: Sequence[Move], now: TimelineNow) -> list[dict[str, Any]]:
    return [
        {
            "item": m.id,
            "title": now.titles.get(m.id, ""),
            "vendor": None if m.vendor is None else now.vendor_name(m.vendor),
            "start": m.start.isoformat(),
            "end": m.end.isoformat(),
            "new_start": m.new_start.isoformat(),
            "new_end": m.new_end.isoformat(),
        }
        for m in moves
    ]


class DayDelays(Extension):
    """See the module docstring."""

    name = "day-delays"

    def __init__(self, core: Core, events: EventLog, people: People, inbox: Notifications) -> None:
        self._events = events
        self._people = people
        self._inbox = inbox
        self._core = core
        self.db = Gateway.of(core.store)
        events.on_emergency(self)

    async def wedding_date(self, wedding: str) -> date | None:
        """The wedding's date from its timeline's profile (``None`` without one)."""
        found = await self._core.weddings.documents(wedding, kinds=("timeline",))
        doc = found.get("timeline")
        profile = read_profile(doc)
        return None if profile.date is None else date.fromisoformat(profile.date)

    async def timeline(self, wedding: str) -> TimelineNow:
        found = await self._core.weddings.documents(wedding, kinds=("timeline",))
        doc = found.get("timeline")
        if doc is None:
            return read_now(None)
        with doc.transaction():
            return read_now(doc)

    async def _told(
        self, wedding: str, keys: Sequence[str], now: TimelineNow, actor: str
    ) -> dict[str, list[Member]]:
        members = await self._people.members(wedding)
        return {k: [m for m in members_of(k, now, members) if m.sub != actor] for k in keys}

    async def _addresses(
        self, wedding: str, told: Mapping[str, list[Member]], now: TimelineNow
    ) -> dict[str, str]:
        """Vendor key -> its contact's email, for each directory vendor with no member
        account among ``told`` (its members) that has a contact email."""
        found: dict[str, str] = {}
        for key, members in told.items():
            if members or key not in now.directory:
                continue
            contact = await self.db.run(contact_of(wedding, key))
            if contact is not None and contact.email:
                found[key] = contact.email
        return found

    # -- delays -------------------------------------------------------------------------

    async def propose(self, wedding: str, item: str, minutes: int, actor: Actor) -> Delay:
        """The moves of ``item`` running ``minutes`` late (nothing changed);
        :class:`crdt_server.documents.delays.DelayError` when it cannot be made."""
        now = await self.timeline(wedding)
        found = ripple(now.items.values(), item, minutes, now.day_of)
        told = await self._told(wedding, found.vendors, now, actor.sub)
        mailed = await self._addresses(wedding, told, now)
        return Delay(item, minutes, found, _counts(told, mailed))

    async def apply(
        self, wedding: str, delay: Delay, sender: Sender, now: TimelineNow | None = None
    ) -> Delay:
        """Move the items of ``delay`` (one change credited to ``sender``), then store one
        ``timeline.delayed`` event with the notifications of the moved items' vendors."""
        core = self._core
        now = now or await self.timeline(wedding)
        moves = delay.ripple.moves
        origin = sender.origin

        def change(doc: Doc[Any]) -> None:
            with doc.transaction(origin=origin):
                for m in moves:
                    op = {
                        "op": "move_timeline_item",
                        "item_id": m.id,
                        "start": m.new_start.isoformat(),
                        "end": m.new_end.isoformat(),
                    }
                    apply_operation(doc, "timeline", op, origin=origin)

        # Moves planned before this edit: one may be refused if the timeline changed
        # meanwhile (an item removed), after the ones before it wrote, so several run on
        # a copy of the document, thrown away if one is refused.
        await core.weddings.edit(f"{wedding}/timeline", change, sender, copy=len(moves) > 1)
        actor = sender.actor
        told = await self._told(wedding, delay.ripple.vendors, now, actor.sub)
        data = {
            "item": delay.item,
            "minutes": delay.minutes,
            "moves": moves_json(moves, now),
            "vendors": [now.vendor_name(k) for k in delay.ripple.vendors],
        }
        event = NewEvent(
            wedding,
            DELAYED,
            json.dumps(data, separators=(",", ":")),
            "timeline",
            sub=actor.sub,
            role=actor.role,
        )
        emails = self._inbox.emails
        people = [m for group in told.values() for m in group]
        mailed = await self._addresses(wedding, told, now) if emails else {}
        letters = [
            (address, _delay_letter(delay.minutes, moves, now, key))
            for key, address in mailed.items()
        ]

        def notices(stored: list[StoredEvent]) -> Tx[None]:
            at = clock.now()
            for member in dict.fromkeys(people):
                yield from notify(
                    wedding, member.sub, DELAY_REASON, "", str(stored[0].seq), actor,
                    "urgent", at, email=emails and member.takes_email,
                )  # fmt: skip
            for address, body in letters:
                yield from queued_email(address, "The day is running late", body, at)

        added = await self._events.record([event], then=notices)
        if people or letters:
            self._inbox.queued(wedding)
        seq = added.events[0].seq if added.events else None
        return Delay(
            delay.item,
            delay.minutes,
            delay.ripple,
            _counts(told, mailed),
            None if seq is None else f"{wedding}:{seq}",
        )

    # -- emergencies naming items ------------------------------------------------------

    async def prepare(self, event: NewEvent) -> Callable[[StoredEvent], Tx[None]]:
        """An emergency is being stored: the step that tells the vendors of the items it
        names (their members, every channel), in the transaction that stores it."""
        try:
            data = json.loads(event.data)
        except ValueError:
            data = {}
        items = data.get("items") if isinstance(data, dict) else None
        people: list[Member] = []
        mailed: dict[str, str] = {}
        emails = self._inbox.emails
        if isinstance(items, list) and items:
            now = await self.timeline(event.wedding)
            keys = [k for i in items if (p := now.items.get(i)) and (k := p.vendor)]
            told = await self._told(event.wedding, list(dict.fromkeys(keys)), now, event.sub)
            people = list(dict.fromkeys(m for group in told.values() for m in group))
            mailed = await self._addresses(event.wedding, told, now) if emails else {}
        actor = Actor(event.sub, event.role)
        said = json.dumps(data, ensure_ascii=False)[:500]

        def step(stored: StoredEvent) -> Tx[None]:
            at = clock.now()
            for member in people:
                yield from notify(
                    stored.wedding, member.sub, EMERGENCY_VENDOR, "", str(stored.seq), actor,
                    "emergency", at, email=emails and member.takes_email,
                )  # fmt: skip
            for address in dict.fromkeys(mailed.values()):
                body = f"[EMERGENCY] {event.role} raised {event.type} about your part of the day:"
                yield from queued_email(address, "Emergency", f"{body}\n{said}", at)

        return step

    def told(self, event: StoredEvent) -> None:
        self._inbox.queued(event.wedding)

    # -- email --------------------------------------------------------------------------

    async def say_delay(self, wedding: str, ref: str, member: Member) -> str | None:
        """What an email says of a delay: the moves of the items of the member's vendors."""
        found = await self._event(wedding, ref, DELAYED)
        if found is None:
            return None
        now = await self.timeline(wedding)
        theirs = {v.name for v in now.directory.values() if member.sub in v.members}
        lines = [
            f"- {m['title'] or m['item']}: {m['start']} -> {m['new_start']}"
            for m in found.get("moves", [])
            if isinstance(m, dict) and m.get("vendor") in theirs
        ]
        minutes = found.get("minutes")
        return f"The day is running {minutes} minutes late. Your new times:\n" + "\n".join(lines)

    async def say_emergency(self, wedding: str, ref: str, member: Member) -> str | None:
        found = await self._event(wedding, ref, None)
        if found is None:
            return None
        return "[EMERGENCY] about your part of the day:\n" + json.dumps(found)[:500]

    async def _event(self, wedding: str, ref: str, kind: str | None) -> dict[str, Any] | None:
        if not ref.isdigit() or int(ref) < 1:
            return None
        page = await self._events.read(wedding, after=int(ref) - 1, limit=1, where=EventFilter())
        event = next((e for e in page if e.seq == int(ref)), None)
        if event is None or (kind is not None and event.type != kind):
            return None
        data = json.loads(event.data)
        return data if isinstance(data, dict) else None


def _counts(told: Mapping[str, list[Member]], mailed: Mapping[str, str]) -> dict[str, int]:
    """Vendor key -> how many are told: its member accounts, or 1 for its contact's email."""
    return {k: len(v) or (1 if k in mailed else 0) for k, v in told.items()}


def _delay_letter(minutes: int, moves: Sequence[Move], now: TimelineNow, key: str) -> str:
    """The email to a vendor's contact: its items' old and new times."""
    zone = zone_of(now.zone)
    lines = [
        f"- {now.titles.get(m.id) or m.id}: {m.start.astimezone(zone):%H:%M} -> "
        f"{m.new_start.astimezone(zone):%H:%M}"
        for m in moves
        if m.vendor == key
    ]
    return f"The day is running {minutes} minutes late. Your new times:\n" + "\n".join(lines)
