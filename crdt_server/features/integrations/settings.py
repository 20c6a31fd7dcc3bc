"""The integrations' settings (the guest list's CSV import)."""

from __future__ import annotations

from dataclasses import dataclass

from crdt_server.settings import require_positive

__all__ = ["IntegrationSettings"]


@dataclass(frozen=True, slots=True)
class IntegrationSettings:
    max_csv_body_bytes: int = 5 * 1024 * 1024
    """Largest CSV body of a guest import (``POST .../guests.csv``); larger is refused with
    413 while it is read."""

    def __post_init__(self) -> None:
        require_positive(self, "max_csv_body_bytes")
