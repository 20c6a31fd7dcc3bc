"""Admission and rate limits: token buckets and bounded counters.

Checked at the HTTP upgrade (upgrades per address, connections per user and per address)
and per connection (updates and awareness messages per second).
"""

from __future__ import annotations

import time

__all__ = ["ConnectionCounter", "RateLimiter", "TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; one token per event."""

    __slots__ = ("_burst", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._last = time.monotonic()

    def take(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        # A caller's ``now`` may predate this bucket (read before it was created): never
        # let that count as negative time, or a fresh bucket of burst 1 refuses its first.
        elapsed = max(0.0, now - self._last)
        tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self._last = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True

    def full_at(self) -> float:
        """When this bucket will be full again (it then carries no information)."""
        return self._last + (self._burst - self._tokens) / self._rate


class RateLimiter:
    """A :class:`TokenBucket` per key (e.g. per client address), with bounded memory."""

    def __init__(self, rate: float, burst: float, *, max_keys: int = 100_000) -> None:
        self._rate = rate
        self._burst = burst
        self._max_keys = max_keys
        self._buckets: dict[str, TokenBucket] = {}

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._forget_full(now)
            bucket = self._buckets[key] = TokenBucket(self._rate, self._burst)
        return bucket.take(now)

    def _forget_full(self, now: float) -> None:
        for key, bucket in list(self._buckets.items()):
            if bucket.full_at() <= now:
                del self._buckets[key]


class ConnectionCounter:
    """Open connections per key (user, address), bounded."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: dict[str, int] = {}

    def acquire(self, key: str) -> bool:
        count = self._open.get(key, 0)
        if count >= self._limit:
            return False
        self._open[key] = count + 1
        return True

    def release(self, key: str) -> None:
        count = self._open.get(key, 0) - 1
        if count > 0:
            self._open[key] = count
        else:
            self._open.pop(key, None)

    def count(self, key: str) -> int:
        return self._open.get(key, 0)
