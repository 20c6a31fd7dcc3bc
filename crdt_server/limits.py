"""Admission limits checked at the HTTP upgrade: upgrade rate per address, connections per user."""

from __future__ import annotations

import time

__all__ = ["ConnectionCounter", "RateLimiter"]


class RateLimiter:
    """A token bucket per key: ``rate`` per second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float, *, max_keys: int = 100_000) -> None:
        self._rate = rate
        self._burst = burst
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        if len(self._buckets) >= self._max_keys and key not in self._buckets:
            self._forget_full(now)
        self._buckets[key] = (tokens, now)
        return allowed

    def _forget_full(self, now: float) -> None:
        # Buckets that have refilled completely carry no information: drop them.
        refill = self._burst / self._rate
        for key, (_, last) in list(self._buckets.items()):
            if now - last >= refill:
                del self._buckets[key]


class ConnectionCounter:
    """Open connections per user, bounded."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: dict[str, int] = {}

    def acquire(self, user: str) -> bool:
        count = self._open.get(user, 0)
        if count >= self._limit:
            return False
        self._open[user] = count + 1
        return True

    def release(self, user: str) -> None:
        count = self._open.get(user, 0) - 1
        if count > 0:
            self._open[user] = count
        else:
            self._open.pop(user, None)

    def count(self, user: str) -> int:
        return self._open.get(user, 0)
