"""The one small async interface every document store implements.

A store keeps, per document name, an ordered log of raw Yjs update bytes. Order is the
store's own sequence number (``seq``), assigned at commit, strictly increasing across the
whole store and never derived from wall-clock time. Compaction folds a prefix of a
document's log into one snapshot row that keeps the ``seq`` of the last row it replaces, so
the log stays ordered. A separate history keeps who sent each update and when; compaction
does not erase it.

What features keep about the updates goes in the same transaction as the updates, so a
crash leaves both or neither: :meth:`DocumentStore.append` takes ``rows`` of their tables
and ``steps``, gateway transactions a feature wrote. The wedding's domain events (facts
such as ``guest.rsvp_changed``, numbered per wedding without gaps in commit order) are the
events feature's tables and its step (``crdt_server.features.events``); the store knows
them only as the data types below, the vocabulary of the commit-side hooks.
Erasure is a storage concern: :meth:`Store.erase_wedding` is the one call that
removes a wedding from every table that can hold its data and leaves a tombstone, so that
nothing (a reconnecting client, another process that has not heard yet) can store anything
for it again until :meth:`Store.lift_tombstone`. Revocations of tokens are stored
too (:meth:`Store.revoke`), so a restart or another process cannot forget them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .gateway import Tx

log = logging.getLogger("crdt_server.storage")

__all__ = [
    "DROPPED_FEATURE_ROWS",
    "AddedEvents",
    "DocumentStore",
    "EventFilter",
    "Erasure",
    "HistoryEntry",
    "Migration",
    "NewEvent",
    "MovedDocument",
    "NewUpdate",
    "Once",
    "Revocation",
    "Schema",
    "Store",
    "StoreError",
    "audience_needle",
    "audience_of",
    "StoredEvent",
    "StoredLog",
]


class StoreError(Exception):
    """The store could not do what was asked; nothing of the failed call was committed."""


class StoreUnavailable(StoreError):
    """The store did not answer in time: its connection failed or timed out, or a lock or
    a statement timed out (another host held the write lock). The call failed, though a
    write may have committed had the connection dropped during COMMIT. Unlike other
    failures, a later read that gets an answer shows the store is available again."""


@dataclass(frozen=True, slots=True)
class NewUpdate:
    """One update to append: the raw Yjs v1 update bytes and who sent it.

    ``origin`` names the channel (a connection, an HTTP request, another process); ``sub``
    and ``role`` the person (the token's subject and role), ``client_id`` the Yjs client id
    that wrote the update's content when it is one client's.
    """

    doc: str
    data: bytes
    origin: str
    sub: str = ""
    role: str = ""
    client_id: int | None = None


@dataclass(frozen=True, slots=True)
class Migration:
    """A numbered change to a schema's tables (``version`` 2, 3...), in both dialects
    (PostgreSQL: ``{s}`` stands for the schema). Migrations run at open / install, in
    order, in one transaction with the schema-version row they advance."""

    version: int
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]
    renames: tuple[tuple[str, str], ...] = ()
    """Tables this migration renames, ``(old, new)`` (:func:`storage.gateway.renamed`)."""
    creates: tuple[str, ...] = ()
    """Wedding tables this migration creates (:func:`storage.gateway.created`)."""


_HANDED_OVER = "events,event_counters,idempotency"

EVENTS_HANDED_OVER = Migration(
    2,
    sqlite=(
        "INSERT INTO schema_versions (name, version, wedding_tables)"
        f" SELECT 'events', 1, '{_HANDED_OVER}'"
        " WHERE EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events')"
        " ON CONFLICT (name) DO UPDATE SET wedding_tables = excluded.wedding_tables",
    ),
    postgres=(
        "INSERT INTO {s}.schema_versions (name, version, wedding_tables)"
        f" SELECT 'events', 1, '{_HANDED_OVER}' WHERE to_regclass('{{s}}.events') IS NOT NULL"
        " ON CONFLICT (name) DO UPDATE SET wedding_tables = excluded.wedding_tables",
    ),
)
"""The store's version 2: the events, their counters and idempotency keys, which version 1
made, are the events feature's tables (``crdt_server.features.events``, its version 2).
Where version 1 made them, they are recorded as that feature's wedding tables, so a
wedding's rows in them are erased with it even by a server built without that feature;
a new store makes none of them (the feature does, when installed)."""


@dataclass(frozen=True, slots=True)
class Schema:
    """Tables a feature keeps in the store beside the update logs (webhooks, threads...).

    Declare it with :func:`storage.gateway.schema_of` (each table once, for both
    backends). A feature installs its schema when it starts (:meth:`DocumentStore.install`):
    in one transaction, a store that has no version recorded for ``name`` runs the DDL
    (``IF NOT EXISTS``: the tables a release before versions made are kept as they are)
    and records version 1; then each of ``migrations`` above the recorded version runs and
    is recorded. A feature never installed creates nothing; nothing is ever dropped for a
    feature left out. ``wedding_tables`` (each with a ``wedding`` column) are erased with
    the wedding by :meth:`Store.erase_wedding`, in the erasure's own transaction.
    A feature reads and writes its tables through :class:`storage.gateway.Gateway`.
    """

    name: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]
    """PostgreSQL DDL; ``{s}`` stands for the store's (quoted) schema name."""
    wedding_tables: tuple[str, ...] = ()
    migrations: tuple[Migration, ...] = ()
    """Versions 2, 3... in order (the DDL above is version 1)."""

    @property
    def first_wedding_tables(self) -> tuple[str, ...]:
        """The ``wedding_tables`` as version 1 names them (before the migrations' renames):
        the DDL creates these, with their tombstone triggers."""
        created = {name for m in self.migrations for name in m.creates}
        names = [name for name in self.wedding_tables if name not in created]
        for migration in reversed(self.migrations):
            undo = {new: old for old, new in migration.renames}
            names = [undo.get(name, name) for name in names]
        return tuple(names)

    @property
    def renamed_from(self) -> tuple[str, ...]:
        """Names its tables had before a migration renamed them (no longer erased)."""
        return tuple(old for m in self.migrations for old, _ in m.renames)

    @property
    def version(self) -> int:
        """The version this code writes (1 plus its migrations)."""
        return 1 + len(self.migrations)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A domain event to store. ``data`` is JSON text; ``at`` is Unix seconds (0: the
    store's clock at commit); ``doc`` the document it concerns (``None``: the wedding)."""

    wedding: str
    type: str
    data: str
    doc: str | None = None
    sub: str = ""
    role: str = ""
    priority: str = "normal"
    at: float = 0.0
    audience: str | None = None
    """Who may see it, when not everyone who may read ``doc``: a JSON array of subjects
    (:func:`audience_of`); readers with a ``viewer`` filter see it only if named."""
    key: str | None = None
    """What it tells of, wherever it is derived (an event of an update: the Yjs items it is
    about, space-separated): the wedding keeps an event only if no event stored before
    told of any of them; ``None``: always stored."""


def audience_of(subs: Sequence[str]) -> str:
    """The ``audience`` of an event only these subjects see (sorted, compact JSON)."""
    return json.dumps(sorted(set(subs)), separators=(",", ":"))


def audience_needle(sub: str) -> str:
    """What an audience contains when it names ``sub`` (a JSON string: quotes inside a
    subject are escaped, so no other member can contain it)."""
    return json.dumps(sub)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A stored domain event; ``seq`` numbers the wedding's events from 1, without gaps."""

    wedding: str
    seq: int
    type: str
    doc: str | None
    sub: str
    role: str
    priority: str
    at: float
    data: str
    audience: str | None = None


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events to read. ``types`` are exact types or prefixes ending in ``.*``
    (``guest.*``); empty: all. ``docs``: only events of these documents, plus those of no
    document; ``None``: every document."""

    types: tuple[str, ...] = ()
    docs: frozenset[str] | None = None
    viewer: str | None = None
    """Only events without an audience, or whose audience names this subject; ``None``:
    every audience (readers who see everything, such as the couple and planner)."""
    priorities: tuple[str, ...] = ()
    """Only events of these priorities (a lane's, ``crdt_server.names.LANE_PRIORITIES``);
    empty: every priority."""


@dataclass(frozen=True, slots=True)
class Once:
    """Makes the events feature's ``add_events`` idempotent: the first call with ``key`` in
    ``scope`` stores its events; later ones (until ``expires_at``) store nothing and get
    the first call's events and ``fingerprint`` back."""

    scope: str
    key: str
    fingerprint: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class AddedEvents:
    events: list[StoredEvent]
    first: bool
    """False if a :class:`Once` key had been used: nothing was stored this time."""
    fingerprint: str = ""
    """The fingerprint the key was first used with (when ``first`` is False)."""


@dataclass(frozen=True, slots=True)
class StoredLog:
    """A document's log as loaded: updates in ``seq`` order (a snapshot first, if any)."""

    updates: list[bytes]
    last_seq: int
    """The ``seq`` of the newest row; 0 when the log is empty."""
    first_seq: int
    """The ``seq`` of the oldest row still in the log (the snapshot after compaction)."""


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """Who changed a document, when, and how many bytes the update had."""

    seq: int
    doc: str
    origin: str
    created_at: float
    size: int
    sub: str = ""
    role: str = ""
    client_id: int | None = None


@dataclass(frozen=True, slots=True)
class Revocation:
    """Tokens of ``sub`` (for ``wedding``, or every wedding if ``None``) issued at or
    before ``at`` (Unix seconds) are refused."""

    sub: str
    wedding: str | None
    at: float


@dataclass(frozen=True, slots=True)
class Erasure:
    """What :meth:`Store.erase_wedding` did."""

    documents: int
    """How many documents were deleted."""
    scrubbed: bool
    """Whether no readable copy of the deleted bytes is left in the store's files. False
    when something outside this store held on to them (on SQLite, another process's reader
    keeping the write-ahead log from being checkpointed); :meth:`Store.scrub`
    retries."""


@dataclass(frozen=True, slots=True)
class MovedDocument:
    """A document brought whole from another store (``crdt-server import``): its log and
    its history, oldest first. The history entries' ``seq`` and ``doc`` are not kept (the
    receiving store numbers its own rows); their origin, time and size are."""

    doc: str
    updates: list[bytes]
    history: list[HistoryEntry]


@dataclass(frozen=True, slots=True)
class FeatureRow:
    """One row of a feature's table (a :class:`Schema`'s ``wedding_tables``) written with
    moved documents (``put_documents``): an imported wedding's threads, members...
    ``values`` maps column names to values; the feature's own triggers and generated
    columns (a search index) apply as for any insert."""

    table: str
    values: tuple[tuple[str, object], ...]
    if_absent: bool = False
    """Left out, not an error, when a row with its key exists (``ON CONFLICT DO NOTHING``):
    a fact two processes may both record (a race both saw) is stored once."""


_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def dropped_feature_row(row: FeatureRow, exc: BaseException) -> None:
    """A feature row of a commit failed to insert and was left out, its updates committed
    all the same (a valid update is never refused because a feature could not record
    something about it): logged with its table and the error's type, never the values."""
    DROPPED_FEATURE_ROWS[row.table] = DROPPED_FEATURE_ROWS.get(row.table, 0) + 1
    log.error(
        "a %r row of a commit could not be written (%s): left out, the update is committed",
        row.table,
        type(exc).__name__,
    )


DROPPED_FEATURE_ROWS: dict[str, int] = {}
"""Feature rows left out of their commit in this process, by table."""


def check_feature_rows(rows: Sequence[FeatureRow], tables: Sequence[str]) -> None:
    """Refuse (:class:`StoreError`) a row for a table no installed schema declared, or a
    column name that is not a plain identifier: feature rows never carry SQL."""
    for row in rows:
        if row.table not in tables:
            raise StoreError(f"{row.table!r} is not a table of an installed feature schema")
        if not row.values:
            raise StoreError(f"a row for {row.table!r} has no values")
        for column, _ in row.values:
            if not _IDENTIFIER.fullmatch(column):
                raise StoreError(f"{column!r} is not a column name")


def recorded_version(name: str, value: object, newest: int) -> int:
    """The version a ``schema_versions`` row records for schema ``name``, which this code
    writes at version ``newest``. :class:`StoreError` for a value that is not a version
    (not a whole number from 1: a damaged or hand-edited file) and for a version above
    ``newest`` (a newer release wrote the store: this code cannot know its tables)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise StoreError(f"schema {name!r} has version {value!r}, which is not a version")
    if value > newest:
        raise StoreError(
            f"schema {name!r} is at version {value}, written by a newer release; this"
            f" release knows version {newest} (run the newer release, or restore a backup"
            " this release made)"
        )
    return value


def recorded_tables(text: str) -> tuple[str, ...]:
    """The wedding tables a ``schema_versions`` row lists (comma-separated), leaving out
    anything that is not a plain identifier: a file from elsewhere never gets SQL run."""
    return tuple(t for t in text.split(",") if _IDENTIFIER.fullmatch(t))


def wedding_of_prefix(prefix: str) -> str | None:
    """The wedding a deletion prefix names (``"w42/"``), if it names exactly one; its
    wedding-keyed rows (events, counters, idempotency keys) go with its documents."""
    wedding, slash, rest = prefix.partition("/")
    return wedding if slash and not rest and wedding else None


@runtime_checkable
class DocumentStore(Protocol):
    """What rooms need: a document's log (load, append with what features keep about the
    updates, compact), the features' tables installed (so their rows can ride an append),
    the newest seqs (a copy or a gap between processes), the stored names. The rest of the
    store (history, erasure, revocations, moving documents) is :class:`Store`.

    Every method either commits fully or raises :class:`StoreError` having committed
    nothing. Implementations batch concurrent :meth:`append` calls into one transaction
    (group commit); a call returns only after its rows are durable.
    """

    async def open(self) -> None:
        """Create the schema if needed and start any background writer."""

    async def close(self) -> None:
        """Finish in-flight writes and release every resource."""

    async def load(self, doc: str, *, upto: int | None = None) -> StoredLog | None:
        """Return the document's log, or ``None`` if the store has never seen it. With
        ``upto``, only its rows with ``seq <= upto`` (``None`` if there are none: the log
        no longer reaches back that far, or the document is younger)."""

    async def append(
        self,
        updates: Sequence[NewUpdate],
        *,
        rows: Sequence[FeatureRow] = (),
        steps: Sequence[Tx[Any]] = (),
        first: bool = False,
    ) -> list[int]:
        """Durably append updates (possibly of several documents), in order, and what
        features keep about them, in the same transaction: ``steps``, gateway transactions
        (``?``/``{t}`` SQL, :mod:`storage.gateway`) a feature wrote for its own tables (the
        events feature numbers and stores the updates' wedding events), run first, in
        order (a database error in one fails the whole append); then ``rows`` of installed
        feature tables (a row a trigger drops, of an erased wedding, is not stored; a row
        that fails is left out, the updates committed all the same).

        Appends queued at once share one transaction. ``first`` asks for this one to be
        committed ahead of those queued beside it, in a transaction of its own (a quiet
        wedding's commit under overload: :mod:`crdt_server.core.backlog`); it never goes
        ahead of a write that is not an append or a gateway transaction.

        Returns the ``seq`` assigned to each update, in the same order.
        """

    async def compact(self, doc: str, upto_seq: int, snapshot: bytes) -> None:
        """Replace every row of ``doc`` with ``seq <= upto_seq`` by ``snapshot``.

        The snapshot row takes ``seq = upto_seq``; rows after it are untouched. Raises
        :class:`StoreError` if ``upto_seq`` is not the ``seq`` of a row of ``doc``.
        """

    async def install(self, schema: Schema) -> None:
        """Create a feature's tables if missing and erase its ``wedding_tables`` with each
        wedding from now on (see :class:`Schema`). Installing the same schema again is a
        no-op."""
        ...

    async def last_seq(self) -> int:
        """The newest seq ever committed (0 for an empty store)."""

    async def last_seqs(self, docs: Sequence[str]) -> dict[str, int]:
        """The seq of each document's newest row, as :meth:`load` would report it in
        ``last_seq``; documents with no rows are absent.

        Seqs are never reused and compaction keeps the newest row's, so a document whose
        answer did not change still has the content it had: a copy loaded at that seq can
        be kept instead of loading it again.
        """

    async def docs_of(self, seqs: Sequence[int]) -> dict[int, str]:
        """Which document each of ``seqs`` was appended to (seqs never used are absent).

        Processes sharing a store use it to repair a gap in the updates they heard of.
        """

    # Last on purpose: below this def, ``list`` in an annotation would name this method
    # rather than the builtin (mypy: "Function ... is not valid as a type").
    async def list(self, prefix: str = "") -> list[str]:
        """Names of stored documents starting with ``prefix``, sorted."""


@runtime_checkable
class Store(DocumentStore, Protocol):
    """A :class:`DocumentStore` and what the server keeps beside the rooms' logs: who
    changed a document (:meth:`history`), a wedding's erasure (its tombstone, the scrubbing
    of deleted bytes), token revocations, and whole documents deleted or brought in. Both
    backends implement it; the app gives it to the edge, the tools and the features
    (``Core.store``), the rooms hold a :class:`DocumentStore`."""

    async def delete(self, prefix: str) -> int:
        """Delete every document whose name starts with ``prefix``, with its history.
        A prefix of one wedding (``"w42/"``) deletes the wedding's events too.

        Returns how many documents were deleted.
        """

    async def history(
        self, doc: str, limit: int = 100, *, before: int | None = None, after: int = 0
    ) -> list[HistoryEntry]:
        """The newest ``limit`` history entries of ``doc`` with ``after < seq < before``,
        newest first."""

    async def erase_wedding(self, wedding_id: str) -> Erasure:
        """Erase a wedding: in one transaction, delete every row of every table that holds
        its data and tombstone its id; then make the deleted bytes unreadable where the
        backend can (SQLite: ``secure_delete`` and a ``TRUNCATE`` checkpoint).

        This is the one place a wedding's data is erased: a table added later that holds
        a wedding's data (events, webhook deliveries, threads, messages and their search
        index, idempotency records) adds its ``DELETE`` here, in the same transaction.
        While the tombstone stands, rows appended for the wedding's documents are
        silently not stored, whoever appends them.
        """

    async def scrub(self) -> bool:
        """Try again to make deleted bytes unreadable (see :attr:`Erasure.scrubbed`);
        whether that is done."""

    async def tombstones(self) -> dict[str, float]:
        """Every erased wedding id, with when it was erased (Unix seconds)."""

    async def lift_tombstone(self, wedding_id: str) -> bool:
        """Let the id be used again (an explicit admin decision); whether it was erased."""

    async def revoke(self, revocation: Revocation, *, forget_before: float) -> None:
        """Durably record a revocation (the latest ``at`` per user and wedding wins) and
        forget the ones made before ``forget_before`` (no token they cover is still valid)."""

    async def revocations(self) -> list[Revocation]:
        """Every revocation recorded and not yet forgotten."""

    async def put_documents(
        self,
        documents: Sequence[MovedDocument],
        origin: str,
        rows: Sequence[FeatureRow] = (),
        steps: Sequence[Tx[Any]] = (),
    ) -> list[int]:
        """Write documents this store has never seen, all in one transaction.

        Each document's history entries take fresh seqs in their order (origin, time and
        size kept), then its updates take the seqs after them, each with a history entry of
        ``origin`` and the current time. Every document needs at least one update.
        ``steps`` (gateway transactions, as for :meth:`append`: the events feature's numbering
        of an imported wedding's event stream) run in the same transaction, and so are
        ``rows`` (a feature's rows, inserted in their order after the steps; their tables
        must belong to an installed :class:`Schema`). Raises :class:`StoreError`, writing
        nothing, if any of the documents already has a row or any row cannot be inserted.
        Returns the seqs of the updates, in order.
        """
