"""The projections' settings (``CRDT_SERVER_PROJECTION_*``)."""

from __future__ import annotations

from dataclasses import dataclass

from crdt_server.settings import require_positive

__all__ = ["ProjectionSettings"]


@dataclass(frozen=True, slots=True)
class ProjectionSettings:
    projection_lease_seconds: float = 20.0
    """Projections with several processes: how long the process that writes a projection
    holds the bus's lease on it; it renews the lease as it works, and a process that dies
    holding one leaves the projection unwritten (its readers, vendors' devices, see no
    change) for at most this long before another process takes over."""

    def __post_init__(self) -> None:
        require_positive(self, "projection_lease_seconds")
