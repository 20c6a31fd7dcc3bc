"""The one HTTP rate limiter: a token bucket per subject per route family.

A subject is the verified token's ``sub`` (so one user's phone and laptop share a budget),
else the client address. Each family (``read``, ``write``, ``admin``, and whatever a later
feature declares) has its own budget, ``CRDT_SERVER_RATE_<FAMILY>_PER_MINUTE`` requests a
minute, with bursts of up to a minute's worth. A refusal is a 429 with ``Retry-After``.

The wedding-day rule (``API.md``): a request of ``emergency`` priority from the couple or
the planner is never refused (:func:`may_bypass`); routes that carry a priority pass it to
:meth:`HttpRateLimiter.check`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from crdt_server.core.limits import RateLimiter
from crdt_server.edge.problems import ApiError

__all__ = ["BYPASS_ROLES", "HttpRateLimiter", "Priority", "RateKey", "may_bypass"]

Priority = Literal["normal", "urgent", "emergency"]
"""The one priority scale of the API."""

BYPASS_ROLES = frozenset({"couple", "planner"})
"""Roles whose ``emergency`` requests skip the rate limit."""


@dataclass(frozen=True, slots=True)
class RateKey:
    """Who is asking: ``key`` buckets the requests (``sub:...`` or ``addr:...``); ``role``
    is the verified token's role, if any."""

    key: str
    role: str | None = None


def may_bypass(subject: RateKey, priority: Priority) -> bool:
    """Whether the wedding-day rule lets this request past the limiter."""
    return priority == "emergency" and subject.role in BYPASS_ROLES


class HttpRateLimiter:
    """Budgets per family; a family with no budget (or 0 a minute) is not limited."""

    def __init__(self, per_minute: Mapping[str, int]) -> None:
        self._limiters = {
            family: RateLimiter(count / 60.0, float(count))
            for family, count in per_minute.items()
            if count > 0
        }
        # A refused bucket holds under one token; one comes back within 60/count seconds.
        self._retry_after = {
            family: max(1, math.ceil(60.0 / count)) for family, count in per_minute.items() if count
        }

    def check(self, family: str, subject: RateKey, *, priority: Priority = "normal") -> None:
        """Count one request; raise a 429 :class:`ApiError` when over the budget."""
        limiter = self._limiters.get(family)
        if limiter is None or may_bypass(subject, priority):
            return
        if not limiter.allow(subject.key):
            raise ApiError(
                429,
                f"too many {family} requests, slow down",
                headers={"Retry-After": str(self._retry_after[family])},
            )
