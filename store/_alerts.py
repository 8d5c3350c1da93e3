"""Alert rules, what they measure, and the alerts they raise (schema: ``store/_schema_alerts.py``).

A rule watches one metric over a sliding window that ends at the moment it is evaluated, over
an organization's executions (not dry runs) that finished in the window: all of them, one
workflow's (``workflow_id``), or the connector calls of one connector (``connector``, read from
the executions' traces like ``store.Traces``). Metrics (``ALERT_METRICS``):

* ``error_rate``: failed (``failed`` or ``timeout`` executions; calls answered with an error or an
  HTTP status of 400 or more) over all, a fraction from 0 to 1;
* ``failure_count``: how many failed; ``throughput``: how many there were;
* ``latency_p99``, ``latency_p95``, ``latency_avg``: milliseconds (an execution's start to finish;
  a call's recorded latency).

The rule fires when the value compares to ``threshold`` by ``operator`` and at least
``min_count`` executions (or calls) were seen; a window with fewer (or nothing: no value) does not
fire, and resolves a firing rule. Firing opens an alert row and stores an ``alert.fired`` platform
event; resolving closes the alert and stores ``alert.resolved``; both in the transaction that
evaluated the rule.
"""

from __future__ import annotations

import operator as op
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from store._db import connect, translate_errors
from store._events import Events
from store._ids import new_id
from store._paging import Filters, ListQuery, Page, fetch_page
from store._schema_alerts import ALERT_METRICS, ALERT_OPERATORS
from store.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from store._database import Tx

# A rule is evaluated this often unless it says otherwise (never less often than once per window).
DEFAULT_ALERT_INTERVAL_SECONDS = 60
# The longest window a rule may watch (executions older than the retention are gone anyway).
MAX_ALERT_WINDOW_SECONDS = 30 * 24 * 3600
ALERT_STATUSES = ("firing", "resolved")

_COMPARE = {">": op.gt, ">=": op.ge, "<": op.lt, "<=": op.le}
_RULE_COLUMNS = (
    "id, name, metric, operator, threshold, window_seconds, interval_seconds, min_count, workflow_id, connector,"
    " enabled, state, alert_id, last_value, last_count, evaluated_at, next_eval_at, created_by, created_at, updated_at"
)
_ALERT_COLUMNS = ("id, rule_id, status, metric, operator, threshold, value, fired_at, resolved_at, resolved_value,"
                  " fired_event_id, resolved_event_id")
_UPDATABLE = ("name", "metric", "operator", "threshold", "window_seconds", "interval_seconds", "min_count",
              "enabled")

# Duration in milliseconds of an execution that finished.
_DURATION = "extract(epoch FROM (finished_at - started_at)) * 1000"
_EXECUTION_STATS = f"""
SELECT count(*) AS n, count(*) FILTER (WHERE status IN ('failed', 'timeout')) AS failures,
       avg({_DURATION}) AS avg_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY {_DURATION}) AS p95_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY {_DURATION}) AS p99_ms
FROM executions
WHERE org_id = %(org)s AND NOT dry_run AND status IN ('completed', 'failed', 'timeout')
  AND finished_at >= %(start)s AND finished_at < %(end)s AND (%(workflow)s::text IS NULL OR workflow_id = %(workflow)s)
"""
_CALL_STATS = """
SELECT count(*) AS n,
       count(*) FILTER (WHERE c.r->>'error' IS NOT NULL
                        OR (jsonb_typeof(c.r->'status') = 'number' AND (c.r->>'status')::numeric >= 400)) AS failures,
       avg(c.latency) AS avg_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY c.latency) AS p95_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY c.latency) AS p99_ms
FROM executions e CROSS JOIN LATERAL (
    SELECT t.r, CASE WHEN jsonb_typeof(t.r->'latency_ms') = 'number' THEN (t.r->>'latency_ms')::float8 END AS latency
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(e.trace) = 'array' THEN e.trace ELSE '[]'::jsonb END) AS t(r)
    WHERE jsonb_typeof(t.r) = 'object' AND t.r->>'connector' = %(connector)s
) c
WHERE e.org_id = %(org)s AND NOT e.dry_run AND e.finished_at >= %(start)s AND e.finished_at < %(end)s
"""


def _check_rule(fields: dict[str, Any]) -> None:
    """Refuse (``InvalidInput`` naming the field) what the schema's checks would refuse less clearly."""
    if "metric" in fields and fields["metric"] not in ALERT_METRICS:
        raise InvalidInput("alert_rule", "metric", f"must be one of {', '.join(ALERT_METRICS)}")
    if "operator" in fields and fields["operator"] not in ALERT_OPERATORS:
        raise InvalidInput("alert_rule", "operator", f"must be one of {', '.join(ALERT_OPERATORS)}")
    window = fields.get("window_seconds")
    if window is not None and not (isinstance(window, int) and 0 < window <= MAX_ALERT_WINDOW_SECONDS):
        raise InvalidInput("alert_rule", "window_seconds", f"must be an integer from 1 to {MAX_ALERT_WINDOW_SECONDS}")
    interval = fields.get("interval_seconds")
    if interval is not None and not (isinstance(interval, int) and interval > 0):
        raise InvalidInput("alert_rule", "interval_seconds", "must be a positive integer")
    if window is not None and interval is not None and interval > window:
        raise InvalidInput("alert_rule", "interval_seconds", "must not exceed window_seconds (a rule is evaluated at "
                                                             "least once per window)")
    if "min_count" in fields and fields["min_count"] is not None and fields["min_count"] < 0:
        raise InvalidInput("alert_rule", "min_count", "must not be negative")
    if "threshold" in fields and not isinstance(fields["threshold"], (int, float)):
        raise InvalidInput("alert_rule", "threshold", "must be a number")


def alert_value(metric: str, stats: dict[str, Any]) -> float | None:
    """A metric's value from a window's statistics (``n``, ``failures``, ``avg_ms``, ``p95_ms``,
    ``p99_ms``); None when the window has nothing to measure."""
    n = stats["n"] or 0
    if metric == "throughput":
        return float(n)
    if metric == "failure_count":
        return float(stats["failures"] or 0)
    if n == 0:
        return None
    if metric == "error_rate":
        return (stats["failures"] or 0) / n
    value = stats[{"latency_avg": "avg_ms", "latency_p95": "p95_ms", "latency_p99": "p99_ms"}[metric]]
    return None if value is None else float(value)


def breached(rule: dict[str, Any], value: float | None, count: int) -> bool:
    """Whether ``value`` (over ``count`` executions or calls) makes ``rule`` fire."""
    return value is not None and count >= rule["min_count"] and _COMPARE[rule["operator"]](value, rule["threshold"])


class AlertRules:
    """An organization's alert rules, their evaluation and the alerts they raise."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def _workflow_id(self, org_id: str, ref: str) -> str:
        row = self.tx.execute(
            "SELECT id FROM workflows WHERE org_id = %s AND (id = %s OR key = %s)", (org_id, ref, ref)
        ).fetchone()
        if row is None:
            raise InvalidInput("alert_rule", "workflow", f"no workflow {ref!r}")
        return row["id"]

    def create(self, org_id: str, *, name: str, metric: str, threshold: float, window_seconds: int,
               operator: str = ">", interval_seconds: int | None = None, min_count: int = 1,
               workflow: str | None = None, connector: str | None = None, enabled: bool = True,
               created_by: str | None = None, now: datetime | None = None) -> dict[str, Any]:
        """A rule on ``metric`` over the last ``window_seconds``, evaluated every ``interval_seconds``
        (default: a minute, or the window when shorter), first at ``now`` (default: the database's).
        ``workflow`` (id or key) or ``connector`` (key) narrow it; neither: the whole organization.
        Raises ``InvalidInput`` naming the field."""
        if interval_seconds is None and isinstance(window_seconds, int):
            interval_seconds = max(1, min(DEFAULT_ALERT_INTERVAL_SECONDS, window_seconds))
        _check_rule({"metric": metric, "operator": operator, "window_seconds": window_seconds,
                     "interval_seconds": interval_seconds, "min_count": min_count, "threshold": threshold})
        if workflow is not None and connector is not None:
            raise InvalidInput("alert_rule", "connector", "a rule watches a workflow or a connector, not both")
        workflow_id = self._workflow_id(org_id, workflow) if workflow is not None else None
        return self.tx.execute(
            "INSERT INTO alert_rules (org_id, id, name, metric, operator, threshold, window_seconds, interval_seconds,"
            " min_count, workflow_id, connector, enabled, created_by, next_eval_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()))"
            f" RETURNING {_RULE_COLUMNS}",
            (org_id, new_id("alr"), name, metric, operator, float(threshold), window_seconds, interval_seconds,
             min_count, workflow_id, connector, enabled, created_by, now),
        ).fetchone()

    def get(self, org_id: str, rule_id: str) -> dict[str, Any]:
        """One rule. Raises ``NotFound``."""
        row = self.tx.execute(f"SELECT {_RULE_COLUMNS} FROM alert_rules WHERE org_id = %s AND id = %s",
                              (org_id, rule_id)).fetchone()
        if row is None:
            raise NotFound("alert_rule", rule_id)
        return row

    def list(self, org_id: str, query: ListQuery) -> Page:
        """Rules (sort: created_at, name)."""
        filters = Filters()
        filters.add("org_id = %(org)s", org=org_id)
        return fetch_page(self.tx, "alert_rule", "alert_rules", query, {"created_at": "created_at", "name": "name"},
                          filters, columns=_RULE_COLUMNS)

    def update(self, org_id: str, rule_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change ``changes``' fields (of ``name``, ``metric``, ``operator``, ``threshold``,
        ``window_seconds``, ``interval_seconds``, ``min_count``, ``enabled``); the rule is evaluated
        again at its next slot with what it says now. Raises ``NotFound``, ``InvalidInput``."""
        current = self.get(org_id, rule_id)
        unknown = sorted(set(changes) - set(_UPDATABLE))
        if unknown:
            raise InvalidInput("alert_rule", unknown[0], "cannot be changed")
        for key, value in changes.items():
            if value is None:
                raise InvalidInput("alert_rule", key, "must not be null (leave it out to keep it)")
        merged = {key: changes.get(key, current[key]) for key in _UPDATABLE}
        _check_rule(merged)
        if not changes:
            return current
        assignments = ", ".join(f"{key} = %({key})s" for key in changes)
        return self.tx.execute(
            f"UPDATE alert_rules SET {assignments}, updated_at = now() WHERE org_id = %(org)s AND id = %(id)s"
            f" RETURNING {_RULE_COLUMNS}",
            {**changes, "org": org_id, "id": rule_id},
        ).fetchone()

    def delete(self, org_id: str, rule_id: str) -> None:
        """Delete a rule and its alerts (their events stay in the ledger). Raises ``NotFound``."""
        if self.tx.execute("DELETE FROM alert_rules WHERE org_id = %s AND id = %s RETURNING id",
                           (org_id, rule_id)).fetchone() is None:
            raise NotFound("alert_rule", rule_id)

    # -- evaluation ----------------------------------------------------------------------------

    def lock_due(self, org_id: str, rule_id: str, now: datetime) -> dict[str, Any] | None:
        """The rule, locked for this transaction, if it is enabled and due at ``now`` and no other
        transaction holds it; else None (the condition is read after the lock, so a rule another
        evaluator has just advanced is not due any more)."""
        return self.tx.execute(
            f"SELECT {_RULE_COLUMNS} FROM alert_rules WHERE org_id = %s AND id = %s AND enabled AND next_eval_at <= %s"
            " FOR UPDATE SKIP LOCKED",
            (org_id, rule_id, now),
        ).fetchone()

    def measure(self, org_id: str, rule: dict[str, Any], now: datetime) -> tuple[float | None, int]:
        """``rule``'s metric over the window ending at ``now``: ``(value, count)``."""
        params = {"org": org_id, "start": now - timedelta(seconds=rule["window_seconds"]), "end": now,
                  "workflow": rule["workflow_id"], "connector": rule["connector"]}
        stats = self.tx.execute(_CALL_STATS if rule["connector"] else _EXECUTION_STATS, params).fetchone()
        return alert_value(rule["metric"], stats), int(stats["n"] or 0)

    def evaluate(self, org_id: str, rule: dict[str, Any], now: datetime) -> dict[str, Any]:
        """Measure a rule locked by ``lock_due``, fire or resolve it, and plan its next evaluation.
        Returns ``{"rule_id", "value", "count", "state", "changed"}`` (``changed``: ``fired``,
        ``resolved`` or None) and, when it changed, the ``alert`` row."""
        value, count = self.measure(org_id, rule, now)
        firing = breached(rule, value, count)
        changed, alert = None, None
        alert_id = rule["alert_id"]
        if firing and rule["state"] != "firing":
            alert_id = new_id("alt")
            event = self._event(org_id, "alert.fired", rule, alert_id, value, count, now)
            alert = self.tx.execute(
                "INSERT INTO alerts (org_id, id, rule_id, status, metric, operator, threshold, value, fired_at,"
                f" fired_event_id) VALUES (%s, %s, %s, 'firing', %s, %s, %s, %s, %s, %s) RETURNING {_ALERT_COLUMNS}",
                (org_id, alert_id, rule["id"], rule["metric"], rule["operator"], rule["threshold"], value, now,
                 event["id"]),
            ).fetchone()
            changed = "fired"
        elif not firing and rule["state"] == "firing":
            event = self._event(org_id, "alert.resolved", rule, alert_id, value, count, now)
            alert = self.tx.execute(
                "UPDATE alerts SET status = 'resolved', resolved_at = %s, resolved_value = %s, resolved_event_id = %s"
                f" WHERE org_id = %s AND id = %s RETURNING {_ALERT_COLUMNS}",
                (now, value, event["id"], org_id, alert_id),
            ).fetchone()
            alert_id, changed = None, "resolved"
        state = "firing" if firing else "ok"
        self.tx.execute(
            "UPDATE alert_rules SET state = %s, alert_id = %s, last_value = %s, last_count = %s, evaluated_at = %s,"
            " next_eval_at = %s WHERE org_id = %s AND id = %s",
            (state, alert_id, value, count, now, now + timedelta(seconds=rule["interval_seconds"]), org_id, rule["id"]),
        )
        return {"rule_id": rule["id"], "value": value, "count": count, "state": state, "changed": changed,
                "alert": alert}

    def _event(self, org_id: str, type_: str, rule: dict[str, Any], alert_id: str, value: float | None, count: int,
               now: datetime) -> dict[str, Any]:
        payload = {"alert_id": alert_id, "rule_id": rule["id"], "rule_name": rule["name"], "metric": rule["metric"],
                   "operator": rule["operator"], "threshold": rule["threshold"], "value": value, "count": count,
                   "window_seconds": rule["window_seconds"], "workflow_id": rule["workflow_id"],
                   "connector": rule["connector"], "at": now.isoformat()}
        return Events(self.tx).add_platform(org_id, type_, payload, workflow_id=rule["workflow_id"])


class Alerts:
    """What an organization's rules raised: firing and resolved alerts, newest first."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def list(self, org_id: str, query: ListQuery, *, status: str | None = None, rule_id: str | None = None) -> Page:
        """Alerts (sort: fired_at). Raises ``InvalidInput`` (``status``, ``sort``, ``limit``, ``cursor``)."""
        if status is not None and status not in ALERT_STATUSES:
            raise InvalidInput("alert", "status", f"must be one of {', '.join(ALERT_STATUSES)}")
        filters = Filters()
        filters.add("org_id = %(org)s", org=org_id)
        if status:
            filters.add("status = %(status)s", status=status)
        if rule_id:
            filters.add("rule_id = %(rule)s", rule=rule_id)
        return fetch_page(self.tx, "alert", "alerts", query, {"fired_at": "fired_at"}, filters, columns=_ALERT_COLUMNS)


def alert_rules_due(admin_conninfo: str, now: datetime, limit: int = 100) -> list[tuple[str, str]]:
    """``(org_id, rule_id)`` of enabled rules due at ``now``, most overdue first (asked as the owner,
    across tenants; each is then locked and evaluated in its organization's transaction)."""
    with translate_errors(), connect(admin_conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT org_id, id FROM alert_rules WHERE enabled AND next_eval_at <= %s ORDER BY next_eval_at LIMIT %s",
            (now, limit),
        ).fetchall()
    return [(org_id, rule_id) for org_id, rule_id in rows]

