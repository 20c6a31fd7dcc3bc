"""A room's registry of awareness (presence) states.

It keeps the newest state of every client id, remembers which connection introduced each
id (only that connection, or another of the same principal, may speak for it later) and
produces the removal entries to broadcast when a connection goes away.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from crdt_server.codec.awareness import NULL_STATE, AwarenessEntry

__all__ = ["AwarenessRegistry"]


@dataclass(slots=True)
class _Known:
    entry: AwarenessEntry
    owner: Hashable
    principal: str
    touched: float


class AwarenessRegistry:
    """The awareness states of one room and which connection speaks for each client id."""

    def __init__(self) -> None:
        self._known: dict[int, _Known] = {}
        self.rejected = 0
        """Entries dropped because their connection may not speak for that client id."""

    def apply(
        self, owner: Hashable, principal: str, entries: Iterable[AwarenessEntry]
    ) -> list[AwarenessEntry]:
        """Record what ``owner`` says; return the entries that changed something, to forward.

        Stale entries (an older clock) are ignored as y-protocols does; entries for a client
        id introduced by a connection of another principal are dropped and counted.
        """
        accepted: list[AwarenessEntry] = []
        now = time.monotonic()
        for entry in entries:
            known = self._known.get(entry.client_id)
            if known is None:
                if entry.removed:
                    continue
                self._known[entry.client_id] = _Known(entry, owner, principal, now)
                accepted.append(entry)
                continue
            current = known.entry
            newer = entry.clock > current.clock
            if known.owner != owner:
                if known.principal != principal:
                    self.rejected += 1
                    continue
                if not newer:
                    # Stock clients relay every awareness change they receive, so an
                    # equal clock from another connection is an echo, not a takeover.
                    continue
                # The same principal reconnected before its old socket was noticed gone.
                known.owner = owner
            same_clock_removal = (
                entry.clock == current.clock and entry.removed and not current.removed
            )
            if newer or same_clock_removal:
                known.entry = entry
                known.touched = now
                accepted.append(entry)
        return accepted

    def remove_owner(self, owner: Hashable) -> list[AwarenessEntry]:
        """Forget every client id ``owner`` speaks for; return the removals to broadcast."""
        removals: list[AwarenessEntry] = []
        for client_id, known in list(self._known.items()):
            if known.owner != owner:
                continue
            del self._known[client_id]
            if not known.entry.removed:
                removals.append(AwarenessEntry(client_id, known.entry.clock + 1, NULL_STATE))
        return removals

    def expire(self, older_than: float, owners: Callable[[Hashable], bool]) -> list[AwarenessEntry]:
        """Forget states of matching owners not refreshed since ``older_than`` (monotonic
        time); return the removals to broadcast. Clients refresh their presence every 15 s,
        so a state silent for 30 s belongs to a client (or a process) that is gone."""
        removals: list[AwarenessEntry] = []
        for client_id, known in list(self._known.items()):
            if known.touched < older_than and owners(known.owner):
                del self._known[client_id]
                if not known.entry.removed:
                    removals.append(AwarenessEntry(client_id, known.entry.clock + 1, NULL_STATE))
        return removals

    def states(self) -> list[AwarenessEntry]:
        """Every client id that currently has a state (not removed)."""
        return [k.entry for k in self._known.values() if not k.entry.removed]

    def clients_of(self, owner: Hashable) -> list[int]:
        return [cid for cid, known in self._known.items() if known.owner == owner]
