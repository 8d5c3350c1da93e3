"""Traces: Activity's view of connector calls, one row per HTTP attempt recorded in an execution's trace.

Nothing new is stored: the rows are read from ``executions.trace`` (written when an execution
finishes, credentials already redacted by the interpreter), so they follow the executions' row-level
security: a customer-bound transaction sees only that customer's calls. Only the summary fields of
a record are served; URLs and bodies stay in the execution's own trace.

A row's ``status`` is ``error`` when the attempt recorded an error or an HTTP status of 400 or more,
``success`` when it has a response below 400, and ``pending`` when it has neither (no answer yet).
Records carry no clock of their own: ``at`` is the start of the execution that made the call.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from store._paging import CUSTOMERS_OF_ENVIRONMENT, Filters, ListQuery, Page, add_time_range, fetch_page
from store.errors import InvalidInput

if TYPE_CHECKING:
    from store._database import Tx

TRACE_STATUSES = ("success", "error", "pending")

# The id is the execution's and the record's position in its trace (zero-padded, so ids sort as
# the calls were made); a record's number fields are read leniently (a non-number becomes null).
_ROWS = """(
  SELECT e.org_id, e.id || ':' || lpad(t.n::text, 6, '0') AS id, e.id AS execution_id, e.workflow_id,
         e.customer_id, e.version, e.dry_run, e.started_at AS at,
         t.r->>'step_id' AS step_id, t.r->>'connector' AS connector, t.r->>'action' AS action,
         t.r->>'method' AS method,
         CASE WHEN jsonb_typeof(t.r->'status') = 'number' THEN (t.r->>'status')::numeric::int END AS http_status,
         CASE WHEN jsonb_typeof(t.r->'latency_ms') = 'number' THEN (t.r->>'latency_ms')::float8 END AS latency_ms,
         CASE WHEN jsonb_typeof(t.r->'attempt') = 'number' THEN (t.r->>'attempt')::numeric::int END AS attempt,
         CASE WHEN jsonb_typeof(t.r->'retry_delay') = 'number' THEN (t.r->>'retry_delay')::float8 END AS retry_delay,
         t.r->>'error' AS error,
         CASE WHEN jsonb_typeof(t.r->'sent') = 'boolean' THEN (t.r->>'sent')::boolean END AS sent,
         CASE WHEN t.r->>'error' IS NOT NULL
                   OR (jsonb_typeof(t.r->'status') = 'number' AND (t.r->>'status')::numeric >= 400) THEN 'error'
              WHEN jsonb_typeof(t.r->'status') = 'number' THEN 'success'
              ELSE 'pending' END AS status
  FROM executions e CROSS JOIN LATERAL jsonb_array_elements(
         CASE WHEN jsonb_typeof(e.trace) = 'array' THEN e.trace ELSE '[]'::jsonb END) WITH ORDINALITY AS t(r, n)
  WHERE e.org_id = %(org)s AND jsonb_typeof(t.r) = 'object'
) tr"""
_COLUMNS = ("id, execution_id, workflow_id, customer_id, version, dry_run, at, step_id, connector, action, method,"
            " http_status, latency_ms, attempt, retry_delay, error, sent, status")


class Traces:
    """An organization's connector calls, read from its executions' traces."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def list(self, org_id: str, query: ListQuery, *, status: str | None = None, connector: str | None = None,
             workflow_ref: str | None = None, customer_id: str | None = None, execution_id: str | None = None,
             dry_run: bool | None = None, started_from: datetime | None = None, started_to: datetime | None = None,
             hidden_environment: str | None = None) -> Page:
        """Calls (sort: at, then id), leaving out the customers of environment ``hidden_environment``
        (a slug). ``workflow_ref`` is an id or a key; an unknown one lists nothing. ``started_from``
        (inclusive) and ``started_to`` (exclusive) bound ``at``. Raises ``InvalidInput`` (fields
        ``status``, ``from``, ``to``, ``sort``, ``limit``, ``cursor``)."""
        if status is not None and status not in TRACE_STATUSES:
            raise InvalidInput("trace", "status", f"must be one of {', '.join(TRACE_STATUSES)}")
        filters = Filters()
        filters.add("org_id = %(org)s", org=org_id)
        add_time_range(filters, "trace", "at", started_from, started_to)
        if status:
            filters.add("status = %(status)s", status=status)
        if connector:
            filters.add("connector = %(connector)s", connector=connector)
        if workflow_ref:
            filters.add(
                "workflow_id IN (SELECT w.id FROM workflows w WHERE w.org_id = %(org)s AND (w.id = %(wref)s OR w.key = %(wref)s))",
                wref=workflow_ref,
            )
        if customer_id:
            filters.add("customer_id = %(customer)s", customer=customer_id)
        if execution_id:
            filters.add("execution_id = %(execution)s", execution=execution_id)
        if dry_run is not None:
            filters.add("dry_run = %(dry)s", dry=dry_run)
        if hidden_environment:
            filters.add("customer_id NOT IN " + CUSTOMERS_OF_ENVIRONMENT, hidden_env=hidden_environment)
        return fetch_page(self.tx, "trace", _ROWS, query, {"at": "at"}, filters, columns=_COLUMNS)
