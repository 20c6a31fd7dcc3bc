"""The version history's settings (how often restore points are taken)."""

from __future__ import annotations

from dataclasses import dataclass

from crdt_server.settings import require_positive

__all__ = ["VersionSettings"]


@dataclass(frozen=True, slots=True)
class VersionSettings:
    version_interval_seconds: float = 60.0
    """Work on a document gets a restore point (its whole state) once its first edit is
    this old (and each burst of one person's work that another's followed, at once): every
    point is kept for a day, one an hour for a week, then one a day within
    ``EVENT_RETENTION_DAYS``."""
    version_check_seconds: float = 10.0
    """How often changed documents are looked at for a restore point (and old points
    thinned)."""

    def __post_init__(self) -> None:
        require_positive(self, "version_interval_seconds", "version_check_seconds")
