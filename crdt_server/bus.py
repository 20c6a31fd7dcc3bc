"""The cross-process seam: what a room tells other processes after a commit.

In one process nothing needs telling, so :class:`LocalBus` does nothing; the Redis bus
implements the same protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["Bus", "LocalBus"]


class Bus(Protocol):
    async def publish_updates(
        self, doc: str, seqs: Sequence[int], updates: Sequence[bytes]
    ) -> None:
        """Committed updates of ``doc`` with their store sequence numbers."""

    async def publish_awareness(self, doc: str, payload: bytes) -> None:
        """An accepted awareness payload of ``doc``."""


class LocalBus:
    """A single process: nobody else to tell."""

    async def publish_updates(
        self, doc: str, seqs: Sequence[int], updates: Sequence[bytes]
    ) -> None:
        return None

    async def publish_awareness(self, doc: str, payload: bytes) -> None:
        return None
