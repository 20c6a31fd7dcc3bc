"""The jobs table on SQLite and PostgreSQL, and the statements the scheduler runs on it.

One row per job, unique per (wedding, kind, entry, due time): scheduling the same job again
(a feature re-deriving its reminders at start, two processes at once) adds nothing, and a
job done stays ``done`` so it is never run again. A claim takes due jobs under a lease
(``lease_until``, ``lease_owner``), as webhook deliveries are claimed: on PostgreSQL with
``FOR UPDATE SKIP LOCKED``, so processes sharing the database never take each other's rows;
on SQLite the database's single writer serialises claims. A process that dies holding a
lease leaves the job to whoever claims it once the lease has run out. Completion checks the
lease is still this process's, in the transaction that writes the job's rows.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

import msgspec

from crdt_server.features.jobs import Job
from crdt_server.storage import Gateway, Table, schema_of
from crdt_server.storage.gateway import Sql, Tx, rows_as

__all__ = [
    "JOBS",
    "SCHEMA",
    "JobRow",
    "LeaseLost",
    "cancel",
    "claim",
    "complete",
    "fail",
    "next_wake",
    "plan",
    "jobs_of_entry",
    "schedule",
]

JOBS = Table(
    "scheduler_jobs",
    "(id {id}, wedding {ctext} NOT NULL, kind {ctext} NOT NULL, entry {ctext} NOT NULL,"
    " due_at {real} NOT NULL, data {text} NOT NULL, status {ctext} NOT NULL,"
    " attempts {int} NOT NULL DEFAULT 0, lease_until {real} NOT NULL DEFAULT 0,"
    " lease_owner {text} NOT NULL DEFAULT '', last_error {text} NOT NULL DEFAULT '',"
    " created_at {real} NOT NULL, done_at {real} NOT NULL DEFAULT 0,"
    " UNIQUE (wedding, kind, entry, due_at))",
    indexes=(
        "CREATE INDEX IF NOT EXISTS scheduler_jobs_due ON {t}scheduler_jobs (status, due_at)",
    ),
)
SCHEMA = schema_of("scheduler", JOBS)
"""Version 1 of the scheduler's schema: the jobs table, erased with its wedding. Numbered
migrations (``schema_of(..., migrations=[...])``) carry later changes on both backends."""

PENDING, DONE, FAILED = "pending", "done", "failed"

_COLUMNS = "id, wedding, kind, entry, due_at, data, status, attempts, lease_until, done_at"


class JobRow(msgspec.Struct, frozen=True):
    """A job as the table holds it (:data:`_COLUMNS`' order)."""

    id: int
    wedding: str
    kind: str
    entry: str
    due_at: float
    data: str
    status: str
    attempts: int
    lease_until: float
    done_at: float


class LeaseLost(RuntimeError):
    """The job is no longer leased to this process (its lease ran out and another took it,
    or it was cancelled): what the run meant to write is rolled back."""


def schedule(
    wedding: str, kind: str, entry: str, due_at: float, data: dict[str, Any], now: float
) -> Tx[bool]:
    """The step that makes (wedding, kind, entry) due at ``due_at``: the entry's pending
    jobs due at another time go, and the job is added unless it exists (pending, done or
    failed). Whether a job was added."""
    yield Sql(
        "DELETE FROM {t}scheduler_jobs WHERE wedding = ? AND kind = ? AND entry = ?"
        " AND status = ? AND due_at <> ?",
        (wedding, kind, entry, PENDING, due_at),
    )
    added = yield Sql(
        "INSERT INTO {t}scheduler_jobs (wedding, kind, entry, due_at, data, status, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (wedding, kind, entry, due_at) DO NOTHING",
        (wedding, kind, entry, due_at, json.dumps(data, separators=(",", ":")), PENDING, now),
        count=True,
    )
    return bool(added)


class _Planned(msgspec.Struct, frozen=True):
    entry: str
    due_at: float
    status: str


def plan(
    wedding: str, kind: str, wanted: dict[str, tuple[float, dict[str, Any]]], now: float
) -> Tx[int]:
    """The step that makes the wedding's jobs of ``kind`` be ``wanted`` (entry -> due time
    and data): each wanted entry is scheduled as :func:`schedule` does, and the pending jobs
    of entries not wanted are deleted. One read of the kind's jobs, then only the
    differences are written. How many jobs were added or deleted."""
    jobs = yield from rows_as(
        _Planned,
        "SELECT entry, due_at, status FROM {t}scheduler_jobs WHERE wedding = ? AND kind = ?",
        wedding,
        kind,
    )
    have = {(job.entry, float(job.due_at)): job.status for job in jobs}
    wanted_at = {entry: due for entry, (due, _) in wanted.items()}
    changed = 0
    for (entry, due_at), status in have.items():
        if status == PENDING and wanted_at.get(entry) != due_at:
            changed += yield Sql(
                "DELETE FROM {t}scheduler_jobs WHERE wedding = ? AND kind = ? AND entry = ?"
                " AND due_at = ? AND status = ?",
                (wedding, kind, entry, due_at, PENDING),
                count=True,
            )
    for entry, (due_at, data) in wanted.items():
        if (entry, due_at) not in have:
            changed += yield Sql(
                "INSERT INTO {t}scheduler_jobs (wedding, kind, entry, due_at, data, status,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (wedding, kind, entry, due_at) DO NOTHING",
                (
                    wedding,
                    kind,
                    entry,
                    due_at,
                    json.dumps(data, separators=(",", ":")),
                    PENDING,
                    now,
                ),
                count=True,
            )
    return changed


def cancel(wedding: str, kind: str, entry: str) -> Tx[int]:
    """The step that deletes the entry's pending jobs of ``kind``; how many."""
    removed = yield Sql(
        "DELETE FROM {t}scheduler_jobs WHERE wedding = ? AND kind = ? AND entry = ? AND status = ?",
        (wedding, kind, entry, PENDING),
        count=True,
    )
    return int(removed)


_CLAIM = """
UPDATE {t}scheduler_jobs SET lease_until = ?, lease_owner = ?, attempts = attempts + 1
WHERE id IN (
  SELECT c.id FROM {t}scheduler_jobs c
  WHERE c.status = 'pending' AND c.due_at <= ? AND c.lease_until <= ? AND c.kind IN ({kinds})
  ORDER BY c.due_at, c.id LIMIT ? {lock}
) AND status = 'pending' AND lease_until <= ?
RETURNING id, wedding, kind, entry, due_at, data, attempts
"""
"""Due jobs of the kinds this process runs, oldest first, that no live lease holds. The
lease condition is repeated on the row updated: on PostgreSQL a row another claim leased
while this one waited is re-checked on its new version (READ COMMITTED)."""


def _claim_text(db: Gateway, kinds: int) -> str:
    lock = db.by_dialect(sqlite="", postgres="FOR UPDATE OF c SKIP LOCKED")
    return _CLAIM.replace("{kinds}", ", ".join("?" * kinds)).replace("{lock}", lock)


async def claim(
    db: Gateway, kinds: Collection[str], owner: str, now: float, lease: float, limit: int
) -> list[Job]:
    """Take up to ``limit`` due jobs of ``kinds`` under a lease of ``lease`` seconds for
    ``owner`` (counting the attempt)."""
    if not kinds:
        return []
    text = _claim_text(db, len(kinds))
    args = (now + lease, owner, now, now, *kinds, limit, now)

    def tx() -> Tx[list[tuple[Any, ...]]]:
        rows: list[tuple[Any, ...]] = yield Sql(text, args)
        return rows

    rows = await db.run(tx())
    jobs = []
    for job_id, wedding, kind, entry, due_at, data, attempts in rows:
        try:
            decoded = json.loads(data)
        except ValueError:
            decoded = {}
        jobs.append(
            Job(
                int(job_id),
                str(wedding),
                str(kind),
                str(entry),
                float(due_at),
                decoded if isinstance(decoded, dict) else {},
                int(attempts),
            )
        )
    return jobs


def complete(job: int, owner: str, now: float) -> Tx[None]:
    """The step that marks ``job`` done while ``owner`` still holds its lease (else
    :class:`LeaseLost`, which rolls back the transaction it is part of)."""
    done = yield Sql(
        "UPDATE {t}scheduler_jobs SET status = ?, done_at = ?, lease_until = 0"
        " WHERE id = ? AND status = ? AND lease_owner = ? AND lease_until > ?",
        (DONE, now, job, PENDING, owner, now),
        count=True,
    )
    if not done:
        raise LeaseLost(f"job {job} is no longer leased to {owner}")


def fail(job: int, owner: str, error: str, retry_at: float | None) -> Tx[None]:
    """The step that records a failed run: the job is tried again from ``retry_at`` (its
    lease, released then), or with ``None`` it is given up (``failed``)."""
    if retry_at is None:
        yield Sql(
            "UPDATE {t}scheduler_jobs SET status = ?, last_error = ?, lease_until = 0"
            " WHERE id = ? AND lease_owner = ? AND status = ?",
            (FAILED, error[:500], job, owner, PENDING),
        )
    else:
        yield Sql(
            "UPDATE {t}scheduler_jobs SET last_error = ?, lease_until = ?"
            " WHERE id = ? AND lease_owner = ? AND status = ?",
            (error[:500], retry_at, job, owner, PENDING),
        )


async def next_wake(db: Gateway, kinds: Collection[str]) -> float | None:
    """The earliest time a pending job of ``kinds`` may be claimed (its due time, or the end
    of the lease holding it); ``None`` when there is none."""
    if not kinds:
        return None
    marks = ", ".join("?" * len(kinds))
    found = await db.fetch_one_as(
        _Wake,
        "SELECT MIN(CASE WHEN lease_until > due_at THEN lease_until ELSE due_at END)"
        f" FROM {{t}}scheduler_jobs WHERE status = ? AND kind IN ({marks})",
        PENDING,
        *kinds,
    )
    return None if found is None or found.at is None else float(found.at)


class _Wake(msgspec.Struct, frozen=True):
    at: float | None


async def jobs_of_entry(db: Gateway, wedding: str, kind: str, entry: str) -> list[JobRow]:
    """The jobs of (wedding, kind, entry), every status, by due time."""
    return await db.fetch_as(
        JobRow,
        f"SELECT {_COLUMNS} FROM {{t}}scheduler_jobs WHERE wedding = ? AND kind = ? AND entry = ?"
        " ORDER BY due_at, id",
        wedding,
        kind,
        entry,
    )
