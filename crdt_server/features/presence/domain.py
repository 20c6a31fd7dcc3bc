"""What a person's presence says, read from their awareness state: pure rules.

The app writes ``here: {section, entity, at}``; other clients write a top-level
``section`` and ``typing``; either may say ``status: "busy"``. Nothing else of the state is
read, and what is read is bounded (a section is a short name, typing a boolean).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["MAX_SECTION", "NOWHERE", "STATUSES", "Here", "Status", "here_of", "status_of"]

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
