"""The conflicts keeper reads a wedding whole (when it first evaluates it, or after a
document was replaced: a restore, a room loaded again) on a worker thread, from copies of
its documents: on the loop, 20,000 guests held every other wedding 0.6 s after a restore
(`tests/features/integrations/test_guests_csv_loop.py`, the watchdog's stacks). What
changes while it reads is read again from the documents themselves next time."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from pycrdt import Doc, Map

from crdt_server.documents import OPERATIONS, apply_operation, check
from crdt_server.documents.changes import ChangeRecorder
from crdt_server.documents.findings import WeddingFindings
from crdt_server.features.conflicts.extension_wedding import KeptWedding

KINDS = ("guests", "seating")


class _Weddings:
    """The one call of the weddings' view the keeper's evaluation makes: the documents as
    they are now (the live ones, which the loop goes on changing)."""

    def __init__(self, docs: Mapping[str, Doc[Any]]) -> None:
        self.docs = docs

    async def documents(
        self, wedding_id: str, kinds: Iterable[str] | None = None
    ) -> dict[str, Doc[Any]]:
        return dict(self.docs)


def _apply(docs: Mapping[str, Doc[Any]], op: dict[str, Any]) -> None:
    kind = OPERATIONS[op["op"]]
    apply_operation(docs[kind], kind, op, related=docs)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_wedding_read_whole_is_read_off_the_loop_and_keeps_what_changed_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs: dict[str, Doc[Any]] = {kind: Doc() for kind in KINDS}
    recorders = {kind: ChangeRecorder(doc, kind) for kind, doc in docs.items()}
    for op in (
        {"op": "add_guest", "guest_id": "g1", "name": "Ann Lee"},
        {"op": "add_guest", "guest_id": "g2", "name": "Bob Ray"},
        {"op": "add_table", "table_id": "t1", "name": "Rose", "capacity": 1},
        {"op": "assign_seat", "guest_id": "g1", "table_id": "t1", "seat": 1},
    ):
        _apply(docs, op)
    for recorder in recorders.values():
        recorder.take()
    wedding = KeptWedding()
    weddings = _Weddings(docs)

    # The read is held on its worker thread until the loop has changed the documents.
    threads: list[threading.Thread] = []
    changed = threading.Event()
    real = WeddingFindings.build

    def build(
        live: Mapping[str, Doc[Any]], between: Any = None
    ) -> WeddingFindings:  # the classmethod, as the keeper calls it
        threads.append(threading.current_thread())
        assert changed.wait(10)
        return real(live, between)

    monkeypatch.setattr(WeddingFindings, "build", build)
    evaluation = asyncio.create_task(wedding.up_to_date(weddings, "w1"))  # type: ignore[arg-type]
    while not wedding.building:  # noqa: ASYNC110 (the keeper's own flag: no event to wait on)
        await asyncio.sleep(0.005)
    # Meanwhile, on the loop: Bob is seated at the full table (a finding the copies lack;
    # a client's edit, which no operation would make).
    docs["seating"].get("assignments", type=Map)["g2"] = {"table_id": "t1", "seat": 2}
    for kind, recorder in recorders.items():
        wedding.touch(SimpleNamespace(kind=kind, doc=docs[kind]), recorder.take())  # type: ignore[arg-type]
    changed.set()
    findings = await evaluation
    assert findings is not None
    assert threads and threads[0] is not threading.main_thread()
    assert all(findings.sources[kind] is docs[kind] for kind in KINDS)  # the live ones
    findings.evaluate()
    assert "seating.table_over_capacity" not in {c.code for c in findings.findings()}

    # The next evaluation reads what changed meanwhile, from the documents themselves.
    again = await wedding.up_to_date(weddings, "w1")
    assert again is findings
    assert len(threads) == 1  # not read whole again
    findings.evaluate()
    assert findings.findings() == check(docs)
    assert "seating.table_over_capacity" in {c.code for c in findings.findings()}
