"""What the conflicts keeper holds of one wedding (:class:`KeptWedding`): its findings, what
is to be written again, its evaluation's task, lock and timer, and the entries changes
touched since the last evaluation, read again a slice at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Doc

from crdt_server.core.crdt import copy_of
from crdt_server.core.hooks import RoomView
from crdt_server.core.views import WeddingsView
from crdt_server.documents import DOCUMENT_KINDS
from crdt_server.documents.changes import EntryChange
from crdt_server.documents.findings import Ident, WeddingFindings
from crdt_server.storage import StoredEvent
from crdt_server.threads import share_gil

__all__ = ["KeptWedding"]

_TOUCH_SLICE = 200
"""Entries read again per turn of the event loop (about 4 ms of a guest list's)."""


@dataclass(slots=True, eq=False)
class KeptWedding:
    """What the keeper holds of one wedding."""

    findings: WeddingFindings | None = None
    stale: bool = False
    """A change came from a document the findings were not read from: read them again."""
    keys: set[Ident] = field(default_factory=set)
    """Findings to write again although unchanged (their entries' writers changed)."""
    full: bool = False
    """Compare every finding with the conflicts room (after a build, or asked to)."""
    stored: bool = False
    """Concurrent-edit findings may have been opened or closed: read them again."""
    task: asyncio.Task[None] | None = None
    again: bool = False
    local: bool = False
    """Changed by a commit here since the last evaluation was scheduled."""
    timer: asyncio.TimerHandle | None = None
    """The evaluation after another process's content
    (:data:`~crdt_server.features.conflicts.extension.REMOTE_GRACE`)."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while the conflicts room is brought up to date (one at a time per wedding)."""
    resolved: dict[str, StoredEvent] = field(default_factory=dict)
    """``conflict.resolved`` events credited to a resolver, for :meth:`ConflictsKeeper.resolve
    <crdt_server.features.conflicts.extension.ConflictsKeeper.resolve>` to name."""
    touched: list[tuple[str, Doc[Any], list[EntryChange]]] = field(default_factory=list)
    """What changes of a document of a kind did to its entries since the last evaluation,
    which applies it (:meth:`read_touched`)."""

    building: bool = False
    """The findings are being read whole, on a worker thread, from copies of the documents
    taken before: what changes touch meanwhile is read again from the documents after."""

    def touch(self, room: RoomView, changes: Sequence[EntryChange]) -> None:
        """Entries of ``room``'s document that a change touched, for the next evaluation
        to read again (none before the findings are built)."""
        if self.building:
            if changes:
                self.touched.append((room.kind, room.doc, list(changes)))
            return
        findings = self.findings
        if findings is None:
            return  # built from the documents as they are when it is first evaluated
        if findings.sources.get(room.kind) is not room.doc:
            self.stale = True  # a document it was not built from: built again
            return
        if changes:
            # Read by the evaluation that follows, a slice at a time: one update may touch
            # thousands of entries, which must not hold the event loop all at once.
            self.touched.append((room.kind, room.doc, list(changes)))

    def settle_quietly(self) -> bool:
        """Apply what changes touched since the last evaluation and evaluate, here and now,
        when that is all there is to do (a few entries of the documents the findings were
        read from, nothing else marked); whether every finding stayed as it was, with
        nothing to write. Otherwise what changed is kept for the evaluation's task."""
        findings = self.findings
        if findings is None or self.stale or self.keys or self.full or self.stored:
            return False
        touched = self.touched
        if sum(len(entries) for _, _, entries in touched) > _TOUCH_SLICE:
            return False  # read by the task, a slice per turn of the loop
        if any(findings.sources.get(kind) is not doc for kind, doc, _ in touched):
            return False  # a document replaced: read whole by the task
        self.touched = []
        try:
            for kind, doc, entries in touched:
                findings.apply(kind, doc, entries)
            self.keys = findings.evaluate()
        except Exception:
            self.stale = True  # not trusted any more: read whole next time
            raise
        return not self.keys

    async def read_touched(self) -> None:
        """Read again the entries the changes since the last evaluation touched."""
        while self.touched:
            kind, doc, entries = self.touched.pop(0)
            findings = self.findings
            if findings is None or self.stale:
                self.touched.clear()  # read whole by the evaluation
                return
            if findings.sources.get(kind) is not doc:
                self.stale = True
                continue
            for at in range(0, len(entries), _TOUCH_SLICE):
                if at:
                    await asyncio.sleep(0)  # let the loop turn (health checks, other rooms)
                try:
                    findings.apply(kind, doc, entries[at : at + _TOUCH_SLICE])
                except Exception:
                    self.stale = True  # not trusted any more: read whole next time
                    raise

    async def up_to_date(self, service: WeddingsView, wedding_id: str) -> WeddingFindings | None:
        """The findings, brought up to date with the wedding's documents (the touched
        entries read again, or everything when a document was replaced); ``None`` when the
        changes since the last evaluation left every finding and all else as it was."""
        await self.read_touched()
        findings = self.findings
        quiet = not (self.stale or self.keys or self.full or self.stored)
        if findings is not None and quiet:
            # Most changes leave every finding as it was, which the findings' own records
            # (kept by what each change touched) tell without the documents, whose check
            # costs a store query for each kind no room holds. A document replaced since
            # is found by the next change that has work.
            changed = findings.evaluate()
            if not changed:
                return None
            self.keys = changed
        docs = await service.documents(wedding_id)
        if findings is not None and not self.stale:
            for kind in DOCUMENT_KINDS:
                was, now_doc = findings.sources.get(kind), docs.get(kind)
                if was is not now_doc and was is not None and now_doc is not None:
                    # A room unloaded (its copy now) or loaded again with nothing new: the
                    # same content in another object needs no rebuild (compared in Rust).
                    if was.get_update() == now_doc.get_update():
                        findings.sources[kind] = now_doc
        if (
            findings is None
            or self.stale
            or any(findings.sources.get(kind) is not docs.get(kind) for kind in DOCUMENT_KINDS)
        ):
            # Loaded here, or a document replaced by one the changes did not come from (a
            # room loaded or rebuilt, another process's copy): read whole, compare whole.
            findings = self.findings = await self._build(docs)
        return findings

    async def _build(self, docs: Mapping[str, Doc[Any]]) -> WeddingFindings:
        """The findings read whole from ``docs``, on a worker thread, from copies taken
        here (20,000 guests read on the loop held it 0.6 s after a restore); their sources
        are the documents themselves, whose changes meanwhile are read again next time."""
        self.stale, self.full = False, True
        self.touched.clear()  # read whole now
        copies = {kind: copy_of(doc) for kind, doc in docs.items()}  # in Rust: milliseconds
        self.building = True
        try:
            built = await asyncio.to_thread(WeddingFindings.build, copies, share_gil)
        finally:
            self.building = False
        built.sources.update({kind: docs.get(kind) for kind in DOCUMENT_KINDS})
        return built
