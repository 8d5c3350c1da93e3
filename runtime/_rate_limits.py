"""Per-connection rate limits that hold across every worker and API process.

A connector that declares its provider's quota (``rate_limit`` in its spec) is limited per
connection (``<connector>:<org>/<customer>``, the executor's rate key) on one schedule kept in
Postgres (``store.RateLimits``, a row per organization and rate key taken by one atomic statement):
the HTTP layer asks :class:`SharedRateLimits` for each request's slot and waits until it, so two
workers sending on one connection together stay within the declared rate, and a 429's
``Retry-After`` holds the connection for every process. Connectors without a declaration keep the
HTTP layer's per-process safety net only (a database round trip per request buys nothing there).

If the database cannot answer, the slot comes from the process's own schedule (the request is not
failed for want of a rate-limit row): the limit then holds per process until the database is back.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio.to_thread

import store

if TYPE_CHECKING:
    from runtime._platform import Platform

log = logging.getLogger(__name__)


class SharedRateLimits:
    """The shared schedules of one organization's connections: an ``engine.http.RateStore``."""

    def __init__(self, db: store.Database, org_id: str) -> None:
        self.db = db
        self.org_id = org_id

    @classmethod
    def of(cls, platform: Platform, org_id: str) -> SharedRateLimits:
        """The shared rate limits of ``org_id`` over the platform's database."""
        return cls(platform.db, org_id)

    def _reserve(self, key: str, interval: float, tolerance: float) -> float:
        with self.db.tenant(self.org_id) as tx:
            slot, now = store.RateLimits(tx).reserve(self.org_id, key, interval, tolerance)
        return max(0.0, slot - now)

    def _hold(self, key: str, seconds: float, tolerance: float) -> None:
        with self.db.tenant(self.org_id) as tx:
            store.RateLimits(tx).hold(self.org_id, key, seconds, tolerance)

    async def reserve(self, key: str, interval: float, tolerance: float) -> float | None:
        """The seconds until ``key``'s next slot, taken from the shared schedule (None: the
        database did not answer; the caller's own schedule applies)."""
        try:
            return await anyio.to_thread.run_sync(self._reserve, key, interval, tolerance)
        except store.StoreError as exc:
            log.warning("shared rate limit unavailable, limiting in this process only", extra={"error": str(exc)})
            return None

    async def hold(self, key: str, seconds: float, tolerance: float) -> None:
        """Hold ``key`` for ``seconds`` in the shared schedule (best effort, as :meth:`reserve`)."""
        try:
            await anyio.to_thread.run_sync(self._hold, key, seconds, tolerance)
        except store.StoreError as exc:
            log.warning("shared rate limit hold not recorded", extra={"error": str(exc)})
