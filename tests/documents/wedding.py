"""Helpers for the document tests: a seeded wedding and a short way to apply operations."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Doc

from crdt_server.documents import (
    DOCUMENT_KINDS,
    OPERATIONS,
    OperationError,
    apply_operation,
    seed,
    to_json,
)
from crdt_server.edge.problems import OPERATION_STATUS

Docs = dict[str, Doc[Any]]
NO_NOTES: dict[str, Any] = {"notes": ""}
"""What an entry created without notes holds there: an empty collaborative text."""


def new_wedding(wedding_id: str = "w1") -> Docs:
    """The four documents of a wedding, seeded."""
    docs: Docs = {kind: Doc() for kind in DOCUMENT_KINDS}
    for kind, doc in docs.items():
        seed(doc, kind, wedding_id)
    return docs


def run(docs: Docs, op: str, **fields: Any) -> dict[str, Any]:
    """Apply operation ``op`` to the document it belongs to, with the others as context."""
    kind = OPERATIONS[op]
    return apply_operation(docs[kind], kind, {"op": op, **fields}, related=docs)


def sync(*replicas: Docs) -> None:
    """Exchange everything between replicas (each pair, each kind), as a server would."""
    for kind in DOCUMENT_KINDS:
        for source in replicas:
            for target in replicas:
                if source is not target:
                    target[kind].apply_update(source[kind].get_update(target[kind].get_state()))


def exports(docs: Docs) -> dict[str, Any]:
    return {kind: to_json(doc, kind) for kind, doc in docs.items()}


def refused(docs: Docs, op: str, status: int, /, **fields: Any) -> OperationError:
    """Apply an operation that must be refused with ``status`` (the HTTP status the edge
    gives the domain's reason, ``OPERATION_STATUS``), and check it changed nothing."""
    states = {kind: doc.get_state() for kind, doc in docs.items()}
    before = exports(docs)
    with pytest.raises(OperationError) as info:
        run(docs, op, **fields)
    assert OPERATION_STATUS[info.value.reason] == status, info.value
    assert {kind: doc.get_state() for kind, doc in docs.items()} == states
    assert exports(docs) == before
    return info.value
