"""``crdt-server compact``: fold stored logs into one snapshot row each, on demand.

The same fold a room does once its log is long (``CRDT_SERVER_COMPACT_AFTER_UPDATES``),
from the store's own rows, so it is safe while servers run: rows committed after the fold
was read stay untouched, and a room compacting the same log at the same moment makes one of
the two compactions find its row gone (reported, nothing changed). A log with content
still waiting on a dependency, or with a row that cannot be read, is left as it is.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from crdt_server.core.crdt import CrdtFailure, crdt_call, replay
from crdt_server.storage import DocumentStore, StoreError

__all__ = ["Compaction", "compact_store"]


@dataclass(frozen=True, slots=True)
class Compaction:
    """What happened to one document's log."""

    name: str
    rows_before: int
    bytes_before: int
    rows_after: int
    bytes_after: int
    skipped: str = ""
    """Why the log was left as it is (empty when it was compacted)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "doc": self.name,
            "rows_before": self.rows_before,
            "bytes_before": self.bytes_before,
            "rows_after": self.rows_after,
            "bytes_after": self.bytes_after,
            "skipped": self.skipped or None,
        }


async def compact_store(store: DocumentStore, prefix: str = "") -> list[Compaction]:
    """Compact every stored document whose name starts with ``prefix``, in name order."""
    results: list[Compaction] = []
    for name in await store.list(prefix):
        stored = await store.load(name)
        if stored is None:
            continue
        rows, size = len(stored.updates), sum(len(u) for u in stored.updates)

        def kept(reason: str, name: str = name, rows: int = rows, size: int = size) -> None:
            results.append(Compaction(name, rows, size, rows, size, reason))

        if rows < 2:
            kept("already one row")
            continue
        snapshot, reason = await asyncio.to_thread(_fold, stored.updates)
        if snapshot is None:
            kept(reason)
            continue
        try:
            await store.compact(name, stored.last_seq, snapshot)
        except StoreError as exc:
            kept(f"the store refused: {exc}")
            continue
        results.append(Compaction(name, rows, size, 1, len(snapshot)))
    return results


def _fold(updates: list[bytes]) -> tuple[bytes | None, str]:
    # The rows' own content, misfits included: repair, not compaction, removes those.
    document, unreadable = replay(updates, keep_misfits=True)
    if unreadable:
        return None, f"{unreadable} rows cannot be read (run crdt-server check)"
    if document.held:
        return None, "some content waits on a missing dependency"
    try:
        return crdt_call(document.doc.get_update), ""
    except CrdtFailure as exc:
        return None, f"cannot encode the document: {exc}"
