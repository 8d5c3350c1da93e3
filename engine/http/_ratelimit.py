"""Per-connection rate limiting: one adaptive bucket per rate key.

Each bucket schedules requests by the generic cell rate algorithm (GCRA, the
leaky bucket as a virtual schedule): a request reserves the next slot at once
and sleeps until it, so waiters keep their order, a cancelled waiter gives its
slot up late rather than early, and no loop polls the clock.

The bucket adapts to the upstream: a 429 halves the rate it sends at (down to
an eighth of the declared one) and holds every later request of the key until
``Retry-After`` has passed, then lets them through one interval apart, with no
burst; each answer that is not a 429 gives back a twentieth of the declared
rate, so a connection that was throttled once returns to its declared limit
after about twenty good answers. A declared ``concurrency`` caps the requests
of the key in flight at once.

Across processes: a limiter given a :class:`RateStore` keeps a key's schedule (its
theoretical arrival time) there instead of in this process, so every process that
sends on the connection takes its slots from the one schedule and the combined rate
holds (the platform's store is a row per connection in Postgres, updated by one
atomic statement per request). The adaptation to 429s still sets the interval each
process asks for, and a 429's ``Retry-After`` holds the shared schedule, so every
process waits it out; ``concurrency`` stays a per-process cap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ._policies import RateLimit

# The slowest a bucket adapts down to, as a share of its declared rate.
MIN_RATE_SHARE = 1 / 8
# What one answer that is not a 429 gives back, as a share of the declared rate.
RECOVERY_SHARE = 1 / 20


@dataclass(slots=True)
class RateLimiterStats:
    """What one rate key's limiter has done: requests let through, how many had to wait,
    how many wait now, the seconds spent waiting in all, the 429s it was told of, and the
    rate (requests per second) it sends at now (the declared one unless a 429 lowered it)."""

    acquired: int = 0
    delayed: int = 0
    waiting: int = 0
    waited_seconds: float = 0.0
    throttled: int = 0
    rate: float = 0.0


@runtime_checkable
class RateStore(Protocol):
    """Where rate keys' schedules live when they must hold across processes (see the module
    docstring). Both methods work on the store's own clock, so processes on machines whose clocks
    differ share one schedule."""

    async def reserve(self, key: str, interval: float, tolerance: float) -> float | None:
        """Take ``key``'s next slot, ``interval`` seconds after the one before, letting a burst of
        ``tolerance`` seconds' worth through at once; returns the seconds until the slot (0.0: now),
        or None when the store cannot answer (the process's own schedule applies then)."""
        ...

    async def hold(self, key: str, seconds: float, tolerance: float) -> None:
        """Let nothing of ``key`` through for ``seconds`` from now (a 429's ``Retry-After``), and no
        burst after (``tolerance`` as in :meth:`reserve`)."""
        ...


class _Bucket:
    __slots__ = ("limit", "rate", "tat", "stats", "slots")

    def __init__(self, limit: RateLimit, now: float):
        self.limit = limit
        self.rate = limit.per_second
        self.tat = now  # theoretical arrival time of the next request (GCRA)
        self.stats = RateLimiterStats(rate=limit.per_second)
        self.slots = asyncio.Semaphore(limit.concurrency) if limit.concurrency else None

    def reserve(self, now: float) -> float:
        """Take the next slot; the seconds until it (0.0: now)."""
        interval = 1.0 / self.rate
        tolerance = (self.limit.burst - 1) * interval
        start = max(now, self.tat - tolerance)
        self.tat = max(self.tat, now) + interval
        return start - now

    def throttled(self, now: float, retry_after: float | None) -> None:
        self.stats.throttled += 1
        self.rate = max(self.limit.per_second * MIN_RATE_SHARE, self.rate / 2)
        self.stats.rate = self.rate
        pause = retry_after if retry_after is not None else 1.0 / self.rate
        # Nothing goes before the pause ends, and no burst after it: the upstream just said
        # the connection is over its quota, whatever the bucket thought was left.
        tolerance = (self.limit.burst - 1) / self.rate
        self.tat = max(self.tat, now + pause + tolerance)

    def answered(self) -> None:
        if self.rate < self.limit.per_second:
            self.rate = min(self.limit.per_second, self.rate + self.limit.per_second * RECOVERY_SHARE)
            self.stats.rate = self.rate


class RateLimiters:
    """The rate limiters of one event loop, by rate key.

    ``clock`` (seconds, monotonic) and ``sleep`` are injectable so tests can watch the
    schedule without waiting for it; ``hold_scale`` multiplies the hold of a 429's ``Retry-After``
    (the client's ``wait_scale``).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, *, hold_scale: float = 1.0):
        self._buckets: dict[str, _Bucket] = {}
        self._clock = clock
        self._sleep = sleep
        self._hold_scale = hold_scale

    def _bucket(self, key: str, limit: RateLimit) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None or bucket.limit != limit:
            bucket = self._buckets[key] = _Bucket(limit, self._clock())
        return bucket

    async def acquire(self, key: str, limit: RateLimit, shared: RateStore | None = None) -> float:
        """Wait for a slot under ``key`` (from ``shared``'s schedule when given); returns the
        seconds waited (0.0 when none)."""
        bucket = self._bucket(key, limit)
        stats = bucket.stats
        delay: float | None = None
        if shared is not None:
            interval = 1.0 / bucket.rate
            delay = await shared.reserve(key, interval, (limit.burst - 1) * interval)
        if delay is None:
            delay = bucket.reserve(self._clock())
        if delay <= 0:
            stats.acquired += 1
            return 0.0
        stats.waiting += 1
        try:
            await self._sleep(delay)
        finally:
            stats.waiting -= 1
        stats.acquired += 1
        stats.delayed += 1
        stats.waited_seconds += delay
        return delay

    @asynccontextmanager
    async def in_flight(self, key: str, limit: RateLimit) -> AsyncIterator[None]:
        """Hold one of ``key``'s concurrent slots for the block (nothing when the limit sets none)."""
        slots = self._bucket(key, limit).slots
        if slots is None:
            yield
            return
        async with slots:
            yield

    async def throttled(self, key: str, limit: RateLimit, retry_after: float | None,
                        shared: RateStore | None = None) -> None:
        """The upstream answered ``key`` with 429: slow the key down and hold it for ``retry_after``
        seconds (in ``shared``'s schedule too, when given)."""
        bucket = self._bucket(key, limit)
        if retry_after is not None:
            retry_after *= self._hold_scale
        bucket.throttled(self._clock(), retry_after)
        if shared is not None:
            pause = retry_after if retry_after is not None else 1.0 / bucket.rate
            await shared.hold(key, pause, (limit.burst - 1) / bucket.rate)

    def answered(self, key: str, limit: RateLimit) -> None:
        """The upstream answered ``key`` with something other than 429: recover some of the rate."""
        bucket = self._buckets.get(key)
        if bucket is not None and bucket.limit == limit:
            bucket.answered()

    def stats(self, key: str) -> RateLimiterStats:
        """A copy of ``key``'s counters (all zero for a key never used)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return RateLimiterStats()
        s = bucket.stats
        return RateLimiterStats(s.acquired, s.delayed, s.waiting, s.waited_seconds, s.throttled, s.rate)
