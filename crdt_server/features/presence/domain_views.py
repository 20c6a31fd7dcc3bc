"""What the presence directory keeps of each connection, person and who left, and the pure
steps over them: a change to tell, what a presence state says, forgetting who left long ago,
the document a room holds (see :mod:`crdt_server.features.presence.extension`)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from crdt_server.core.hooks import RoomView
from crdt_server.documents import DOCUMENT_KINDS
from crdt_server.features.presence.domain import NOWHERE, Here, PresenceChange, Status
from crdt_server.features.presence.domain_bus import Seen
from crdt_server.names import projection_of

__all__ = ["GONE_PEOPLE", "GONE_SECONDS"]

GONE_SECONDS = 7 * 86400.0
"""How long a process remembers when a person who left was last seen."""
GONE_PEOPLE = 500
"""Most people who left one wedding a process remembers (the longest gone are forgotten)."""


@dataclass(slots=True)
class _Activity:
    """One connection of this process: what its presence says, and its last activity."""

    active: float
    user: str = ""
    state: str | None = None
    here: Here = NOWHERE


@dataclass(slots=True)
class _Merged:
    """A person in a document, over every process."""

    seen: Seen
    active: float
    busy: bool
    section: str | None
    typing: bool
    by: set[str]
    """The processes that serve them there."""


@dataclass(frozen=True, slots=True)
class _Person:
    """What a process last said of a person (compared to tell what changed)."""

    name: str
    role: str
    status: Status
    section: str | None
    typing: bool
    documents: tuple[str, ...]
    last_activity: float = field(compare=False)
    visited: frozenset[str] = field(compare=False, default=frozenset())
    by: frozenset[str] = field(compare=False, default=frozenset())
    """Every document they were in since they came (an offline person is shown in
    each: the same on every process, whatever order their connections left in)."""


@dataclass(frozen=True, slots=True)
class _Gone:
    name: str
    role: str
    documents: tuple[str, ...]
    last_activity: float
    last_seen: float


_ORDER: dict[str, int] = {kind: i for i, kind in enumerate(DOCUMENT_KINDS)}


def _change(
    wedding: str, user: str, person: _Person, at: float, last_seen: float | None, me: str
) -> PresenceChange:
    return PresenceChange(
        wedding,
        user,
        person.name,
        person.role,
        person.status,
        person.section,
        person.typing,
        person.documents,
        at,
        last_seen,
        bool(person.by) and min(person.by) == me,
    )


def _said(here: Here) -> tuple[bool, str | None, bool]:
    return here.busy, here.section, here.typing


def _forget_gone(gone: OrderedDict[str, _Gone], now: float) -> None:
    while gone and (
        len(gone) > GONE_PEOPLE or now - next(iter(gone.values())).last_seen > GONE_SECONDS
    ):
        gone.popitem(last=False)


def _document_of(room: RoomView) -> str | None:
    """The wedding document whose readers ``room`` holds: its own kind, or the document a
    projection room projects (a vendor reading the guests is in ``guests``); else ``None``."""
    if room.kind in DOCUMENT_KINDS:
        return room.kind
    found = projection_of(room.name)
    return found[1] if found is not None else None
