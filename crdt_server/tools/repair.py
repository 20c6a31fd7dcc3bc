"""``crdt-server repair``: delete the stored content that does not fit its parent.

A store written before the codec refused such content (issue 47: a string under a nested
``Y.Array``, which pycrdt 0.14 iterates for ever) may still hold it. A room serves it as
deleted content and ``crdt-server check`` lists it; ``repair`` deletes it for good, with
one server-made update per document that holds any: a delete set of exactly those items,
appended like any update (clients that hold the items delete them on their next sync).
Nothing else is touched, so it is safe while servers run: a room already serves the items
as deleted, and the next load finds nothing to leave out.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from crdt_server.codec.items import ID
from crdt_server.codec.shapes import delete_set_update
from crdt_server.core.crdt import replay
from crdt_server.storage import DocumentStore, NewUpdate

__all__ = ["REPAIR_ORIGIN", "Repair", "repair_store"]

REPAIR_ORIGIN = "server:repair"
"""The origin of the update a repair appends (its history entry's)."""


@dataclass(slots=True)
class Repair:
    """What a repair did to one document."""

    name: str
    deleted: list[tuple[ID, int]] = field(default_factory=list)
    """The items deleted (first id, length)."""


async def repair_store(store: DocumentStore, prefix: str) -> list[Repair]:
    """Delete every misfit (content that does not fit its parent) of the documents whose
    names start with ``prefix``; one update per document that holds any."""
    repairs: list[Repair] = []
    for name in await store.list(prefix):
        stored = await store.load(name)
        if stored is None:
            continue
        document, _ = await asyncio.to_thread(replay, stored.updates, keep_misfits=True)
        repair = Repair(name, [(m.id, m.length) for m in document.misfits])
        repairs.append(repair)
        if repair.deleted:
            update = delete_set_update(repair.deleted)
            await store.append([NewUpdate(name, update, REPAIR_ORIGIN, "server", "server")])
    return repairs
