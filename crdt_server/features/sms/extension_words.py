"""What a text says of each notice that is not about a thread: the features' facts cut to
a few words (one part where it can be), only what the recipient's role may read: the
emergency's own words (its ``what``, ``message`` or ``text``), a vendor's name and call
time, a delay's new times of the recipient's own vendors' items, never a guest's contact
or notes (no guest field is ever read here)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from crdt_server.features.events import EventLog
from crdt_server.features.notifications import Notice
from crdt_server.features.people import Member
from crdt_server.features.sms.domain import clip
from crdt_server.features.sms.extension import Texts
from crdt_server.storage import EventFilter

__all__ = ["say_day", "say_emergencies"]

_SAID_KEYS = ("what", "message", "text", "where")
"""The fields of an emergency's data a text quotes (what the person who raised it typed
for everyone it reaches)."""


async def _event(events: EventLog, wedding: str, ref: str) -> tuple[str, str, dict[str, Any]]:
    """The event ``ref`` (a seq) names: its type, who raised it (their role) and data."""
    if not ref.isdigit() or int(ref) < 1:
        return "", "", {}
    page = await events.read(wedding, after=int(ref) - 1, limit=1, where=EventFilter())
    found = next((e for e in page if e.seq == int(ref)), None)
    if found is None:
        return "", "", {}
    try:
        data = json.loads(found.data)
    except ValueError:
        data = {}
    return found.type, found.role or "", data if isinstance(data, dict) else {}


def _hhmm(iso: object) -> str:
    try:
        return datetime.fromisoformat(str(iso)).strftime("%H:%M")
    except ValueError:
        return "?"


def say_emergencies(texts: Texts, events: EventLog, people: Any) -> None:
    """Emergencies (raised, unacknowledged, naming a vendor's items) in texts."""

    async def say(wedding: str, notice: Notice, member: Member) -> str | None:
        kind, role, data = await _event(events, wedding, notice.message)
        if not kind:
            return None
        said = "; ".join(
            " ".join(str(data[k]).split()) for k in _SAID_KEYS if isinstance(data.get(k), str)
        )
        who = await people.member(wedding, notice.actor)
        name = who.name if who is not None else (role or "someone")
        head = {
            "emergency_unacknowledged": "EMERGENCY, nobody acknowledged it yet:",
            "emergency_vendor": "EMERGENCY about your part of the day:",
        }.get(notice.reason, "EMERGENCY:")
        what = kind.split(".")[-1].replace("_", " ")
        return clip(f"{head} {name} raised {what}" + (f": {said}" if said else "."), 1)

    for reason in ("emergency", "emergency_unacknowledged", "emergency_vendor"):
        texts.sayers[reason] = say


def say_day(texts: Texts, events: EventLog, delays: Any | None) -> None:
    """A vendor missing at their call time, a member offline on duty, and a delay that
    moved the recipient's vendors' items, in texts (``delays``: the delays feature's
    extension, whose timeline says which vendors are the recipient's)."""

    async def missing(wedding: str, notice: Notice, member: Member) -> str | None:
        kind, _, data = await _event(events, wedding, notice.message)
        if kind != "day.vendor_missing":
            return None
        name = " ".join(str(data.get("name") or "A vendor").split())
        return clip(f"{name} has not checked in (call time {_hhmm(data.get('call_time'))}).", 1)

    async def offline(wedding: str, notice: Notice, member: Member) -> str | None:
        kind, _, data = await _event(events, wedding, notice.message)
        if kind != "day.member_offline":
            return None
        name = " ".join(str(data.get("name") or "Someone on duty").split())
        return clip(f"{name} is on duty and has been offline since {_hhmm(data.get('seen'))}.", 1)

    async def delayed(wedding: str, notice: Notice, member: Member) -> str | None:
        kind, _, data = await _event(events, wedding, notice.message)
        if kind != "timeline.delayed":
            return None
        theirs: set[str] = set()
        if delays is not None:
            now = await delays.timeline(wedding)
            theirs = {v.name for v in now.directory.values() if member.sub in v.members}
        moves = [
            f"{' '.join(str(m.get('title') or 'your item').split())} now {_hhmm(m['new_start'])}"
            for m in data.get("moves", [])
            if isinstance(m, dict) and m.get("vendor") in theirs and m.get("new_start")
        ]
        minutes = data.get("minutes")
        return clip(f"The day runs {minutes} min late. " + "; ".join(moves), 1)

    texts.sayers["day.vendor_missing"] = missing
    texts.sayers["day.member_offline"] = offline
    texts.sayers["timeline_delayed"] = delayed
