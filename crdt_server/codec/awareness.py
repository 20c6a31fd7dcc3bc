"""Yjs awareness (presence) payloads: a pure codec.

An awareness payload is ``[count: varuint]`` then, per entry, ``[client id: varuint]
[clock: varuint][state: varString JSON]``; a state of ``null`` means "gone".
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from crdt_server.codec.protocol import (
    read_var_string,
    read_var_uint,
    write_var_string,
    write_var_uint,
)
from crdt_server.errors import PolicyViolation, ProtocolError

__all__ = [
    "NULL_STATE",
    "AwarenessEntry",
    "decode_awareness",
    "encode_awareness_entries",
    "stamp_identity",
]

NULL_STATE = "null"
"""The state text that means a client is gone."""
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
        return self.state == NULL_STATE


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
        if state != NULL_STATE:
            try:
                parsed = json.loads(state, parse_constant=_no_constants)
            except (ValueError, RecursionError) as exc:
                raise ProtocolError("awareness state is not JSON (or nested too deeply)") from exc
            if parsed is None:
                state = NULL_STATE
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
