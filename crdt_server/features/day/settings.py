"""The wedding day's settings."""

from __future__ import annotations

from dataclasses import dataclass

from crdt_server.settings import require_positive

__all__ = ["DaySettings"]


@dataclass(frozen=True, slots=True)
class DaySettings:
    day_offline_grace_seconds: float = 600.0
    """How long a member on duty may have no connection inside their duty window before
    ``day.member_offline`` is raised (once per window): mobile browsers drop sockets when
    backgrounded, so a short gap is no alarm."""

    def __post_init__(self) -> None:
        require_positive(self, "day_offline_grace_seconds")
