"""The one priority scale of the API, defined here and nowhere else: ``low``, ``normal``,
``urgent``, ``emergency`` (custom events, thread messages, notifications, exports)."""

from __future__ import annotations

from typing import Final, Literal, get_args

__all__ = ["PRIORITIES", "RANK", "Priority", "at_least"]

Priority = Literal["low", "normal", "urgent", "emergency"]
"""A priority, lowest first."""

PRIORITIES: Final[tuple[Priority, ...]] = get_args(Priority)
"""The scale, lowest first."""

RANK: Final[dict[str, int]] = {p: i for i, p in enumerate(PRIORITIES)}
"""Each priority's place on the scale (higher is more pressing)."""


def at_least(priority: str, floor: Priority) -> bool:
    """Whether ``priority`` (a stored value; unknown ones rank as ``normal``) is ``floor``
    or above."""
    return RANK.get(priority, RANK["normal"]) >= RANK[floor]
