"""What a person's presence says, read from their awareness state: pure rules.

The app writes ``here: {section, entity, at}``; other clients write a top-level
``section`` and ``typing``; either may say ``status: "busy"``. Nothing else of the state is
read, and what is read is bounded (a section is a short name, typing a boolean).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from crdt_server.times import rfc3339

__all__ = [
    "CHANGED",
    "MAX_SECTION",
    "NOWHERE",
    "STATUSES",
    "Here",
    "PresenceChange",
    "PresenceEntry",
    "Status",
    "here_of",
    "status_of",
]

CHANGED = "presence.changed"
"""The type of the event stream's presence records (and of presence webhook payloads)."""

Status = Literal["online", "away", "busy", "offline"]
STATUSES: tuple[Status, ...] = ("online", "away", "busy", "offline")
MAX_SECTION = 64
"""The longest section name kept (longer ones are not a section: ``None``)."""


@dataclass(frozen=True, slots=True)
class Here:
    """What one awareness state says of its person."""

    busy: bool = False
    section: str | None = None
    typing: bool = False


NOWHERE = Here()


def here_of(state: str) -> Here:
    """Read an awareness state (JSON text, already validated and size-bounded by the
    codec): ``status: "busy"`` at top level or in ``here`` makes it busy; ``here.section``,
    else a top-level ``section``; ``typing: true`` at top level or in ``here``."""
    try:
        value = json.loads(state)
    except ValueError:
        return NOWHERE
    if not isinstance(value, dict):
        return NOWHERE
    raw_here = value.get("here")
    here: dict[str, Any] = raw_here if isinstance(raw_here, dict) else {}
    busy = value.get("status") == "busy" or here.get("status") == "busy"
    section = _section(here.get("section"))
    if section is None:
        section = _section(value.get("section"))
    typing = value.get("typing") is True or here.get("typing") is True
    return Here(busy, section, typing)


def _section(raw: object) -> str | None:
    return raw if isinstance(raw, str) and 0 < len(raw) <= MAX_SECTION else None


def status_of(busy: bool, active: float, now: float, away_after: float) -> Status:
    """A connected person's status: ``busy`` when they say so (it wins over away),
    ``away`` after ``away_after`` seconds without activity (``active``: its last moment),
    else ``online``."""
    if busy:
        return "busy"
    return "away" if now - active >= away_after else "online"


@dataclass(frozen=True, slots=True)
class PresenceEntry:
    """One person in one document of a wedding, over every process."""

    doc: str
    user_id: str
    name: str
    role: str
    connections: int
    last_activity: float
    """Unix time of the person's last frame in this document (see ``last_activity_at``)."""
    last_activity_at: str
    since: str
    """When the person's oldest open connection to this document was accepted (RFC 3339)."""
    documents: list[str]
    """Every document of the wedding the person is in (of those the caller may read)."""
    status: Status
    """``online``, ``away``, ``busy`` or ``offline`` (the same in each of their entries)."""
    section: str | None
    """The section of the app they are in, as their presence says (``here.section``)."""
    typing: bool
    last_seen: str | None
    """When an ``offline`` person left (RFC 3339); ``None`` for the others."""


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """A person's presence changed (what :meth:`PresenceDirectory.listen` is told)."""

    wedding: str
    user_id: str
    name: str
    role: str
    status: Status
    section: str | None
    typing: bool
    documents: tuple[str, ...]
    """The documents they are in (when ``offline``: those they were last in)."""
    at: float
    last_seen: float | None
    sender: bool = False
    """Whether this process speaks for the cluster of this change (the one that serves
    the person, the lowest process id if several do): who sends it out of the cluster
    (webhooks) checks it, so each change leaves once."""

    def data(self) -> dict[str, Any]:
        """As the event stream and webhooks show it (``data`` of ``presence.changed``)."""
        return {
            "sub": self.user_id,
            "name": self.name,
            "role": self.role,
            "status": self.status,
            "section": self.section,
            "typing": self.typing,
            "documents": list(self.documents),
            "last_seen": None if self.last_seen is None else rfc3339(self.last_seen),
        }
