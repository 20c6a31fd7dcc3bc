"""A room's registry of awareness (presence) states.

It keeps the newest state of every client id, remembers which connection introduced each
id (only that connection, or another of the same principal, may speak for it later) and
produces the removal entries to broadcast when a connection goes away.
:class:`PresenceRelay` folds what a busy room relays into fewer messages.

A client id stays bound to its principal after its state is forgotten (the connection
left, or its presence expired), for :data:`BINDING_SECONDS` and at most
:data:`BINDING_ENTRIES` ids per room: otherwise anyone could take over the presence of a
user who just disconnected (stock clients keep their client id across reconnects). The
binding also remembers the forgotten state's clock and the newest connection then in the
room: stock clients relay every awareness change they receive, so a connection that was
there may still send the departed client's last state after it left (an echo sent before
the removal reached it); that echo does not bring the client back, while the client
itself, on a new connection, may come back at the same clock.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from crdt_server.codec.awareness import NULL_STATE, AwarenessEntry

__all__ = ["BINDING_ENTRIES", "BINDING_SECONDS", "AwarenessRegistry", "PresenceRelay"]

BINDING_SECONDS = 600.0
"""How long a forgotten client id stays bound to the principal that introduced it."""
BINDING_ENTRIES = 10_000
"""Most forgotten client ids whose binding one room remembers (the oldest go first)."""


@dataclass(frozen=True, slots=True)
class _Binding:
    principal: str
    at: float
    """When the state was forgotten (monotonic)."""
    clock: int = -1
    """The forgotten state's clock: an echo of it, or of an older one, is not a claim."""
    newest: int = 0
    """The newest connection (serial) in the room then: older ones may still echo."""


@dataclass(slots=True)
class _Known:
    entry: AwarenessEntry
    owner: Hashable
    principal: str
    touched: float


class AwarenessRegistry:
    """The awareness states of one room and which connection speaks for each client id."""

    def __init__(
        self, *, binding_seconds: float = BINDING_SECONDS, binding_entries: int = BINDING_ENTRIES
    ) -> None:
        self._known: dict[int, _Known] = {}
        self._bound: OrderedDict[int, _Binding] = OrderedDict()
        """Forgotten client ids -> who introduced them and when they were forgotten,
        oldest first."""
        self._binding_seconds = binding_seconds
        self._binding_entries = binding_entries
        self.rejected = 0
        """Entries dropped because their connection may not speak for that client id."""

    def apply(
        self,
        owner: Hashable,
        principal: str,
        entries: Iterable[AwarenessEntry],
        *,
        serial: int | None = None,
    ) -> list[AwarenessEntry]:
        """Record what ``owner`` says; return the entries that changed something, to forward.

        Stale entries (an older clock) are ignored as y-protocols does; entries for a client
        id introduced by a connection of another principal are dropped and counted.
        ``serial``: the owner's connection serial (see the module docstring), ``None`` for
        another process.
        """
        accepted: list[AwarenessEntry] = []
        now = time.monotonic()
        for entry in entries:
            known = self._known.get(entry.client_id)
            if known is None:
                if entry.removed or self._echo(entry, serial):
                    continue
                if not self._may_claim(entry.client_id, principal, now):
                    self.rejected += 1
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

    def remove_owner(self, owner: Hashable, *, newest: int = 0) -> list[AwarenessEntry]:
        """Forget every client id ``owner`` speaks for; return the removals to broadcast.
        ``newest``: the serial of the newest connection in the room (which may still echo
        the states forgotten)."""
        removals: list[AwarenessEntry] = []
        for client_id, known in list(self._known.items()):
            if known.owner != owner:
                continue
            del self._known[client_id]
            self._bind(client_id, known.principal, known.entry.clock, newest)
            if not known.entry.removed:
                removals.append(AwarenessEntry(client_id, known.entry.clock + 1, NULL_STATE))
        return removals

    def _bind(self, client_id: int, principal: str, clock: int = -1, newest: int = 0) -> None:
        """Remember who introduced a client id whose state is being forgotten."""
        bound = self._bound
        bound[client_id] = _Binding(principal, time.monotonic(), clock, newest)
        bound.move_to_end(client_id)
        while len(bound) > self._binding_entries:
            bound.popitem(last=False)

    def _may_claim(self, client_id: int, principal: str, now: float) -> bool:
        """May ``principal`` introduce ``client_id`` (again)?"""
        bound = self._bound
        oldest = now - self._binding_seconds
        while bound:  # forget bindings past their time (oldest first)
            first = next(iter(bound.values()))
            if first.at >= oldest:
                break
            bound.popitem(last=False)
        binding = bound.get(client_id)
        if binding is None:
            return True
        if binding.principal != principal:
            return False
        del bound[client_id]
        return True

    def _echo(self, entry: AwarenessEntry, serial: int | None) -> bool:
        """Whether ``entry`` re-states a forgotten client id's state (or an older one) and
        comes from a connection that was in the room when it was forgotten."""
        binding = self._bound.get(entry.client_id)
        return (
            binding is not None
            and serial is not None
            and serial <= binding.newest
            and entry.clock <= binding.clock
        )

    def expire(self, older_than: float, owners: Callable[[Hashable], bool]) -> list[AwarenessEntry]:
        """Forget states of matching owners not refreshed since ``older_than`` (monotonic
        time); return the removals to broadcast. Clients refresh their presence every 15 s,
        so a state silent for 30 s belongs to a client (or a process) that is gone."""
        removals: list[AwarenessEntry] = []
        for client_id, known in list(self._known.items()):
            if known.touched < older_than and owners(known.owner):
                del self._known[client_id]
                self._bind(client_id, known.principal)
                if not known.entry.removed:
                    removals.append(AwarenessEntry(client_id, known.entry.clock + 1, NULL_STATE))
        return removals

    def states(self) -> list[AwarenessEntry]:
        """Every client id that currently has a state (not removed)."""
        return [k.entry for k in self._known.values() if not k.entry.removed]

    def clients_of(self, owner: Hashable) -> list[int]:
        return [cid for cid, known in self._known.items() if known.owner == owner]


class PresenceRelay:
    """A room's outgoing presence: the first change in a quiet room goes out at once; what
    arrives in the ``window`` seconds after a relay is folded (the newest state of each
    client id, so no client's last state is dropped) and goes out as one message when that
    window ends. 100 clients moving a cursor 5 times a second are 500 messages a second to
    each of them one by one; folded, about 100, each with the changes of a window.

    One frame for everyone in a window: a sender may get its own entry back when others
    spoke in the same window (stock clients ignore a state at a clock they already have);
    a window with one sender still skips that sender.
    """

    __slots__ = ("_broadcast", "_exclude", "_pending", "_quiet_at", "_timer", "_window")

    def __init__(
        self, broadcast: Callable[[Iterable[AwarenessEntry], object], None], window: float
    ) -> None:
        self._broadcast = broadcast
        """``broadcast(entries, exclude)``: send the entries to every member but ``exclude``."""
        self._window = window
        """0: nothing is folded."""
        self._pending: dict[int, AwarenessEntry] = {}
        self._exclude: object = None
        """Who not to send the folded frame to (set by the window's first relay)."""
        self._quiet_at = 0.0
        self._timer: asyncio.TimerHandle | None = None

    @property
    def folding(self) -> bool:
        """Something is folded, to go out when the window ends."""
        return self._timer is not None

    def relay(self, entries: Iterable[AwarenessEntry], exclude: object = None) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._timer is None and now >= self._quiet_at:
            self._quiet_at = now + self._window
            self._broadcast(entries, exclude)
            return
        for entry in entries:
            self._pending[entry.client_id] = entry
        if self._timer is None:
            self._exclude = exclude
            self._timer = loop.call_at(self._quiet_at, self._flush)
        elif self._exclude is not exclude:
            self._exclude = None  # several senders: one frame for all

    def close(self) -> None:
        """The room is unloaded: drop what is folded (nobody is left to send it to) and the
        timer, which would keep the room alive until the window ends."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending.clear()
        self._exclude = None

    def _flush(self) -> None:
        self._timer = None
        pending, self._pending = self._pending, {}
        exclude, self._exclude = self._exclude, None
        if pending:
            self._quiet_at = asyncio.get_running_loop().time() + self._window
            self._broadcast(pending.values(), exclude)
