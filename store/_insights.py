"""Insights: the widget's summary of one customer's integrations (or, with no customer named, of
the organization's across its customers), read from executions and connections (so a
customer-bound transaction reads only its own, by row-level security).

* ``runs_today``: executions (not dry runs) started since ``since``, in all and by status;
* ``records_processed``: the records the sync steps of those executions handled (created,
  updated or found unchanged, from the stored run records);
* ``needs_attention``: executions that failed or timed out since ``attention_since`` and have not
  been re-run to completion since, newest first (up to ``ATTENTION_SHOWN``), and how many;
* ``connections``: each connection's connector and status (``needs_reconnect`` is what a widget
  asks the customer to fix);
* ``most_used_workflow``: the workflow with the most executions since ``attention_since``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from store._paging import CUSTOMERS_OF_ENVIRONMENT
from store.errors import NotFound

if TYPE_CHECKING:
    from store._database import Tx

ATTENTION_SHOWN = 10

_RUNS = """
SELECT status, count(*) AS n FROM executions
WHERE org_id = %(org)s AND {scope} AND NOT dry_run AND started_at >= %(since)s
GROUP BY status
"""
# Sync step outputs are {created, updated, unchanged, skipped, results}; other outputs count nothing.
_RECORDS = """
SELECT coalesce(sum(
    CASE WHEN jsonb_typeof(s->'output'->'created') = 'number' THEN (s->'output'->>'created')::numeric ELSE 0 END
  + CASE WHEN jsonb_typeof(s->'output'->'updated') = 'number' THEN (s->'output'->>'updated')::numeric ELSE 0 END
  + CASE WHEN jsonb_typeof(s->'output'->'unchanged') = 'number' THEN (s->'output'->>'unchanged')::numeric ELSE 0 END
), 0)::bigint AS n
FROM executions e CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(e.record->'run'->'steps') = 'array' THEN e.record->'run'->'steps' ELSE '[]'::jsonb END) s
WHERE e.org_id = %(org)s AND {e_scope} AND NOT e.dry_run AND e.started_at >= %(since)s
  AND jsonb_typeof(s) = 'object' AND jsonb_typeof(s->'output') = 'object'
"""
_ATTENTION = """
SELECT e.id, e.customer_id, e.workflow_id, w.key AS workflow_key, e.status, e.error->>'code' AS error_code, e.started_at,
       e.finished_at, count(*) OVER () AS total
FROM executions e JOIN workflows w ON w.org_id = e.org_id AND w.id = e.workflow_id
WHERE e.org_id = %(org)s AND {e_scope} AND NOT e.dry_run AND e.status IN ('failed', 'timeout')
  AND e.started_at >= %(attention_since)s
  AND NOT EXISTS (SELECT 1 FROM executions r WHERE r.org_id = e.org_id AND r.rerun_of = e.id AND r.status = 'completed')
ORDER BY e.started_at DESC, e.id DESC LIMIT %(shown)s
"""
_CONNECTIONS = """
SELECT c.id, c.customer_id, k.key AS connector, c.name, c.status, c.updated_at
FROM connections c JOIN connectors k ON k.org_id = c.org_id AND k.id = c.connector_id
WHERE c.org_id = %(org)s AND {c_scope} ORDER BY k.key, c.created_at, c.id
"""
_MOST_USED = """
SELECT e.workflow_id, w.key AS workflow_key, w.name, count(*) AS runs
FROM executions e JOIN workflows w ON w.org_id = e.org_id AND w.id = e.workflow_id
WHERE e.org_id = %(org)s AND {e_scope} AND NOT e.dry_run AND e.started_at >= %(attention_since)s
GROUP BY e.workflow_id, w.key, w.name ORDER BY runs DESC, w.key LIMIT 1
"""


class Insights:
    """One customer's summary for the widget."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def summary(self, org_id: str, customer_id: str | None, *, since: datetime, attention_since: datetime,
                hidden_environment: str | None = None) -> dict[str, Any]:
        """The insights of ``customer_id`` (None: of every customer together, leaving out the
        customers of environment ``hidden_environment``, a slug). Raises ``NotFound`` (customer) for
        a customer this transaction cannot see."""
        if customer_id is not None and self.tx.execute(
                "SELECT 1 FROM customers WHERE org_id = %s AND id = %s", (org_id, customer_id)).fetchone() is None:
            raise NotFound("customer", customer_id)
        params = {"org": org_id, "customer": customer_id, "since": since, "attention_since": attention_since,
                  "shown": ATTENTION_SHOWN, "hidden_env": hidden_environment}

        def scoped(sql: str) -> str:
            def scope(alias: str) -> str:
                column = f"{alias}customer_id"
                if customer_id is not None:
                    return f"{column} = %(customer)s"
                if hidden_environment:
                    return f"{column} NOT IN {CUSTOMERS_OF_ENVIRONMENT}"
                return "true"
            return sql.format(scope=scope(""), e_scope=scope("e."), c_scope=scope("c."))

        by_status = {row["status"]: row["n"] for row in self.tx.execute(scoped(_RUNS), params).fetchall()}
        attention = self.tx.execute(scoped(_ATTENTION), params).fetchall()
        most_used = self.tx.execute(scoped(_MOST_USED), params).fetchone()
        return {
            "customer_id": customer_id,
            "since": since,
            "runs_today": {"total": sum(by_status.values()), "by_status": by_status},
            "records_processed": int(self.tx.execute(scoped(_RECORDS), params).fetchone()["n"]),
            "needs_attention": {
                "count": attention[0]["total"] if attention else 0,
                "executions": [{k: v for k, v in row.items() if k != "total"} for row in attention],
            },
            "connections": self.tx.execute(scoped(_CONNECTIONS), params).fetchall(),
            "most_used_workflow": most_used,
        }
