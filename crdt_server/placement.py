"""Which worker of a host owns a wedding (``--workers N``).

Each wedding has one owner among a host's workers: the rendezvous (highest random weight)
hash of its id over the worker indices (:func:`owner`). Its sync connections are handed to
the owner (:mod:`crdt_server.wire.affinity`), its HTTP requests proxied there
(:mod:`crdt_server.wire.proxy`), and the work a feature does for a wedding on its own
schedule, not in answer to a client (fanning its events out to webhook endpoints), is the
owner's alone (:class:`Placement`): done by every worker, it would be done N times, each
worker reading what the others write to find there is nothing left to do.

Ownership is an optimisation, never a condition for correctness: what the owner does on
its own schedule reads its cursors from the store, so a worker that restarts takes up its
weddings where the store says they stand, and what another worker committed for one of
them meanwhile (a request served there because the owner did not answer in time) is in
the store too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["ALONE", "Placement", "owner"]


def owner(wedding_id: str, count: int) -> int:
    """The index of the worker that owns ``wedding_id`` among ``count`` workers.

    Rendezvous (highest random weight) hashing: each index scores the wedding, the highest
    score wins. Only the weddings of a worker that goes away change owner.
    """
    if count <= 1:
        return 0
    encoded = wedding_id.encode()
    best, best_score = 0, b""
    for index in range(count):
        score = hashlib.blake2b(encoded, digest_size=8, salt=index.to_bytes(8, "big")).digest()
        if score > best_score:
            best, best_score = index, score
    return best


@dataclass(frozen=True, slots=True)
class Placement:
    """This process's place among its host's workers: worker ``index`` of ``count``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"worker {self.index} of {self.count}: no such worker")

    def owns(self, wedding_id: str) -> bool:
        """Whether this process owns ``wedding_id`` (a single process owns every wedding)."""
        return self.count == 1 or owner(wedding_id, self.count) == self.index


ALONE = Placement()
"""A single process: it owns every wedding."""
