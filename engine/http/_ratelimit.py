"""Per-connection rate limiting: one aiolimiter leaky bucket per rate key."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

from ._policies import RateLimit


@dataclass(slots=True)
class RateLimiterStats:
    """What one rate key's limiter has done: requests let through, how many had to wait,
    how many wait now, and the seconds spent waiting in all."""

    acquired: int = 0
    delayed: int = 0
    waiting: int = 0
    waited_seconds: float = 0.0


class _Bucket:
    __slots__ = ("limit", "limiter", "stats")

    def __init__(self, limit: RateLimit):
        self.limit = limit
        # A bucket of ``burst`` drained at ``per_second``: bursts of ``burst`` requests,
        # then ``per_second`` on average.
        self.limiter = AsyncLimiter(max_rate=limit.burst, time_period=limit.burst / limit.per_second)
        self.stats = RateLimiterStats()


class RateLimiters:
    """The rate limiters of one event loop, by rate key (aiolimiter binds to one loop)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._buckets: dict[str, _Bucket] = {}
        self._clock = clock

    async def acquire(self, key: str, limit: RateLimit) -> float:
        """Wait for capacity under ``key``; returns the seconds waited (0.0 when none)."""
        bucket = self._buckets.get(key)
        if bucket is None or bucket.limit != limit:
            bucket = self._buckets[key] = _Bucket(limit)
        stats = bucket.stats
        if bucket.limiter.has_capacity():
            await bucket.limiter.acquire()
            stats.acquired += 1
            return 0.0
        stats.waiting += 1
        started = self._clock()
        try:
            await bucket.limiter.acquire()
        finally:
            stats.waiting -= 1
        waited = max(0.0, self._clock() - started)
        stats.acquired += 1
        stats.delayed += 1
        stats.waited_seconds += waited
        return waited

    def stats(self, key: str) -> RateLimiterStats:
        """A copy of ``key``'s counters (all zero for a key never used)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return RateLimiterStats()
        s = bucket.stats
        return RateLimiterStats(s.acquired, s.delayed, s.waiting, s.waited_seconds)
