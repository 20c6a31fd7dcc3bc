"""The cross-process seam: what processes sharing a store tell each other.

After a commit a room publishes its updates with their store sequence numbers (to the
processes that have the room open: a room tells the bus when it opens and closes); accepted
presence, stateless messages and admin events (revocation, deletion) travel the same way.
Publishing never waits: the bus queues and sends in the background, so a slow or absent bus
never delays a local client. The store stays the source of truth: a process that may have
missed something (a gap in the sequence numbers, a lost connection to the bus) catches up
from it.

In one process nobody needs telling, so :class:`LocalBus` does nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

__all__ = ["Bus", "BusHandler", "LocalBus"]


class BusHandler(Protocol):
    """What a process does with what it hears (the room registry implements it)."""

    def on_updates(self, doc: str, seqs: Sequence[int], updates: Sequence[bytes]) -> None:
        """Committed updates of ``doc`` from another process."""

    def on_awareness(self, doc: str, origin: str, payload: bytes) -> None:
        """Presence in ``doc`` accepted by process ``origin``."""

    def on_stateless(self, room: str, text: str | Mapping[str, str]) -> None:
        """A stateless message for the connections of ``room`` (see
        :meth:`Bus.publish_stateless`) from another process."""

    def on_event(self, event: dict[str, Any]) -> None:
        """An admin event (revocation, deletion) from another process."""

    async def committed_seq(self) -> int:
        """The newest seq the shared store has committed (where hearing starts from)."""

    async def on_gap(self, seqs: Sequence[int]) -> None:
        """These seqs were committed but never heard of: catch their rooms up."""

    async def on_reconnect(self) -> None:
        """The bus was down: anything may have been missed, catch every room up."""

    def on_opened(self, topic: str) -> None:
        """Another process began watching ``topic`` (a name without a slash: not a room)."""

    async def on_missed(self, docs: Sequence[str]) -> None:
        """These rooms, open here, had updates committed elsewhere that were never sent
        here (their publisher did not know yet that they are open here): catch them up."""


class Bus(Protocol):
    process_id: str
    shared: bool
    """Whether other processes may commit to the same store (and tell this one only
    through the bus); ``False`` for a single process."""

    async def start(self, handler: BusHandler) -> None: ...

    async def close(self) -> None: ...

    def publish_updates(self, doc: str, seqs: Sequence[int], updates: Sequence[bytes]) -> None:
        """Committed updates of ``doc`` with their store sequence numbers (sent only to the
        processes that have ``doc`` open; the others hear of the seqs alone)."""

    def watch(self, doc: str) -> None:
        """``doc`` is open here (loading or loaded): send its updates here from now on.
        Also a feature's topic (a name without a slash, which no room has): see
        :meth:`open_elsewhere`."""

    def unwatch(self, doc: str) -> None:
        """``doc`` is no longer open here."""

    def open_elsewhere(self, name: str) -> bool:
        """Whether another process has the room or topic ``name`` open, as far as this
        one has heard (a feature that publishes for a topic's watchers only must cope with
        a wake-up missed while the news travels)."""

    def publish_awareness(self, doc: str, payload: bytes) -> None:
        """An accepted awareness payload of ``doc`` (already validated and stamped)."""

    def publish_stateless(self, room: str, text: str | Mapping[str, str]) -> None:
        """A stateless message (JSON text) for the connections of ``room`` in the other
        processes: one ``text`` for each, or a text per role (a connection whose role is not
        named is told nothing). Already checked, stamped and cut to the field rules here."""

    def publish_event(self, event: dict[str, Any]) -> None:
        """An admin event for every other process."""

    async def try_lease(self, name: str, seconds: float) -> bool:
        """Hold ``name`` for ``seconds`` if nobody else does (e.g. to compact a room once),
        or for ``seconds`` from now if this process holds it already (renewed: a writer
        that keeps a short lease renews it as it works, so that another process takes
        over soon after it dies). ``False`` when another process holds it, or when the bus
        cannot say."""

    @property
    def status(self) -> str:
        """``local``, ``ok``, ``lost: <why>`` (Redis does not answer its health ping), or
        ``degraded: <why>``."""

    @property
    def losses(self) -> int:
        """Times the bus was lost (0 for a single process)."""


class LocalBus:
    """A single process: nobody else to tell, every lease is ours."""

    shared = False
    losses = 0

    def __init__(self) -> None:
        self.process_id = uuid.uuid4().hex

    async def start(self, handler: BusHandler) -> None:
        return None

    async def close(self) -> None:
        return None

    def publish_updates(self, doc: str, seqs: Sequence[int], updates: Sequence[bytes]) -> None:
        return None

    def watch(self, doc: str) -> None:
        return None

    def unwatch(self, doc: str) -> None:
        return None

    def open_elsewhere(self, name: str) -> bool:
        return False

    def publish_awareness(self, doc: str, payload: bytes) -> None:
        return None

    def publish_stateless(self, room: str, text: str | Mapping[str, str]) -> None:
        return None

    def publish_event(self, event: dict[str, Any]) -> None:
        return None

    async def try_lease(self, name: str, seconds: float) -> bool:
        return True

    @property
    def status(self) -> str:
        return "local"
