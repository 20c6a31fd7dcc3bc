"""Every reader of stored shapes, over hostile shapes, within a time budget (issue 47).

pycrdt 0.14.13 never returns from reading a ``Y.Array`` that holds a string with an astral
character (it iterates by a UTF-16 count). The server reads every document through what
the shape rule let in: the live path refuses such content, and a store that holds it from
before is replayed with it as deleted content (:func:`crdt_server.core.crdt.replay`). This
test draws stored rows that put any content anywhere (by parent, by origin, by a collected
origin) and runs every reader on them, each example in a child process killed after 5 s:
pytest-timeout cannot interrupt code that never returns to Python, and a hang fails the
test with the shape that caused it.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from pycrdt import Doc

from crdt_server.codec.items import read_items
from crdt_server.codec.updates import UpdateError, inspect_update
from crdt_server.core.crdt import CrdtFailure, RoomDocument, replay
from crdt_server.core.overwrites import OverwriteIndex
from crdt_server.documents import DOCUMENT_KINDS, check_document, to_json
from crdt_server.documents.changes import entry_changes
from crdt_server.documents.domain import WEDDINGS
from crdt_server.documents.events import derive_events
from crdt_server.documents.findings import WeddingFindings
from crdt_server.features.integrations.domain_guests_csv import export_guests
from crdt_server.features.projections.domain import mirror
from crdt_server.storage import StoredLog
from crdt_server.testing.edits import content
from crdt_server.testing.inprocess import doc_of
from crdt_server.tools.export import _export_document
from tests.hostile_shapes import hostile_rows
from tests.tier import examples

BUDGET_SECONDS = 5.0


def _live(rows: list[bytes], kind: str) -> None:
    """The live path: a room's document with the change recorder that derives events."""
    document = RoomDocument()
    recorder = WEDDINGS.recorder(document.doc, kind, lambda exc: None)
    taken: list[Any] = []
    document.integrated = lambda update: taken.extend(recorder.take())
    for row in rows:
        try:
            document.apply(row, inspect_update(row))
        except (UpdateError, CrdtFailure):
            continue  # refused: content that does not fit, or that pycrdt cannot read
    derive_events(kind, entry_changes(taken))


def readers(rows: list[bytes]) -> dict[str, Callable[[], object]]:
    """Every reader of a stored document, on ``rows`` loaded as the server loads them."""
    doc = replay(rows)[0].doc
    out: dict[str, Callable[[], object]] = {}
    for kind in DOCUMENT_KINDS:
        out[f"json view {kind}"] = lambda kind=kind: to_json(doc, kind)
        out[f"rich view {kind}"] = lambda kind=kind: to_json(doc, kind, rich=True)
        out[f"export {kind}"] = lambda kind=kind: _export_document("w1/x", kind, rows)
        out[f"conflicts {kind}"] = lambda kind=kind: check_document(kind, {kind: doc})
        out[f"projection {kind}"] = lambda kind=kind: mirror(doc, Doc(), kind, ("notes",))
        out[f"events {kind}"] = lambda kind=kind: _live(rows, kind)
    out["csv"] = lambda: export_guests(doc)
    out["findings"] = lambda: WeddingFindings.build({"guests": doc}).findings()
    out["concurrent edits"] = lambda: OverwriteIndex().build(read_items(doc.get_update()))
    out["erasure"] = lambda: WEDDINGS.forget(replay(rows)[0].doc, "guests", "g1")
    out["testing kit"] = lambda: content(doc_of(StoredLog(updates=rows, last_seq=0, first_seq=0)))
    return out


def _child(rows: list[bytes], report: Any) -> None:
    failures = []
    for name, read in readers(rows).items():
        try:
            read()
        except Exception:
            failures.append(f"{name}: {traceback.format_exc(limit=3)}")
    report.send(failures)


def _read_in_a_child(rows: list[bytes]) -> list[str]:
    context = multiprocessing.get_context("fork")
    mine, theirs = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(rows, theirs), daemon=True)
    child.start()
    theirs.close()
    try:
        if not mine.poll(BUDGET_SECONDS):
            pytest.fail(
                f"a reader took more than {BUDGET_SECONDS} s on the rows "
                f"{[row.hex() for row in rows]}"
            )
        failures: list[str] = mine.recv()
        return failures
    finally:
        if child.is_alive():
            child.kill()
        child.join(BUDGET_SECONDS)
        mine.close()


@pytest.mark.timeout(600)
@settings(
    max_examples=examples(200, 25),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(rows=hostile_rows())  # type: ignore[arg-type]
def test_every_reader_finishes_on_any_stored_shape(rows: list[bytes]) -> None:
    failures = _read_in_a_child(rows)
    assert not failures, "\n".join(failures) + f"\nrows: {[row.hex() for row in rows]}"
