"""``crdt-server check``: load every stored document the way a room does and report damage.

On the embedded SQLite store, the file itself is checked too (``PRAGMA integrity_check``:
a damaged page or index is damage even where every row still reads), and a document whose
history names entries but whose log has no row left (rows lost by hand or by a bad disk)
is reported as damaged. For each document: every row must decode as a Yjs update and
integrate (a row the server would have to leave out is damage); the snapshot a joiner
receives, applied to a fresh document together with the content still waiting on a
dependency, must show exactly what the log shows; and the newest row must have its history
entry. Counts and sizes are reported for every document. Content waiting on a dependency
is reported, not damage: an offline client may still send what it needs. Content that
does not fit its parent (:mod:`crdt_server.codec.shapes`), stored before the codec refused
it, is damage, listed by item id (``crdt-server repair`` deletes it).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pycrdt import Doc, Map

from crdt_server.codec.updates import UpdateError, inspect_update
from crdt_server.core.crdt import CrdtFailure, RoomDocument, crdt_call, replay
from crdt_server.documents import DOCUMENT_KINDS, DocumentError, to_json
from crdt_server.names import CONFLICTS, ROOM_KINDS, WEDDING_ID_PATTERN, projection_of
from crdt_server.storage import Store

__all__ = [
    "DocumentReport",
    "SqliteFileReport",
    "check_sqlite_file",
    "check_store",
    "print_reports",
]

_ALL_HISTORY = 2**62


@dataclass(slots=True)
class DocumentReport:
    """What ``check`` found in one stored document."""

    name: str
    rows: int = 0
    bytes: int = 0
    history: int = 0
    held: int = 0
    """Updates still waiting on content the server never received (not damage)."""
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "doc": self.name,
            "rows": self.rows,
            "bytes": self.bytes,
            "history": self.history,
            "held": self.held,
            "problems": self.problems,
        }


async def check_store(store: Store, prefix: str = "") -> list[DocumentReport]:
    """Check every stored document whose name starts with ``prefix``, in name order."""
    reports: list[DocumentReport] = []
    for name in await store.list(prefix):
        report = DocumentReport(name)
        reports.append(report)
        wedding, _, kind = name.partition("/")
        projection = projection_of(name)
        if projection is not None:
            kind = projection[1]  # a projection is checked as the document it projects
        elif WEDDING_ID_PATTERN.fullmatch(wedding) is None or kind not in ROOM_KINDS:
            report.problems.append("not a room name the server would ever store")
        stored = await store.load(name)
        if stored is None:
            continue  # deleted while we looked
        report.rows = len(stored.updates)
        report.bytes = sum(len(u) for u in stored.updates)
        history = await store.history(name, _ALL_HISTORY)
        report.history = len(history)
        if not any(entry.seq == stored.last_seq for entry in history):
            report.problems.append(f"the newest row (seq {stored.last_seq}) has no history entry")
        report.problems += await asyncio.to_thread(_check_log, kind, stored.updates, report)
    return reports


def _check_log(kind: str, updates: list[bytes], report: DocumentReport) -> list[str]:
    problems: list[str] = []
    for index, update in enumerate(updates):
        try:
            inspect_update(update)
        except UpdateError as exc:
            problems.append(f"row {index + 1} of {len(updates)} is not a Yjs update: {exc}")
    document, unreadable = replay(updates)
    report.held = len(document.held)
    if document.misfits:
        # Stored before the codec refused it: a room serves it as deleted content.
        ids = ", ".join(f"{m.id[0]}#{m.id[1]}" for m in document.misfits)
        wedding = report.name.partition("/")[0]
        problems.append(
            f"{len(document.misfits)} items hold content that does not fit their parent"
            f" (items {ids}); `crdt-server repair --wedding {wedding}` deletes them"
        )
    if unreadable:
        problems.append(f"{unreadable} rows cannot be integrated; a room leaves them out")
        return problems
    try:
        snapshot = crdt_call(document.doc.get_update)
        again = RoomDocument()
        for update in [snapshot, *document.held_updates()]:
            again.apply(update, inspect_update(update))
        # Decoded: the encoding's order of clients is a hash map's, not the content's.
        if again.state() != document.state():
            problems.append("the snapshot's state vector differs from the log's")
        elif _view(again.doc, kind) != _view(document.doc, kind):
            problems.append("the snapshot shows other content than the log")
    except (CrdtFailure, UpdateError, DocumentError) as exc:
        problems.append(f"the snapshot cannot be rebuilt: {exc}")
    return problems


def _view(doc: Doc[Any], kind: str) -> object:
    if kind in DOCUMENT_KINDS:
        return to_json(doc, kind)
    if kind == CONFLICTS:
        return doc.get(CONFLICTS, type=Map).to_py()
    return None


@dataclass(slots=True)
class SqliteFileReport:
    """What ``check`` found in the SQLite file under the rows."""

    problems: list[str] = field(default_factory=list)
    """SQLite's own integrity verdict, when not ``ok`` (the first few lines)."""
    logless: dict[str, int] = field(default_factory=dict)
    """Documents with history entries but no row in their log: name -> entries."""


def check_sqlite_file(path: Path, prefix: str = "") -> SqliteFileReport:
    """Run SQLite's integrity check on the store file and find documents whose log is gone
    while their history remains (read only; safe beside a running server in WAL mode)."""
    report = SqliteFileReport()
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        try:
            verdict = [str(row[0]) for row in conn.execute("PRAGMA integrity_check(20)")]
        except sqlite3.DatabaseError as exc:
            verdict = [str(exc)]
        if verdict != ["ok"]:
            report.problems = [f"SQLite integrity check: {line}" for line in verdict[:5]]
            if len(verdict) > 5:
                report.problems.append(f"... and {len(verdict) - 5} more")
        try:
            rows = conn.execute(
                "SELECT doc, COUNT(*) FROM history WHERE substr(doc, 1, ?) = ?"
                " AND doc NOT IN (SELECT DISTINCT doc FROM updates) GROUP BY doc ORDER BY doc",
                (len(prefix), prefix),
            ).fetchall()
            report.logless = {str(doc): int(count) for doc, count in rows}
        except sqlite3.DatabaseError as exc:
            report.problems.append(f"cannot compare the history with the logs: {exc}")
    finally:
        conn.close()
    return report


def print_reports(
    reports: list[DocumentReport],
    store_problems: list[str],
    path: Path,
    out: TextIO,
    *,
    as_json: bool,
) -> None:
    """Write what ``check`` found: each document's counts and problems, the store file's
    (``path``) problems, and the totals; as one JSON object with ``as_json``."""
    damaged = [r for r in reports if r.problems]
    if as_json:
        body = {
            "documents": [r.to_json() for r in reports],
            "rows": sum(r.rows for r in reports),
            "bytes": sum(r.bytes for r in reports),
            "damaged": len(damaged),
            "store_problems": store_problems,
        }
        print(json.dumps(body, indent=1), file=out)
        return
    for r in reports:
        held = f", {r.held} waiting on a dependency" if r.held else ""
        state = "DAMAGED" if r.problems else "ok"
        print(
            f"{state:8} {r.name}: {r.rows} rows, {r.bytes} bytes, "
            f"{r.history} history entries{held}",
            file=out,
        )
        for problem in r.problems:
            print(f"         - {problem}", file=out)
    if store_problems:
        print(f"DAMAGED  store file {path}:", file=out)
        for problem in store_problems:
            print(f"         - {problem}", file=out)
    print(
        f"{len(reports)} documents, {sum(r.rows for r in reports)} rows, "
        f"{sum(r.bytes for r in reports)} bytes; {len(damaged)} damaged"
        + ("; the store file is damaged" if store_problems else ""),
        file=out,
    )
