"""Process leases: which platform process runs which inline execution, and whether it still lives.

Each platform process (an API server, a worker) registers a row in ``runtime_processes`` and
renews its ``heartbeat_at``. An inline execution records the id of the process running it
(``executions.owner``). An execution still ``running`` whose owner is gone is an orphan: its
process was killed (``kill -9``, a lost machine) between starting the run and recording its
outcome. :func:`fail_orphaned` marks orphans ``failed`` with the reason; a process is gone when
its row is missing, its heartbeat is older than the lease, or it ran on this host and its pid no
longer exists (so a restarted process fails its predecessor's runs at once, without waiting for
the lease to expire).

Durable executions have no owner here: DBOS owns them, and a lost worker's are resumed, not failed.

These functions span organizations, so they connect as the owner (``admin_conninfo``), as the
other cross-tenant checks do (``execution_org``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psycopg.types.json import Jsonb

from store._db import connect

# The error an orphaned execution records.
PROCESS_LOST = "process_lost"


def register_process(admin_conninfo: str, process_id: str, *, kind: str, host: str, pid: int) -> None:
    """Record a starting process, or renew its lease (a heartbeat)."""
    with connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO runtime_processes (id, kind, host, pid) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()",
            (process_id, kind, host, pid),
        )


def end_process(admin_conninfo: str, process_id: str) -> None:
    """Remove the lease of a process that stops in order."""
    with connect(admin_conninfo, autocommit=True) as conn:
        conn.execute("DELETE FROM runtime_processes WHERE id = %s", (process_id,))


def fail_orphaned(
    admin_conninfo: str, *, host: str, alive: Callable[[int], bool], lease_seconds: float
) -> list[dict[str, Any]]:
    """Mark ``failed`` every inline execution still ``running`` (or ``queued``, waiting its turn)
    whose owner process is gone (see the
    module docstring), and forget the gone processes. ``alive(pid)`` says whether a pid exists on
    ``host`` (this machine). Returns the executions failed (``org_id``, ``id``, ``owner``)."""
    with connect(admin_conninfo, autocommit=True) as conn:
        processes = conn.execute(
            "SELECT id, host, pid, heartbeat_at < now() - make_interval(secs => %s) AS expired FROM runtime_processes",
            (lease_seconds,),
        ).fetchall()
        gone = {pid_row[0] for pid_row in processes if pid_row[3] or (pid_row[1] == host and not alive(pid_row[2]))}
        known = {row[0] for row in processes}
        owners = conn.execute(
            "SELECT DISTINCT owner FROM executions WHERE status IN ('queued', 'running') AND owner IS NOT NULL"
        ).fetchall()
        lost = sorted({owner for (owner,) in owners if owner in gone or owner not in known})
        failed: list[dict[str, Any]] = []
        with conn.transaction():
            for owner in lost:
                error = {
                    "code": PROCESS_LOST, "step": None,
                    "message": f"the process running it ({owner}) stopped before the run finished",
                }
                rows = conn.execute(
                    "UPDATE executions SET status = 'failed', error = %s, finished_at = now(), updated_at = now()"
                    " WHERE status IN ('queued', 'running') AND owner = %s RETURNING org_id, id, owner",
                    (Jsonb(error), owner),
                ).fetchall()
                failed += [{"org_id": org_id, "id": id_, "owner": who} for org_id, id_, who in rows]
            if gone:
                conn.execute("DELETE FROM runtime_processes WHERE id = ANY(%s)", (sorted(gone),))
    return failed


def unstarted_executions(admin_conninfo: str, *, older_than_seconds: float, limit: int = 100) -> list[dict[str, Any]]:
    """Durable executions still ``queued`` after ``older_than_seconds``, oldest first: the ones whose
    hand-over to the queue may have been lost (the process died between recording the execution
    and enqueueing it). Enqueueing is idempotent by execution id, so a caller re-enqueues them all."""
    with connect(admin_conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT org_id, id, customer_id, workflow_id, tier, queue_partition FROM executions WHERE status = 'queued'"
            # An owner marks an inline run waiting its turn in its process, not a durable one.
            " AND owner IS NULL AND started_at < now() - make_interval(secs => %s) ORDER BY started_at LIMIT %s",
            (older_than_seconds, limit),
        ).fetchall()
    return [{"org_id": r[0], "id": r[1], "customer_id": r[2], "workflow_id": r[3], "tier": r[4],
             "queue_partition": r[5]} for r in rows]
