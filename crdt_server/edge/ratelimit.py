"""The one HTTP rate limiter: a token bucket per subject per route family.

A subject is the verified token's ``sub`` (so one user's phone and laptop share a budget),
else the client address. Each family (``read``, ``write``, ``admin``, and whatever a later
feature declares) has its own budget, ``CRDT_SERVER_RATE_<FAMILY>_PER_MINUTE`` requests a
minute, with bursts of up to a minute's worth. A refusal is a 429 with ``Retry-After``.

The wedding-day rule (``API.md``): a request of ``emergency`` priority is never refused by
its family's budget. From the couple or the planner it is never refused at all
(:func:`may_bypass`); anyone else's is counted against a budget of its own,
``CRDT_SERVER_RATE_EMERGENCY_PER_HOUR`` an hour per subject (bursts of up to that many).
Routes that carry a priority pass it to :meth:`HttpRateLimiter.check`. Every budget is
per process (under ``--workers N`` a subject may get up to N times as much).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from crdt_server.core.limits import RateLimiter
from crdt_server.edge.problems import ApiError
from crdt_server.names import Priority

__all__ = ["BYPASS_ROLES", "HttpRateLimiter", "Priority", "RateKey", "may_bypass"]


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

    def __init__(self, per_minute: Mapping[str, int], *, emergency_per_hour: int = 0) -> None:
        """``per_minute``: each family's budget; ``emergency_per_hour``: the emergency
        budget of everyone but the couple and planner (0: unlimited)."""
        self._emergency = (
            RateLimiter(emergency_per_hour / 3600.0, float(emergency_per_hour))
            if emergency_per_hour > 0
            else None
        )
        self._emergency_retry_after = (
            max(1, math.ceil(3600.0 / emergency_per_hour)) if emergency_per_hour > 0 else 0
        )
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
        if may_bypass(subject, priority):
            return
        if priority == "emergency":
            # Never the family's budget: the emergency budget of its own, for everyone.
            if self._emergency is not None and not self._emergency.allow(subject.key):
                raise ApiError(
                    429,
                    "too many emergencies this hour, slow down",
                    headers={"Retry-After": str(self._emergency_retry_after)},
                )
            return
        limiter = self._limiters.get(family)
        if limiter is None:
            return
        if not limiter.allow(subject.key):
            raise ApiError(
                429,
                f"too many {family} requests, slow down",
                headers={"Retry-After": str(self._retry_after[family])},
            )
