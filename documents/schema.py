"""How each wedding document is laid out in pycrdt shared types, and readers to plain Python.

Every root is a ``Map`` keyed by stable ids; no document holds an ``Array``, so two replicas
can never both insert "the same" element and end up with two::

    kind      root         entries
    (every)   meta         schema, kind, wedding_id  (written by seed, never edited)
    guests    guests       guest_id -> Map{name, household, side, rsvp, meal, dietary,
                                           plus_one, contact, notes*, household_id,
                                           plus_one_of}
              households   household_id -> Map{name, rsvp_deadline, mailing_address,
                                               rsvp_note, rsvp_note_at}
                           (absent in documents written before households: a guest's
                           free-text ``household`` reads as one, :mod:`documents.households`)
              menu         choices  (the meals on offer, one list value; absent: no menu)
    seating   tables       table_id -> Map{name, capacity, shape, notes*, position}
                           (position: {"x", "y", "rotation"}, one atomic JSON value)
              assignments  guest_id -> {"table_id", "seat"}  (one atomic JSON value)
    timeline  items        item_id -> Map{title, start, end, location, owner, vendor,
                                          status, notes*, vendor_id, follows,
                                          fixed}
              vendors      vendor_id -> Map{name, category, members, call_time}
                           (the vendor directory, :mod:`documents.vendors`; absent in
                           documents written before it)
              profile      names, date, time_zone, venue, rsvp_deadline  (the wedding itself;
                           absent in documents written before it: they read as no profile)
              runofshow    Y.XmlFragment: the day's run of show, as y-prosemirror writes it
    budget    settings     currency, total
              categories   category_id -> Map{name, planned, notes*}
              payments     payment_id -> Map{amount, category_id, date, payer, vendor,
                                             notes*, due, status, vendor_id}
                           (``status`` absent: paid; a paid payment without a ``date`` is
                           left out, as when ``date`` was required)
    tasks     tasks        task_id -> Map{title, owner, due, due_offset, done, notes*}

One field per map key, so concurrent edits of different fields of one entry both survive;
a seat assignment is a single value under the guest's id, so concurrent moves of one guest
resolve to exactly one seat. Optional fields that are empty are absent keys.

Fields marked * are collaborative text: a ``Y.Text`` created together with its entry (empty
when there is nothing to say yet) and changed by splices (:mod:`documents.texts`), so two
people typing in one note both keep their words. An older document may hold a plain string
there: it reads as it is (the server never converts stored values); a write through an
operation replaces such a string by a ``Y.Text``.

Readers are lenient: documents are also written by browser clients this code never sees, so
an entry that breaks the schema is reported as a :class:`SchemaProblem` instead of raising. A bad
optional field reads as its default; an entry with a bad required field is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pycrdt import Doc, Map, Text, XmlFragment

from .model import (
    ASSIGNMENT,
    BUDGET_SETTINGS,
    CATEGORY,
    GUEST,
    HOUSEHOLD,
    ID_PATTERN,
    MENU,
    PAYMENT,
    PROFILE,
    TABLE,
    TASK,
    TIMELINE_ITEM,
    VENDOR,
    DocumentError,
    Entity,
    Field,
    payment_status,
    shown,
)
from .shapes import entry_fields, to_plain
from .texts import apply_splice, smallest_splice, text_value
from .vendors import VENDORS_ROOT, Vendor

META = "meta"
ROOTS: dict[str, tuple[str, ...]] = {
    "timeline": ("items", "profile", VENDORS_ROOT),
    "budget": ("settings", "categories", "payments"),
    "guests": ("guests", "households", "menu"),
    "seating": ("tables", "assignments"),
    "tasks": ("tasks",),
}
"""The root maps of each kind of document, besides ``meta``."""
RUN_OF_SHOW = "runofshow"
"""The timeline document's root ``Y.XmlFragment``: the run of show, rich text written by
y-prosemirror or Tiptap (never by the server), shown by the JSON view
(:func:`documents.jsonio.to_json`)."""
TEXT_FIELDS = frozenset({"notes"})
"""Field names stored as ``Y.Text`` (every entity's ``notes``)."""
ENTITIES: dict[str, tuple[Entity, ...]] = {
    "timeline": (TIMELINE_ITEM, VENDOR),
    "budget": (CATEGORY, PAYMENT),
    "guests": (GUEST, HOUSEHOLD),
    "seating": (TABLE, ASSIGNMENT),
    "tasks": (TASK,),
}
"""The id-keyed collections of each kind of document."""

R = TypeVar("R")


@dataclass(frozen=True)
class Guest:
    id: str
    name: str
    household: str | None
    side: str | None
    rsvp: str
    meal: str | None
    dietary: tuple[str, ...]
    plus_one: bool
    contact: str | None
    notes: str | None
    household_id: str | None = None
    plus_one_of: str | None = None


@dataclass(frozen=True)
class Household:
    id: str
    name: str
    rsvp_deadline: str | None
    mailing_address: str | None
    rsvp_note: str | None = None
    rsvp_note_at: str | None = None


@dataclass(frozen=True)
class Table:
    id: str
    name: str
    capacity: int
    shape: str
    notes: str | None
    position: Mapping[str, int | float] | None = None
    """Where the chart draws the table (``{"x", "y", "rotation"}``); ``None``: not placed."""


@dataclass(frozen=True)
class Assignment:
    id: str  # the guest's id
    table_id: str
    seat: int | None


@dataclass(frozen=True)
class TimelineItem:
    id: str
    title: str
    start: str
    end: str
    location: str | None
    owner: str | None
    vendor: str | None
    status: str
    notes: str | None
    vendor_id: str | None = None
    follows: str | None = None
    fixed: bool = False


@dataclass(frozen=True)
class Category:
    id: str
    name: str
    planned: int
    notes: str | None


@dataclass(frozen=True)
class Payment:
    id: str
    amount: int
    category_id: str
    date: str | None
    payer: str | None
    vendor: str | None
    notes: str | None
    due: str | None = None
    status: str | None = None
    vendor_id: str | None = None

    @property
    def scheduled(self) -> bool:
        """Whether the payment is still to be made (it does not count as paid)."""
        return payment_status(self.status) == "scheduled"


@dataclass(frozen=True)
class Task:
    id: str
    title: str
    owner: str | None
    due: str | None
    due_offset: str | None
    done: bool
    notes: str | None


RECORDS: dict[Entity, type] = {
    GUEST: Guest,
    HOUSEHOLD: Household,
    TABLE: Table,
    ASSIGNMENT: Assignment,
    TIMELINE_ITEM: TimelineItem,
    VENDOR: Vendor,
    CATEGORY: Category,
    PAYMENT: Payment,
    TASK: Task,
}


@dataclass(frozen=True)
class SchemaProblem:
    """Something in a stored document that breaks the schema."""

    path: str
    message: str


@dataclass(frozen=True)
class Meta:
    schema: int | None = None
    kind: str | None = None
    wedding_id: str | None = None


@dataclass(frozen=True)
class Menu:
    """The meals on offer (the guests document's ``menu`` map); ``choices`` is ``None``
    where there is no menu (or what is stored breaks the schema)."""

    choices: tuple[str, ...] | None = None

    def offers(self, meal: str) -> bool:
        """Whether ``meal`` may be chosen: any meal where there is no menu (or an empty
        one), else one of its choices (spaces and case aside)."""
        if not self.choices:
            return True
        wanted = " ".join(meal.split()).casefold()
        return any(" ".join(c.split()).casefold() == wanted for c in self.choices)


@dataclass(frozen=True)
class GuestList:
    meta: Meta = Meta()
    guests: Mapping[str, Guest] = field(default_factory=dict)
    problems: tuple[SchemaProblem, ...] = ()
    households: Mapping[str, Household] = field(default_factory=dict)
    menu: Menu = Menu()


@dataclass(frozen=True)
class SeatingPlan:
    meta: Meta = Meta()
    tables: Mapping[str, Table] = field(default_factory=dict)
    assignments: Mapping[str, Assignment] = field(default_factory=dict)
    problems: tuple[SchemaProblem, ...] = ()


@dataclass(frozen=True)
class TaskList:
    meta: Meta = Meta()
    tasks: Mapping[str, Task] = field(default_factory=dict)
    problems: tuple[SchemaProblem, ...] = ()


@dataclass(frozen=True)
class Profile:
    """The wedding itself, as the timeline's ``profile`` map holds it (every field may be
    missing: a document written before profiles, or one nobody filled in)."""

    names: tuple[str, ...] | None = None
    date: str | None = None
    time_zone: str | None = None
    venue: str | None = None
    rsvp_deadline: str | None = None


@dataclass(frozen=True)
class Timeline:
    meta: Meta = Meta()
    items: Mapping[str, TimelineItem] = field(default_factory=dict)
    problems: tuple[SchemaProblem, ...] = ()
    profile: Profile = Profile()
    vendors: Mapping[str, Vendor] = field(default_factory=dict)


@dataclass(frozen=True)
class Budget:
    meta: Meta = Meta()
    currency: str | None = None
    total: int | None = None
    categories: Mapping[str, Category] = field(default_factory=dict)
    payments: Mapping[str, Payment] = field(default_factory=dict)
    problems: tuple[SchemaProblem, ...] = ()


def root(doc: Doc[Any], name: str) -> Map[Any]:
    """The root map ``name`` of ``doc`` (creating a root type writes nothing to the doc)."""
    value = doc.get(name, type=Map)
    if not isinstance(value, Map):
        raise DocumentError(f"root {name!r} is not a map")
    return value


def plain(value: object) -> object:
    """A stored value as plain Python, whatever its shape and depth (:func:`to_plain`). Yjs
    keeps every number as a double, so integral floats come back as ints (ints up to 2**53
    are exact)."""
    return to_plain(value)


def to_crdt(value: Any) -> Any:
    """A canonical field value as stored: tuples become lists (JSON arrays)."""
    return list(value) if isinstance(value, tuple) else value


def changes(
    stored: Map[Any], fields: Iterable[Field], desired: Mapping[str, Any]
) -> dict[str, Any]:
    """The entries of ``desired`` (field name -> canonical value, ``None`` to remove) that
    differ from what ``stored`` holds. Writing only these keeps a no-op edit from
    overwriting a concurrent real one (last writer wins per key)."""
    by_name = {f.name: f for f in fields}
    result: dict[str, Any] = {}
    for name, value in desired.items():
        if by_name[name].text:
            # Clearing a text empties it: the Y.Text stays for whoever types in it.
            if (text_value(stored.get(name)) or "") != (value or ""):
                result[name] = value or ""
            continue
        if value is None:
            if name in stored:
                result[name] = None
            continue
        current = plain(stored.get(name))
        try:
            same = current is not None and by_name[name].rule(current) == value
        except DocumentError:
            same = False
        if not same:
            result[name] = value
    return result


def write(target: Map[Any], changed: Mapping[str, Any]) -> None:
    """Apply :func:`changes` to ``target``; call inside a transaction. A text field
    (:data:`TEXT_FIELDS`) that holds a ``Y.Text`` gets the smallest splice to its new
    value; one that holds anything else gets a new ``Y.Text``."""
    for name, value in changed.items():
        current = target.get(name) if name in TEXT_FIELDS else None
        if isinstance(current, Text):
            before = str(current)
            apply_splice(current, smallest_splice(before, value or ""), before)
        elif name in TEXT_FIELDS:
            target[name] = Text(value or "")
        elif value is None:
            del target[name]
        else:
            target[name] = to_crdt(value)


def new_entry(entity: Entity, values: Mapping[str, Any]) -> Map[Any]:
    """A new entry map with every field: given values, else defaults; ``None`` left out.
    Text fields are always created, empty when no value is given, so that the first two
    people to type in one never create two texts for it."""
    stored: dict[str, Any] = {}
    for f in entity.fields:
        value = values.get(f.name, f.default)
        if f.text:
            stored[f.name] = Text(value or "")
        elif value is not None:
            stored[f.name] = to_crdt(value)
    return Map(stored)


def read_meta(doc: Doc[Any]) -> Meta:
    meta = root(doc, META)
    schema, kind, wedding_id = (plain(meta.get(key)) for key in ("schema", "kind", "wedding_id"))
    return Meta(
        schema if isinstance(schema, int) and not isinstance(schema, bool) else None,
        kind if isinstance(kind, str) else None,
        wedding_id if isinstance(wedding_id, str) else None,
    )


def _read_fields(
    fields: Iterable[Field], raw: Mapping[str, object], where: str, base: str
) -> tuple[dict[str, Any] | None, list[SchemaProblem]]:
    values: dict[str, Any] = {}
    problems: list[SchemaProblem] = []
    for f in fields:
        stored = raw.get(f.name)
        if stored is None:
            if f.required:
                problems.append(SchemaProblem(f"{base}/{f.name}", f"{where} has no {f.name}."))
                return None, problems
            values[f.name] = f.default
            continue
        try:
            values[f.name] = f.rule(stored)
        except DocumentError as exc:
            problems.append(
                SchemaProblem(
                    f"{base}/{f.name}", f"{where} has an invalid {f.name}: it {exc.message}."
                )
            )
            if f.required:
                return None, problems
            values[f.name] = f.default
    return values, problems


def read_entries(
    doc: Doc[Any], entity: Entity, record: Callable[..., R], problems: list[SchemaProblem]
) -> dict[str, R]:
    """The valid entries of ``entity`` in ``doc`` by id, in id order; the rest go to
    ``problems``."""
    collection = root(doc, entity.collection)
    entries: dict[str, R] = {}
    for key in sorted(collection.keys()):
        value = read_entry(entity, record, key, collection[key], problems)
        if value is not None:
            entries[key] = value
    return entries


def read_some(
    doc: Doc[Any], entity: Entity, record: Callable[..., R], ids: Iterable[str]
) -> dict[str, R]:
    """The valid entries of ``entity`` among ``ids`` by id, in id order (one missing or
    breaking the schema is left out): each read alone, so the cost follows ``ids``, not
    the document."""
    collection = root(doc, entity.collection)
    entries: dict[str, R] = {}
    with doc.transaction():
        for key in sorted(ids):
            stored = collection.get(key)
            if stored is not None:
                value = read_entry(entity, record, key, stored, [])
                if value is not None:
                    entries[key] = value
    return entries


def read_entry(
    entity: Entity,
    record: Callable[..., R],
    key: str,
    stored: object,
    problems: list[SchemaProblem],
) -> R | None:
    """One entry of ``entity`` stored under ``key``: its record, or ``None`` if it is not
    valid; what breaks the schema goes to ``problems``."""
    where = f"{entity.label.capitalize()} '{key}'"
    if ID_PATTERN.fullmatch(key) is None:
        problems.append(SchemaProblem(entity.path(key), f"{where} does not have a valid id."))
        return None
    raw = entry_fields(stored)
    if raw is None:
        problems.append(SchemaProblem(entity.path(key), f"{where} is {_described(stored)}."))
        return None
    values, found = _read_fields(entity.fields, raw, where, entity.path(key))
    problems.extend(found)
    if values is None:
        return None
    if entity is PAYMENT and values["date"] is None and payment_status(values["status"]) == "paid":
        # A paid payment needs the date it was paid (as every payment did before statuses).
        if raw.get("date") is None:
            problems.append(SchemaProblem(entity.path(key, "date"), f"{where} has no date."))
        return None
    return record(id=key, **values)


def _described(stored: object) -> str:
    if isinstance(stored, XmlFragment):
        return "a yjs-14 type whose fields this server cannot read, not an object"
    return f"{shown(to_plain(stored))}, not an object"


def read_guests(doc: Doc[Any] | None) -> GuestList:
    if doc is None:
        return GuestList()
    problems: list[SchemaProblem] = []
    with doc.transaction():
        guests = read_entries(doc, GUEST, Guest, problems)
        households = read_entries(doc, HOUSEHOLD, Household, problems)
        menu = Menu(**read_menu_fields(doc, problems))
        return GuestList(read_meta(doc), guests, tuple(problems), households, menu)


def read_menu(doc: Doc[Any] | None) -> Menu:
    """The wedding's menu from its guests document (no menu where there is none; what
    breaks the schema reads as no menu)."""
    if doc is None:
        return Menu()
    with doc.transaction():
        return Menu(**read_menu_fields(doc, []))


def read_menu_fields(doc: Doc[Any], problems: list[SchemaProblem]) -> dict[str, Any]:
    """The menu's fields (``None`` where missing or invalid); what breaks the schema goes to
    ``problems``. Only the schema's keys are looked up, as for the profile."""
    stored = root(doc, "menu")
    raw = {f.name: plain(stored.get(f.name)) for f in MENU}
    values, found = _read_fields(MENU, raw, "The menu", "guests/menu")
    assert values is not None  # no menu field is required
    problems.extend(found)
    return values


def read_seating(doc: Doc[Any] | None) -> SeatingPlan:
    if doc is None:
        return SeatingPlan()
    problems: list[SchemaProblem] = []
    with doc.transaction():
        tables = read_entries(doc, TABLE, Table, problems)
        assignments = read_entries(doc, ASSIGNMENT, Assignment, problems)
        return SeatingPlan(read_meta(doc), tables, assignments, tuple(problems))


def read_timeline(doc: Doc[Any] | None) -> Timeline:
    if doc is None:
        return Timeline()
    problems: list[SchemaProblem] = []
    with doc.transaction():
        items = read_entries(doc, TIMELINE_ITEM, TimelineItem, problems)
        profile = read_profile_fields(doc, problems)
        vendors = read_entries(doc, VENDOR, Vendor, problems)
        return Timeline(read_meta(doc), items, tuple(problems), Profile(**profile), vendors)


def read_profile(doc: Doc[Any] | None) -> Profile:
    """The wedding's profile from its timeline document (an empty one where there is none;
    what breaks the schema reads as missing)."""
    if doc is None:
        return Profile()
    with doc.transaction():
        return Profile(**read_profile_fields(doc, []))


def read_profile_fields(doc: Doc[Any], problems: list[SchemaProblem]) -> dict[str, Any]:
    """The profile's fields (defaults where missing or invalid); what breaks the schema goes
    to ``problems``. Only the schema's keys are looked up, each value read once: a profile
    map a client filled with other keys costs nothing more to read."""
    stored = root(doc, "profile")
    raw = {f.name: plain(stored.get(f.name)) for f in PROFILE}
    values, found = _read_fields(PROFILE, raw, "The profile", "timeline/profile")
    assert values is not None  # no profile field is required
    problems.extend(found)
    return values


def read_budget_settings(doc: Doc[Any]) -> tuple[dict[str, Any], list[SchemaProblem]]:
    """The budget's settings (``currency``, ``total``; defaults where invalid) and what
    breaks the schema in them."""
    raw = plain(root(doc, "settings"))
    assert isinstance(raw, dict)
    settings, problems = _read_fields(BUDGET_SETTINGS, raw, "The budget", "budget/settings")
    assert settings is not None  # no settings field is required
    return settings, problems


def read_budget(doc: Doc[Any] | None) -> Budget:
    if doc is None:
        return Budget()
    with doc.transaction():
        settings, problems = read_budget_settings(doc)
        categories = read_entries(doc, CATEGORY, Category, problems)
        payments = read_entries(doc, PAYMENT, Payment, problems)
        return Budget(
            read_meta(doc),
            settings["currency"],
            settings["total"],
            categories,
            payments,
            tuple(problems),
        )


def read_tasks(doc: Doc[Any] | None) -> TaskList:
    if doc is None:
        return TaskList()
    problems: list[SchemaProblem] = []
    with doc.transaction():
        tasks = read_entries(doc, TASK, Task, problems)
        return TaskList(read_meta(doc), tasks, tuple(problems))
