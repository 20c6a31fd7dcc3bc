"""Writes lost in a race, and who wrote with which Yjs client: two feature tables.

``yjs_clients`` maps each Yjs client id seen in a wedding to its first authenticated sender,
so a finding can name the author of an old item (the items carry client ids only). Rows are
written in the transaction of the update that first carried the client's structs, never
changed, kept through compaction (the update log is folded, this table is not) and erased
with the wedding.

``concurrent_edits`` keeps each finding as it was seen (both values, both writers, both
times); ``concurrent_edit_closures`` records how one was closed (a later write of the same
key, an acknowledgement, a resolution). Both are written with ``ON CONFLICT DO NOTHING`` by
id (derived from the two items), so two processes that see one race store it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from crdt_server.actor import Actor
from crdt_server.storage.base import DocumentStore, FeatureRow
from crdt_server.storage.gateway import Gateway, Sql, Table, Tx, schema_of, statements
from crdt_server.storage.gateway import insert_sql as insert_text

__all__ = [
    "CONCURRENT_EDITS",
    "ConcurrentEditStore",
    "StoredFinding",
    "client_row",
    "closure_row",
    "finding_row",
]

_FINDING_COLUMNS = (
    "id, wedding, doc, path, kind, loser_client, loser_sub, loser_role, loser_value, loser_at,"
    " winner_client, winner_sub, winner_role, winner_value, winner_at, same_actor, detected_at"
)

CLIENTS = Table(
    "yjs_clients",
    "(wedding {ctext} NOT NULL, client_id {int} NOT NULL, sub {text} NOT NULL,"
    " role {text} NOT NULL, first_at {real} NOT NULL, PRIMARY KEY (wedding, client_id))",
)
FINDINGS = Table(
    "concurrent_edits",
    "(id {ctext} PRIMARY KEY, wedding {ctext} NOT NULL, doc {text} NOT NULL,"
    " path {text} NOT NULL, kind {text} NOT NULL, loser_client {int} NOT NULL,"
    " loser_sub {text}, loser_role {text}, loser_value {text} NOT NULL, loser_at {real},"
    " winner_client {int}, winner_sub {text}, winner_role {text}, winner_value {text},"
    " winner_at {real}, same_actor {int} NOT NULL, detected_at {real} NOT NULL)",
    indexes=(
        "CREATE INDEX IF NOT EXISTS concurrent_edits_wedding"
        " ON {t}concurrent_edits (wedding, detected_at)",
    ),
)
CLOSURES = Table(
    "concurrent_edit_closures",
    "(id {ctext} PRIMARY KEY, wedding {ctext} NOT NULL, how {text} NOT NULL,"
    " sub {text} NOT NULL, role {text} NOT NULL, at {real} NOT NULL)",
)
CONCURRENT_EDITS = schema_of("concurrent_edits", CLIENTS, FINDINGS, CLOSURES)


@dataclass(frozen=True, slots=True)
class StoredFinding:
    """A finding as stored (values are JSON text; a writer not known is ``None``), and how
    it was closed (``closed`` is ``None`` while it is open)."""

    id: str
    wedding: str
    doc: str
    path: str
    kind: str
    loser_client: int
    loser_sub: str | None
    loser_role: str | None
    loser_value: str
    loser_at: float | None
    winner_client: int | None
    winner_sub: str | None
    winner_role: str | None
    winner_value: str | None
    winner_at: float | None
    same_actor: bool
    detected_at: float
    closed: str | None = None
    closed_by: str | None = None
    closed_at: float | None = None


@dataclass(frozen=True, slots=True)
class _Client:
    client_id: int
    sub: str
    role: str


def client_row(wedding: str, client: int, sub: str, role: str, at: float) -> FeatureRow:
    return FeatureRow(
        "yjs_clients",
        (
            ("wedding", wedding),
            ("client_id", client),
            ("sub", sub),
            ("role", role),
            ("first_at", at),
        ),
        if_absent=True,  # two processes may both see a client first: the first row stays
    )


def finding_row(finding: StoredFinding) -> FeatureRow:
    names = [name.strip() for name in _FINDING_COLUMNS.split(",")]
    values = [getattr(finding, name) for name in names]
    values[names.index("same_actor")] = int(finding.same_actor)
    return FeatureRow("concurrent_edits", tuple(zip(names, values, strict=True)), if_absent=True)


def closure_row(finding: str, wedding: str, how: str, sub: str, role: str, at: float) -> FeatureRow:
    values = (("id", finding), ("wedding", wedding), ("how", how), ("sub", sub))
    return FeatureRow(
        "concurrent_edit_closures", (*values, ("role", role), ("at", at)), if_absent=True
    )


class ConcurrentEditStore:
    """The three tables, through the store's SQL gateway."""

    def __init__(self, store: DocumentStore) -> None:
        self._sql = Gateway.of(store)

    async def clients(self, wedding: str) -> dict[int, Actor]:
        """The wedding's Yjs client ids and their first senders."""
        rows = await self._sql.fetch_as(
            _Client, "SELECT client_id, sub, role FROM {t}yjs_clients WHERE wedding = ?", wedding
        )
        return {int(r.client_id): Actor(str(r.sub), str(r.role)) for r in rows}

    async def findings(self, wedding: str, *, open_only: bool = True) -> list[StoredFinding]:
        """The wedding's findings, oldest first (only the open ones by default)."""
        columns = ", ".join("f." + c.strip() for c in _FINDING_COLUMNS.split(","))
        found = await self._sql.fetch_as(
            StoredFinding,
            f"SELECT {columns}, c.how, c.sub, c.at FROM {{t}}concurrent_edits f"  # noqa: S608
            " LEFT JOIN {t}concurrent_edit_closures c ON c.id = f.id"
            " WHERE f.wedding = ?"
            + (" AND c.id IS NULL" if open_only else "")
            + " ORDER BY f.detected_at, f.id",
            wedding,
        )
        # SQLite keeps same_actor as 0 or 1.
        return [replace(f, same_actor=bool(f.same_actor)) for f in found]

    async def insert(self, rows: Sequence[FeatureRow]) -> int:
        """Write rows in a transaction of their own (a closure made through the API, a
        finding another process's content revealed), each only if its key is new: how many
        were new."""

        def tx() -> Tx[int]:
            count = 0
            for row in rows:
                values = tuple(value for _, value in row.values)
                count += yield Sql(insert_text(row), values, count=True)
            return count

        return await self._sql.run(tx())

    async def erase_entry(self, wedding: str, prefixes: Sequence[str]) -> None:
        """Delete the findings about entries whose paths (JSON) start with ``prefixes``
        (a guest erased: their values are in the findings), with their closures."""
        where = (
            "wedding = ? AND ("
            + " OR ".join(["substr(path, 1, length(?)) = ?"] * len(prefixes))
            + ")"
        )
        params = (wedding, *(p for prefix in prefixes for p in (prefix, prefix)))
        await self._sql.run(
            statements(
                [
                    (
                        "DELETE FROM {t}concurrent_edit_closures WHERE id IN"
                        f" (SELECT id FROM {{t}}concurrent_edits WHERE {where})",  # noqa: S608
                        params,
                    ),
                    (f"DELETE FROM {{t}}concurrent_edits WHERE {where}", params),  # noqa: S608
                ]
            )
        )

    async def forget_member(self, wedding: str, sub: str) -> None:
        """A member erased: their Yjs clients are forgotten and findings no longer name
        them (``null``: not known, as for a writer the server never knew)."""
        who = (wedding, sub)
        await self._sql.run(
            statements(
                [
                    ("DELETE FROM {t}yjs_clients WHERE wedding = ? AND sub = ?", who),
                    (
                        "UPDATE {t}concurrent_edits SET loser_sub = NULL, loser_role = NULL"
                        " WHERE wedding = ? AND loser_sub = ?",
                        who,
                    ),
                    (
                        "UPDATE {t}concurrent_edits SET winner_sub = NULL, winner_role = NULL"
                        " WHERE wedding = ? AND winner_sub = ?",
                        who,
                    ),
                    (
                        "UPDATE {t}concurrent_edit_closures SET sub = '', role = ''"
                        " WHERE wedding = ? AND sub = ?",
                        who,
                    ),
                ]
            )
        )
