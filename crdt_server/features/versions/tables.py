"""Restore points of documents: a feature table beside the update logs.

A restore point is a document's whole state (one Yjs update) as of one of its seqs, with
when it was taken, who had changed the document since the previous point and what they
changed (the domain events between the two states, the first few of them, and how many). Points live
in their own ``versions`` table, so compacting a document's log does not touch them; they
are erased with their wedding. :class:`VersionStore` also reads a document's log up to a
seq (the exact state at that seq, while the log still holds it).

Which points to keep as they age (every one for a day, then hourly for a week, then daily)
is :func:`to_thin`, a pure function.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from crdt_server.actor import Actor
from crdt_server.storage.base import Migration, Store, StoredLog
from crdt_server.storage.gateway import Gateway, Table, schema_of, statements

__all__ = ["SHOWN_CHANGES", "VERSIONS", "VersionPoint", "VersionStore", "to_thin"]

POINTS = Table(
    "versions",
    "(doc {ctext} NOT NULL, seq {int} NOT NULL, wedding {ctext} NOT NULL, at {real} NOT NULL,"
    " actors {text} NOT NULL, state {blob} NOT NULL, PRIMARY KEY (doc, seq))",
    indexes=("CREATE INDEX IF NOT EXISTS versions_at ON {t}versions (at)",),
)
_CHANGES = Migration(
    2,
    ("ALTER TABLE versions ADD COLUMN changes TEXT",),
    ("ALTER TABLE {s}.versions ADD COLUMN changes TEXT",),
)
"""Version 2: what changed since the previous point (JSON ``{"count": N, "first": [{"type",
"data"}...]}``; ``NULL`` for points taken before this version)."""
VERSIONS = schema_of("versions", POINTS, migrations=[_CHANGES])
"""Version 1: the points; 2: their ``changes``."""

SHOWN_CHANGES = 5
"""How many of the changes since the previous point a point keeps (their count is kept)."""


@dataclass(frozen=True, slots=True)
class VersionPoint:
    """A restore point (without its state): the document's seq it is the state as of,
    when it was taken (Unix seconds) and who changed the document since the previous
    point (stored as ``[sub, role]`` pairs)."""

    doc: str
    seq: int
    at: float
    actors: tuple[Actor, ...]
    changes: tuple[dict[str, object], ...] = ()
    """The first :data:`SHOWN_CHANGES` domain events (``type``, ``data``) between the
    previous point's state and this one's."""
    change_count: int | None = None
    """How many there were (``None``: a point taken before they were kept)."""


def to_thin(
    points: Sequence[VersionPoint],
    now: float,
    *,
    hourly_for: float,
    keep_for: float,
    all_for: float = 0.0,
) -> list[VersionPoint]:
    """The points to delete: every point older than ``keep_for`` seconds; of those older
    than ``hourly_for`` all but the first of each document's UTC day; of those older than
    ``all_for`` (and younger than ``hourly_for``) all but the first of each UTC hour."""
    doomed: list[VersionPoint] = []
    kept: set[tuple[str, str]] = set()
    for point in sorted(points, key=lambda p: (p.doc, p.seq)):
        age = now - point.at
        if age > keep_for:
            doomed.append(point)
            continue
        taken = datetime.fromtimestamp(point.at, UTC)
        if age > hourly_for:
            bucket = (point.doc, taken.date().isoformat())
        elif all_for and age > all_for:
            bucket = (point.doc, taken.strftime("%Y-%m-%dT%H"))
        else:
            continue
        if bucket in kept:
            doomed.append(point)
        else:
            kept.add(bucket)
    return doomed


class VersionStore:
    """Restore points in a store's SQL tables (:class:`Gateway`)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._sql = Gateway.of(store)

    async def add(self, wedding: str, point: VersionPoint, state: bytes) -> bool:
        """Store a point (a second point at the same seq stores nothing); whether stored."""
        actors = json.dumps([[a.sub, a.role] for a in point.actors])
        changes = (
            None
            if point.change_count is None
            else json.dumps({"count": point.change_count, "first": list(point.changes)})
        )
        row = (point.doc, point.seq, wedding, point.at, actors, state, changes)
        sql = (
            "INSERT INTO {t}versions (doc, seq, wedding, at, actors, state, changes)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
        )
        return await self._sql.run(statements([(sql, row)], count=True)) == [1]

    async def points(
        self, doc: str, *, before: int | None = None, limit: int = 50
    ) -> list[VersionPoint]:
        """The document's points with ``seq < before``, newest first."""
        bound = before if before is not None else 2**62
        rows = await self._sql.fetch_as(
            _PointRow,
            "SELECT doc, seq, at, actors, changes FROM {t}versions WHERE doc = ? AND seq < ?"
            " ORDER BY seq DESC LIMIT ?",
            doc,
            bound,
            limit,
        )
        return [r.point() for r in rows]

    async def state(self, doc: str, at_most: int) -> Kept | None:
        """The newest point with ``seq <= at_most``: its seq and state."""
        return await self._sql.fetch_one_as(
            Kept,
            "SELECT seq, state FROM {t}versions WHERE doc = ? AND seq <= ?"
            " ORDER BY seq DESC LIMIT 1",
            doc,
            at_most,
        )

    async def log_upto(self, doc: str, at_most: int) -> StoredLog | None:
        """The document's log with ``seq <= at_most`` (the first row may be a compaction
        snapshot); ``None`` when the log no longer reaches back that far (the store's)."""
        return await self._store.load(doc, upto=at_most)

    async def runs_between(
        self, doc: str, after: int, upto: int
    ) -> tuple[list[tuple[int, Actor]], float | None]:
        """The bursts of one person's work with ``after < seq <= upto``, oldest first (the
        last seq of each run of consecutive updates by one person, and who: an update with
        no person, a server's own, belongs to the run it falls in), and when the first of
        those updates was made (``None``: none)."""
        entries = await self._store.history(doc, max(0, upto - after), before=upto + 1, after=after)
        runs: list[tuple[int, Actor]] = []
        first: float | None = None
        for entry in sorted(entries, key=lambda e: e.seq):
            first = entry.created_at if first is None else first
            if not entry.sub:
                if runs:
                    runs[-1] = (entry.seq, runs[-1][1])
                continue
            actor = Actor(entry.sub, entry.role)
            if runs and runs[-1][1] == actor:
                runs[-1] = (entry.seq, actor)
            else:
                runs.append((entry.seq, actor))
        return runs, first

    async def actors_between(self, doc: str, after: int, upto: int) -> list[Actor]:
        """Who changed the document with ``after < seq <= upto`` (from the store's
        history: seqs are the store's, so at most ``upto - after`` entries)."""
        entries = await self._store.history(doc, max(0, upto - after), before=upto + 1, after=after)
        return sorted({Actor(e.sub, e.role) for e in entries if e.sub}, key=_by_name)

    async def older_than(self, at: float) -> list[VersionPoint]:
        """Every point taken before ``at`` (what thinning looks at)."""
        rows = await self._sql.fetch_as(
            _PointRow, "SELECT doc, seq, at, actors, changes FROM {t}versions WHERE at < ?", at
        )
        return [r.point() for r in rows]

    async def states(self, doc: str) -> list[Kept]:
        """Every point of the document with its state (to rewrite them), oldest first."""
        return await self._sql.fetch_as(
            Kept, "SELECT seq, state FROM {t}versions WHERE doc = ? ORDER BY seq", doc
        )

    async def replace_states(self, doc: str, states: Sequence[tuple[int, bytes]]) -> None:
        """Overwrite the state of points of the document (per-person erasure)."""
        rows = [(state, doc, seq) for seq, state in states]
        if not rows:
            return
        sql = "UPDATE {t}versions SET state = ? WHERE doc = ? AND seq = ?"
        await self._sql.run(statements([(sql, row) for row in rows], count=True))

    async def forget_changes(self, doc: str, entry: str) -> None:
        """Leave out of the document's points' ``changes`` every change that names
        ``entry`` (an erased guest: their name was in what was added or changed); their
        counts stay."""
        rows = await self._sql.fetch_as(
            _ChangesRow,
            "SELECT seq, changes FROM {t}versions WHERE doc = ? AND changes IS NOT NULL",
            doc,
        )
        sql = "UPDATE {t}versions SET changes = ? WHERE doc = ? AND seq = ?"
        rewritten: list[tuple[str, tuple[object, ...]]] = []
        for row in rows:
            kept = json.loads(row.changes)
            listed = kept.get("first") if isinstance(kept, dict) else None
            if not isinstance(listed, list) or entry not in row.changes:
                continue
            kept["first"] = [c for c in listed if not _mentions(c, entry)]
            rewritten.append((sql, (json.dumps(kept), doc, row.seq)))
        if rewritten:
            await self._sql.run(statements(rewritten, count=True))

    async def delete(self, points: Sequence[VersionPoint]) -> None:
        keys = [(p.doc, p.seq) for p in points]
        if not keys:
            return
        sql = "DELETE FROM {t}versions WHERE doc = ? AND seq = ?"
        await self._sql.run(statements([(sql, key) for key in keys], count=True))


def _by_name(actor: Actor) -> tuple[str, str]:
    return actor.sub, actor.role


class Kept(msgspec.Struct, frozen=True):
    """A document's bytes as of ``seq``: a restore point's state, or a log row."""

    seq: int
    data: bytes


def _mentions(value: object, entry: str, depth: int = 0) -> bool:
    """Whether a change's JSON holds ``entry`` as a value (its id, a seat's guest)."""
    if value == entry:
        return True
    if depth > 8:
        return False
    if isinstance(value, dict):
        return any(_mentions(v, entry, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_mentions(v, entry, depth + 1) for v in value)
    return False


class _ChangesRow(msgspec.Struct, frozen=True):
    seq: int
    changes: str


class _PointRow(msgspec.Struct, frozen=True):
    doc: str
    seq: int
    at: float
    actors: str
    changes: str | None

    def point(self) -> VersionPoint:
        kept: object = json.loads(self.changes) if self.changes else None
        first: tuple[dict[str, object], ...] = ()
        count: int | None = None
        if isinstance(kept, dict) and isinstance(kept.get("count"), int):
            count = int(kept["count"])
            listed = kept.get("first")
            if isinstance(listed, list):
                first = tuple(c for c in listed if isinstance(c, dict))
        return VersionPoint(
            str(self.doc),
            int(self.seq),
            float(self.at),
            tuple(Actor(str(sub), str(role)) for sub, role in json.loads(self.actors)),
            first,
            count,
        )
