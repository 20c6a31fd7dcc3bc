"""Presence's settings: when a person who does nothing counts as away."""

from __future__ import annotations

from dataclasses import dataclass

from crdt_server.settings import require_positive

__all__ = ["PresenceSettings"]


@dataclass(frozen=True, slots=True)
class PresenceSettings:
    away_after_seconds: float = 300.0
    """A connected person with no activity for this long is ``away``. Activity is a
    document update or a presence (awareness) state whose content changed; the renewal of
    an unchanged state clients send every 15 s is not."""

    def __post_init__(self) -> None:
        require_positive(self, "away_after_seconds")
