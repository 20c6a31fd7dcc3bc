"""A room's document rebuilt from its stored rows on a worker thread, when it is loaded.

Replaying a log reads every item in Python (each row checked, the state decoded for the
shape rule), and the room's index of map items (:mod:`crdt_server.core.overwrites`) reads
them again: for a 20,000-guest list, seconds that every other room would wait on if they
ran on the event loop. Nobody holds a room while it loads, so its document can be built
off the loop and handed over whole (pycrdt documents may be used from any thread, one at a
time).
"""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.codec.items import read_items
from crdt_server.codec.updates import UpdateError
from crdt_server.core.crdt import CrdtFailure, RoomDocument, crdt_call, replay
from crdt_server.core.overwrites import OverwriteIndex

__all__ = ["replay_indexed"]


def replay_indexed(
    updates: Sequence[bytes], client_id: int, index: bool
) -> tuple[RoomDocument, int, OverwriteIndex | None]:
    """:func:`~crdt_server.core.crdt.replay` of ``updates`` under ``client_id``, and, if
    ``index``, the overwrite index of what it rebuilt (``None`` if that failed: the room
    then builds it before its first integration, as without this, and counts a failure
    there)."""
    document, unreadable = replay(updates, client_id=client_id)
    if not index:
        return document, unreadable, None
    try:
        built = OverwriteIndex()
        built.build(read_items(crdt_call(document.doc.get_update)))
    except (UpdateError, CrdtFailure):
        return document, unreadable, None
    return document, unreadable, built
