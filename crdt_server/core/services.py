"""What every room of a process shares, as one frozen value.

The registry is given one :class:`RoomServices` and hands it to each room it loads, instead
of a store, settings, a bus, hooks, metrics, a store-health tracker, a quarantine and an
apply slot one by one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from crdt_server.cluster.bus import Bus
from crdt_server.core.backlog import Backlog
from crdt_server.core.client_ids import ClientIds
from crdt_server.core.hooks import Hooks
from crdt_server.core.metrics import Metrics, StoreHealth
from crdt_server.core.quarantine import ApplySlot, Quarantine
from crdt_server.core.usage import WeddingUsage
from crdt_server.settings import Settings
from crdt_server.storage import DocumentStore

__all__ = ["RoomServices"]


@dataclass(frozen=True, slots=True)
class RoomServices:
    """The rooms' shared dependencies (one per process, or per test)."""

    store: DocumentStore
    settings: Settings
    bus: Bus
    hooks: Hooks = field(default_factory=Hooks)
    """The extensions' hooks (none by default)."""
    metrics: Metrics = field(default_factory=Metrics)
    health: StoreHealth = field(default_factory=StoreHealth)
    """Whether the store's writes succeed (readiness)."""
    quarantine: Quarantine | None = None
    """The quarantined clients, checked before every apply, if the server keeps one."""
    slot: ApplySlot | None = None
    """Where the update being applied is recorded, for the next start if it never returns."""
    clients: ClientIds = field(default_factory=ClientIds)
    """Who owns each Yjs client id (kept in memory only unless given one on the store)."""
    usage: WeddingUsage = field(default_factory=WeddingUsage)
    """The bytes each wedding's documents hold (the storage quota per wedding)."""
    client_id: int = field(default_factory=lambda: random.getrandbits(52))
    """The Yjs client id of the edits this process makes itself (HTTP operations, run on
    the rooms' own documents), so a wedding's state vector grows by one entry per process,
    not one per edit."""
    backlog: Backlog = field(init=False)
    """What each room accepted and has not committed, and its bounds (from ``settings``)."""

    def __post_init__(self) -> None:
        settings = self.settings
        backlog = Backlog(
            settings.room_backlog_updates,
            settings.process_backlog_updates,
            settings.max_read_pause_seconds,
            self.metrics,
        )
        object.__setattr__(self, "backlog", backlog)  # frozen: derived once, here
        self.metrics.watch_links(self.health, self.bus)
