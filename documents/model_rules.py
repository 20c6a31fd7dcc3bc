"""The field rules: each checks one value that enters a document and returns its canonical
form, or raises :class:`DocumentError` (re-exported by :mod:`documents.model`, with the time
rules of :mod:`documents.model_time`).

Depends only on the standard library.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

__all__ = [
    "CHART_SIZE",
    "CURRENCY_PATTERN",
    "ID_PATTERN",
    "MAX_AMOUNT",
    "MAX_LIST",
    "MAX_NOTES",
    "MAX_TEXT",
    "DocumentError",
    "Rule",
    "amount",
    "boolean",
    "choice",
    "currency",
    "identifier",
    "integer",
    "position",
    "prose",
    "shown",
    "text",
    "text_list",
]

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""Ids of guests, tables, timeline items, categories and payments."""
CURRENCY_PATTERN = re.compile(r"[A-Z]{3}")
MAX_AMOUNT = 2**53 - 1
"""Yjs numbers are IEEE doubles; larger integers would not survive a round trip."""
MAX_TEXT = 200
MAX_NOTES = 5000
MAX_LIST = 20
CHART_SIZE = 10000
"""A seating chart's coordinates (a table's ``position``) run from 0 to this, in both axes:
the app draws them in its own units (one unit is about a centimetre of the room)."""


class DocumentError(ValueError):
    """Invalid document data; ``path`` names where (``guests/g1/rsvp``), ``message`` what."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.message = message
        self.path = path


def shown(value: object) -> str:
    """A short JSON-flavoured description of a bad value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


Rule = Callable[[object], Any]
"""Checks one value and returns its canonical form, or raises :class:`DocumentError`."""


def text(max_len: int = MAX_TEXT) -> Rule:
    def rule(value: object) -> str:
        if not isinstance(value, str):
            raise DocumentError(f"must be a string, got {shown(value)}")
        value = value.strip()
        if not value:
            raise DocumentError("must not be empty")
        if len(value) > max_len:
            raise DocumentError(f"must be at most {max_len} characters")
        return value

    return rule


def prose(max_len: int = MAX_NOTES) -> Rule:
    """Collaborative text (a ``Y.Text``, or an old plain string): kept as written, spaces
    and empty text included (people type into it; stripping would fight them)."""

    def rule(value: object) -> str:
        if not isinstance(value, str):
            raise DocumentError(f"must be a string, got {shown(value)}")
        if len(value) > max_len:
            raise DocumentError(f"must be at most {max_len} characters")
        return value

    return rule


def choice(options: tuple[str, ...]) -> Rule:
    def rule(value: object) -> str:
        if not isinstance(value, str) or value not in options:
            raise DocumentError(f"must be one of {', '.join(options)}, got {shown(value)}")
        return value

    return rule


def integer(low: int, high: int) -> Rule:
    def rule(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise DocumentError(f"must be an integer, got {shown(value)}")
        if not low <= value <= high:
            raise DocumentError(f"must be between {low} and {high}, got {value}")
        return value

    return rule


amount = integer(0, MAX_AMOUNT)  # money: integer minor units (cents) of the budget's currency


def identifier(value: object) -> str:
    if not isinstance(value, str) or ID_PATTERN.fullmatch(value) is None:
        raise DocumentError(
            f"must be 1 to 64 letters, digits, '-' or '_', got {shown(value)}",
        )
    return value


def _number(value: object, what: str, high: int, *, below: bool = False) -> int | float:
    """A finite number from 0 to ``high`` (``below``: under it); integral ones as ints."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DocumentError(f"{what} must be a number, got {shown(value)}")
    if value < 0 or value > high or (below and value == high):
        bound = f"under {high}" if below else str(high)
        raise DocumentError(f"{what} must be from 0 to {bound}, got {value:g}")
    return int(value) if float(value).is_integer() else float(value)


def position(value: object) -> dict[str, int | float]:
    """Where a table stands on the seating chart: one JSON object ``{"x", "y", "rotation"}``
    (x and y from 0 to :data:`CHART_SIZE`, rotation in degrees from 0 to under 360), set as
    one value so that two people dragging one table at once end with one of their two
    positions, never a mix of both."""
    if not isinstance(value, dict):
        raise DocumentError(f"must be an object {{x, y, rotation}}, got {shown(value)}")
    extra = sorted(str(k) for k in value if k not in ("x", "y", "rotation"))
    if extra:
        raise DocumentError(f"must hold only x, y and rotation, not {extra[0]!r}")
    missing = [k for k in ("x", "y", "rotation") if k not in value]
    if missing:
        raise DocumentError(f"must hold x, y and rotation; {missing[0]} is missing")
    return {
        "x": _number(value["x"], "x", CHART_SIZE),
        "y": _number(value["y"], "y", CHART_SIZE),
        "rotation": _number(value["rotation"], "rotation", 360, below=True),
    }


def boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise DocumentError(f"must be true or false, got {shown(value)}")
    return value


def currency(value: object) -> str:
    if not isinstance(value, str) or CURRENCY_PATTERN.fullmatch(value) is None:
        raise DocumentError(f"must be an ISO 4217 code like 'EUR', got {shown(value)}")
    return value


def text_list(max_items: int = MAX_LIST, max_len: int = MAX_TEXT) -> Rule:
    """A list of short texts, kept in order with duplicates dropped; stored as a tuple."""
    item_rule = text(max_len)

    def rule(value: object) -> tuple[str, ...]:
        if not isinstance(value, list | tuple):
            raise DocumentError(f"must be a list of strings, got {shown(value)}")
        if len(value) > max_items:
            raise DocumentError(f"must have at most {max_items} entries")
        items: list[str] = []
        for index, item in enumerate(value):
            try:
                checked = item_rule(item)
            except DocumentError as exc:
                raise DocumentError(f"entry {index} {exc.message}") from None
            if checked not in items:
                items.append(checked)
        return tuple(items)

    return rule
