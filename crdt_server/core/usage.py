"""How many bytes each wedding's documents hold in the store, for the storage quota per
wedding (``CRDT_SERVER_MAX_WEDDING_BYTES``), beside the per-document limit.

A document's size is its stored log's (an upper bound of its encoded size, as the
per-document limit counts it): a loaded room reports its own as it changes; the documents
of the wedding that are not loaded are read from the store once, the first time a room of
the wedding loads in this process (one grouped query over the wedding's rows; rooms of the
wedding loading meanwhile, as a Hocuspocus socket attaches all of a wedding's documents at
once, wait for that query instead of making their own). A wedding's
writes have one owner process (affinity by wedding), so the owner's count is the one that
refuses: an update that would take the wedding past its quota is refused like one that
would take its document past the per-document limit (1009 on a socket, 413 over HTTP),
before it is applied.
"""

from __future__ import annotations

import asyncio
import logging

from crdt_server.storage import DocumentStore, Gateway, StoreError

__all__ = ["WeddingUsage"]

log = logging.getLogger("crdt_server.usage")

_MAX_DOCUMENTS = 256
"""Documents of one wedding read from the store (a bound on what one query returns)."""


class WeddingUsage:
    """Bytes per document, per wedding, as this process knows them (see the module
    docstring)."""

    def __init__(self) -> None:
        self._sizes: dict[str, dict[str, int]] = {}
        self._counted: set[str] = set()
        self._counting: dict[str, asyncio.Future[None]] = {}
        """Weddings being read now: done when that read ends (counted or not)."""

    async def count(self, store: DocumentStore, wedding: str) -> None:
        """Read the sizes of the wedding's stored documents, once per process; documents a
        room reported since keep the room's size. A call while the wedding is being read
        waits for that read (and reads itself only if it ended without counting: it
        failed or its caller was cancelled)."""
        while wedding not in self._counted:
            reading = self._counting.get(wedding)
            if reading is None:
                await self._read(store, wedding)
                return
            await asyncio.shield(reading)

    async def _read(self, store: DocumentStore, wedding: str) -> None:
        done = asyncio.get_running_loop().create_future()
        self._counting[wedding] = done
        try:
            try:
                rows = await Gateway.of(store).fetch(
                    "SELECT doc, SUM(LENGTH(data)) FROM {t}updates WHERE doc >= ? AND doc < ?"
                    " GROUP BY doc ORDER BY doc LIMIT ?",
                    f"{wedding}/",
                    f"{wedding}0",  # "0" follows "/": every name "{wedding}/..." and no other
                    _MAX_DOCUMENTS,
                )
            except StoreError:
                rows = []  # a store without SQL tables: the loaded rooms' sizes only
            sizes = self._sizes.setdefault(wedding, {})
            for doc, size in rows:
                sizes.setdefault(str(doc), int(size or 0))
            self._counted.add(wedding)
        finally:
            if self._counting.get(wedding) is done:
                del self._counting[wedding]
            done.set_result(None)

    def set(self, doc: str, size: int) -> None:
        """A loaded room's document now holds ``size`` bytes."""
        wedding = doc.partition("/")[0]
        self._sizes.setdefault(wedding, {})[doc] = size

    def others(self, doc: str) -> int:
        """The bytes of the other documents of ``doc``'s wedding."""
        sizes = self._sizes.get(doc.partition("/")[0], {})
        return sum(size for name, size in sizes.items() if name != doc)

    def forget(self, wedding: str) -> None:
        """The wedding was erased: its documents hold nothing."""
        self._sizes.pop(wedding, None)
        self._counted.discard(wedding)
