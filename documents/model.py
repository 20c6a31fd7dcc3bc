"""The vocabulary of the wedding documents: enums, errors, findings and field rules.

Depends only on the standard library. Every value that enters a document (through an
operation, a JSON import, or read back from a document a browser client wrote) goes through
the same field rules, so the three paths cannot disagree about what is valid.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from functools import cache, lru_cache
from typing import Any, Literal

DOCUMENT_KINDS: tuple[str, ...] = ("timeline", "budget", "guests", "seating", "tasks")
"""The documents every wedding has; a room name is ``{wedding_id}/{kind}``."""
FINDINGS_ROOM = "conflicts"
"""The room beside a wedding's documents that the server keeps its findings in (conflicts
the CRDT cannot prevent; read-only for clients): ``{wedding}/conflicts``, one root map of
findings by id."""

SCHEMA_VERSION = 1
"""Version of the document layout, stored in every document's ``meta`` map."""

RSVP_STATES: tuple[str, ...] = ("pending", "accepted", "declined")
SIDES: tuple[str, ...] = ("partner_a", "partner_b", "both")
TABLE_SHAPES: tuple[str, ...] = ("round", "rectangular", "square", "oval")
TIMELINE_STATUSES: tuple[str, ...] = ("planned", "confirmed", "done", "cancelled")
PAYMENT_STATUSES: tuple[str, ...] = ("scheduled", "paid")
"""A payment is ``paid`` (its ``date`` is when) or ``scheduled`` (to be paid by its ``due``
date); a payment with no status is paid (every payment written before statuses)."""

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""Ids of guests, tables, timeline items, categories and payments."""
WEDDING_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""1 to 64 ASCII letters, digits, ``-`` or ``_``, starting with a letter or digit: the one
rule for wedding ids (the server's room-name allowlist, ``crdt_server.names``, uses it)."""
CURRENCY_PATTERN = re.compile(r"[A-Z]{3}")
DUE_OFFSET_PATTERN = re.compile(r"([+-])([0-9]{1,3})([DWM])")
"""A due date relative to the wedding date: a sign (``-`` before, ``+`` after), a count and a
unit (``D`` days, ``W`` weeks, ``M`` calendar months): ``-6M`` is six months before."""
TIME_ZONE_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_+/-]{0,63}")
"""The characters an IANA zone name is made of (checked before the zone database is asked)."""

MAX_AMOUNT = 2**53 - 1
"""Yjs numbers are IEEE doubles; larger integers would not survive a round trip."""
MAX_TEXT = 200
MAX_NOTES = 5000
MAX_SEATS = 1000
MAX_LIST = 20
CHART_SIZE = 10000
"""A seating chart's coordinates (a table's ``position``) run from 0 to this, in both axes:
the app draws them in its own units (one unit is about a centimetre of the room)."""
MAX_PARTNERS = 2
MAX_NAME = 100
"""A partner's name in a wedding's profile: at most this many characters."""
MAX_MENU = 30
"""Choices on a wedding's menu: at most this many."""
MAX_ADDRESS = 300
"""A household's mailing address (several lines): at most this many characters."""


class DocumentError(ValueError):
    """Invalid document data; ``path`` names where (``guests/g1/rsvp``), ``message`` what."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.message = message
        self.path = path


Refusal = Literal["malformed", "impossible", "stale"]
"""Why an operation is refused: ``malformed`` (an argument missing, of the wrong type or
out of range), ``impossible`` (well formed, but the document rules it out: no such entry,
a full table) or ``stale`` (it was written against a state the document has left: re-read,
then ask again). The domain says why; the HTTP edge maps each to a status."""


class OperationError(DocumentError):
    """A refused operation, and why (:data:`Refusal`); nothing was changed."""

    def __init__(self, message: str, *, reason: Refusal = "malformed", path: str = "") -> None:
        super().__init__(message, path)
        self.reason: Refusal = reason


@dataclass(frozen=True, order=True)
class Conflict:
    """A finding of the invariant checks that people must resolve.

    ``code`` is a stable machine string (``seating.table_over_capacity``), ``paths`` name the
    entries involved (``seating/tables/t1``), ``message`` is a sentence for people.
    """

    code: str
    paths: tuple[str, ...]
    message: str


_ZERO_DECIMAL = frozenset(
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split()
)
_THREE_DECIMAL = frozenset("BHD IQD JOD KWD LYD OMR TND".split())


def format_money(amount: int, currency: str | None) -> str:
    """``1250050, "EUR"`` -> ``"12,500.50 EUR"``."""
    if currency is None:
        return f"{amount:,} (minor units, no currency set)"
    decimals = 0 if currency in _ZERO_DECIMAL else 3 if currency in _THREE_DECIMAL else 2
    if decimals == 0:
        return f"{amount:,} {currency}"
    major, minor = divmod(amount, 10**decimals)
    return f"{major:,}.{minor:0{decimals}d} {currency}"


def normal_label(label: str) -> str:
    """A vendor or location name as compared for overlaps (spaces and case folded)."""
    return " ".join(label.split()).casefold()


def household_key(name: str) -> str:
    """A free-text household as households are matched by it: spaces collapsed, case
    folded (``" Lee  Family"`` and ``"lee family"`` are one household)."""
    return " ".join(name.split()).casefold()


@lru_cache(maxsize=4096)
def household_id_of(name: str) -> str:
    """The id a free-text ``household`` with no entry reads under (``n-`` and 16 hex digits
    of the SHA-256 of :func:`household_key`): the same on every replica and every run, so
    a link or a seat made for it still names it once someone creates the entry with this
    id (``add_household``)."""
    digest = hashlib.sha256(household_key(name).encode()).hexdigest()
    return f"n-{digest[:16]}"


def derived_id(*parts: str) -> str:
    """A deterministic id for an entry the server creates from data (an imported row): 16
    hex digits of the SHA-256 of ``parts``, so that two devices importing one file make one
    entry, and a re-run makes none."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"i-{digest[:16]}"


def new_id() -> str:
    """A fresh id for a new entry: 12 hex digits of a random UUID."""
    return uuid.uuid4().hex[:12]


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


def instant(value: object) -> str:
    """An ISO 8601 date and time with a time zone; canonical form keeps the offset."""
    hint = "an ISO 8601 date and time with a time zone, like '2026-06-13T15:30:00+02:00'"
    if not isinstance(value, str):
        raise DocumentError(f"must be {hint}, got {shown(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise DocumentError(f"must be {hint}, got {shown(value)}") from None
    if moment.utcoffset() is None:
        raise DocumentError(f"must include a time zone, like '+02:00' or 'Z', got {shown(value)}")
    return moment.isoformat()


def parse_instant(value: str) -> datetime:
    """The aware datetime of a value that passed :func:`instant`."""
    return datetime.fromisoformat(value)


def wall_or_instant(value: object) -> str:
    """A time an operation gives a timeline item: an :func:`instant` (with its offset), or a
    wall clock without one (``2026-10-25T11:00``), which :func:`in_zone` reads in the
    wedding's time zone. Stored items always carry an offset (:func:`instant`)."""
    hint = (
        "an ISO 8601 date and time, like '2026-06-13T15:30:00+02:00' or, in the wedding's "
        "time zone, '2026-06-13T15:30'"
    )
    # A date alone (which fromisoformat reads as midnight) is no time of day.
    if not isinstance(value, str) or len(value) > 64 or value[10:11] not in ("T", " "):
        raise DocumentError(f"must be {hint}, got {shown(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise DocumentError(f"must be {hint}, got {shown(value)}") from None
    return moment.isoformat()


def in_zone(value: str, zone: str | None) -> str:
    """``value`` (checked by :func:`wall_or_instant`) as the wedding's zone writes it: the
    same instant, with the zone's offset on that date (so a Sunday after the autumn change
    says ``+01:00`` in Berlin where the Friday said ``+02:00``); a wall clock without an
    offset is read in the zone (a time the spring change skips moves on by the gap, a time
    the autumn change repeats is its first occurrence, as ``zoneinfo`` reads ``fold=0``).
    Without a zone, an instant is kept as written and a wall clock is refused."""
    moment = datetime.fromisoformat(value)
    if zone is None:
        if moment.utcoffset() is None:
            raise DocumentError(
                "must include a time zone, like '+02:00' or 'Z' (the wedding's profile "
                f"names no time zone), got {shown(value)}"
            )
        return moment.isoformat()
    tz = zoneinfo.ZoneInfo(zone)
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=tz)
    try:
        return moment.astimezone(UTC).astimezone(tz).isoformat()
    except OverflowError:  # within a day of year 1 or 9999: no instant in the zone
        raise DocumentError(f"is out of range in {zone}, got {shown(value)}") from None


def due_offset(value: object) -> str:
    """A due date relative to the wedding date (:data:`DUE_OFFSET_PATTERN`, ``-6M``)."""
    if not isinstance(value, str) or DUE_OFFSET_PATTERN.fullmatch(value) is None:
        raise DocumentError(
            "must be a sign, a count and a unit (D days, W weeks, M months) relative to the"
            f" wedding date, like '-6M' (six months before), got {shown(value)}"
        )
    return value


def day(value: object) -> str:
    if not isinstance(value, str):
        raise DocumentError(f"must be an ISO 8601 date like '2026-06-13', got {shown(value)}")
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise DocumentError(
            f"must be an ISO 8601 date like '2026-06-13', got {shown(value)}"
        ) from None


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def zone_of(name: object) -> tzinfo:
    """The time zone a wedding names (its profile's ``time_zone``), or UTC when it names
    none, or one this host's zone database does not know."""
    if isinstance(name, str) and name in _zones():
        return zoneinfo.ZoneInfo(name)
    return UTC


def local_moment(day: date, at: time, zone: object) -> datetime:
    """``at`` o'clock on ``day`` in the wedding's zone (:func:`zone_of`): when something
    of that day (a reminder, a payment due) happens for the wedding."""
    return datetime.combine(day, at, zone_of(zone))


def time_zone(value: object) -> str:
    """An IANA time zone name (``Europe/Lisbon``), one the zone database knows."""
    hint = "an IANA time zone name like 'Europe/Lisbon'"
    if not isinstance(value, str) or TIME_ZONE_PATTERN.fullmatch(value) is None:
        raise DocumentError(f"must be {hint}, got {shown(value)}")
    # A name from the database's own list: never a path handed to the file system.
    if value not in _zones():
        raise DocumentError(f"must be {hint}; {shown(value)} is not a known zone")
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


@dataclass(frozen=True)
class Field:
    """One field of an entry. ``required`` fields are always present and never null; other
    fields fall back to ``default``, and those whose default is ``None`` may be cleared."""

    name: str
    rule: Rule
    required: bool = False
    default: Any = None
    text: bool = False
    """Stored as a ``Y.Text``, created with its entry and edited by splices."""

    @property
    def nullable(self) -> bool:
        return not self.required and self.default is None

    def check(self, value: object, path: str = "") -> Any:
        """The canonical form of ``value``, or :class:`DocumentError` naming ``path``."""
        try:
            return self.rule(value)
        except DocumentError as exc:
            raise DocumentError(exc.message, path or self.name) from None


@dataclass(frozen=True)
class Entity:
    """A kind of entry: lives in root map ``collection`` of document ``kind``, keyed by id."""

    kind: str
    collection: str
    label: str
    id_field: str
    fields: tuple[Field, ...]

    def field(self, name: str) -> Field:
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(name)

    def path(self, entry_id: str, field: str = "") -> str:
        base = f"{self.kind}/{self.collection}/{entry_id}"
        return f"{base}/{field}" if field else base


GUEST = Entity(
    "guests",
    "guests",
    "guest",
    "guest_id",
    (
        Field("name", text(), required=True),
        Field("household", text()),
        Field("side", choice(SIDES)),
        Field("rsvp", choice(RSVP_STATES), default="pending"),
        Field("meal", text()),
        Field("dietary", text_list(), default=()),
        Field("plus_one", boolean, default=False),
        Field("contact", text()),
        Field("notes", prose(), text=True),
        Field("household_id", identifier),
        Field("plus_one_of", identifier),
    ),
)
"""A guest. ``household_id`` names an entry of ``households``; a guest without one whose
``household`` text is set belongs to the household of that name (see
:mod:`documents.households`). ``plus_one_of`` names the guest whose plus-one they are: a
named plus-one, a person of their own (meal, seat, answer); ``plus_one: true`` with no guest
naming its holder so counts as one unnamed person."""
HOUSEHOLD = Entity(
    "guests",
    "households",
    "household",
    "household_id",
    (
        Field("name", text(), required=True),
        Field("rsvp_deadline", day),
        Field("mailing_address", text(MAX_ADDRESS)),
    ),
)
"""A household: who is invited, seated and answered for as a unit. The mailing address is
a contact field (read like a guest's ``contact``)."""
TABLE = Entity(
    "seating",
    "tables",
    "table",
    "table_id",
    (
        Field("name", text(), required=True),
        Field("capacity", integer(1, MAX_SEATS), required=True),
        Field("shape", choice(TABLE_SHAPES), default="round"),
        Field("notes", prose(), text=True),
        Field("position", position),
    ),
)
"""A table of the seating plan. ``shape`` is how the chart draws it; ``position`` is where
(absent: not placed yet, the app lays such tables out in a grid). A position is one value,
replaced whole (:func:`position`)."""
ASSIGNMENT = Entity(
    "seating",
    "assignments",
    "seat assignment",
    "guest_id",
    (
        Field("table_id", identifier, required=True),
        Field("seat", integer(1, MAX_SEATS)),
    ),
)
TIMELINE_ITEM = Entity(
    "timeline",
    "items",
    "timeline item",
    "item_id",
    (
        Field("title", text(), required=True),
        Field("start", instant, required=True),
        Field("end", instant, required=True),
        Field("location", text()),
        Field("owner", text()),
        Field("vendor", text()),
        Field("status", choice(TIMELINE_STATUSES), default="planned"),
        Field("notes", prose(), text=True),
        Field("vendor_id", identifier),
        Field("follows", identifier),
        Field("fixed", boolean, default=False),
    ),
)
"""A timeline item. Its vendor is ``vendor_id`` (an entry of the ``vendors`` directory)
where set, else the free-text ``vendor`` (equal names, spaces and case folded, are one
vendor: :mod:`documents.vendors`). ``follows`` names the item it comes after and ``fixed``
marks one that keeps its time (the ceremony): a delay moves what follows, never what is
fixed (:mod:`documents.delays`)."""
VENDOR = Entity(
    "timeline",
    "vendors",
    "vendor",
    "vendor_id",
    (
        Field("name", text(), required=True),
        Field("category", text()),
        Field("members", text_list(), default=()),
        Field("call_time", instant),
    ),
)
"""A vendor of the wedding's directory (the timeline's ``vendors`` root, read by whoever
reads the timeline): its name, category (florist, photographer), ``members`` (the ``sub`` of
each member account that acts for it) and ``call_time`` (when it is due on the day). Its
contact is not here: the day feature keeps it apart."""
CATEGORY = Entity(
    "budget",
    "categories",
    "category",
    "category_id",
    (
        Field("name", text(), required=True),
        Field("planned", amount, default=0),
        Field("notes", prose(), text=True),
    ),
)
PAYMENT = Entity(
    "budget",
    "payments",
    "payment",
    "payment_id",
    (
        Field("amount", amount, required=True),
        Field("category_id", identifier, required=True),
        Field("date", day),
        Field("payer", text()),
        Field("vendor", text()),
        Field("notes", prose(), text=True),
        Field("due", day),
        Field("status", choice(PAYMENT_STATUSES)),
        Field("vendor_id", identifier),
    ),
)
"""A payment. ``date`` is when it was paid: a paid payment (``status`` ``paid``, or none)
needs one, a ``scheduled`` payment may have none yet; ``due`` is when a scheduled payment
is to be paid (a paid one may keep it, as a record). Only paid payments count as paid;
the budget's findings count paid and scheduled (:mod:`documents.findings`)."""


def payment_status(status: str | None) -> str:
    """A payment's effective status: ``paid`` when none is stored."""
    return status or "paid"


TASK = Entity(
    "tasks",
    "tasks",
    "task",
    "task_id",
    (
        Field("title", text(), required=True),
        Field("owner", text()),
        Field("due", day),
        Field("due_offset", due_offset),
        Field("done", boolean, default=False),
        Field("notes", prose(), text=True),
    ),
)
"""A task of the wedding's checklist. ``owner`` is the ``sub`` of the member who does it;
its due date is ``due`` (a day), or, where ``due_offset`` is set, that offset from the
wedding date (the timeline's profile ``date``), so it moves when the wedding does
(:func:`documents.tasks.due_date`)."""
BUDGET_SETTINGS: tuple[Field, ...] = (
    Field("currency", currency),
    Field("total", amount),
)
"""The fields of the budget document's ``settings`` map."""
PROFILE: tuple[Field, ...] = (
    Field("names", text_list(MAX_PARTNERS, MAX_NAME)),
    Field("date", day),
    Field("time_zone", time_zone),
    Field("venue", text()),
    Field("rsvp_deadline", day),
)
"""The fields of the timeline document's ``profile`` map: the wedding itself (the partners'
names, the day, its IANA time zone, the venue, the RSVP deadline). The currency is the
budget's (``settings``); readers of the profile read it there."""
MENU: tuple[Field, ...] = (Field("choices", text_list(MAX_MENU, MAX_TEXT)),)
"""The fields of the guests document's ``menu`` map: the meals guests choose from
(``choices``, in the order offered). No menu (or no choices): any meal is taken as given."""
