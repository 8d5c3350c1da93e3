"""Retention: every worker prunes Activity older than the configured age, in small batches
(``store.prune``: rows another transaction holds are skipped, never waited for). Run once by
``switchboard prune``."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio.to_thread

import store
from runtime._periodic import Periodic

if TYPE_CHECKING:
    from runtime._platform import Platform

# How often a worker prunes (``switchboard worker``: SWITCHBOARD_RETENTION_POLL_SECONDS).
RETENTION_POLL_SECONDS = 3600.0
# Batches one pass removes at most, so one pass never runs for long; the next pass goes on.
RETENTION_MAX_BATCHES = 100


class Pruner(Periodic):
    """Prunes executions (with their traces), events and notification deliveries older than
    ``platform.config.retention_days`` (None: keep everything)."""

    name = "retention"

    def __init__(self, platform: Platform, *, poll_seconds: float = RETENTION_POLL_SECONDS,
                 batch: int = store.DEFAULT_PRUNE_BATCH, max_batches: int | None = RETENTION_MAX_BATCHES) -> None:
        super().__init__(platform, poll_seconds=poll_seconds, batch=batch)
        self.max_batches = max_batches

    async def tick(self) -> list[dict[str, Any]]:
        """One pass; returns ``[{"cutoff", "removed", "batches"}]``, or ``[]`` when retention is off."""
        days = self.platform.config.retention_days
        if days is None:
            return []
        cutoff = self.platform.clock() - timedelta(days=days)
        report = await anyio.to_thread.run_sync(
            lambda: store.prune(self.platform.conninfo, cutoff, batch=self.batch, max_batches=self.max_batches))
        return [{"cutoff": cutoff, "removed": report.removed, "batches": report.batches}]
