"""The vocabulary of the wedding documents: enums, errors, findings and field rules.

Depends only on the standard library. Every value that enters a document (through an
operation, a JSON import, or read back from a document a browser client wrote) goes through
the same field rules, so the three paths cannot disagree about what is valid. The rules live
in :mod:`documents.model_rules` and, for times, :mod:`documents.model_time`; this module
re-exports them beside the entities they make up.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, get_args

from .model_rules import (
    CHART_SIZE,
    CURRENCY_PATTERN,
    ID_PATTERN,
    MAX_AMOUNT,
    MAX_LIST,
    MAX_NOTES,
    MAX_TEXT,
    DocumentError,
    Rule,
    amount,
    boolean,
    choice,
    currency,
    identifier,
    integer,
    position,
    prose,
    shown,
    text,
    text_list,
)
from .model_time import (
    DUE_OFFSET_PATTERN,
    TIME_ZONE_PATTERN,
    day,
    due_offset,
    in_zone,
    instant,
    local_moment,
    parse_instant,
    time_zone,
    wall_or_instant,
    zone_of,
)

__all__ = [
    "ASSIGNMENT",
    "BUDGET_SETTINGS",
    "CATEGORY",
    "CHART_SIZE",
    "CURRENCY_PATTERN",
    "DOCUMENT_KINDS",
    "DUE_OFFSET_PATTERN",
    "FINDINGS_ROOM",
    "GUEST",
    "HOUSEHOLD",
    "ID_PATTERN",
    "MAX_ADDRESS",
    "MAX_AMOUNT",
    "MAX_LIST",
    "MAX_MENU",
    "MAX_NAME",
    "MAX_NOTES",
    "MAX_PARTNERS",
    "MAX_RSVP_NOTE",
    "MAX_SEATS",
    "MAX_TEXT",
    "MENU",
    "PAYMENT",
    "PAYMENT_STATUSES",
    "PROFILE",
    "RSVP_STATES",
    "SCHEMA_VERSION",
    "SIDES",
    "TABLE",
    "TABLE_SHAPES",
    "TASK",
    "TIMELINE_ITEM",
    "TIMELINE_STATUSES",
    "TIME_ZONE_PATTERN",
    "VENDOR",
    "WEDDING_ID_PATTERN",
    "Conflict",
    "DocumentError",
    "DocumentKind",
    "Entity",
    "Field",
    "OperationError",
    "Refusal",
    "Rule",
    "amount",
    "boolean",
    "choice",
    "currency",
    "day",
    "derived_id",
    "due_offset",
    "format_money",
    "household_id_of",
    "household_key",
    "identifier",
    "in_zone",
    "instant",
    "integer",
    "local_moment",
    "new_id",
    "normal_label",
    "parse_instant",
    "payment_status",
    "position",
    "prose",
    "shown",
    "text",
    "text_list",
    "time_zone",
    "wall_or_instant",
    "zone_of",
]

DocumentKind = Literal["timeline", "budget", "guests", "seating", "tasks"]
"""A document every wedding has; a room name is ``{wedding_id}/{kind}``. The one type of a
document's name: request bodies and path parameters take it (``crdt_server.edge.params``)."""
DOCUMENT_KINDS: tuple[DocumentKind, ...] = get_args(DocumentKind)
"""The documents every wedding has, in the order the references list them."""
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

WEDDING_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""1 to 64 ASCII letters, digits, ``-`` or ``_``, starting with a letter or digit: the one
rule for wedding ids (the server's room-name allowlist, ``crdt_server.names``, uses it)."""
MAX_SEATS = 1000
MAX_PARTNERS = 2
MAX_NAME = 100
"""A partner's name in a wedding's profile: at most this many characters."""
MAX_MENU = 30
"""Choices on a wedding's menu: at most this many."""
MAX_ADDRESS = 300
"""A household's mailing address (several lines): at most this many characters."""
MAX_RSVP_NOTE = 1000
"""A household's note to the couple, written from its RSVP page: at most this many
characters."""


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
    label: str = ""
    """What the app calls the field beside its control ("RSVP"); empty: its name, capital
    first, ``_`` as spaces ("Plus one")."""
    words: str = ""
    """What a sentence calls the field ("changed the dietary needs"); empty: its name with
    ``_`` as spaces."""

    @property
    def title(self) -> str:
        """The field's label (:attr:`label`, or the one its name gives)."""
        return self.label or self.name.replace("_", " ").capitalize()

    @property
    def said(self) -> str:
        """The field's words (:attr:`words`, or the ones its name gives)."""
        return self.words or self.name.replace("_", " ")

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
        Field("rsvp", choice(RSVP_STATES), default="pending", label="RSVP"),
        Field("meal", text()),
        Field("dietary", text_list(), default=(), words="dietary needs"),
        Field("plus_one", boolean, default=False, words="plus-one"),
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
        Field("rsvp_note", text(MAX_RSVP_NOTE)),
        Field("rsvp_note_at", instant),
    ),
)
"""A household: who is invited, seated and answered for as a unit. The mailing address is
a contact field (read like a guest's ``contact``). ``rsvp_note`` is the household's note to
the couple from its RSVP page ("we arrive Saturday only"), ``rsvp_note_at`` when it was
written: personal data, read like a guest's ``notes``."""
TABLE = Entity(
    "seating",
    "tables",
    "table",
    "table_id",
    (
        Field("name", text(), required=True),
        Field("capacity", integer(1, MAX_SEATS), required=True, words="seats"),
        Field("shape", choice(TABLE_SHAPES), default="round"),
        Field("notes", prose(), text=True),
        Field("position", position, words="place on the chart"),
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
        Field("planned", amount, default=0, words="planned amount"),
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
        Field("category_id", identifier, required=True, words="category"),
        Field("date", day),
        Field("payer", text()),
        Field("vendor", text()),
        Field("notes", prose(), text=True),
        Field("due", day, words="due date"),
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
        Field("due", day, words="due date"),
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
