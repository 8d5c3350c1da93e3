"""/v1 routes: alert rules (Activity's Alerts view) and the alerts they raised.

Rules are organization settings (``settings:read`` / ``settings:write``), and so are the alerts
they raise (organization-wide: credentials bound to one customer see none). Rules are evaluated by every worker (``runtime.AlertEvaluator``);
firing and resolving are also platform events (``GET /v1/events?source=platform``) and are
delivered to the notification endpoints subscribed to ``alert.fired`` / ``alert.resolved``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query, Response
from pydantic import BaseModel, ConfigDict, Field

import store
from api._auth import Principal, require
from api._deps import Db
from api._lists import ListParams, PageOut, page_out
from api._v1._common import router as make_router
from api._v1._common import tenant_tx

router = make_router("alerts")

Metric = Literal["error_rate", "latency_p99", "latency_p95", "latency_avg", "throughput", "failure_count"]
Operator = Literal[">", ">=", "<", "<="]
_MAX_WINDOW = store.MAX_ALERT_WINDOW_SECONDS

_METRIC_HELP = ("error_rate: failed over all, 0 to 1; failure_count: how many failed; throughput: how many finished; "
                "latency_p99 / latency_p95 / latency_avg: milliseconds. Over executions that finished in the window "
                "(all, one workflow's), or over one connector's calls.")


class AlertRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    metric: Metric = Field(description=_METRIC_HELP)
    operator: Operator = Field(">", description="How the value compares to the threshold to fire.")
    threshold: float = Field(allow_inf_nan=False)
    window_seconds: int = Field(gt=0, le=_MAX_WINDOW, description="The sliding window measured, ending at each evaluation.")
    interval_seconds: int | None = Field(None, gt=0, le=_MAX_WINDOW, description=(
        "How often the rule is evaluated (default: a minute, or the window when shorter); at most the window."))
    min_count: int = Field(1, ge=0, le=2**31 - 1, description="Fewer executions (or calls) than this in the window "
                                                               "never fire.")
    workflow: str | None = Field(None, min_length=1, max_length=128, description="Workflow id or key to watch.")
    connector: str | None = Field(None, min_length=1, max_length=128, description="Connector key whose calls to watch.")
    enabled: bool = True


class AlertRulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    metric: Metric | None = None
    operator: Operator | None = None
    threshold: float | None = Field(None, allow_inf_nan=False)
    window_seconds: int | None = Field(None, gt=0, le=_MAX_WINDOW)
    interval_seconds: int | None = Field(None, gt=0, le=_MAX_WINDOW)
    min_count: int | None = Field(None, ge=0, le=2**31 - 1)
    enabled: bool | None = None


class AlertRuleOut(BaseModel):
    id: str
    name: str
    metric: Metric
    operator: Operator
    threshold: float
    window_seconds: int
    interval_seconds: int
    min_count: int
    workflow_id: str | None
    connector: str | None
    enabled: bool
    state: Literal["ok", "firing"]
    alert_id: str | None = Field(description="The open alert while firing.")
    last_value: float | None
    last_count: int | None
    evaluated_at: datetime | None
    next_eval_at: datetime
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class AlertOut(BaseModel):
    id: str
    rule_id: str
    status: Literal["firing", "resolved"]
    metric: Metric
    operator: Operator
    threshold: float
    value: float | None = Field(description="The value that fired it.")
    fired_at: datetime
    resolved_at: datetime | None
    resolved_value: float | None
    fired_event_id: str | None = Field(description="Its alert.fired event.")
    resolved_event_id: str | None = Field(description="Its alert.resolved event.")


@router.get("/alerts/rules", name="alert_rule.list", response_model=PageOut[AlertRuleOut])
def list_rules(db: Db, principal: Annotated[Principal, require("settings", "read")], page: ListParams) -> Any:
    """Alert rules (sort: created_at, name)."""
    with tenant_tx(db, principal) as tx:
        return page_out(store.AlertRules(tx).list(principal.org_id, page.query()), dict)


@router.post("/alerts/rules", name="alert_rule.create", response_model=AlertRuleOut, status_code=201)
def create_rule(body: AlertRuleIn, db: Db, principal: Annotated[Principal, require("settings", "write")]) -> Any:
    """Create a rule; it is first evaluated by the next worker pass. An unknown ``workflow`` is 422."""
    with tenant_tx(db, principal) as tx:
        return store.AlertRules(tx).create(principal.org_id, created_by=principal.actor_id, **body.model_dump())


@router.get("/alerts/rules/{rule_id}", name="alert_rule.get", response_model=AlertRuleOut)
def get_rule(rule_id: str, db: Db, principal: Annotated[Principal, require("settings", "read")]) -> Any:
    """One rule, with its state and last measured value."""
    with tenant_tx(db, principal) as tx:
        return store.AlertRules(tx).get(principal.org_id, rule_id)


@router.patch("/alerts/rules/{rule_id}", name="alert_rule.update", response_model=AlertRuleOut)
def update_rule(rule_id: str, body: AlertRulePatch, db: Db,
                principal: Annotated[Principal, require("settings", "write")]) -> Any:
    """Change a rule (what is sent); a firing rule stays firing until an evaluation says otherwise."""
    with tenant_tx(db, principal) as tx:
        return store.AlertRules(tx).update(principal.org_id, rule_id, body.model_dump(exclude_unset=True))


@router.delete("/alerts/rules/{rule_id}", name="alert_rule.delete", status_code=204)
def delete_rule(rule_id: str, db: Db, principal: Annotated[Principal, require("settings", "write")]) -> Response:
    """Delete a rule and its alerts (their events stay in the Events list)."""
    with tenant_tx(db, principal) as tx:
        store.AlertRules(tx).delete(principal.org_id, rule_id)
    return Response(status_code=204)


@router.get("/alerts", name="alert.list", response_model=PageOut[AlertOut])
def list_alerts(
    db: Db,
    principal: Annotated[Principal, require("settings", "read")],
    page: ListParams,
    status: Literal["firing", "resolved"] | None = None,
    rule: Annotated[str | None, Query(max_length=128, description="Rule id.")] = None,
) -> Any:
    """Alerts, newest first (sort: fired_at): firing ones and the history of resolved ones."""
    with tenant_tx(db, principal) as tx:
        return page_out(store.Alerts(tx).list(principal.org_id, page.query("-fired_at"), status=status, rule_id=rule),
                        dict)
