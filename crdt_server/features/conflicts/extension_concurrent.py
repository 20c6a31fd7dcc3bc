"""No write disappears silently: concurrent overwrites become stored findings.

The room reports, for each integrated update, the writes that did not take effect
(:mod:`crdt_server.core.overwrites`): a value that lost a race for one map key to a
concurrent write, or an edit of an entry someone removed without having seen it. This
extension turns each into a ``concurrent_edit`` finding, written in the update's own commit
transaction with its ``conflict.detected`` event (credited to the author of the lost write),
and keeps the Yjs client id -> first sender table that names the authors of old items.

A finding closes by itself when someone writes the same key having seen the value that won
(``conflict.resolved``, resolution ``written``), or when someone acknowledges or resolves it
through the conflicts API. Two devices of one person racing each other make a finding with
``same_actor: true`` that nobody is told about (its event is recorded with no audience but
its author). The hierarchy suggests keeping the higher role's value; for equal roles (or
unknown writers) the value that is there now.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from crdt_server import clock
from crdt_server.actor import Actor
from crdt_server.auth.permissions import PermissionMatrix
from crdt_server.cluster.messages import BusMessage, Delete, from_event, item_from_bus, to_event
from crdt_server.core.hooks import SERVER, CommitBatch, Core, Extension, RoomView
from crdt_server.core.overwrites import Found, Overwrite
from crdt_server.documents import DOCUMENT_KINDS
from crdt_server.documents.domain import WEDDINGS
from crdt_server.documents.events import bounded
from crdt_server.documents.redaction import finding_for_reader
from crdt_server.features.conflicts.domain_resolution import rank
from crdt_server.features.conflicts.extension_notices import Notices
from crdt_server.features.conflicts.tables import (
    ConcurrentEditStore,
    StoredFinding,
    client_row,
    closure_row,
    finding_row,
)
from crdt_server.features.notifications import OVERWRITTEN, notice_rows
from crdt_server.features.people import Member
from crdt_server.storage import FeatureRow, NewEvent

if TYPE_CHECKING:
    from crdt_server.features.events import EventLog
    from crdt_server.features.people import People

__all__ = ["ConcurrentEdits", "finding_view"]

log = logging.getLogger("crdt_server.concurrent_edits")

CODE = "concurrent_edit"
_BUS_TYPE = "concurrent_edits"


class _Note(msgspec.Struct, frozen=True):
    """A finding this process opened or closed, for the others' open lists."""

    wedding: str
    doc: str
    path: list[str]
    id: str
    open: bool


class _Notes(BusMessage, frozen=True, tag=_BUS_TYPE):
    notes: list[Any]
    """:class:`_Note` values, each read on its own (a bad one is dropped, not the rest)."""


_NOBODY = Actor("", "")
"""Who an unknown Yjs client is (no sender recorded)."""
_WEDDINGS_REMEMBERED = 2000


@dataclass(slots=True)
class _Wedding:
    clients: dict[int, Actor] = field(default_factory=dict)
    open: dict[tuple[str, tuple[str, ...]], list[str]] = field(default_factory=dict)
    """(document kind, path) -> ids of the open findings on that key."""


def entry_path(doc: str, path: Sequence[str]) -> str:
    """The conflicts API's path of the entry a key belongs to (``guests/guests/g1``); a key
    of a root map is its own entry (``seating/assignments/g1``)."""
    return "/".join((doc, *path[:2]))


def _field(path: Sequence[str]) -> str | None:
    return "/".join(path[2:]) or None


def _message(kind: str, doc: str, path: Sequence[str]) -> str:
    """A sentence without the values (they are in ``lost`` and ``kept``, shown to those who
    may read the document)."""
    where = "/".join(path)
    if kind == "edited_removed_entry":
        return f"An edit of {doc} '{where}' was lost: the entry was removed at the same time."
    return f"Two writes of {doc} '{where}' crossed: one value was kept, the other was lost."


def finding_view(f: StoredFinding) -> dict[str, Any]:
    """A stored finding as the API and the conflicts room show it."""
    path = json.loads(f.path)
    lost = {
        "actor": None if f.loser_sub is None else {"sub": f.loser_sub, "role": f.loser_role},
        "value": json.loads(f.loser_value),
        "at": f.loser_at,
    }
    kept = None
    if f.winner_client is not None or f.winner_sub is not None:
        kept = {
            "actor": None if f.winner_sub is None else {"sub": f.winner_sub, "role": f.winner_role},
            "value": None if f.winner_value is None else json.loads(f.winner_value),
            "at": f.winner_at,
        }
    loser = None if f.loser_sub is None else Actor(f.loser_sub, str(f.loser_role))
    winner = None if f.winner_sub is None else Actor(f.winner_sub, str(f.winner_role))
    keep: Actor | None
    if f.kind == "edited_removed_entry":
        keep = winner if rank(winner) <= rank(loser) else loser
    else:
        keep = loser if rank(loser) < rank(winner) else winner
    keep_lost = keep is not None and keep == loser and keep != winner
    suggestion: dict[str, Any] = {
        "strategy": "role_priority",
        "keep": None if keep is None else {"sub": keep.sub, "role": keep.role},
        "ops": [],
        "message": (
            "Keep the lost value: its author's role ranks higher (write it again)."
            if keep_lost
            else "Keep the current value (acknowledge the conflict)."
        ),
    }
    message = _message(f.kind, f.doc, path)
    return {
        "id": f.id,
        "code": CODE,
        "kind": f.kind,
        "doc": f.doc,
        "path": path,
        "paths": [entry_path(f.doc, path)],
        "field": _field(path),
        "message": message,
        "lost": lost,
        "kept": kept,
        "same_actor": f.same_actor,
        "detected_at": f.detected_at,
        "suggestion": suggestion,
    }


class ConcurrentEdits(Extension):
    """Stores the writes that vanished in a race (see the module docstring)."""

    name = "concurrent_edits"
    domain = WEDDINGS
    wants_overwrites = True

    def __init__(
        self, core: Core, *, events: EventLog | None = None, people: People | None = None
    ) -> None:
        """``people``: the member directory, to tell the author of a lost write (their
        inbox, and by email per their settings)."""
        self._events = events
        self._people = people
        self._members: dict[tuple[str, str], Member | None] = {}
        """Members to tell in the commit being prepared (read in :meth:`on_prepare`)."""
        self._bus = core.registry.bus
        self._running: set[asyncio.Task[None]] = set()
        self._announce: list[_Note] = []
        """Findings opened or closed by rows of the commit in progress: told to the other
        processes (which close them on a later write they commit) once it is stored."""
        self.table = ConcurrentEditStore(core.store)
        self._weddings: OrderedDict[str, _Wedding] = OrderedDict()
        self._loading: dict[str, asyncio.Future[_Wedding]] = {}
        self._server_client = core.weddings.client_id
        text = core.settings.permissions
        self._permissions = PermissionMatrix.from_json(text) if text else PermissionMatrix()
        """Who may read which fields (the emails to the authors of lost writes are cut to it)."""
        self._notices = Notices(core.registry, core.settings)
        self._lost: dict[str, list[StoredFinding]] = {}
        """Room -> the findings the commit in progress opens there: its document's
        Hocuspocus providers are told once it is stored."""
        self.on_findings_changed: Callable[[str], None] | None = None
        """Told of a wedding whose open findings changed other than by rows of a commit
        here (those come with their events): recorded or closed by another process, found
        in another's content, erased."""

    async def on_load(self, room: RoomView) -> None:
        if room.kind in DOCUMENT_KINDS:
            await self._wedding(room.wedding_id)

    async def _wedding(self, wedding: str) -> _Wedding:
        known = self._weddings.get(wedding)
        if known is not None:
            self._weddings.move_to_end(wedding)
            return known
        loading = self._loading.get(wedding)
        if loading is not None:
            return await asyncio.shield(loading)
        future: asyncio.Future[_Wedding] = asyncio.get_running_loop().create_future()
        self._loading[wedding] = future
        try:
            table = self.table
            state = _Wedding(await table.clients(wedding))
            for f in await table.findings(wedding):
                state.open.setdefault((f.doc, tuple(json.loads(f.path))), []).append(f.id)
            self._weddings[wedding] = state
            while len(self._weddings) > _WEDDINGS_REMEMBERED:
                self._weddings.popitem(last=False)
            future.set_result(state)
            return state
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a waiter re-raises it
            raise
        finally:
            del self._loading[wedding]

    async def on_guest_erased(self, wedding: str, guest_id: str) -> None:
        """A guest erased: the findings about them (their values) go."""
        prefixes = [
            json.dumps([root, guest_id], separators=(",", ":"))[:-1]
            for root in ("guests", "assignments")
        ]
        await self.table.erase_entry(
            wedding, [p + "," for p in prefixes] + [p + "]" for p in prefixes]
        )
        self._weddings.pop(wedding, None)  # its open findings are read again
        self._changed(wedding)

    async def on_member_erased(self, wedding: str, sub: str) -> bool:
        """A member erased: no finding names them any more."""
        await self.table.forget_member(wedding, sub)
        self._weddings.pop(wedding, None)
        self._changed(wedding)
        return False

    def _changed(self, wedding: str) -> None:
        if self.on_findings_changed is not None:
            self.on_findings_changed(wedding)

    # -- in the commit transaction -------------------------------------------------------

    async def on_prepare(self, room: RoomView, batch: CommitBatch) -> None:
        """A race against a write another process committed names that write's client:
        read the wedding's clients again when one is not known here (rare: only races with
        other processes' writers, once per client)."""
        self._lost.pop(room.name, None)  # what a commit that failed found: told nobody
        if room.kind not in DOCUMENT_KINDS:
            return
        state = self._weddings.get(room.wedding_id)
        if state is None:
            return
        self._members = {}
        refreshed = False
        for update in batch.updates:
            for sender, found in update.found:
                for o in found.overwrites:
                    others = [o.loser.id[0]] if not o.new_lost else []
                    if o.winner is not None and not o.new_won:
                        others.append(o.winner.id[0])
                    unknown = any(
                        c not in state.clients and c != self._server_client for c in others
                    )
                    if unknown and not refreshed:
                        state.clients.update(await self.table.clients(room.wedding_id))
                        refreshed = True
                    loser = (
                        sender.actor.sub
                        if o.new_lost
                        else state.clients.get(o.loser.id[0], _NOBODY).sub
                    )
                    key = (room.wedding_id, loser)
                    if self._people is not None and loser and key not in self._members:
                        self._members[key] = await self._people.member(room.wedding_id, loser)

    def on_commit(self, room: RoomView, batch: CommitBatch) -> Sequence[NewEvent | FeatureRow]:
        if room.kind not in DOCUMENT_KINDS:
            return ()
        wedding = room.wedding_id
        state = self._weddings.get(wedding)
        if state is None:  # forgotten meanwhile: known again from the table next time
            state = self._weddings[wedding] = _Wedding()
        rows: list[NewEvent | FeatureRow] = []
        lost: list[StoredFinding] = []
        now = clock.now()
        for update in batch.updates:
            for sender, found in update.found:
                actor = sender.actor
                person = actor.role != SERVER.actor.role
                if person:
                    for client in sorted(found.clients):
                        if client != self._server_client and client not in state.clients:
                            state.clients[client] = actor
                            rows.append(client_row(wedding, client, actor.sub, actor.role, now))
                for path in found.written:
                    for finding in state.open.pop((room.kind, path), ()):
                        self._note(wedding, room.kind, path, finding, opened=False)
                        rows.append(
                            closure_row(finding, wedding, "written", actor.sub, actor.role, now)
                        )
                        rows.append(
                            _closed_event(wedding, finding, room.kind, path, "written", actor)
                        )
                for overwrite in found.overwrites:
                    stored = self._finding(wedding, room.kind, overwrite, actor, state, now)
                    state.open.setdefault((room.kind, overwrite.path), []).append(stored.id)
                    self._note(wedding, room.kind, overwrite.path, stored.id, opened=True)
                    rows.append(finding_row(stored))
                    rows.append(_detected_event(stored))
                    rows.extend(self._tell(stored, now))
                    lost.append(stored)
        self._members = {}
        if lost:
            # Added to: a batch whose rows failed is asked again update by update.
            self._lost.setdefault(room.name, []).extend(lost)
        return rows

    def _tell(self, f: StoredFinding, now: float) -> list[FeatureRow]:
        """The lost write's author hears of it (inbox, and email per their settings), unless
        they raced themselves (two devices) or the server does not know them."""
        if self._people is None or f.loser_sub is None or f.same_actor:
            return []
        member = self._members.get((f.wedding, f.loser_sub))
        by = Actor(f.winner_sub or "", f.winner_role or "")
        return notice_rows(f.wedding, member, f.loser_sub, OVERWRITTEN, f.id, by, now)

    def _note(
        self, wedding: str, doc: str, path: Sequence[str], finding: str, *, opened: bool
    ) -> None:
        self._announce.append(_Note(wedding, doc, list(path), finding, opened))

    def on_stored(self, room: RoomView, batch: CommitBatch) -> None:
        lost = self._lost.pop(room.name, ())
        if lost:
            for finding in lost:
                self._notices.lost_write(room.wedding_id, finding_view(finding))
        if self._announce:
            notes, self._announce = self._announce, []
            self._bus.publish_event(to_event(_Notes(list(notes))))

    def on_bus_event(self, event: dict[str, Any]) -> None:
        """Another process opened or closed findings: keep the open ones of weddings known
        here current, so a write committed here closes them."""
        if (deleted := from_event(event, Delete)) is not None:
            self._weddings.pop(deleted.wedding, None)  # erased: its rows are gone
            return
        message = from_event(event, _Notes)
        if message is None:
            return
        for note in (item_from_bus(raw, _Note) for raw in message.notes):
            if note is None:
                continue
            self._changed(note.wedding)
            state = self._weddings.get(note.wedding)
            if state is None:
                continue
            ids = state.open.setdefault((note.doc, tuple(note.path)), [])
            if note.open and note.id not in ids:
                ids.append(note.id)
            elif not note.open and note.id in ids:
                ids.remove(note.id)

    # -- content another process committed ------------------------------------------------

    def on_overwritten(self, room: RoomView, found: Sequence[Found]) -> None:
        """Races found in content another process committed: each is stored once (the
        first process to store its id records its event; the process that integrated the
        lost or winning write live stored it in that commit already)."""
        task = asyncio.create_task(
            self._record_remote(room.wedding_id, room.kind, list(found)),
            name=f"concurrent-edits-{room.name}",
        )
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _record_remote(self, wedding: str, doc: str, found: list[Found]) -> None:
        try:
            state = await self._wedding(wedding)
            state.clients.update(await self.table.clients(wedding))  # others' writers
            now = clock.now()
            for one in found:
                for overwrite in one.overwrites:
                    stored = self._finding(wedding, doc, overwrite, SERVER.actor, state, now)
                    if not await self.table.insert([finding_row(stored)]):
                        continue  # stored already, with its event
                    state.open.setdefault((doc, overwrite.path), []).append(stored.id)
                    self._note(wedding, doc, overwrite.path, stored.id, opened=True)
                    if self._events is not None:
                        await self._events.record([_detected_event(stored)])
                    self._changed(wedding)
            if self._announce:
                notes, self._announce = self._announce, []
                self._bus.publish_event(to_event(_Notes(list(notes))))
        except Exception:
            log.exception("could not record the races found in wedding %s", wedding)

    async def close(self) -> None:
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _finding(
        self,
        wedding: str,
        doc: str,
        o: Overwrite,
        actor: Actor,
        state: _Wedding,
        now: float,
    ) -> StoredFinding:
        def who(client: int, new: bool) -> tuple[str | None, str | None]:
            if new and actor.role != SERVER.actor.role:
                return actor.sub, actor.role
            known = state.clients.get(client)
            return (known.sub, known.role) if known is not None else (None, None)

        loser_sub, loser_role = who(o.loser.id[0], o.new_lost)
        if o.winner is not None:
            winner_client: int | None = o.winner.id[0]
            winner_sub, winner_role = who(o.winner.id[0], o.new_won)
            winner_value: str | None = _json(o.winner.value)
            winner_at = o.winner.at
        elif not o.new_lost and actor.role != SERVER.actor.role:
            # This update removed the entry the lost edit was made in: its author is the
            # other party.
            winner_client, winner_value, winner_at = None, None, now
            winner_sub, winner_role = actor.sub, actor.role
        else:
            winner_client = winner_sub = winner_role = winner_value = None
            winner_at = None
        same = loser_sub is not None and loser_sub == winner_sub
        return StoredFinding(
            id=o.id,
            wedding=wedding,
            doc=doc,
            path=json.dumps(list(o.path), separators=(",", ":")),
            kind=o.kind,
            loser_client=o.loser.id[0],
            loser_sub=loser_sub,
            loser_role=loser_role,
            loser_value=_json(o.loser.value),
            loser_at=o.loser.at,
            winner_client=winner_client,
            winner_sub=winner_sub,
            winner_role=winner_role,
            winner_value=winner_value,
            winner_at=winner_at,
            same_actor=same,
            detected_at=now,
        )

    # -- through the API -----------------------------------------------------------------

    async def describe(self, wedding: str, finding: str, reader: Member) -> str | None:
        """A finding in a sentence for the email of its loser, ``reader`` (``None`` once it
        is closed, or when their role may no longer read its document). The values of
        fields their role may not read are left out, as everywhere that role reads findings
        (:func:`crdt_server.documents.redaction.finding_for_reader`): a vendor allowed to
        write the guest list who lost a race on a guest's contact is told of the race, not
        of the contact, theirs or the other writer's."""
        found = next((f for f in await self.findings(wedding) if f.id == finding), None)
        permissions = self._permissions
        fields = reader.guest_fields
        if found is None or not permissions.access(reader.role, found.doc, None, fields).can_read:
            return None
        hidden = permissions.hidden_fields(reader.role, found.doc, fields)
        view = finding_for_reader(finding_view(found), hidden)
        kept = view["kept"] or {}
        lost = view["lost"]
        who = (kept.get("actor") or {}).get("sub") or "someone"
        where = "/".join(view["path"])
        if found.kind == "edited_removed_entry":
            yours = (
                f"you set it to {json.dumps(lost['value'])}"
                if "value" in lost
                else "its value is hidden from your role"
            )
            return (
                f"Your change was lost: {found.doc} {where} was removed by {who} at the same"
                f" time ({yours})."
            )
        if "value" not in lost or "value" not in kept:
            return (
                f"Your change was replaced: {found.doc} {where} was written by {who} at the"
                " same time, and theirs was kept (the values are hidden from your role)."
                " Open the app to acknowledge it."
            )
        return (
            f"Your change was replaced: {found.doc} {where} is now"
            f" {json.dumps(kept['value'])} ({who} wrote it at the same time); you wrote"
            f" {json.dumps(lost['value'])}. Open the app to keep yours or theirs."
        )

    async def findings(self, wedding: str) -> list[StoredFinding]:
        """The wedding's open findings, oldest first."""
        return await self.table.findings(wedding)

    async def settle(
        self, wedding: str, finding: StoredFinding, how: str, actor: Actor
    ) -> NewEvent | None:
        """Close ``finding`` (``acknowledged`` or ``resolved``): the event to record, or
        ``None`` if it was closed already (by someone else, meanwhile)."""
        now = clock.now()
        path = tuple(json.loads(finding.path))
        written = await self.table.insert(
            [closure_row(finding.id, wedding, how, actor.sub, actor.role, now)]
        )
        state = self._weddings.get(wedding)
        if state is not None:
            ids = state.open.get((finding.doc, path), [])
            if finding.id in ids:
                ids.remove(finding.id)
        note = _Note(wedding, finding.doc, list(path), finding.id, False)
        self._bus.publish_event(to_event(_Notes([note])))
        if not written:
            return None
        return _closed_event(wedding, finding.id, finding.doc, path, how, actor)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _detected_event(f: StoredFinding) -> NewEvent:
    view = finding_view(f)
    data = {
        key: view[key]
        for key in ("id", "code", "kind", "paths", "doc", "path", "field", "lost", "kept")
    }
    data["docs"] = [f.doc]
    data["same_actor"] = f.same_actor
    sub = f.loser_sub or SERVER.actor.sub
    role = f.loser_role or SERVER.actor.role
    return NewEvent(
        f.wedding,
        "conflict.detected",
        json.dumps(bounded(data), separators=(",", ":")),
        f.doc,
        sub=sub,
        role=role,
        at=f.detected_at,
    )


def _closed_event(
    wedding: str, finding: str, doc: str, path: Sequence[str], how: str, actor: Actor
) -> NewEvent:
    kind = "conflict.acknowledged" if how == "acknowledged" else "conflict.resolved"
    data: Mapping[str, Any] = {
        "id": finding,
        "code": CODE,
        "paths": [entry_path(doc, path)],
        "docs": [doc],
        "path": list(path),
        "resolution": how,
    }
    return NewEvent(
        wedding,
        kind,
        json.dumps(bounded(dict(data)), separators=(",", ":")),
        doc,
        sub=actor.sub,
        role=actor.role,
    )
