"""Invariant checks: the conflicts a CRDT cannot rule out, reported for people to resolve.

The layout already makes some conflicts impossible (one guest in two seats, two copies of
one guest). What remains comes from concurrent edits that each looked fine on their own
replica (two people filling the last seat of a table, one shrinking a table while another
seats a guest, a payment recorded for a category someone removed), from soft constraints
operations accept (overlapping bookings, spending over plan), or from foreign clients.

Each kind of finding is defined once, in :mod:`documents.findings` (what it reads, what
makes it, which changes can alter it); the full check here builds those findings from the
documents in one go, which is what the incremental keeper must always equal. Findings are
sorted, so equal documents give equal lists on every replica.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pycrdt import Doc

from .findings import WeddingFindings
from .model import DOCUMENT_KINDS, Conflict, DocumentError, shown

__all__ = ["check", "check_document"]


def check_document(kind: str, docs: Mapping[str, Doc[Any]]) -> list[Conflict]:
    """The findings about document ``kind`` of a wedding, sorted.

    ``docs`` maps kinds to the wedding's documents; the checks read the ones they need
    (seating also reads ``guests``) and treat missing ones as empty.
    """
    if kind not in DOCUMENT_KINDS:
        raise DocumentError(f"unknown document kind {shown(kind)}", "kind")
    needed = ("guests", "seating") if kind == "seating" else (kind,)
    found = check({k: doc for k, doc in docs.items() if k in needed})
    return [f for f in found if f.code.startswith(f"{kind}.")]


def check(docs: Mapping[str, Doc[Any]]) -> list[Conflict]:
    """Every finding about a wedding's documents (missing ones count as empty), sorted."""
    findings = WeddingFindings.build(docs)
    findings.evaluate()
    return findings.findings()
