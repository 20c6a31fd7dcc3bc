"""The event stream's settings (the retention sweep and the SSE heartbeat).

How long events are kept (``EVENT_RETENTION_DAYS``) is the core's: the versions and the
webhooks keep their records as long.
"""

from __future__ import annotations

from dataclasses import dataclass

from crdt_server.settings import require_positive

__all__ = ["EventSettings"]


@dataclass(frozen=True, slots=True)
class EventSettings:
    event_sweep_seconds: float = 3600.0
    """How often the retention sweep runs."""
    sse_heartbeat_seconds: float = 15.0
    """An event stream with nothing to send sends a comment this often (keeps proxies and
    clients from timing it out)."""

    def __post_init__(self) -> None:
        require_positive(self, "event_sweep_seconds", "sse_heartbeat_seconds")
