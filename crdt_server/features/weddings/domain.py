"""A new wedding as its creator describes it, checked the one way for the route and the
command: the partners' names, the creator's own name, the day, its IANA time zone, the
budget's currency and the couple's email; and what the server makes of it (an opaque id,
the couple's member, named as the creator, never as the couple)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from crdt_server.auth.tokens import valid_email
from crdt_server.documents import DocumentError
from crdt_server.documents.model import (
    MAX_NAME,
    PROFILE,
    WEDDING_ID_PATTERN,
    currency,
    day,
    text,
    text_list,
    time_zone,
)
from crdt_server.errors import Malformed

__all__ = [
    "NewWedding",
    "new_couple_sub",
    "new_wedding",
    "new_wedding_id",
    "person_key",
    "profile_fields",
]

PROFILE_NAMES = frozenset(f.name for f in PROFILE)


@dataclass(frozen=True, slots=True)
class NewWedding:
    """A wedding to create, every field checked."""

    names: tuple[str, ...]
    date: str
    time_zone: str
    currency: str
    email: str
    your_name: str
    """The creator's own name: their member's name, what every line they cause says
    (one person, never "Ann & Bo")."""

    def profile_op(self) -> dict[str, Any]:
        """The timeline operation that writes its profile."""
        return {
            "op": "set_profile",
            "names": list(self.names),
            "date": self.date,
            "time_zone": self.time_zone,
        }

    def currency_op(self) -> dict[str, Any]:
        """The budget operation that sets its currency."""
        return {"op": "set_currency", "currency": self.currency}


_NAMES = text_list(2, MAX_NAME)
_FIELDS = ("names", "your_name", "date", "time_zone", "currency", "email")


def _checked(rule: Any, value: object, field: str) -> Any:
    try:
        return rule(value)
    except DocumentError as exc:
        raise Malformed(exc.message, field=field) from None


def new_wedding(data: dict[str, Any]) -> NewWedding:
    """``data`` (the route's body, the command's arguments) checked; :class:`Malformed`
    naming the first field at fault (an unknown one included)."""
    for key in data:
        if key not in _FIELDS:
            raise Malformed(f"unknown field; expected {', '.join(_FIELDS)}", field=str(key)[:64])
    for key in ("names", "date", "time_zone", "currency", "email"):
        if data.get(key) is None:
            raise Malformed("is required", field=key)
    names = _checked(_NAMES, data["names"], "names")
    if not names:
        raise Malformed("must name at least one partner", field="names")
    email = data["email"]
    if not isinstance(email, str) or not valid_email(email):
        raise Malformed("must be one email address like 'ann@example.com'", field="email")
    yours = data.get("your_name")
    if yours is None:
        yours = names[0]  # who did not say: the first partner named
    else:
        checked = _checked(text(MAX_NAME), yours, "your_name")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in checked):
            raise Malformed("no control characters", field="your_name")
        yours = " ".join(checked.split())
        if not yours:
            raise Malformed("say your own name", field="your_name")
    return NewWedding(
        names,
        _checked(day, data["date"], "date"),
        _checked(time_zone, data["time_zone"], "time_zone"),
        _checked(currency, data["currency"], "currency"),
        email,
        yours,
    )


def profile_fields(data: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A settings ``PUT``'s body as the ``set_profile`` operation's fields and the currency
    (``None``: not given); :class:`Malformed` for an unknown field. The fields' values are
    checked by the operation itself (400 naming the field)."""
    fields: dict[str, Any] = {}
    given_currency: str | None = None
    for key, value in data.items():
        if key == "currency":
            given_currency = _checked(currency, value, "currency")
        elif key in PROFILE_NAMES:
            fields[key] = value
        else:
            expected = ", ".join([*sorted(PROFILE_NAMES), "currency"])
            raise Malformed(f"unknown field; expected {expected}", field=str(key)[:64])
    if not fields and given_currency is None:
        raise Malformed("give at least one field to change", field="body")
    return fields, given_currency


def new_wedding_id() -> str:
    """An opaque, unguessable wedding id the server makes (``w`` and 22 URL-safe
    characters: 128 random bits), valid under the wedding id rule."""
    made = "w" + secrets.token_urlsafe(16)
    assert WEDDING_ID_PATTERN.fullmatch(made) is not None
    return made


def new_couple_sub() -> str:
    """The couple's member id in a new wedding."""
    return "couple_" + secrets.token_hex(8)


def person_key(email: str) -> str:
    """What the creators' table keeps of an email (a digest of its folded form, never the
    address): enough to count one person's weddings."""
    return hashlib.sha256(email.strip().casefold().encode()).hexdigest()
