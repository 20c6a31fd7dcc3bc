"""Which tier is running: the property tests' example counts differ by tier, and the unit
tier runs without Node.

``scripts/test`` sets ``CRDT_TEST_TIER=fast`` for the fast tier and ``CRDT_TEST_TIER=unit``
for ``--unit``; the full tier (``--full``, what CI runs) and a plain ``pytest`` leave it unset
and so run the full counts.
"""

from __future__ import annotations

import os

__all__ = ["FAST", "UNIT", "examples", "needs_node"]

_TIER = os.environ.get("CRDT_TEST_TIER")

UNIT = _TIER == "unit"
"""True in the unit tier (``scripts/test --unit``): no Node, browser, Redis or PostgreSQL."""

FAST = _TIER == "fast" or UNIT
"""True in the fast and unit tiers (``scripts/test`` without ``--full``)."""


def examples(full: int, fast: int) -> int:
    """The hypothesis example count: ``full`` in the full tier (CI), ``fast`` in the fast one."""
    return fast if FAST else full


def needs_node(what: str) -> None:
    """Called before a test starts Node: in the unit tier that is a test missing its ``js``
    mark, which would fail on a machine without Node, so say so even where Node is here."""
    if UNIT:
        raise RuntimeError(
            f"{what} needs Node, which the unit tier (scripts/test --unit) runs without: "
            "mark the test `js` (pytest.mark.js) so that --unit leaves it out"
        )
