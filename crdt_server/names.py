"""Names checked against a strict allowlist before anything else: rooms
(``{wedding_id}/{doc}``, and the server's projections ``{wedding_id}/{doc}@{key}``, which
no client names: see :func:`projection_name`) and event types (``{namespace}.{name}``), with
the size of an event's data (the event routes and ``crdt-server import`` apply the same
rules); the one priority scale of the API (:data:`Priority`); and how a name people typed
stands in an email header (:func:`header_name`: every feature that puts a person's or a
couple's name in a ``Subject``, and the notifications feature's display names)."""

from __future__ import annotations

import re
from typing import Final, Literal, get_args

from crdt_server.documents import DOCUMENT_KINDS, FINDINGS_ROOM
from crdt_server.documents.model import WEDDING_ID_PATTERN

__all__ = [
    "CONFLICTS",
    "CUSTOM_EVENT_NAMESPACES",
    "RESERVED_EVENT_TYPES",
    "CORE_EVENT_NAMESPACES",
    "LANES",
    "Lane",
    "MAX_CUSTOM_EVENT_BYTES",
    "MAX_EVENT_BYTES",
    "LANE_PRIORITIES",
    "PRIORITIES",
    "RANK",
    "Priority",
    "ROOM_KINDS",
    "WEDDING_ID_PATTERN",
    "document_name",
    "header_name",
    "at_least",
    "event_problem",
    "lane_of",
    "projection_name",
    "projection_of",
    "valid_wedding_id",
]

Priority = Literal["low", "normal", "urgent", "emergency"]
"""The one priority scale of the API (custom events, thread messages, notifications,
exports), lowest first, defined here and nowhere else."""

PRIORITIES: Final[tuple[Priority, ...]] = get_args(Priority)
"""The scale, lowest first."""

RANK: Final[dict[str, int]] = {p: i for i, p in enumerate(PRIORITIES)}
"""Each priority's place on the scale (higher is more pressing)."""


def at_least(priority: str, floor: Priority) -> bool:
    """Whether ``priority`` (a stored value; an unknown one ranks as ``normal``) is
    ``floor`` or above."""
    return RANK.get(priority, RANK["normal"]) >= RANK[floor]


Lane = Literal["urgent", "normal"]
"""A delivery lane: ``urgent`` carries the urgent and emergency events (and notices) ahead
of any backlog, on a cursor of its own; ``normal`` carries everything, in order (so an
urgent one comes twice, once on each lane, with the same id: receivers drop the repeat)."""

LANES: Final[tuple[Lane, ...]] = ("urgent", "normal")
"""The lanes, in the order they are served."""

LANE_PRIORITIES: Final[dict[Lane, tuple[Priority, ...]]] = {
    "urgent": ("urgent", "emergency"),
    "normal": PRIORITIES,
}
"""The priorities each lane carries."""


def lane_of(priority: str) -> Lane:
    """The lane a priority goes ahead on (``urgent`` from ``urgent`` up; every priority
    also goes on the ``normal`` lane)."""
    return "urgent" if at_least(priority, "urgent") else "normal"


CONFLICTS = FINDINGS_ROOM
"""The read-only room the server keeps up to date with a wedding's conflicts."""
ROOM_KINDS: tuple[str, ...] = (*DOCUMENT_KINDS, CONFLICTS)


def valid_wedding_id(wedding_id: str) -> bool:
    return WEDDING_ID_PATTERN.fullmatch(wedding_id) is not None


def document_name(wedding_id: str, doc: str) -> str | None:
    """The room name for a wedding's document, or ``None`` if either part is not allowed."""
    if not valid_wedding_id(wedding_id) or doc not in ROOM_KINDS:
        return None
    return f"{wedding_id}/{doc}"


PROJECTION_SEPARATOR = "@"
_ROLE_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def projection_name(wedding_id: str, doc: str, role: str) -> str | None:
    """The room of ``doc``'s projection named ``role`` (``w42/guests@names_meals``: the
    document without the fields its readers may not read, named by what it holds, written
    by the server only; an earlier release named them by role, ``w42/guests@vendor``), or
    ``None`` if a part is not allowed. Clients never name it: the server picks it for them
    (:func:`document_name` refuses it)."""
    name = document_name(wedding_id, doc)
    if name is None or doc == CONFLICTS or _ROLE_PATTERN.fullmatch(role) is None:
        return None
    return f"{name}{PROJECTION_SEPARATOR}{role}"


def projection_of(name: str) -> tuple[str, str, str] | None:
    """``(wedding_id, doc, role)`` of a projection's room name, else ``None``."""
    room, sep, role = name.partition(PROJECTION_SEPARATOR)
    wedding_id, _, doc = room.partition("/")
    if not sep or projection_name(wedding_id, doc, role) != name:
        return None
    return wedding_id, doc, role


HEADER_UNSAFE: Final = frozenset('<>@,;:"')
"""What a name loses in an email header: the characters that would make an address, a list
of them or a quoted string of it."""


def header_name(value: str, limit: int = 64) -> str:
    """A name people typed (a person's, a couple's) as it may stand in an email header, as
    a display name or inside a ``Subject``: control characters (line breaks included: no
    header can be injected) and ``<>@,;:"`` removed, runs of spaces folded, at most
    ``limit`` characters."""
    kept = (
        " " if ch.isspace() else ch
        for ch in value
        if ch.isspace() or (ch.isprintable() and ch not in HEADER_UNSAFE)
    )
    return " ".join("".join(kept).split())[:limit].rstrip()


CUSTOM_EVENT_NAMESPACES = ("custom.", "day.")
"""Namespaces of the event types clients may post."""
RESERVED_EVENT_TYPES = frozenset(
    {"day.vendor_checked_in", "day.vendor_missing", "day.member_offline", "day.mode_changed"}
)
"""Types in a custom namespace that only the server makes (the wedding day's check-ins,
alerts and the planner's switch): a client's custom event may not use them, so none can
be forged."""
CORE_EVENT_NAMESPACES = ("system.",)
"""Namespaces of the event types the core makes (``system.derivation_failed``); each
feature declares its own (``Feature.event_namespaces``)."""
MAX_CUSTOM_EVENT_BYTES = 8 * 1024
"""Longest data of a custom event (compact JSON)."""
MAX_EVENT_BYTES = 64 * 1024
"""Longest data of an event the server makes: a derived event's data is cut to 16 KiB, a
thread's event carries one message body (at most 8 KiB) or its subject and participants."""


def event_problem(
    type_: object, data: str, namespaces: tuple[str, ...] = CUSTOM_EVENT_NAMESPACES
) -> tuple[str, str] | None:
    """What is wrong with an event of ``type_`` carrying ``data`` (compact JSON text), as
    (``"type"`` or ``"data"``, message), or ``None``: its type must be lowercase names
    separated by dots in one of ``namespaces``, its data at most
    :data:`MAX_CUSTOM_EVENT_BYTES` for a custom event, else :data:`MAX_EVENT_BYTES`."""
    if not isinstance(type_, str) or not type_.startswith(namespaces):
        return "type", "must be " + " or ".join(f"{n}<name>" for n in namespaces)
    if len(type_) > 100 or any(
        not p or not p.replace("_", "").isalnum() or p.lower() != p for p in type_.split(".")
    ):
        return "type", "dot-separated lowercase names"
    limit = MAX_CUSTOM_EVENT_BYTES if type_.startswith(CUSTOM_EVENT_NAMESPACES) else MAX_EVENT_BYTES
    if len(data.encode()) > limit:
        return "data", f"at most {limit} bytes of JSON"
    return None
