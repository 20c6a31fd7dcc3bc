"""What a seating operation reads: the one table, the one guest, who sits at one table.

:func:`~crdt_server.documents.schema.read_seating` and
:func:`~crdt_server.documents.schema.read_guests` read and check every entry of a
document; an operation that seats one guest needs a handful of them. These readers give the
same records as those whole reads would for the entries asked about (an invalid entry reads
as missing), at a cost that follows what they touch: the one entry, or, for who sits at a
table, one cheap look at each assignment's stored ``table_id`` and a full read only of the
ones that name the table. Whose plus-one is unnamed needs the guests who name a host: the
guest list is scanned only when a guest concerned brings a plus-one at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pycrdt import Doc, Map

from .model import ASSIGNMENT, GUEST, TABLE, Entity
from .schema import Assignment, Guest, Table, read_entry, root

__all__ = ["guest_entry", "seated_at", "table_entry", "unnamed_among"]

R = TypeVar("R")


def table_entry(doc: Doc[Any], table_id: str) -> Table | None:
    """The table ``table_id`` of a seating document, ``None`` if missing or invalid."""
    return _entry(doc, TABLE, Table, table_id)


def guest_entry(doc: Doc[Any], guest_id: str) -> Guest | None:
    """The guest ``guest_id`` of a guests document, ``None`` if missing or invalid."""
    return _entry(doc, GUEST, Guest, guest_id)


def _entry(doc: Doc[Any], entity: Entity, record: Callable[..., R], key: str) -> R | None:
    entries = root(doc, entity.collection)
    return read_entry(entity, record, key, entries[key], []) if key in entries else None


def _stored_field(value: object, name: str) -> object:
    """A field of a stored entry as stored, without reading the rest of it, where it is a
    plain value (as a valid one reads); ``...`` when a full read must say (an entry held as
    an XML element, a field held in a shared type)."""
    stored = value.get(name) if isinstance(value, dict | Map) else ...
    if stored is None or isinstance(stored, str | int | float | bool):
        return stored
    return ...


def seated_at(doc: Doc[Any], table_id: str) -> list[Assignment]:
    """The valid assignments of a seating document to table ``table_id``, in guest id
    order: what ``read_seating(doc).assignments`` holds for that table."""
    assignments = root(doc, ASSIGNMENT.collection)
    found: list[Assignment] = []
    for key in sorted(assignments.keys()):
        value = assignments[key]
        stored = _stored_field(value, "table_id")
        if stored is not ... and stored != table_id:
            continue  # a valid entry's table_id reads as stored: another table, or invalid
        assignment: Assignment | None = read_entry(ASSIGNMENT, Assignment, key, value, [])
        if assignment is not None and assignment.table_id == table_id:
            found.append(assignment)
    return found


def unnamed_among(doc: Doc[Any] | None, guest_ids: Iterable[str]) -> set[str]:
    """Those of ``guest_ids`` who bring an unnamed plus-one (``plus_one``, and no guest of
    the list names them as host): what ``unnamed_plus_ones(read_guests(doc))`` holds of
    them. Reads those guests, and the whole list only if one of them brings a plus-one."""
    if doc is None:
        return set()
    bringing: set[str] = set()
    for guest_id in set(guest_ids):
        guest = guest_entry(doc, guest_id)
        if guest is not None and guest.plus_one:
            bringing.add(guest_id)
    if not bringing:
        return bringing
    guests = root(doc, GUEST.collection)
    for key in guests.keys():
        value = guests[key]
        host = _stored_field(value, "plus_one_of")
        if host is not ... and host not in bringing:
            continue
        naming: Guest | None = read_entry(GUEST, Guest, key, value, [])
        if naming is not None and naming.plus_one_of in bringing and naming.plus_one_of != key:
            bringing.discard(naming.plus_one_of)  # named: they sit as a guest of their own
    return bringing
