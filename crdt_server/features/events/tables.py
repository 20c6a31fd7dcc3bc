"""The wedding events' rows, as other features' transactions reach them: steps to compose
with ``yield from`` into a transaction of the SQL gateway, so that only this feature
writes SQL against the events (the store numbers and stores them with their updates,
:meth:`crdt_server.storage.DocumentStore.append`)."""

from __future__ import annotations

from crdt_server.storage.gateway import Sql, Tx

__all__ = ["forget_events_of"]


def forget_events_of(wedding: str, sub: str, kinds: str) -> Tx[int]:
    """The step that deletes the wedding's events credited to ``sub`` whose type starts
    with ``kinds`` (``"thread."``; a ``LIKE`` prefix: no ``%`` or ``_`` in it), as a
    person's erasure does; how many went."""
    gone: int = yield Sql(
        "DELETE FROM {t}events WHERE wedding = ? AND sub = ? AND type LIKE ?",
        (wedding, sub, f"{kinds}%"),
        count=True,
    )
    return gone
