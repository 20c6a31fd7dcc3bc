"""Which tier is running, for the property tests whose example counts differ by tier.

``scripts/test`` sets ``CRDT_TEST_TIER=fast`` for the fast tier; the full tier (``--full``,
what CI runs) and a plain ``pytest`` leave it unset and so run the full counts.
"""

from __future__ import annotations

import os

__all__ = ["FAST", "examples"]

FAST = os.environ.get("CRDT_TEST_TIER") == "fast"
"""True in the fast tier (``scripts/test`` without ``--full``)."""


def examples(full: int, fast: int) -> int:
    """The hypothesis example count: ``full`` in the full tier (CI), ``fast`` in the fast one."""
    return fast if FAST else full
