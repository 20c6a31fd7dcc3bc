"""A room's document: a pycrdt ``Doc`` that is only ever given updates it can integrate whole.

Yjs keeps content whose dependencies have not arrived yet (a clock gap, an unknown origin or
parent, a delete of unknown content) pending until they do. yrs, under pycrdt 0.14.13, has
such a pending store too, and on some hostile sequences that code reads freed memory: a
SIGSEGV that no Python code can catch (``tests/fuzz/test_fuzz_quick.py`` keeps the
reproductions). So the ``Doc`` here never holds pending content. An update that builds on
anything the document lacks waits in a Python list, :attr:`RoomDocument.held`, and is
applied as soon as everything it names has arrived. After every apply the state vector must
cover the whole update; if yrs kept anything back all the same (a dependency cycle, which no
Yjs client writes) the update is refused with :class:`IntegrationFailed` and the document
must be rebuilt without it.

Held content never leaves the server until it is integrated (the room relays an update to
its clients only once it integrated whole here): a stock client's own pending store is the
very code that panics or reads freed memory on hostile pending content, so the server does
not feed it any. When an update releases a held one, :attr:`RoomDocument.released` lists
the held updates it released, for the room to relay right behind it; a held update that
fails once released is that update's fault, not the releaser's (see :func:`replay`).

Updates are relayed merged into one frame only where a client integrating the merge (one
transaction) ends where the server did, integrating them one by one. yrs accepts an item
whose parent is an item that is not a shared type only once that parent was deleted in an
earlier transaction (its content is replaced at the end of that transaction); within one
transaction it raises ``InvalidParent``. So an update that names such a parent (no Yjs
client writes one; a hostile one can, and a held update is integrated behind the update
that releases it) starts a new frame: :meth:`RoomDocument.frames`.

Every call into pycrdt goes through :func:`crdt_call`, which turns its errors and Rust
panics into :class:`CrdtFailure`.

An observer that raises does not make an update fail. pycrdt commits the transaction of
``apply_update`` (the update is integrated) and only then raises what its observers raised,
as one ``ExceptionGroup("Observer callback error")``: :class:`ObserverFailed`. The document
keeps the update and :attr:`RoomDocument.observer_failed` is told; refusing it would wedge
the client that sent it (it re-sends the same update on every reconnect).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import ChainMap
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from pycrdt import Doc, Subscription, merge_updates

from crdt_server.codec.items import DecodedUpdate, read_items
from crdt_server.codec.shapes import Misfit, ShapeError, deleted_in_place, fit
from crdt_server.codec.updates import (
    UpdateError,
    UpdateSummary,
    decode_state_vector,
    inspect_update,
    integrable,
    pending_after,
)
from crdt_server.core.kinds import KindIndex
from crdt_server.errors import Overloaded
from crdt_server.threads import share_gil

__all__ = [
    "Applied",
    "CrdtFailure",
    "IntegrationFailed",
    "ObserverFailed",
    "RoomDocument",
    "Undecodable",
    "copy_of",
    "crdt_call",
    "fold_updates",
    "inspect_off_loop",
    "merged",
    "replay",
]

T = TypeVar("T")

log = logging.getLogger(__name__)


class CrdtFailure(Exception):
    """pycrdt refused or panicked on bytes that passed our structural checks."""

    def __init__(self, message: str, *, panicked: bool) -> None:
        super().__init__(message)
        self.panicked = panicked


class Undecodable(CrdtFailure):
    """pycrdt cannot decode an update the document would hold: nothing of it was applied,
    and no client could decode it either, so it is neither held nor relayed."""


class ObserverFailed(CrdtFailure):
    """pycrdt integrated the update and committed, then raised what an observer raised
    (``__cause__`` is pycrdt's ``ExceptionGroup``)."""


_OBSERVER_ERROR = "Observer callback error"
"""The message of the ``ExceptionGroup`` pycrdt raises after a commit whose observers
raised (``pycrdt/_transaction.py``, 0.14)."""


class IntegrationFailed(CrdtFailure):
    """Applying ``update`` failed or left part of it pending in yrs: the ``Doc`` may hold
    some of it and must be rebuilt without it."""

    def __init__(self, message: str, update: bytes, *, panicked: bool) -> None:
        super().__init__(message, panicked=panicked)
        self.update = update


def crdt_call(fn: Callable[..., T], *args: object) -> T:
    """Call into pycrdt, turning any failure (including a Rust panic) into CrdtFailure.

    pyo3's ``PanicException`` derives from ``BaseException``, so ``except Exception`` does
    not catch it; only interpreter-level exits are allowed through.
    """
    try:
        return fn(*args)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:
        panicked = type(exc).__name__ == "PanicException"
        message = f"{type(exc).__name__}: {exc}"
        if (
            isinstance(exc, BaseExceptionGroup)
            and exc.message == _OBSERVER_ERROR
            and exc.__context__ is None  # nothing else failed inside the transaction
        ):
            raise ObserverFailed(message, panicked=False) from exc
        raise CrdtFailure(message, panicked=panicked) from exc


OFF_LOOP_BYTES = 256 * 1024
"""A received update at least this large is checked on a worker thread (a pure read of its
bytes, which the loop would otherwise spend up to a few hundred milliseconds on)."""


async def inspect_off_loop(update: bytes, max_items: int | None) -> UpdateSummary:
    """:func:`~crdt_server.codec.updates.inspect_update` with ``max_items`` (``None``: the
    server's own update, not counted), on a worker
    thread for an update of :data:`OFF_LOOP_BYTES` or more (the loop serves others
    meanwhile), else at once."""
    if len(update) < OFF_LOOP_BYTES:
        return inspect_update(update, max_items=max_items)
    return await asyncio.to_thread(partial(inspect_update, update, max_items=max_items))


class Applied(enum.Enum):
    """What :meth:`RoomDocument.apply` did with an update."""

    UNCHANGED = "unchanged"
    """Everything in it was known already (a duplicate): nothing to store."""
    CHANGED = "changed"
    """Integrated; the document changed."""
    HELD = "held"
    """It builds on content the document lacks: kept aside until that arrives."""


class _Changes:
    """Set by the document's observer. Holding no reference to the ``Doc`` (nor to the
    room), it keeps the subscription out of any reference cycle."""

    __slots__ = ("changed", "deletes", "keep_deletes", "local", "state_stale")

    def __init__(self) -> None:
        self.changed = False
        self.state_stale = True
        self.keep_deletes = False
        self.deletes = b"\x00"
        """The delete set of the last transaction, encoded (when ``keep_deletes``)."""
        self.local: list[tuple[bytes, bytes]] | None = None
        """While a local change runs (:meth:`RoomDocument.local`): each of its
        transactions' update and delete set, in order."""

    def __call__(self, event: Any) -> None:
        self.changed = True
        self.state_stale = True
        if self.local is not None:  # both readable only inside the callback
            self.local.append((event.update, event.delete_set))
        elif self.keep_deletes:
            self.deletes = event.delete_set


class RoomDocument:
    """A ``Doc`` plus the updates it is waiting to integrate (see the module docstring)."""

    __slots__ = (
        "doc",
        "held",
        "integrated",
        "released",
        "types",
        "refused",
        "observer_failed",
        "kinds",
        "strict",
        "misfits",
        "last_decoded",
        "_changes",
        "_subscription",
        "_state",
    )

    def __init__(self, client_id: int | None = None) -> None:
        self.doc: Doc[Any] = Doc() if client_id is None else Doc(client_id=client_id)
        """The document; ``client_id``: the Yjs client id of its local changes
        (:meth:`local`), random if not given."""
        self.held: list[tuple[bytes, UpdateSummary]] = []
        """Updates waiting on content the document lacks, in arrival order."""
        self.integrated: Callable[[bytes], None] | None = None
        """Called with each update right after it was integrated and changed the document
        (an applied update, then each held update it released, in that order)."""
        self.released: list[tuple[bytes, UpdateSummary]] = []
        """The held updates the last :meth:`apply` integrated (in order), once it released
        them: they follow the update that released them to every client."""
        self.types: set[tuple[int, int]] = set()
        """The IDs of the shared-type items integrated: the parents a Yjs client names."""
        self.refused: set[bytes] = set()
        """Updates :func:`replay` left out because pycrdt failed on them."""
        self.observer_failed: Callable[[BaseException], None] | None = None
        """Told what an observer raised while an update was integrated (the update is
        kept: see the module docstring)."""
        self.kinds: KindIndex | None = KindIndex()
        """Where every integrated item is: what the shape rule reads
        (:mod:`crdt_server.codec.shapes`). ``None`` while :func:`replay` applies stored rows
        (it indexes the state they make, once)."""
        self.strict = True
        """Refuse content that does not fit its parent (:class:`ShapeError`, nothing
        applied). Off only while :func:`replay` reads what a store already holds."""
        self.misfits: list[Misfit] = []
        """Content that does not fit, integrated while not :attr:`strict` (what a store
        held, found by :func:`replay`, which serves it as deleted content)."""
        self.last_decoded: DecodedUpdate | None = None
        """The items of the update integrated last (decoded once for every reader)."""
        self._changes = _Changes()
        # pycrdt's public Doc.observe wraps the callback in a partial that holds the Doc, a
        # cycle through Rust that Python's collector cannot see: the Doc (and the room that
        # owns it) would never be freed. Observing the Rust document directly, with a
        # callback that holds neither, leaves nothing to collect: dropping this object
        # drops the subscription, then the Doc.
        self._subscription: Subscription = self.doc._doc.observe(self._changes)
        self._state: dict[int, int] = {}

    def keep_deletes(self) -> None:
        """From now on, keep each transaction's delete set (:attr:`last_deletes`)."""
        self._changes.keep_deletes = True

    @property
    def last_deletes(self) -> bytes:
        """The delete set of the last integration, encoded (see :meth:`keep_deletes`)."""
        return self._changes.deletes

    def state(self) -> dict[int, int]:
        """The document's state vector, decoded (cached until the document changes)."""
        if self._changes.state_stale:
            self._state = decode_state_vector(self.doc.get_state())
            self._changes.state_stale = False
        return self._state

    def _advance(self, before: dict[int, int], summary: UpdateSummary) -> None:
        """The state vector after integrating an update of at most one client's structs,
        without decoding the document's (a cost that grows with its number of clients).

        Such an update cannot leave anything pending once :func:`integrable` holds: yrs keeps
        a struct back only for a clock gap in its own client or a reference into another
        client's content past the document's state, and deletes only of content missing, all
        of which :func:`integrable` checked against ``before``. Only updates with several
        clients' structs can form a dependency cycle among them; :meth:`_integrate` decodes
        the state after those and checks (``tests/core/test_poisoning.py`` compares the two over
        hostile sequences)."""
        state = dict(before)
        for client, (_, end) in summary.structs.items():
            if end > state.get(client, 0):
                state[client] = end
        self._state = state
        self._changes.state_stale = False

    def has_unknown_structs(self, summary: UpdateSummary) -> bool:
        """True if the update has structs past this document's state vector."""
        if not summary.structs:
            return False
        state = self.state()
        return any(end > state.get(client, 0) for client, (_, end) in summary.structs.items())

    def would_hold(self, summary: UpdateSummary) -> bool:
        """True if :meth:`apply` would hold the update (it builds on content not here)."""
        return not integrable(summary, self.state())

    @property
    def held_bytes(self) -> int:
        """Bytes of the updates held."""
        return sum(len(update) for update, _ in self.held)

    def check_room_to_hold(self, size: int, max_updates: int, max_bytes: int) -> None:
        """Raise :class:`Overloaded` if holding one more update of ``size`` bytes would pass
        ``max_updates`` held or ``max_bytes`` of them. Held content costs memory and a check
        on every later update: bounded. 1013, not 1008: an honest client that reconnects
        sends its whole state in step 2, which carries what the update waits on, so it is
        not held again."""
        if len(self.held) >= max_updates or self.held_bytes + size > max_bytes:
            raise Overloaded(
                f"this room already holds {len(self.held)} updates waiting on"
                f" content it lacks (limits: {max_updates} updates, {max_bytes} bytes)"
            )

    def apply(self, update: bytes, summary: UpdateSummary) -> Applied:
        """Integrate a structurally valid update now, or hold it until it can be.

        Raises :class:`Undecodable` (nothing applied) if it would be held but pycrdt cannot
        decode it, :class:`IntegrationFailed` if pycrdt refused or panicked on it or on a held
        update it released (``exc.update`` says which); the ``Doc`` may then hold part of it
        and must be rebuilt.
        """
        self.released = []
        if not integrable(summary, self.state()):
            if any(held == update for held, _ in self.held):
                return Applied.UNCHANGED
            # Held content is relayed before it is integrated (clients may have what it
            # waits on), so it must be content a client can decode: yrs decodes a whole
            # update before it integrates any of it, as an empty document shows.
            try:
                crdt_call(Doc().apply_update, update)
            except CrdtFailure as exc:
                raise Undecodable(str(exc), panicked=exc.panicked) from exc
            if self.strict and self.kinds is not None:
                # What can be placed already is checked now (the rest once released):
                # content that does not fit is refused before anyone is sent it.
                fitted = fit(read_items(update), self.kinds)
                fitted.misfits = [m for m in fitted.misfits if m.parent_kind is not None or m.why]
                fitted.refuse()
            self.held.append((update, summary))
            return Applied.HELD
        if not self._integrate(update, summary):
            return Applied.UNCHANGED
        self._release_held()
        return Applied.CHANGED

    def local(self, change: Callable[[Doc[Any]], T], written: list[tuple[bytes, bytes]]) -> T:
        """Run ``change`` on the document itself (local transactions, under its own client
        id) and return its result; ``written`` gets each transaction's update and delete
        set, in order, even if ``change`` raises (it may have written before it did).

        The document holds them at once; the caller then checks them and hands each to
        :meth:`integrated_locally`, or rebuilds the document without them."""
        self._changes.local = written
        try:
            return change(self.doc)
        finally:
            self._changes.local = None

    def integrated_locally(self, update: bytes, summary: UpdateSummary, deletes: bytes) -> None:
        """Do for ``update``, a transaction :meth:`local` wrote, what :meth:`apply` does
        for an update it integrates (the shape rule, the index of kinds and shared types,
        :attr:`integrated` told), then release what it lets in. Raises
        :class:`ShapeError` for content that does not fit its parent: the document holds
        it already and must be rebuilt without it."""
        self.released = []
        kinds = self.kinds
        decoded = fitted = None
        if kinds is not None:
            decoded = read_items(update)
            fitted = fit(decoded, kinds)
            if fitted.misfits:
                fitted.refuse()
            kinds.add(fitted)
        self.last_decoded = decoded
        self.types.update(summary.types)  # a local transaction writes new items only
        self._changes.deletes = deletes
        if self.integrated is not None:
            self.integrated(update)
        self._release_held()

    def held_updates(self) -> list[bytes]:
        return [update for update, _ in self.held]

    def _integrate(self, update: bytes, summary: UpdateSummary) -> bool:
        # Checked here, where everything the update names is in the document: its items'
        # parents are known, and pycrdt has not seen it yet.
        kinds = self.kinds
        decoded = fitted = None
        before = self.state()
        known = all(end <= before.get(c, 0) for c, (_, end) in summary.structs.items())
        if kinds is not None and not known:  # known items were placed when they came
            decoded = read_items(update)
            fitted = fit(decoded, kinds)
            if fitted.misfits:
                if self.strict:
                    fitted.refuse()
                self.misfits += fitted.misfits
        self._changes.changed = False
        self._changes.deletes = b"\x00"
        observers_failed = False
        try:
            crdt_call(self.doc.apply_update, update)
        except ObserverFailed as exc:
            observers_failed = True
            if self.observer_failed is not None:
                self.observer_failed(exc.__cause__ or exc)
        except CrdtFailure as exc:
            self._changes.state_stale = True
            raise IntegrationFailed(str(exc), update, panicked=exc.panicked) from exc
        # After an observer failed, check from the document itself that all of it is in.
        one_client = len(summary.structs) <= 1 and not observers_failed
        if not one_client and pending_after(summary, self.state()):
            raise IntegrationFailed(
                "yrs kept part of the update pending (its dependencies form a cycle)",
                update,
                panicked=False,
            )
        if kinds is not None and fitted is not None:
            kinds.add(fitted)
        self.last_decoded = decoded
        for client, clock in summary.types:  # new items only: a known clock is skipped
            if clock >= before.get(client, 0):
                self.types.add((client, clock))
        if one_client:
            self._advance(before, summary)
        if self._changes.changed and self.integrated is not None:
            self.integrated(update)
        return self._changes.changed

    def _release_held(self) -> None:
        """Integrate every held update the document now has all the dependencies of."""
        progress = True
        while progress and self.held:
            progress = False
            for entry in list(self.held):
                if integrable(entry[1], self.state()):
                    self.held.remove(entry)
                    progress = True
                    try:
                        integrated = self._integrate(*entry)
                    except ShapeError as exc:
                        # The held update's own fault, not the releaser's: left out (it
                        # was never relayed: held content is not).
                        log.warning("a held update was refused once released: %s", exc)
                        self.refused.add(entry[0])
                        continue
                    if integrated:
                        self.released.append(entry)

    def one_transaction(self, summaries: Sequence[UpdateSummary]) -> int:
        """How many of the updates of ``summaries`` (not integrated yet, in order), from the
        first, may be merged and integrated as one transaction, ending where integrating
        them one by one would. Each after the first names as parent only shared types known
        here or made in the run so far (see the module docstring), and none would be held
        once those before it are in (one held would keep them back with it); a first that
        would be held is a run of its own."""
        known = self.types
        made: set[tuple[int, int]] = set()
        ahead: dict[int, int] = {}
        state = ChainMap(ahead, self.state())
        for k, summary in enumerate(summaries):
            made.update(summary.types)
            if k and not summary.parents <= known and not summary.parents - known <= made:
                return k
            if not integrable(summary, state):
                return max(k, 1)
            for client, (_, end) in summary.structs.items():
                if end > state.get(client, 0):
                    ahead[client] = end
        return len(summaries)

    def frames(self, updates: Sequence[tuple[bytes, UpdateSummary]]) -> list[bytes]:
        """``updates`` (integrated here one by one, in this order) as few updates as a
        client can apply in that order and end where this document did: runs merged, a new
        run before each update that names a parent not known here as a shared type (see the
        module docstring). A run pycrdt cannot merge goes out one update each."""
        runs: list[list[bytes]] = []
        for update, summary in updates:
            if runs and summary.parents <= self.types:
                runs[-1].append(update)
            else:
                runs.append([update])
        out: list[bytes] = []
        for run in runs:
            try:
                out.append(merged(run))
            except CrdtFailure:
                out += run
        return out


def copy_of(doc: Doc[Any]) -> Doc[Any]:
    """A fresh document with ``doc``'s content (a private copy: reading or changing it,
    on another thread too, never touches ``doc``)."""
    fresh: Doc[Any] = Doc()
    fresh.apply_update(doc.get_update())
    return fresh


def replay(
    updates: Sequence[bytes], *, keep_misfits: bool = False, client_id: int | None = None
) -> tuple[RoomDocument, int]:
    """Rebuild a document from stored rows, applied in order exactly as the live path
    applied them. Returns it and how many rows could not be applied (they are left out:
    after a row that yrs failed on, the document is rebuilt without that row, and the row
    is in the document's :attr:`~RoomDocument.refused`). A held row that fails once a later
    row releases it is the one left out, never the row that released it: otherwise one
    hostile held update would make every honest update it waits on unacceptable. The
    document's :attr:`~RoomDocument.released` is what the last row released, in the order
    it integrated them.

    Content that does not fit its parent, stored before the codec refused it (or by
    another release), is integrated as it was; the document's state is then indexed once
    (:class:`~crdt_server.core.kinds.KindIndex`, one decode of the state, not of every row)
    and such content that is still there is listed in its :attr:`~RoomDocument.misfits`.
    The document returned holds it as deleted content, so that no reader ever iterates it
    (unless ``keep_misfits``: the rows' own content, for a snapshot of the log), and refuses
    such content from then on. ``client_id``: that of the document's local changes
    (random if not given)."""
    skipped: set[bytes] = set()
    while True:
        document = RoomDocument(client_id)
        document.strict, document.kinds = False, None
        unreadable = 0
        try:
            for update in updates:
                share_gil()  # replays run on worker threads
                if update in skipped:
                    unreadable += 1
                    continue
                try:
                    document.apply(update, inspect_update(update))
                except (UpdateError, Undecodable):
                    unreadable += 1
        except IntegrationFailed as exc:
            skipped.add(exc.update)
            continue
        document.refused |= skipped
        return _indexed(document, keep_misfits, client_id), unreadable


def _indexed(document: RoomDocument, keep: bool, client_id: int | None) -> RoomDocument:
    """``document`` (replayed, not indexed) with its index built from its state, and its
    misfits found there; unless ``keep``, rebuilt with them as deleted content."""
    state = crdt_call(document.doc.get_update)
    decoded = read_items(state)
    fitted = fit(decoded, KindIndex())
    misfits = fitted.misfits
    if misfits:  # deleted content is not one, but a document kept without gc may hold it
        misfits = [m for m in misfits if not _deleted(decoded.deletes, m)]
    if misfits and not keep:
        clean = deleted_in_place(state, [(m.id, m.length) for m in misfits])
        rebuilt = RoomDocument(client_id)
        rebuilt.strict, rebuilt.kinds = False, None
        rebuilt.apply(clean, inspect_update(clean))
        rebuilt.held, rebuilt.refused = list(document.held), document.refused
        rebuilt.released = document.released
        document, fitted = rebuilt, fit(read_items(clean), KindIndex())
    kinds = KindIndex()
    kinds.add(fitted)
    document.kinds, document.misfits, document.strict = kinds, misfits, True
    return document


def _deleted(deletes: dict[int, list[tuple[int, int]]], misfit: Misfit) -> bool:
    """Whether ``deletes`` covers the whole of ``misfit``."""
    client, clock = misfit.id
    end = clock + misfit.length
    for start, length in deletes.get(client, ()):
        if start <= clock < start + length:
            clock = start + length
            if clock >= end:
                return True
    return clock >= end


def fold_updates(updates: Sequence[bytes]) -> bytes | None:
    """One update equivalent to ``updates`` replayed in order (the document's encoded
    state, deleted content garbage collected), or ``None`` while some of the content is
    still held: a snapshot cannot carry it, so the log is left as it is."""
    document, _ = replay(updates, keep_misfits=True)
    if document.held:
        return None
    return crdt_call(document.doc.get_update)


def merged(updates: Sequence[bytes]) -> bytes:
    """``updates`` as one update (for one frame on the wire); one alone is returned as is."""
    return updates[0] if len(updates) == 1 else crdt_call(merge_updates, *updates)
