"""Retention: forgetting Activity older than a configured age, in small batches that never wait
on a writer.

What is pruned (``prune``), across organizations, as the owner:

* notification deliveries that finished (succeeded or failed) before the cutoff, with their
  attempts (cascade);
* events received before it, except ``received`` ones still awaiting dispatch (deliveries that
  reference a pruned event go with it: one ledger, forgotten together);
* executions started before it that are finished (never ``queued`` or ``running``), and with them
  their traces, which live in the execution row.

Each batch is one short transaction: ``DELETE ... WHERE ctid = ANY(ARRAY(SELECT ctid ... LIMIT n
FOR UPDATE SKIP LOCKED))``. Rows another transaction holds are skipped (taken by a later pass), so
pruning neither blocks writers nor waits for them, and no transaction holds many locks for long.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from store._db import connect, translate_errors

DEFAULT_PRUNE_BATCH = 1000

# (what, table, condition on rows old enough to go): deliveries first, so that events and
# executions go after what references them.
_TARGETS = (
    ("deliveries", "notification_deliveries", "status <> 'pending' AND created_at < %(cutoff)s"),
    ("events", "events", "status <> 'received' AND received_at < %(cutoff)s"),
    ("executions", "executions", "status NOT IN ('queued', 'running') AND started_at < %(cutoff)s"),
)


@dataclass
class PruneReport:
    """How many rows of each kind one ``prune`` removed, and in how many batches."""

    removed: dict[str, int] = field(default_factory=lambda: {name: 0 for name, _, _ in _TARGETS})
    batches: int = 0

    @property
    def total(self) -> int:
        """Rows removed in all."""
        return sum(self.removed.values())


def prune(admin_conninfo: str, cutoff: datetime, *, batch: int = DEFAULT_PRUNE_BATCH,
          max_batches: int | None = None) -> PruneReport:
    """Remove Activity older than ``cutoff`` (see the module docstring), ``batch`` rows per
    transaction, until nothing old is left or ``max_batches`` batches ran (None: no bound).
    Returns what was removed. Raises ``DatabaseUnavailable``."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    report = PruneReport()
    with translate_errors(), connect(admin_conninfo, autocommit=True) as conn:
        for name, table, condition in _TARGETS:
            while max_batches is None or report.batches < max_batches:
                removed = conn.execute(
                    f"DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} WHERE {condition}"
                    " LIMIT %(batch)s FOR UPDATE SKIP LOCKED))",
                    {"cutoff": cutoff, "batch": batch},
                ).rowcount
                report.batches += 1
                report.removed[name] += removed
                if removed < batch:
                    break
    return report
