"""What the hooks are given: who made a change, the updates of a commit, the batch.

A vocabulary module: it imports nothing of the core's rooms, registry or connections, so
the hooks (:mod:`crdt_server.core.hooks`), the views (:mod:`crdt_server.core.views`) and the
rooms can all use it without importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from crdt_server.actor import Actor
from crdt_server.core.domain import ChangeRecord
from crdt_server.core.overwrites import Found
from crdt_server.storage import NewEvent

__all__ = ["DERIVATION_FAILED", "SERVER", "CommitBatch", "PendingUpdate", "Sender"]


@dataclass(frozen=True, slots=True)
class Sender:
    """Who made a change (:class:`~crdt_server.actor.Actor`) and the channel it came
    through (``origin``: a connection id such as ``c12``, ``http:<sub>`` or
    ``server:...``).

    More than who, so a type of its own that holds an ``Actor``: the channel decides which
    connection a held update is echoed to, is stored with each update row, and is the
    origin of the Yjs transactions of the server's own edits.
    """

    actor: Actor
    origin: str = ""


DERIVATION_FAILED = "system.derivation_failed"
"""The event stored in place of an extension's rows for an update its ``on_commit`` raised
on: ``{"step", "doc", "error"}`` (the exception's type, never its message)."""

SERVER = Sender(Actor("server", "server"), "server")
"""Changes the server makes on its own (conflict bookkeeping, seeding)."""


@dataclass(frozen=True, slots=True)
class PendingUpdate:
    """An accepted update about to be committed, with who sent it and what it changed.

    ``changes`` pairs each sender with the entries an integration credited to them: usually
    one pair, the sender's; several when this update released held updates of other
    senders (each is credited with what it changed); empty when the room records no
    changes (no extension asked for them, or the room holds no document of their
    :class:`~crdt_server.core.domain.Domain`) or nothing readable changed. The records are
    the domain's (:func:`crdt_server.documents.changes.entry_changes` narrows them).
    """

    doc: str
    data: bytes
    sender: Sender
    client_id: int | None = None
    changes: list[tuple[Sender, Sequence[ChangeRecord]]] = field(default_factory=list)
    found: list[tuple[Sender, Found]] = field(default_factory=list)
    """What each integration did to the document's map keys (the writes it made vanish, or
    that vanished in it, and the keys it wrote), credited like ``changes``; empty unless an
    extension :attr:`~crdt_server.core.hooks.Extension.wants_overwrites`."""


@dataclass(frozen=True, slots=True)
class CommitBatch:
    """A room's updates committed together (one store transaction), in the order they
    were applied, with their merged changes; what the commit-side hooks receive.

    Before the commit (``on_prepare``, ``on_commit``) ``seqs`` and ``events`` are empty;
    once stored (``on_stored``, ``on_change``) ``seqs`` holds each update's store sequence
    number and ``events`` the events stored with them. A batch may hold one update or
    many: an extension reads :attr:`updates` (or :attr:`changes`) whatever their number,
    so how the room groups its updates can change without changing any extension.

    ``remote`` batches (``on_change`` only) are content this process did not commit:
    another process's updates (``seqs`` are theirs), or a catch-up or rebuild from the
    store (no seqs); they have no :attr:`updates` (what changed is told through
    ``on_remote_changes`` and ``on_overwritten``).
    """

    updates: Sequence[PendingUpdate]
    seqs: Sequence[int] = ()
    events: Sequence[NewEvent] = ()
    remote: bool = False

    @property
    def changes(self) -> list[tuple[Sender, Sequence[ChangeRecord]]]:
        """Every update's :attr:`PendingUpdate.changes`, merged in order: who is credited
        with which change records."""
        return [pair for update in self.updates for pair in update.changes]

    @property
    def found(self) -> list[tuple[Sender, Found]]:
        """Every update's :attr:`PendingUpdate.found`, merged in order."""
        return [pair for update in self.updates for pair in update.found]

    def stored(self, seqs: Sequence[int], events: Sequence[NewEvent]) -> CommitBatch:
        """The same batch once committed, with its seqs and stored events."""
        return CommitBatch(self.updates, seqs, events, self.remote)

    def one(self, update: PendingUpdate) -> CommitBatch:
        """A batch of ``update`` alone (an extension that raised on the whole batch is
        asked again one update at a time)."""
        return CommitBatch((update,), (), (), self.remote)
