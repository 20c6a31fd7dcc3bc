"""JSON export and import of the wedding documents.

The export is plain JSON: ``{"kind", "schema", "wedding_id", <collections>}`` where each
collection maps ids to objects holding every field (``null`` for empty optional ones; the
guests document's ``households`` may be missing in data written before them), the guests
document adds its ``menu`` (``{"choices"}``, ``null`` where there is none), and
the budget adds ``currency`` and ``total``, the tasks document holds ``tasks``, the
timeline its ``profile`` (the wedding's names, date, time zone, venue and RSVP deadline;
``null`` fields where there is none). Entries a foreign client stored in a shape the schema
does not allow are left out (the invariant checks report them).

Nothing a client stored is invisible: ``problems`` lists every entry left out and why, and
``other`` shows every root the schema does not know
(a ``Y.Text``, a y-prosemirror ``Y.XmlFragment``, ...) by the type its content shows
(:func:`documents.shapes.root_view`), and the list part of a known root that also holds list
items, with an entry in ``problems`` saying so. Both appear only when there is something to
show; :func:`import_json` ignores them (they are read-only).

Import validates everything first (errors name the path, like ``guests/g1/rsvp``), then
makes the document equal to the data in one transaction, writing only what differs. It
checks shape, not invariants: an export of a plan with conflicts imports as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Array, Doc, Map

from .model import (
    ASSIGNMENT,
    BUDGET_SETTINGS,
    DOCUMENT_KINDS,
    MENU,
    PAYMENT,
    PROFILE,
    SCHEMA_VERSION,
    DocumentError,
    Entity,
    Field,
    identifier,
    payment_status,
    shown,
)
from .schema import (
    ENTITIES,
    META,
    ROOTS,
    RUN_OF_SHOW,
    SchemaProblem,
    changes,
    new_entry,
    plain,
    read_budget,
    read_guests,
    read_seating,
    read_tasks,
    read_timeline,
    root,
    to_crdt,
    write,
)
from .seed import meta_changes
from .shapes import list_part, root_view
from .vendors import VENDORS_ROOT

log = logging.getLogger("documents.jsonio")

_HEADER = ("kind", "schema", "wedding_id")
_READ_ONLY = ("other", "problems", "totals", "due_dates", RUN_OF_SHOW)
"""Sections of the view that are never imported: what the schema does not know, the guest
list's totals and the tasks' due dates (derived; the server's JSON view adds them), and the
timeline's run of show (rich text only editors write; shown as text and ProseMirror JSON,
which would not make the same Yjs items again)."""


_LATER_COLLECTIONS = frozenset({"households", VENDORS_ROOT})
"""Collections added after the first export format: data without one (an older export)
leaves the document's as they are."""


def _check_kind(kind: str) -> None:
    if kind not in DOCUMENT_KINDS:
        raise DocumentError(f"unknown document kind {shown(kind)}", "kind")


def _records(records: Mapping[str, Any], entity: Entity) -> dict[str, Any]:
    return {
        entry_id: {f.name: to_crdt(getattr(record, f.name)) for f in entity.fields}
        for entry_id, record in sorted(records.items())
    }


def to_json(doc: Doc[Any], kind: str, *, rich: bool = False) -> dict[str, Any]:
    """Document ``kind`` as plain JSON-serialisable data, ids and keys in a fixed order,
    with ``other`` and ``problems`` when it holds what the schema does not know (see the
    module docstring; ``rich`` shows texts there as ``{"text", "delta"}``). Never raises on
    what clients stored."""
    _check_kind(kind)
    body: dict[str, Any]
    found: tuple[SchemaProblem, ...]
    if kind == "guests":
        guests = read_guests(doc)
        guest, household = ENTITIES[kind]
        meta, body = (
            guests.meta,
            {
                "guests": _records(guests.guests, guest),
                "households": _records(guests.households, household),
                "menu": {f.name: to_crdt(getattr(guests.menu, f.name)) for f in MENU},
            },
        )
        found = guests.problems
    elif kind == "seating":
        seating = read_seating(doc)
        tables, assignments = ENTITIES[kind]
        meta, body = (
            seating.meta,
            {
                "tables": _records(seating.tables, tables),
                "assignments": _records(seating.assignments, assignments),
            },
        )
        found = seating.problems
    elif kind == "timeline":
        timeline = read_timeline(doc)
        profile = {f.name: to_crdt(getattr(timeline.profile, f.name)) for f in PROFILE}
        meta, body = (
            timeline.meta,
            {
                "items": _records(timeline.items, ENTITIES[kind][0]),
                "profile": profile,
                VENDORS_ROOT: _records(timeline.vendors, ENTITIES[kind][1]),
            },
        )
        found = timeline.problems
    elif kind == "tasks":
        tasks = read_tasks(doc)
        meta, body = tasks.meta, {"tasks": _records(tasks.tasks, ENTITIES[kind][0])}
        found = tasks.problems
    else:
        budget = read_budget(doc)
        categories, payments = ENTITIES[kind]
        meta, body = (
            budget.meta,
            {
                "currency": budget.currency,
                "total": budget.total,
                "categories": _records(budget.categories, categories),
                "payments": _records(budget.payments, payments),
            },
        )
        found = budget.problems
    view = {"kind": kind, "schema": SCHEMA_VERSION, "wedding_id": meta.wedding_id, **body}
    other, problems = _other(doc, kind, rich)
    if kind == "timeline":
        shown = other.get(RUN_OF_SHOW)
        is_xml = isinstance(shown, dict) and "prosemirror" in shown
        view[RUN_OF_SHOW] = other.pop(RUN_OF_SHOW) if is_xml else None
    problems = [{"path": p.path, "message": p.message} for p in found] + problems
    if other:
        view["other"] = other
    if problems:
        view["problems"] = problems
    return view


def _other(doc: Doc[Any], kind: str, rich: bool) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """What ``doc`` holds beside the schema: unknown roots, and the list part of known ones."""
    known = (META, *ROOTS[kind])
    names = sorted(str(name) for name in doc.keys())
    unknown = [name for name in names if name not in known]
    # Known roots are typed as maps by the readers above: reading their list part through
    # another wrapper leaves them as they are.
    mixed = [name for name in known if name in names and len(doc.get(name, type=Array))]
    other: dict[str, Any] = {}
    problems: list[dict[str, str]] = []
    if not unknown and not mixed:
        return other, problems
    # A root of no type would take the type it is first read as: read a copy.
    scratch: Doc[Any] = Doc()
    scratch.apply_update(doc.get_update())
    for name in known:
        scratch.get(name, type=Map)
    for name in names:
        if name not in unknown and name not in mixed:
            continue
        try:
            if name in mixed:
                other[name], shape = list_part(scratch, name, rich=rich)
                problems.append(
                    {
                        "path": name,
                        "message": f"Root {name!r} holds list items ({shape}) besides its"
                        " entries; they are shown under other.",
                    }
                )
            else:
                other[name], shape = root_view(scratch, name, rich=rich)
                if shape == "map+list":
                    other[f"{name}#list"], _ = list_part(scratch, name, rich=rich)
                    problems.append(
                        {
                            "path": name,
                            "message": f"Root {name!r} holds list items besides its entries;"
                            f" they are shown under other as {name + '#list'!r}.",
                        }
                    )
        except Exception as exc:  # the view never fails for what a client stored
            log.warning(
                "root %r of a %s document could not be read (%s)", name, kind, type(exc).__name__
            )
            problems.append({"path": name, "message": f"Root {name!r} could not be read."})
    return other, problems


@dataclass
class _Parsed:
    wedding_id: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] | None = None
    """The timeline's profile; ``None``: the data has none (an export from before profiles),
    and the document's is left as it is."""
    menu: dict[str, Any] | None = None
    """The guests' menu; ``None``: the data has none (an export from before menus)."""
    collections: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)


def _object(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise DocumentError(f"must be an object, got {shown(value)}", path)
    for key in value:
        if not isinstance(key, str):
            raise DocumentError(f"keys must be strings, got {shown(key)}", path)
    return value


def _fields(fields: tuple[Field, ...], data: Mapping[str, Any], path: str) -> dict[str, Any]:
    names = [f.name for f in fields]
    for key in data:
        if key not in names:
            raise DocumentError(f"unknown field; expected {', '.join(names)}", f"{path}/{key}")
    values: dict[str, Any] = {}
    for f in fields:
        where = f"{path}/{f.name}" if path else f.name
        value = data.get(f.name)
        if value is None:
            if f.required:
                raise DocumentError("is required", where)
            if f.name in data and not f.nullable:
                raise DocumentError("must not be null", where)
            values[f.name] = f.default
        else:
            values[f.name] = f.check(value, where)
    return values


def _parse(kind: str, data: object) -> _Parsed:
    top = _object(data, "")
    allowed = [*_HEADER, *_READ_ONLY, *(["currency", "total"] if kind == "budget" else [])]
    allowed += ["profile"] if kind == "timeline" else []
    allowed += ["menu"] if kind == "guests" else []
    allowed += [entity.collection for entity in ENTITIES[kind]]
    for key in top:
        if key not in allowed:
            raise DocumentError(f"unknown key; expected {', '.join(allowed)}", key)
    if top.get("kind") != kind:
        raise DocumentError(f"must be {kind!r}, got {shown(top.get('kind'))}", "kind")
    if "schema" in top and (isinstance(top["schema"], bool) or top["schema"] != SCHEMA_VERSION):
        raise DocumentError(f"must be {SCHEMA_VERSION}, got {shown(top['schema'])}", "schema")
    parsed = _Parsed(wedding_id=top.get("wedding_id"))
    if kind == "budget":
        settings = {key: top[key] for key in ("currency", "total") if key in top}
        parsed.settings = _fields(BUDGET_SETTINGS, settings, "")
    if kind == "timeline" and top.get("profile") is not None:
        parsed.profile = _fields(PROFILE, _object(top["profile"], "profile"), "profile")
    if kind == "guests" and top.get("menu") is not None:
        parsed.menu = _fields(MENU, _object(top["menu"], "menu"), "menu")
    for entity in ENTITIES[kind]:
        name = entity.collection
        if name not in top:
            if name in _LATER_COLLECTIONS:
                continue  # an export from before it: the document's are left as they are
            raise DocumentError("is required", name)
        entries: dict[str, dict[str, Any]] = {}
        for entry_id, entry in _object(top[name], name).items():
            path = f"{name}/{entry_id}"
            try:
                identifier(entry_id)
            except DocumentError as exc:
                raise DocumentError(f"id {exc.message}", path) from None
            entries[entry_id] = _fields(entity.fields, _object(entry, path), path)
            if entity is PAYMENT:
                _check_paid(entries[entry_id], path)
        parsed.collections[name] = entries
    return parsed


def _check_paid(fields: Mapping[str, Any], path: str) -> None:
    """A paid payment (no status, or ``paid``) needs the date it was paid: the reader
    leaves one without it out, so an import must not write it."""
    if payment_status(fields.get("status")) == "paid" and fields.get("date") is None:
        raise DocumentError("a paid payment needs the date it was paid", f"{path}/date")


def import_json(doc: Doc[Any], kind: str, data: object, *, origin: Any = None) -> bool:
    """Make ``doc`` hold exactly ``data`` (a :func:`to_json` export of ``kind``), in one
    transaction that writes only what differs. Returns whether anything changed.

    Raises :class:`DocumentError` naming the path of the first bad value, or when the data
    belongs to another wedding than the document; nothing changes then.
    """
    _check_kind(kind)
    parsed = _parse(kind, data)
    meta: dict[str, Any] = {}
    if parsed.wedding_id is not None:
        try:
            meta = meta_changes(doc, kind, parsed.wedding_id)
        except DocumentError as exc:  # name the key of the data: meta/kind -> kind
            raise DocumentError(exc.message, exc.path.removeprefix("meta/")) from None
    changed = False
    with doc.transaction(origin=origin):
        if meta:
            write(root(doc, META), meta)
            changed = True
        if kind == "budget":
            settings = changes(root(doc, "settings"), BUDGET_SETTINGS, parsed.settings)
            write(root(doc, "settings"), settings)
            changed |= bool(settings)
        if parsed.profile is not None:
            profile = changes(root(doc, "profile"), PROFILE, parsed.profile)
            write(root(doc, "profile"), profile)
            changed |= bool(profile)
        if parsed.menu is not None:
            menu = changes(root(doc, "menu"), MENU, parsed.menu)
            write(root(doc, "menu"), menu)
            changed |= bool(menu)
        for entity in ENTITIES[kind]:
            entries = parsed.collections.get(entity.collection)
            if entries is not None:
                changed |= _replace(root(doc, entity.collection), entity, entries)
    return changed


def _replace(collection: Map[Any], entity: Entity, entries: dict[str, dict[str, Any]]) -> bool:
    changed = False
    for stale in sorted(set(collection.keys()) - set(entries)):
        del collection[stale]
        changed = True
    for entry_id, values in entries.items():
        stored = collection.get(entry_id)
        if entity is ASSIGNMENT:
            value = {name: item for name, item in values.items() if item is not None}
            if plain(stored) != value:
                collection[entry_id] = value
                changed = True
        elif isinstance(stored, Map):
            found = changes(stored, entity.fields, values)
            write(stored, found)
            changed |= bool(found)
        else:
            collection[entry_id] = new_entry(entity, values)
            changed = True
    return changed


def from_json(kind: str, data: object) -> Doc[Any]:
    """A new document holding ``data`` (see :func:`import_json`)."""
    doc: Doc[Any] = Doc()
    import_json(doc, kind, data)
    return doc
