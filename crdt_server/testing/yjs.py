"""pycrdt documents as the testing kit's clients hold and compare them: state vectors, a
copy, a stored log replayed as the room replays it, and updates applied the way Yjs applies
them whatever their order."""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, merge_updates

from crdt_server.codec.updates import (
    UpdateSummary,
    decode_state_vector,
    inspect_update,
    pending_after,
)
from crdt_server.core.crdt import copy_of, replay
from crdt_server.storage import StoredLog

__all__ = ["YjsApplier", "copy_of", "covers", "doc_of", "state"]


def state(doc: Doc[Any]) -> dict[int, int]:
    """The state vector of ``doc`` as ``{client id: clock}``."""
    return decode_state_vector(doc.get_state())


def covers(big: dict[int, int], small: dict[int, int]) -> bool:
    """True if state vector ``big`` includes everything ``small`` does."""
    return all(big.get(client, 0) >= clock for client, clock in small.items())


def doc_of(log: StoredLog | None) -> Doc[Any]:
    """A document from a stored log, replayed as the room does (row by row, in order:
    :func:`crdt_server.core.crdt.replay`; one merged update could be refused by yrs where
    the rows one by one are not)."""
    if log is None or not log.updates:
        return Doc()
    document, _ = replay(log.updates)
    return document.doc


class YjsApplier:
    """Applies remote updates to a pycrdt doc the way Yjs does, whatever their order.

    pycrdt 0.14's own pending handling gets stuck on some orders (e.g. of one client's
    updates u0 "m.a = 0", u1 "m.a = 1", u2 "insert into t", applying u1, u2, u0 leaves
    u1 and u2 pending for good). Yjs does not, so neither may a client that stands in for a
    y-websocket client (else a test would find pycrdt's bug, not the server's): it keeps
    every update that is not fully integrated and applies them again, merged, after each new
    one, until they are.
    """

    def __init__(self, doc: Doc[Any]) -> None:
        self.doc = doc
        self.held: list[tuple[bytes, UpdateSummary]] = []

    def apply(self, update: bytes) -> None:
        self.doc.apply_update(update)
        self.held.append((update, inspect_update(update)))
        if len(self.held) > 1:
            self.doc.apply_update(merge_updates(*(u for u, _ in self.held)))
        now = state(self.doc)
        self.held = [(u, s) for u, s in self.held if pending_after(s, now)]
