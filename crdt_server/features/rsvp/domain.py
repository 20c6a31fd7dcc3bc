"""RSVP links, pure: the code a household's link carries, who a code lets answer, and when
the link closes.

A code is ``{wedding}.{household}.{mac}``: the two ids (each ``[A-Za-z0-9_-]``, so no dot)
and 22 characters of base64url of an HMAC-SHA256, keyed with the RSVP secret kept in the
store, over the wedding, the household and the household's link version. Nothing is stored
per link: every host derives the same code from the same secret and version, and raising
the version (the revoke route) makes every older code fail to verify, whatever the guests
document says.

A guest in no household has a link of their own, keyed by the guest:
``{wedding}.g.{guest}.{mac}`` (four parts, so never read as a household's), its HMAC over
another message (``rsvp-guest``) and its version kept under :func:`link_key`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from crdt_server.documents.model import (
    MAX_RSVP_NOTE,
    WEDDING_ID_PATTERN,
    local_moment,
    zone_of,
)
from crdt_server.names import header_name

__all__ = [
    "CODE_PATTERN",
    "MAX_CODE",
    "MAX_NOTE",
    "LinkCode",
    "link_key",
    "mint_guest_code",
    "closes_at",
    "reminder_at",
    "reminder_text",
    "link_subject",
    "email_address",
    "unsubscribe_key",
    "mint_code",
    "parse_code",
    "verify_code",
]

_ID = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
_HOUSEHOLD = r"[A-Za-z0-9_-]{1,64}"
_MAC_CHARS = 22
"""Base64url characters of the HMAC kept in a code: 132 bits."""
CODE_PATTERN = re.compile(rf"({_ID})\.(?:(g)\.)?({_HOUSEHOLD})\.([A-Za-z0-9_-]{{{_MAC_CHARS}}})")
MAX_CODE = 64 + 1 + 2 + 64 + 1 + _MAC_CHARS
"""The longest code there is (a longer path segment is refused before any work)."""
MAX_NOTE = MAX_RSVP_NOTE
"""Characters of a household's note to the couple (the household entry's ``rsvp_note``)."""


@dataclass(frozen=True, slots=True)
class LinkCode:
    """A code taken apart (not yet verified)."""

    wedding: str
    household: str
    """The household's id; for a guest's own link (``guest``), the guest's."""
    mac: str
    guest: bool = False
    """A guest's own link (a guest in no household), not a household's."""

    @property
    def key(self) -> str:
        """What the link's version is kept under (:func:`link_key`)."""
        return link_key(self.household, guest=self.guest)


def link_key(subject: str, *, guest: bool = False) -> str:
    """What a link's version is kept under: the household's id, or ``guest:`` and the
    guest's id for a guest's own link (ids have no colon, so the two never meet)."""
    return f"guest:{subject}" if guest else subject


def _mac(secret: bytes, wedding: str, subject: str, version: int, *, guest: bool = False) -> str:
    kind = "rsvp-guest" if guest else "rsvp"
    message = f"{kind}\x00{wedding}\x00{subject}\x00{version}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:_MAC_CHARS]


def mint_code(secret: bytes, wedding: str, household: str, version: int) -> str:
    """The code of a household's link at ``version``."""
    return f"{wedding}.{household}.{_mac(secret, wedding, household, version)}"


def mint_guest_code(secret: bytes, wedding: str, guest: str, version: int) -> str:
    """The code of the own link of a guest in no household, at ``version``."""
    return f"{wedding}.g.{guest}.{_mac(secret, wedding, guest, version, guest=True)}"


def unsubscribe_key(secret: bytes, wedding: str, guest: str) -> str:
    """The key of a guest's unsubscribe link (HMAC, like a code: nothing stored)."""
    message = f"rsvp-unsubscribe\x00{wedding}\x00{guest}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:_MAC_CHARS]


def email_address(contact: str | None) -> str | None:
    """A guest's ``contact`` if it is an email address (it may be a phone number)."""
    if contact is None:
        return None
    text = contact.strip()
    return text if len(text) <= 254 and _ADDRESS.fullmatch(text) else None


_ADDRESS = re.compile(r"[^@\s<>,;:\"()\[\]\\]+@[^@\s<>,;:\"()\[\]\\]+\.[A-Za-z]{2,63}")


def parse_code(code: str) -> LinkCode | None:
    """``code`` taken apart, or ``None`` if it is not shaped like one."""
    if len(code) > MAX_CODE:
        return None
    found = CODE_PATTERN.fullmatch(code)
    if found is None or WEDDING_ID_PATTERN.fullmatch(found.group(1)) is None:
        return None
    return LinkCode(found.group(1), found.group(3), found.group(4), guest=found.group(2) == "g")


def verify_code(secret: bytes, code: LinkCode, version: int) -> bool:
    """Whether ``code`` is the household's (or the guest's) code at its current ``version``
    (in constant time: a guess learns nothing from how long it took)."""
    expected = _mac(secret, code.wedding, code.household, version, guest=code.guest)
    return hmac.compare_digest(expected.encode(), code.mac.encode())


REMINDER_HOUR = 10
"""The local hour (the wedding's time zone) a reminder goes out on its day."""


def reminder_at(deadline: Any, time_zone: Any, days: int) -> datetime | None:
    """When the reminder of an RSVP deadline goes: ``days`` before a deadline day
    (``YYYY-MM-DD``), at :data:`REMINDER_HOUR` in the wedding's time zone (UTC when none
    is known), or ``days`` before a full date-time. ``None`` for no deadline, or one that
    is not a date."""
    if not isinstance(deadline, str) or not deadline:
        return None
    zone = zone_of(time_zone)
    try:
        if len(deadline) == 10:
            day = datetime.strptime(deadline, "%Y-%m-%d").date() - timedelta(days=days)
            return local_moment(day, time(REMINDER_HOUR), time_zone)
        at = datetime.fromisoformat(deadline.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        return None
    try:
        return (at if at.tzinfo is not None else at.replace(tzinfo=zone)) - timedelta(days=days)
    except OverflowError:
        return None


def link_subject(couple: str) -> str:
    """The subject of the email that brings a household its RSVP link: the couple's names
    by the one header rule (:func:`crdt_server.names.header_name`)."""
    return f"{header_name(couple) or 'The couple'}: will you come?"


def reminder_text(
    household: str, couple: str, date: str | None, deadline: str, url: str
) -> tuple[str, str]:
    """The subject and body of a household's RSVP reminder (the couple's names in the
    subject by the one header rule, :func:`crdt_server.names.header_name`)."""
    body = (
        f"Dear {household},\n\n{couple} have not had your answer yet"
        + (f" for {date}" if date else "")
        + f".\n\nPlease answer for your household by {deadline} here:\n{url}\n"
    )
    return f"{header_name(couple) or 'The couple'}: a reminder to answer by {deadline}", body


def closes_at(deadline: Any, time_zone: Any = None) -> datetime | None:
    """When a link whose RSVP deadline is ``deadline`` stops taking answers: the end of
    that day (``YYYY-MM-DD``) in the wedding's time zone (UTC when none is known), or the
    instant itself for a full date-time. ``None`` (never) for no deadline or one that is
    not a date: a mistyped deadline never locks guests out."""
    if not isinstance(deadline, str) or not deadline:
        return None
    zone = zone_of(time_zone)
    try:
        if len(deadline) == 10:
            day = datetime.strptime(deadline, "%Y-%m-%d").date()
            return datetime.combine(day, time(0), zone) + timedelta(days=1)
        at = datetime.fromisoformat(deadline.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=zone)
