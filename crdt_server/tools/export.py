"""The one export format of a wedding, shared by ``GET /api/weddings/{id}/export`` and
``crdt-server export`` / ``crdt-server import``.

Version 1, one JSON object::

    {"format": "crdt-server-wedding", "version": 1,
     "wedding": "w42", "exported_at": "2026-11-23T10:00:00Z",
     "documents": {"guests": {"update": BASE64, "held": [BASE64, ...], "json": {...}}, ...},
     "history": [{"doc": "guests", "seq": 7, "origin": "ws:ada", "created_at": 1795000000.5,
                  "time": "2026-11-17T08:26:40Z", "size": 120}, ...],
     "events": [{"seq": 1, "type": "guest.rsvp_changed", "doc": "guests",
                 "actor": {"sub": "ada", "role": "planner"}, "priority": "normal",
                 "at": "2026-11-17T08:26:40.500Z", "created_at": 1795000000.5,
                 "data": {...}}, ...]}

- ``documents`` holds each of the four documents the wedding has stored: ``update`` is the
  document as one Yjs v1 update (what a joiner receives), ``held`` the updates still waiting
  on content the server never received (kept, so nothing accepted is lost), ``json`` the
  document as the HTTP API reads it (for people and other tools; import ignores it after
  checking that it matches the update).
- ``history`` is who changed which document when, oldest first (``seq`` is the exporting
  store's own numbering; an import renumbers).
- ``events`` is the wedding's event stream, oldest first, each event as the event routes
  show it (``at`` RFC 3339) plus ``created_at`` (Unix seconds, exact); an import keeps
  each event's type, document, actor, priority, time and data and renumbers them. An
  event only some people may see (a private thread's) carries ``"audience": [sub, ...]``,
  kept by an import so that it stays hidden from everyone else.

- ``threads`` (the thread feature's section, ``crdt_server.features.threads.export``):
  members, and threads with their participants, messages and read marks.

Growing the format: sections such as ``threads`` are added as new top-level values without
a new version; a reader refuses a file carrying a non-empty section it cannot store, so an
import never silently drops data. A change to an existing field takes version 2.

Sections: the documents, history and events are the stores' own; any other section belongs
to a feature and comes in as a :class:`Section` (the data tools may not import features, so
whoever assembles them, ``crdt_server.cli`` or the HTTP edge, passes them in). A section
exports itself from a store, and turns its part of a file into :class:`storage.FeatureRow`
rows (refusing bad input with :class:`ExportError` naming the field), which the import
writes in the same transaction as the documents and events: all of the wedding or none.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from crdt_server import clock
from crdt_server.codec.updates import UpdateError, inspect_update
from crdt_server.core.crdt import crdt_call, replay
from crdt_server.documents import DOCUMENT_KINDS, DocumentError, to_json
from crdt_server.documents.shapes import MAX_DEPTH, nests_deeper_than
from crdt_server.errors import ExportError
from crdt_server.names import (
    CORE_EVENT_NAMESPACES,
    PRIORITIES,
    ROOM_KINDS,
    event_problem,
    valid_wedding_id,
)
from crdt_server.storage import (
    DocumentStore,
    FeatureRow,
    Gateway,
    HistoryEntry,
    MovedDocument,
    NewEvent,
    Schema,
    Store,
    StoredEvent,
    audience_of,
)
from crdt_server.storage.gateway import Tx
from crdt_server.times import rfc3339

__all__ = [
    "FORMAT",
    "VERSION",
    "ExportError",
    "Section",
    "WeddingExport",
    "EventSteps",
    "EventTables",
    "export_wedding",
    "import_wedding",
    "parse_export",
]

FORMAT = "crdt-server-wedding"
VERSION = 1
IMPORT_ORIGIN = "import"
"""The history origin of the rows an import writes."""

_SECTIONS = frozenset(
    {"format", "version", "wedding", "exported_at", "documents", "history", "events"}
)
_ALL_HISTORY = 2**62
"""A history limit no store reaches."""
_EVENT_PAGE = 500


EventSteps = Callable[[Sequence[NewEvent]], Tx[Any]]
"""The events feature's step that numbers and stores wedding events in a transaction
(``crdt_server.features.events.store_events``)."""


@dataclass(frozen=True, slots=True)
class EventTables:
    """The events feature's part of export and import (``crdt_server.features.events``
    gives it; passed in, as the sections are: the tools import no feature)."""

    schema: Schema
    """Its tables, installed on the target store before an import."""
    page: Callable[[Gateway, str, int, int], Awaitable[Sequence[StoredEvent]]]
    """``(gateway, wedding, after, limit)``: the wedding's events above seq ``after``,
    oldest first, at most ``limit`` (every audience)."""
    store: EventSteps
    """The step that numbers and stores an imported wedding's events in the import's own
    transaction."""


class Section(Protocol):
    """A feature's part of the export (see the module docstring)."""

    @property
    def name(self) -> str:
        """Its top-level key (``threads``)."""
        ...

    @property
    def schemas(self) -> Sequence[Schema]:
        """The tables its rows go to (installed on the target store before an import):
        the feature's, and those of the features it builds on that its section holds."""
        ...

    async def export(self, store: DocumentStore, wedding: str) -> Any:
        """The wedding's section as JSON values (committed content)."""
        ...

    def rows(self, data: object, wedding: str) -> list[FeatureRow]:
        """The section of a file as rows of ``wedding``; raises :class:`ExportError`."""
        ...


@dataclass(frozen=True, slots=True)
class ExportedDocument:
    update: bytes
    held: list[bytes]
    json: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ExportedEvent:
    """One event of the wedding's stream (``data`` is compact JSON text)."""

    seq: int
    type: str
    doc: str | None
    sub: str
    role: str
    priority: str
    at: float
    data: str
    audience: str | None = None
    """Who alone may see it (a thread's participants), as :func:`storage.audience_of`."""

    def to_json(self) -> dict[str, Any]:
        shown = {
            "seq": self.seq,
            "type": self.type,
            "doc": self.doc,
            "actor": {"sub": self.sub, "role": self.role},
            "priority": self.priority,
            "at": rfc3339(self.at, "compact"),
            "created_at": self.at,
            "data": json.loads(self.data),
        }
        if self.audience is not None:
            shown["audience"] = json.loads(self.audience)
        return shown


@dataclass(frozen=True, slots=True)
class WeddingExport:
    """One wedding as the format carries it (see the module docstring)."""

    wedding: str
    documents: dict[str, ExportedDocument]
    history: list[tuple[str, HistoryEntry]]
    """(document kind, entry), oldest first."""
    events: list[ExportedEvent] = field(default_factory=list)
    """Oldest first."""
    exported_at: float = 0.0
    sections: dict[str, Any] = field(default_factory=dict)
    """Features' sections by name, as JSON values (checked by their :class:`Section`)."""

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the format (ready for ``json.dumps``)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "wedding": self.wedding,
            "exported_at": rfc3339(self.exported_at, "compact"),
            "documents": {
                kind: {
                    "update": _b64(document.update),
                    "held": [_b64(update) for update in document.held],
                    "json": document.json,
                }
                for kind, document in self.documents.items()
            },
            "history": [
                {
                    "doc": kind,
                    "seq": entry.seq,
                    "origin": entry.origin,
                    "created_at": entry.created_at,
                    "time": rfc3339(entry.created_at, "compact"),
                    "size": entry.size,
                }
                for kind, entry in self.history
            ],
            "events": [event.to_json() for event in self.events],
            **self.sections,
        }


async def export_wedding(
    store: Store,
    wedding_id: str,
    sections: Sequence[Section] = (),
    *,
    events: EventTables | None,
) -> WeddingExport | None:
    """The wedding's documents, history, events and ``sections`` as the store holds them
    (committed content only), or ``None`` if it has no stored document.

    Raises :class:`ExportError` if a stored row cannot be read (``crdt-server check`` says
    more): an export never leaves out content without saying so.
    """
    if not valid_wedding_id(wedding_id):
        raise ExportError("wedding", f"{wedding_id!r} is not a wedding id")
    documents: dict[str, ExportedDocument] = {}
    history: list[tuple[str, HistoryEntry]] = []
    for kind in DOCUMENT_KINDS:
        name = f"{wedding_id}/{kind}"
        stored = await store.load(name)
        if stored is None:
            continue
        # Replaying a long log is CPU work: off the event loop (each Doc stays on its thread).
        documents[kind] = await asyncio.to_thread(_export_document, name, kind, stored.updates)
        entries = await store.history(name, _ALL_HISTORY)
        history += [(kind, entry) for entry in entries]
    if not documents:
        return None
    history.sort(key=lambda item: item[1].seq)
    stream: list[ExportedEvent] = []
    if events is not None:
        await store.install(events.schema)  # a store no server ran on has none of them yet
    while events is not None:
        after = stream[-1].seq if stream else 0
        page = await events.page(Gateway.of(store), wedding_id, after, _EVENT_PAGE)
        stream += [
            ExportedEvent(e.seq, e.type, e.doc, e.sub, e.role, e.priority, e.at, e.data, e.audience)
            for e in page
        ]
        if len(page) < _EVENT_PAGE:
            break
    extra = {section.name: await section.export(store, wedding_id) for section in sections}
    return WeddingExport(wedding_id, documents, history, stream, clock.now(), extra)


def _export_document(name: str, kind: str, updates: list[bytes]) -> ExportedDocument:
    document, unreadable = replay(updates)
    if unreadable:
        raise ExportError(
            f"documents.{kind}",
            f"{unreadable} stored rows of {name} cannot be read (run crdt-server check)",
        )
    return ExportedDocument(
        update=crdt_call(document.doc.get_update),
        held=document.held_updates(),
        json=to_json(document.doc, kind),
    )


def parse_export(
    data: object,
    sections: Sequence[Section] = (),
    namespaces: Sequence[str] = CORE_EVENT_NAMESPACES,
) -> WeddingExport:
    """Check a decoded export file completely; raises :class:`ExportError` naming the field.

    Every update must be a well-formed Yjs update, its content nested at most
    :data:`documents.shapes.MAX_DEPTH` levels (as deep as the server's views show), and
    each document's ``json`` must be what its updates show (a file edited by hand is
    refused rather than half believed); events follow the event routes' rules
    (:func:`crdt_server.names.event_problem`). A
    section is read by the one of ``sections`` of its name; a non-empty section none of
    them reads is refused.
    """
    if not isinstance(data, dict):
        raise ExportError("(file)", "an export is a JSON object")
    if data.get("format") != FORMAT:
        raise ExportError("format", f"must be {FORMAT!r}")
    version = data.get("version")
    if type(version) is not int or version != VERSION:
        raise ExportError("version", f"this server reads version {VERSION}, not {version!r}")
    readers = {section.name: section for section in sections}
    for name in sorted(set(data) - _SECTIONS - set(readers)):
        if data[name] not in ([], {}, None):
            raise ExportError(name, "this server cannot store this section; nothing imported")
    wedding = data.get("wedding")
    if not isinstance(wedding, str) or not valid_wedding_id(wedding):
        raise ExportError("wedding", "must be a wedding id (1 to 64 of A-Z a-z 0-9 _ -)")
    extra: dict[str, Any] = {}
    for name, section in readers.items():
        if data.get(name) is not None:
            section.rows(data[name], wedding)  # refuses a bad section before anything is opened
            extra[name] = data[name]
    raw_docs = data.get("documents")
    if not isinstance(raw_docs, dict) or not raw_docs:
        raise ExportError("documents", "must be an object with at least one document")
    documents: dict[str, ExportedDocument] = {}
    for kind, raw in raw_docs.items():
        documents[kind] = _parse_document(kind, raw)
    history = [_parse_entry(i, raw, documents) for i, raw in enumerate(_list(data, "history"))]
    kinds = tuple(namespaces)
    events = [_parse_event(i, raw, kinds) for i, raw in enumerate(_list(data, "events"))]
    return WeddingExport(wedding, documents, history, events, 0.0, extra)


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ExportError(key, "must be a list")
    return value


def _parse_document(kind: str, raw: object) -> ExportedDocument:
    where = f"documents.{kind}"
    if kind not in DOCUMENT_KINDS:
        raise ExportError(where, f"not one of {', '.join(DOCUMENT_KINDS)}")
    if not isinstance(raw, dict):
        raise ExportError(where, "must be an object")
    update = _update(raw.get("update"), f"{where}.update")
    held_raw = raw.get("held", [])
    if not isinstance(held_raw, list):
        raise ExportError(f"{where}.held", "must be a list")
    held = [_update(value, f"{where}.held[{i}]") for i, value in enumerate(held_raw)]
    document, unreadable = replay([update, *held])
    if unreadable:
        raise ExportError(where, "its updates cannot be integrated")
    if nests_deeper_than(document.doc, MAX_DEPTH):
        raise ExportError(where, f"its content nests deeper than {MAX_DEPTH} levels")
    try:
        shown = to_json(document.doc, kind)
    except DocumentError as exc:
        raise ExportError(where, f"not a valid {kind} document: {exc}") from exc
    if "json" in raw and _comparable(kind, raw["json"], shown) != raw["json"]:
        raise ExportError(f"{where}.json", "does not match the document's update")
    return ExportedDocument(update, held, shown)


_ADDED_ROOTS: dict[str, tuple[str, ...]] = {
    "timeline": ("profile", "vendors"),
    "guests": ("households", "menu"),
}
"""Sections each document's view gained after the first format (additive): a file without
one was written before it."""
_ADDED_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "guests": ("guests", ("household_id", "plus_one_of")),
    "timeline": ("items", ("vendor_id", "follows", "fixed")),
    "budget": ("payments", ("vendor_id",)),
}
"""Entry fields each view gained: (collection, fields); an entry of a file without them was
written before them (they can only be empty there)."""


def _comparable(kind: str, given: object, shown: dict[str, Any]) -> dict[str, Any]:
    """``shown`` as the release that wrote ``given`` showed it: a timeline's view had no
    ``profile`` before profiles, a guests view no ``households``, ``menu`` nor the guests'
    ``household_id`` and ``plus_one_of`` (a root of that name a client wrote was shown under
    ``other``, which this view no longer does), so a file without one is compared without
    it (the format's additive fields are read from files that lack them)."""
    if not isinstance(given, dict):
        return shown
    before = dict(shown)
    for name in _ADDED_ROOTS.get(kind, ()):
        if name in given:
            continue
        before.pop(name, None)
        problems = [
            p
            for p in before.get("problems", [])
            if not str(p.get("path", "")).startswith(f"{kind}/{name}")
        ]
        if problems:
            before["problems"] = problems
        else:
            before.pop("problems", None)
        given_other = given.get("other")
        if isinstance(given_other, dict) and name in given_other:
            before["other"] = {**before.get("other", {}), name: given_other[name]}
    added = _ADDED_FIELDS.get(kind)
    given_entries = given.get(added[0]) if added else None
    if added and isinstance(given_entries, dict) and isinstance(before.get(added[0]), dict):
        collection, fields = added
        entries = {}
        for entry_id, entry in before[collection].items():
            old = given_entries.get(entry_id)
            if isinstance(old, dict) and isinstance(entry, dict):
                entry = {k: v for k, v in entry.items() if k in old or k not in fields}
            entries[entry_id] = entry
        before[collection] = entries
    return before


def _update(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise ExportError(where, "must be base64 text")
    try:
        data = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ExportError(where, "is not valid base64") from exc
    try:
        inspect_update(data)
    except UpdateError as exc:
        raise ExportError(where, f"not a Yjs update: {exc}") from exc
    return data


def _parse_entry(
    index: int, raw: object, documents: Mapping[str, ExportedDocument]
) -> tuple[str, HistoryEntry]:
    where = f"history[{index}]"
    if not isinstance(raw, dict):
        raise ExportError(where, "must be an object")
    kind, origin = raw.get("doc"), raw.get("origin")
    created_at, size, seq = raw.get("created_at"), raw.get("size"), raw.get("seq", 0)
    if not isinstance(kind, str) or kind not in documents:
        raise ExportError(f"{where}.doc", "must name one of the file's documents")
    if not isinstance(origin, str) or not 0 < len(origin) <= 1024:
        raise ExportError(f"{where}.origin", "must be a string of 1 to 1024 characters")
    try:
        origin.encode()
    except UnicodeEncodeError as exc:
        raise ExportError(f"{where}.origin", "must be valid text") from exc
    if (
        isinstance(created_at, bool)
        or not isinstance(created_at, int | float)
        or not math.isfinite(created_at)
        or not 0 <= created_at < 253402300800  # year 10000
    ):
        raise ExportError(f"{where}.created_at", "must be Unix seconds")
    if type(size) is not int or not 0 <= size < 2**31:
        raise ExportError(f"{where}.size", "must be a byte count")
    if type(seq) is not int:
        raise ExportError(f"{where}.seq", "must be an integer")
    return kind, HistoryEntry(seq, kind, origin, float(created_at), size)


def _parse_event(index: int, raw: object, namespaces: tuple[str, ...]) -> ExportedEvent:
    where = f"events[{index}]"
    if not isinstance(raw, dict):
        raise ExportError(where, "must be an object")
    kind, doc, actor = raw.get("type"), raw.get("doc"), raw.get("actor", {})
    priority, created_at = raw.get("priority", "normal"), raw.get("created_at")
    if doc is not None and doc not in ROOM_KINDS:
        raise ExportError(f"{where}.doc", f"must be null or one of {', '.join(ROOM_KINDS)}")
    if not isinstance(actor, dict):
        raise ExportError(f"{where}.actor", "must be an object")
    sub, role = actor.get("sub", ""), actor.get("role", "")
    for name, value in (("sub", sub), ("role", role)):
        if not isinstance(value, str) or len(value) > 1024 or not value.isprintable():
            raise ExportError(f"{where}.actor.{name}", "must be a string of at most 1024")
    if priority not in PRIORITIES:
        raise ExportError(f"{where}.priority", f"must be one of {', '.join(PRIORITIES)}")
    if (
        isinstance(created_at, bool)
        or not isinstance(created_at, int | float)
        or not math.isfinite(created_at)
        or not 0 < created_at < 253402300800  # year 10000
    ):
        raise ExportError(f"{where}.created_at", "must be Unix seconds")
    if not isinstance(raw.get("data"), dict):
        raise ExportError(f"{where}.data", "must be a JSON object")
    try:
        data = json.dumps(raw["data"], separators=(",", ":"), allow_nan=False)
    except (ValueError, RecursionError) as exc:
        raise ExportError(f"{where}.data", "must be JSON") from exc
    # The event routes' rules (a custom event's type and size), and the types the server makes.
    problem = event_problem(kind, data, namespaces)
    if problem is not None:
        raise ExportError(f"{where}.{problem[0]}", problem[1])
    seq = raw.get("seq", 0)
    if type(seq) is not int:
        raise ExportError(f"{where}.seq", "must be an integer")
    audience = raw.get("audience")
    if audience is not None:
        if not isinstance(audience, list) or not all(
            isinstance(s, str) and 0 < len(s) <= 1024 and s.isprintable() for s in audience
        ):
            raise ExportError(f"{where}.audience", "must be null or a list of subs")
        audience = audience_of(audience)
    return ExportedEvent(
        seq, str(kind), doc, sub, role, str(priority), float(created_at), data, audience
    )


async def import_wedding(
    store: Store,
    export: WeddingExport,
    wedding_id: str | None = None,
    sections: Sequence[Section] = (),
    *,
    events: EventTables | None,
) -> list[str]:
    """Write an exported wedding into ``store`` (under ``wedding_id``, else its own id), its
    documents, history, events and sections (each by the one of ``sections`` of its name),
    in one transaction. Returns the stored document names. ``events`` is the events
    feature's part (:class:`EventTables`); without it, a file with events is refused
    (:class:`ExportError`).

    Raises :class:`storage.StoreError`, writing nothing, if the store already has any of
    those documents: an import never merges into or overwrites a wedding.
    """
    target = wedding_id or export.wedding
    if not valid_wedding_id(target):
        raise ExportError("wedding", f"{target!r} is not a wedding id")
    moved = [
        MovedDocument(
            doc=f"{target}/{kind}",
            updates=[document.update, *document.held],
            history=[entry for k, entry in export.history if k == kind],
        )
        for kind, document in export.documents.items()
    ]
    stream = [
        NewEvent(target, e.type, e.data, e.doc, e.sub, e.role, e.priority, e.at, e.audience)
        for e in export.events
    ]
    steps: list[Tx[Any]] = []
    if stream:
        if events is None:
            raise ExportError("events", "this server keeps no events; nothing imported")
        await store.install(events.schema)
        steps.append(events.store(stream))
    readers = {section.name: section for section in sections}
    rows: list[FeatureRow] = []
    for name, data in export.sections.items():
        section = readers.get(name)
        if section is None:
            if data in ([], {}, None):
                continue
            raise ExportError(name, "this server cannot store this section; nothing imported")
        for schema in section.schemas:
            await store.install(schema)
        rows += section.rows(data, target)
    await store.put_documents(moved, IMPORT_ORIGIN, rows, steps)
    return [m.doc for m in moved]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
