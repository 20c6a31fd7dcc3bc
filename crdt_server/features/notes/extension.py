"""Edit sessions of collaborative text: one event per person's run of typing, not per key.

Typing in an entry's ``notes`` (a ``Y.Text``, edited in place) is no entry event. Instead,
a person's edits of one text form a **session**:

* their first edit of that text (seen in a committed batch, :attr:`EntryChange.edited`)
  opens it: a row (who, the entry, an excerpt of the text before, the edit's seq) is written
  right after that commit, in one transaction with the other sessions the batch opened
  (:mod:`crdt_server.features.notes.tables`);
* it closes once that person has not edited that text for
  ``CRDT_SERVER_NOTES_SESSION_IDLE_SECONDS`` (60), after
  ``CRDT_SERVER_NOTES_SESSION_MAX_SECONDS`` (600) however busy, when their last connection
  to the document goes, or when the server stops;
* closing stores one ``*.notes_edited`` event (``guest.notes_edited``,
  ``timeline.item_notes_edited``, ...: ``{"id", "field", "session", "before", "after",
  "seqs": {"first", "last"}}``) and forgets the row in one transaction, and only while the
  row is there, so a session's event is stored once (a crash leaves both or neither);
  sessions that close together close in batches, each text read by its key (one update can
  open thousands: the work follows what it touched, never the whole document per text);
* rows left by a crash are closed at the next start (their last seq: the document's last).

Excerpts are the text's first :data:`EXCERPT` characters; readers whose role may not read
the field (a vendor, a guest's notes) get the event without them (:mod:`crdt_server.edge
.events`). A session lives in the process that commits the person's edits (a wedding's
owner); its ``before`` is that process's last view of the text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from crdt_server import clock
from crdt_server.actor import Actor
from crdt_server.core.hooks import CommitBatch, ConnectionView, Core, Extension, RoomView
from crdt_server.documents import DOCUMENT_KINDS
from crdt_server.documents.changes import entry_changes
from crdt_server.documents.domain import WEDDINGS
from crdt_server.documents.schema import ROOTS, TEXT_FIELDS
from crdt_server.documents.texts import text_value
from crdt_server.features.events import EventLog
from crdt_server.features.notes.settings import NoteSettings
from crdt_server.features.notes.tables import NoteSession, NoteSessionStore
from crdt_server.storage import NewEvent

__all__ = ["EXCERPT", "NOTES_EDITED", "NoteSessions"]

log = logging.getLogger("crdt_server.note_sessions")

EXCERPT = 280
"""Characters of a text kept in a session's excerpts (then ``…``)."""

NOTES_EDITED: dict[str, str] = {
    "guests": "guest.notes_edited",
    "tables": "seating.table_notes_edited",
    "items": "timeline.item_notes_edited",
    "categories": "budget.category_notes_edited",
    "payments": "budget.payment_notes_edited",
    "tasks": "task.notes_edited",
}
"""The event a closed session stores, by the root of its entry."""

_BATCH = 250
"""Sessions closed per transaction: their texts are read in one turn of the event loop
(about 2 ms), and a long transaction would hold the store's writer."""

_Key = tuple[str, str, str, str]  # room name, root, entry id, field


def excerpt(value: str | None) -> str:
    text = value or ""
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "…"


_EDITS_PER_TURN = 500
"""Committed edits whose sessions are looked up per turn of the event loop."""

_GONE_GRACE = 1.0
"""Seconds a session of someone whose socket already closed stays open after their last
edit (the rest of what they sent before leaving may still be committing)."""


@dataclass(frozen=True, slots=True)
class _Edit:
    """A committed edit of a text whose session is still to look up."""

    room: RoomView
    key: _Key
    actor: Actor
    seq: int
    at: float
    idle: float
    before: str
    """The text before the batch that made this edit."""


@dataclass(frozen=True, slots=True)
class _Gone:
    """``sub`` edited in ``room`` over a socket that had closed by the commit."""

    room: str
    sub: str


@dataclass(slots=True)
class _Open:
    row: NoteSession
    last_seq: int
    last_edit: float
    idle: float
    """Seconds without an edit that close it."""
    written: bool = False
    """Its row is stored (a close then stores its event only while the row is there)."""


class NoteSessions(Extension):
    """Opens, closes and recovers edit sessions (see the module docstring)."""

    name = "note_sessions"
    domain = WEDDINGS
    wants_changes = True

    def __init__(self, core: Core, events: EventLog) -> None:
        self._events = events
        self._core = core
        self._rows = NoteSessionStore(core.store)
        self._started = False
        """Whether its start ran: a commit before it (another extension's start edits a
        document) opens no session, its room's texts not read yet (:meth:`on_load`)."""
        self._texts: dict[str, dict[tuple[str, str, str], str]] = {}
        """Room name -> the last text seen of each (root, entry, field): a session's
        ``before``."""
        self._open: dict[tuple[_Key, str], _Open] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._opening: set[asyncio.Task[None]] = set()
        """Writes of opened sessions' rows in flight: a close waits for them, or the row
        of a session closed meanwhile would outlive it (and be closed again at start)."""
        self._loop_task: asyncio.Task[None] | None = None
        self._edits: deque[_Edit | _Gone] = deque()
        """Edits committed whose sessions are not looked up yet, in commit order (one
        update may edit thousands of texts: their sessions open over several turns of
        the event loop). Whatever reads :attr:`_open` takes them in first."""
        self._taking: asyncio.Task[None] | None = None

    # -- hooks --------------------------------------------------------------------------

    async def start(self, core: Core) -> None:
        self._started = True
        left = await self._rows.all()  # left open by a crash
        if left:
            last = await core.store.last_seqs(sorted({row.doc for row in left}))
            # Their rows are stored (``written``): each closes only if its row is still there.
            await self._close(
                [_Open(row, last.get(row.doc, row.first_seq), 0.0, 0.0, True) for row in left]
            )
        self._loop_task = asyncio.create_task(self._watch(), name="note-sessions")

    async def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._taking is not None:
            self._taking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._taking
        self._take_edits()
        closing = list(self._open.values())
        self._open.clear()
        try:
            await self._close(closing)
        except Exception:
            log.exception("edit sessions could not be closed; closed at the next start")
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task

    async def on_load(self, room: RoomView) -> None:
        if room.kind in DOCUMENT_KINDS:
            self._texts[room.name] = await _texts_of(room.doc, room.kind)

    def on_stored(self, room: RoomView, batch: CommitBatch) -> None:
        if room.kind not in DOCUMENT_KINDS or not self._started:
            return
        seen = self._texts.setdefault(room.name, {})
        now = clock.now()
        idle = self._core.settings.fragment(NoteSettings).notes_session_idle_seconds
        edited: set[tuple[str, str, str]] = set()
        gone: set[str] = set()  # people who edited over a socket (still there?)
        for update, seq in zip(batch.updates, batch.seqs, strict=False):
            for sender, changes in update.changes:
                actor = sender.actor
                for change in entry_changes(changes):
                    for name in TEXT_FIELDS & change.after.keys():
                        value = change.after.get(name)
                        if isinstance(value, str):  # a text set whole (a new entry)
                            seen[(change.root, change.id, name)] = value
                    for name in change.edited:
                        text = (change.root, change.id, name)
                        edited.add(text)
                        # The text before this batch: the ``before`` of a session this
                        # edit opens (known only now; the session is looked up later).
                        before = seen.get(text, "")
                        self._edits.append(
                            _Edit(room, (room.name, *text), actor, seq, now, idle, before)
                        )
                        if _over_socket(sender.origin):
                            gone.add(actor.sub)
        for text, value in _texts_in(room.doc, edited).items():
            seen[text] = value or ""
        # Edits that commit after their sender's socket closed (sent just before leaving)
        # end their session shortly after the last of them: no disconnect is coming.
        present = {c.principal.user_id for c in room.connections}
        for sub in gone - present:
            self._edits.append(_Gone(room.name, sub))
        if self._edits and self._taking is None:
            self._taking = asyncio.create_task(self._take_edits_soon(), name="note-edits")

    async def _take_edits_soon(self) -> None:
        try:
            while self._edits:
                self._take_edits(_EDITS_PER_TURN)
                await asyncio.sleep(0)  # let the loop turn (health checks, other rooms)
        finally:
            self._taking = None

    def _take_edits(self, limit: int | None = None) -> None:
        """Look up (open, or extend) the sessions of committed edits, in commit order:
        ``limit`` of them, or all."""
        opened: list[_Open] = []
        count = 0
        while self._edits and (limit is None or count < limit):
            item = self._edits.popleft()
            count += 1
            if isinstance(item, _Gone):
                for key, session in self._open.items():
                    if key[0][0] == item.room and key[1] == item.sub:
                        session.idle = min(session.idle, _GONE_GRACE)
                continue
            new = self._edit(item)
            if new is not None:
                opened.append(new)
        if opened:
            self._write(opened)

    def on_disconnect(self, room: RoomView, conn: ConnectionView) -> None:
        self._take_edits()
        sub = conn.principal.user_id
        if any(c.principal.user_id == sub for c in room.connections if c is not conn):
            return
        self._leave(room.name, sub)

    def _leave(self, room_name: str, sub: str) -> None:
        """Close ``sub``'s sessions in the room (their last connection to it went)."""
        keys = [k for k in self._open if k[0][0] == room_name and k[1] == sub]
        closing = [self._open.pop(key) for key in keys]
        if closing:
            self._spawn(self._close(closing))

    async def on_guest_erased(self, wedding: str, guest_id: str) -> None:
        """Per-person erasure: the guest's open sessions end without an event (their
        excerpts quote the guest's notes) and their rows go."""
        name = f"{wedding}/guests"
        self._take_edits()
        for key in [k for k in self._open if k[0][:3] == (name, "guests", guest_id)]:
            del self._open[key]
        self._texts.get(name, {}).pop(("guests", guest_id, "notes"), None)
        await self._written()  # a row still being written would outlive the erasure
        await self._rows.erase_entry(wedding, "guests", guest_id)

    # -- sessions -------------------------------------------------------------------------

    def _edit(self, edit: _Edit) -> _Open | None:
        """Note an edit of a text; the session it opens, if it opens one (its row is for
        the caller to write, together with the others opened with it)."""
        sub = edit.actor.sub
        session = self._open.get((edit.key, sub))
        opened = None
        if session is None:
            name, root, entry_id, field = edit.key
            row = NoteSession(
                uuid.uuid4().hex,
                edit.room.wedding_id,
                name,
                root,
                entry_id,
                field,
                sub,
                edit.actor.role,
                excerpt(edit.before),
                edit.seq,
                edit.at,
            )
            session = opened = self._open[(edit.key, sub)] = _Open(
                row, edit.seq, edit.at, edit.idle
            )
        session.last_seq, session.last_edit = edit.seq, edit.at
        return opened

    def _write(self, opened: Sequence[_Open]) -> None:
        """Store the rows of sessions one batch opened, in one transaction."""
        rows = self._rows

        async def write() -> None:
            await rows.open([session.row for session in opened])
            for session in opened:
                session.written = True

        task = self._spawn(write())
        self._opening.add(task)
        task.add_done_callback(self._opening.discard)

    async def _watch(self) -> None:
        settings = self._core.settings.fragment(NoteSettings)
        idle, longest = settings.notes_session_idle_seconds, settings.notes_session_max_seconds
        while True:
            await asyncio.sleep(min(_GONE_GRACE, idle) / 4)
            self._take_edits()  # an edit still to look up may keep a session open
            now = clock.now()
            due = [
                key
                for key, session in self._open.items()
                if now - session.last_edit >= session.idle or now - session.row.started >= longest
            ]
            closing = [self._open.pop(key) for key in due]
            if not closing:
                continue
            try:
                await self._close(closing)
            except Exception:
                log.exception("edit sessions could not be closed; retried at start")

    async def _close(self, closing: Sequence[_Open]) -> None:
        """Store each session's event and forget its row.

        One update can open thousands of sessions that then close together: each room's
        texts are read once, by key (never the whole document per session), and the
        events go in a few transactions, not three per session."""
        await self._written()  # ``written`` is known from here on
        rows = self._rows
        by_doc: dict[str, list[_Open]] = {}
        for session in sorted(closing, key=lambda s: s.row.started):
            by_doc.setdefault(session.row.doc, []).append(session)
        weddings = self._core.weddings
        for name, sessions in by_doc.items():
            async with weddings.room(name) as room:
                for at in range(0, len(sessions), _BATCH):
                    some = [s.row for s in sessions[at : at + _BATCH]]
                    texts = _texts_in(room.doc, [(r.root, r.entry, r.field) for r in some])
                    await room.wait_committed()  # what it shows is stored
                    batch = [
                        (s.row, _event(s.row, s.last_seq, texts[_text_of(s.row)]), s.written)
                        for s in sessions[at : at + _BATCH]
                    ]
                    if await rows.close(batch):
                        self._events.announce(some[0].wedding)

    async def _written(self) -> None:
        """Wait for the writes of opened sessions' rows in flight."""
        if self._opening:
            await asyncio.gather(*list(self._opening), return_exceptions=True)

    def _spawn(self, work: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                log.error(
                    "an edit session could not be written (%s)",
                    type(finished.exception()).__name__,
                )

        task.add_done_callback(done)
        return task

    def open_sessions(self) -> Sequence[NoteSession]:
        """The sessions open in this process (for tests and diagnostics)."""
        self._take_edits()
        return [session.row for session in self._open.values()]


def _event(row: NoteSession, last_seq: int, after: str | None) -> NewEvent:
    """The ``*.notes_edited`` event of a session closing with its text at ``after``."""
    kind = row.doc.rpartition("/")[2]
    data = {
        "id": row.entry,
        "field": row.field,
        "session": row.id,
        "before": row.before,
        "after": excerpt(after),
        "seqs": {"first": row.first_seq, "last": max(last_seq, row.first_seq)},
    }
    return NewEvent(
        row.wedding,
        NOTES_EDITED.get(row.root, "document.notes_edited"),
        json.dumps(data, separators=(",", ":"), ensure_ascii=False),
        kind,
        sub=row.sub,
        role=row.role,
    )


def _text_of(row: NoteSession) -> tuple[str, str, str]:
    """The text of a session: ``(root, entry, field)``."""
    return row.root, row.entry, row.field


def _over_socket(origin: str) -> bool:
    """Whether a change came over a connection (``c12``), not HTTP or the server."""
    return origin.startswith("c") and origin[1:].isdigit()


def _texts_in(
    doc: Any, texts: Iterable[tuple[str, str, str]]
) -> dict[tuple[str, str, str], str | None]:
    """Some texts ``(root, entry, field)`` of ``doc``, each read by its key, in one read
    transaction (each access outside one opens a transaction of its own)."""
    from pycrdt import Map

    found: dict[tuple[str, str, str], str | None] = {}
    roots: dict[str, Any] = {}
    with doc.transaction():
        for text in texts:
            root, entry_id, name = text
            shared = roots.get(root)
            if shared is None:
                shared = roots[root] = doc.get(root, type=Map)
            # Indexing, not ``get``: pycrdt's ``get`` asks whether the key is there first
            # (a second call into the document for each of thousands of texts).
            try:
                entry = shared[entry_id]
                value = entry[name] if isinstance(entry, Map) else None
            except KeyError:
                value = None
            found[text] = text_value(value)
    return found


_TEXTS_A_TURN = 500
"""Entries whose texts a loading room's reading takes in one turn of the event loop."""


async def _texts_of(doc: Any, kind: str) -> dict[tuple[str, str, str], str]:
    """Every entry's texts, read a few hundred entries a turn (a 20,000-guest list is most
    of a second of Python): the loop serves other rooms between them. An entry removed
    meanwhile reads as having none."""
    from pycrdt import Map

    found: dict[tuple[str, str, str], str] = {}
    for root in ROOTS.get(kind, ()):
        for number, (entry_id, entry) in enumerate(list(doc.get(root, type=Map).items()), 1):
            if number % _TEXTS_A_TURN == 0:
                await asyncio.sleep(0)
            if not isinstance(entry, Map):
                continue
            for name in TEXT_FIELDS:
                try:
                    value = text_value(entry.get(name))
                except Exception:  # removed while we yielded: no text to remember
                    value = None
                if value is not None:
                    found[(root, str(entry_id), name)] = value
    return found
