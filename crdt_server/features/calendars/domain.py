"""Pure rules of the CalDAV calendars: the credentials key ring (AES-256-GCM), a calendar's
scope, and a timeline item as the VEVENT a calendar keeps (and read back).

- :class:`KeyRing`: ``CRDT_SERVER_CREDENTIALS_KEY`` parsed (one key, or ``KID:KEY,...``,
  the first encrypting); :meth:`KeyRing.seal` encrypts a password under the first key with
  a fresh 96-bit nonce, bound to the calendar's id (associated data), and answers the key
  id stored beside the ciphertext; :meth:`KeyRing.open` decrypts with the key of that id.
- :func:`parse_scope`: ``wedding`` (every item) or ``vendor:{vendor_id}`` (the items of that
  vendor of the directory).
- :func:`render_event`: one item as a VCALENDAR with one VEVENT (its stable UID, the same
  as the read-only feed's, its times in the wedding's zone with that zone's VTIMEZONE);
  :func:`read_times`: the start and end of the VEVENT a calendar holds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from urllib.parse import unquote, urlsplit

from crdt_server.documents.model import parse_instant, zone_of
from crdt_server.documents.schema import TimelineItem

__all__ = [
    "CalendarError",
    "CredentialsError",
    "KeyRing",
    "Scope",
    "event_uid",
    "fingerprint",
    "key_of",
    "parse_scope",
    "read_times",
    "render_event",
]

_KID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
_VENDOR_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NONCE_BYTES = 12


class CalendarError(Exception):
    """A calendar could not be read or written; ``str()`` says why (safe to show: never
    the password nor the server's answer)."""

    def __init__(self, message: str, *, conflict: bool = False) -> None:
        super().__init__(message)
        self.conflict = conflict
        """A conditional write found the event changed since it was listed (412)."""


class CredentialsError(ValueError):
    """A key that is not one (the message never shows it), or a password that does not
    decrypt (a key id the ring lacks, a ciphertext that was tampered with)."""


def _key_bytes(text: str) -> bytes:
    text = text.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CredentialsError("credentials_key: a key is not base64") from exc
    if len(raw) != 32:
        raise CredentialsError(f"credentials_key: a key must be 32 bytes, not {len(raw)}")
    return raw


@dataclass(frozen=True)
class KeyRing:
    """The keys passwords are sealed with: ``current`` encrypts, every one decrypts."""

    keys: dict[str, bytes]
    current: str

    @classmethod
    def parse(cls, text: str) -> KeyRing | None:
        """The ring a setting gives (``None`` when empty); :class:`CredentialsError` names
        what is wrong without showing a key."""
        keys: dict[str, bytes] = {}
        for entry in (e.strip() for e in text.split(",")):
            if not entry:
                continue
            kid, colon, key = entry.partition(":")
            if not colon:
                key = kid
                kid = hashlib.sha256(_key_bytes(key)).hexdigest()[:8]
            elif not _KID.match(kid):
                raise CredentialsError(
                    "credentials_key: a key id is 1 to 16 letters, digits, - or _"
                )
            if kid in keys:
                raise CredentialsError(f"credentials_key: the key id {kid!r} is given twice")
            keys[kid] = _key_bytes(key)
        if not keys:
            return None
        return cls(keys, next(iter(keys)))

    def seal(self, password: str, bound: str) -> tuple[str, str]:
        """``(key id, base64 of nonce + ciphertext)`` of ``password`` under the current key,
        bound to ``bound`` (the calendar's id: a sealed password copied to another row
        does not open)."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # at first use

        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[self.current]).encrypt(nonce, password.encode(), bound.encode())
        return self.current, base64.b64encode(nonce + sealed).decode()

    def open(self, kid: str, sealed: str, bound: str) -> str:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key = self.keys.get(kid)
        if key is None:
            raise CredentialsError(f"the password was sealed with the key {kid!r}, not set now")
        try:
            raw = base64.b64decode(sealed, validate=True)
            plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], bound.encode())
        except (binascii.Error, ValueError, InvalidTag) as exc:
            raise CredentialsError("the stored password does not decrypt") from exc
        return plain.decode()


@dataclass(frozen=True)
class Scope:
    """What a calendar holds: every item (``vendor is None``) or one vendor's."""

    vendor: str | None = None

    def __str__(self) -> str:
        return "wedding" if self.vendor is None else f"vendor:{self.vendor}"

    def holds(self, item: TimelineItem) -> bool:
        return self.vendor is None or item.vendor_id == self.vendor


def parse_scope(text: str) -> Scope | None:
    """The scope ``text`` says, or ``None`` when it says none."""
    if text == "wedding":
        return Scope()
    kind, colon, vendor = text.partition(":")
    if kind == "vendor" and colon and _VENDOR_ID.match(vendor):
        return Scope(vendor)
    return None


def event_uid(wedding: str, item: str) -> str:
    """The VEVENT's UID: the read-only feed's too, so an app that has both sees one event."""
    return f"{wedding}.{item}@crdt-server"


_STATUS = {
    "planned": "TENTATIVE",
    "confirmed": "CONFIRMED",
    "done": "CONFIRMED",
    "cancelled": "CANCELLED",
}


def fingerprint(item: TimelineItem, zone: str | None) -> str:
    """What the calendar shows of an item, hashed: a change of any of it is written out."""
    shown = [item.title, item.start, item.end, item.location, item.vendor, item.status]
    shown += [item.notes, item.owner, zone]
    return hashlib.sha256(json.dumps(shown).encode()).hexdigest()


def render_event(wedding: str, item: TimelineItem, zone: str | None, now: datetime) -> bytes:
    """The iCalendar object (one VEVENT) a calendar keeps for ``item``, its times in the
    wedding's ``zone`` (UTC when it names none) with that zone's VTIMEZONE."""
    import icalendar  # imported by the first calendar written, not by every process start

    where = zone_of(zone)
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//crdt-server//wedding timeline//EN")
    calendar.add("version", "2.0")
    event = icalendar.Event()
    event.add("uid", event_uid(wedding, item.id))
    event.add("dtstamp", now.astimezone(UTC))
    start = parse_instant(item.start).astimezone(where)
    event.add("dtstart", start)
    event.add("dtend", max(parse_instant(item.end).astimezone(where), start))
    event.add("summary", item.title)
    event.add("status", _STATUS.get(item.status, "TENTATIVE"))
    event.add("x-wedding-item", item.id)
    if item.location:
        event.add("location", item.location)
    lines = [f"Vendor: {item.vendor}"] if item.vendor else []
    if item.notes:
        lines += ["", item.notes] if lines else [item.notes]
    if lines:
        event.add("description", "\n".join(lines))
    calendar.add_component(event)
    if where is not UTC:
        day = start.date()
        calendar.add_missing_timezones(day - timedelta(days=366), day + timedelta(days=366))
    data: bytes = calendar.to_ical()
    return data


def _aware(value: Any, zone: tzinfo) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=zone)
    if isinstance(value, date):
        return datetime.combine(value, time(), zone)  # an all-day event: its midnight
    return None


def read_times(data: bytes, zone: str | None) -> tuple[datetime, datetime] | None:
    """The start and end of the (first) VEVENT of ``data``, floating times read in the
    wedding's ``zone``; ``None`` when it has no VEVENT with a start, or is no iCalendar."""
    import icalendar

    try:
        calendar = icalendar.Calendar.from_ical(data)
        event = next(iter(calendar.walk("VEVENT")), None)
        if event is None or "DTSTART" not in event:
            return None
        where = zone_of(zone)
        start = _aware(event.decoded("DTSTART"), where)
        if start is None:
            return None
        if "DTEND" in event:
            end = _aware(event.decoded("DTEND"), where)
        elif "DURATION" in event:
            end = start + event.decoded("DURATION")
        else:
            end = start
    except (ValueError, KeyError, TypeError):
        return None
    return (start, end) if end is not None else None


def key_of(href: str) -> str:
    """An event's path as one string whatever the server's percent-encoding."""
    return unquote(urlsplit(href).path)
