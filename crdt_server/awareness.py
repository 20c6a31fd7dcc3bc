"""Yjs awareness (presence): the payload codec and a room's registry of states.

An awareness payload is ``[count: varuint]`` then, per entry, ``[client id: varuint]
[clock: varuint][state: varString JSON]``; a state of ``null`` means "gone". The registry
keeps the newest state of every client id, remembers which connection introduced each id
(only that connection, or another of the same principal, may speak for it later) and
produces the removal entries to broadcast when a connection goes away.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from crdt_server.errors import PolicyViolation, ProtocolError
from crdt_server.protocol import read_var_string, read_var_uint, write_var_string, write_var_uint

__all__ = [
    "AwarenessEntry",
    "AwarenessRegistry",
    "decode_awareness",
    "encode_awareness_entries",
    "stamp_identity",
]

_NULL = "null"
_MAX_CLIENT_ID = 2**53 - 1
_MAX_DEPTH = 32
"""Presence is a cursor and a name, not a tree: deeper states are refused (and so can
never make re-encoding them recurse past Python's limit)."""


def _no_constants(name: str) -> object:
    # NaN and Infinity are not JSON: browsers' JSON.parse would throw on them.
    raise ValueError(f"{name} is not JSON")


def _depth(value: object) -> int:
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item)
    return deepest


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    """One client's awareness state at a clock; ``state`` is JSON text (``"null"`` = removed)."""

    client_id: int
    clock: int
    state: str

    @property
    def removed(self) -> bool:
        return self.state == _NULL


def decode_awareness(
    payload: bytes, *, max_state_bytes: int, max_entries: int
) -> list[AwarenessEntry]:
    """Decode and validate an awareness payload.

    Every state must be JSON text of an object or ``null`` (else :class:`ProtocolError`)
    and at most ``max_state_bytes`` long (else :class:`PolicyViolation`).
    """
    count, pos = read_var_uint(payload, 0)
    if count > max_entries:
        raise PolicyViolation(f"awareness update has {count} entries, the limit is {max_entries}")
    entries: list[AwarenessEntry] = []
    for _ in range(count):
        client_id, pos = read_var_uint(payload, pos)
        clock, pos = read_var_uint(payload, pos)
        if client_id > _MAX_CLIENT_ID or clock > _MAX_CLIENT_ID:
            raise ProtocolError("awareness client id or clock out of range")
        size, _ = read_var_uint(payload, pos)
        if size > max_state_bytes:
            raise PolicyViolation(
                f"awareness state of {size} bytes, the limit is {max_state_bytes}"
            )
        state, pos = read_var_string(payload, pos)
        if state != _NULL:
            try:
                parsed = json.loads(state, parse_constant=_no_constants)
            except (ValueError, RecursionError) as exc:
                raise ProtocolError("awareness state is not JSON (or nested too deeply)") from exc
            if parsed is None:
                state = _NULL
            elif not isinstance(parsed, dict):
                raise ProtocolError("awareness state must be a JSON object or null")
            elif _depth(parsed) > _MAX_DEPTH:
                raise ProtocolError(f"awareness state nested deeper than {_MAX_DEPTH}")
        entries.append(AwarenessEntry(client_id, clock, state))
    if pos != len(payload):
        raise ProtocolError("trailing bytes after the awareness update")
    return entries


def stamp_identity(entry: AwarenessEntry, identity: dict[str, str]) -> AwarenessEntry:
    """Overwrite the ``user`` fields ``id``, ``name`` and ``role`` of a state with the
    authenticated identity, keeping the client's other fields (a cursor colour, say).

    Relayed presence therefore always names who really sent it.
    """
    if entry.removed:
        return entry
    state = json.loads(entry.state)
    user = state.get("user")
    state["user"] = {**(user if isinstance(user, dict) else {}), **identity}
    return AwarenessEntry(entry.client_id, entry.clock, json.dumps(state, separators=(",", ":")))


def encode_awareness_entries(entries: Iterable[AwarenessEntry]) -> bytes:
    entries = list(entries)
    parts = [write_var_uint(len(entries))]
    for entry in entries:
        parts.append(write_var_uint(entry.client_id))
        parts.append(write_var_uint(entry.clock))
        parts.append(write_var_string(entry.state))
    return b"".join(parts)


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
                removals.append(AwarenessEntry(client_id, known.entry.clock + 1, _NULL))
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
                    removals.append(AwarenessEntry(client_id, known.entry.clock + 1, _NULL))
        return removals

    def states(self) -> list[AwarenessEntry]:
        """Every client id that currently has a state (not removed)."""
        return [k.entry for k in self._known.values() if not k.entry.removed]

    def clients_of(self, owner: Hashable) -> list[int]:
        return [cid for cid, known in self._known.items() if known.owner == owner]
