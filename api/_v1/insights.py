"""/v1 routes: insights for the embedded widget, one customer's day at a glance.

Scoped like executions: ``workflows:read``; the customer is the one named by ``customer_id`` or in
``x-fastn-account-tenant-id`` (neither: the organization's customers together, for an operator's
overview); a request naming a customer in the header (and a key bound to one)
reads in a transaction bound to that customer, so asking for another is a 404; a Test key is
refused a production customer (403).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, Field

import store
from api._auth import Principal, require
from api._deps import Db, PlatformDep
from runtime import check_environment, customer_insights
from api._v1._common import router as make_router

router = make_router("insights")


class RunsToday(BaseModel):
    total: int
    by_status: dict[str, int] = Field(description="Executions started today by status.")


class AttentionExecution(BaseModel):
    id: str
    customer_id: str
    workflow_id: str
    workflow_key: str
    status: str
    error_code: str | None
    started_at: datetime
    finished_at: datetime | None


class NeedsAttention(BaseModel):
    count: int = Field(description="Failed or timed-out executions of the last 7 days not re-run to completion.")
    executions: list[AttentionExecution] = Field(description="The newest of them (up to 10).")


class ConnectionStatus(BaseModel):
    id: str
    customer_id: str
    connector: str
    name: str
    status: str = Field(description="connected, pending, needs_reconnect or disconnected.")
    updated_at: datetime


class MostUsed(BaseModel):
    workflow_id: str
    workflow_key: str
    name: str
    runs: int = Field(description="Executions in the last 7 days.")


class InsightsOut(BaseModel):
    customer_id: str | None = Field(description="Null: the organization's customers together.")
    since: datetime = Field(description="Start of today in the organization's time zone.")
    runs_today: RunsToday
    records_processed: int = Field(description="Records handled today by sync steps (created, updated, unchanged).")
    needs_attention: NeedsAttention
    connections: list[ConnectionStatus]
    most_used_workflow: MostUsed | None


@router.get("/insights", name="insights.get", response_model=InsightsOut)
def get_insights(
    db: Db,
    platform: PlatformDep,
    principal: Annotated[Principal, require("workflows", "read")],
    customer_id: Annotated[str | None, Query(max_length=128, description=(
        "Customer id (default: the x-fastn-account-tenant-id customer)."))] = None,
) -> Any:
    """One customer's insights: runs today, records processed, executions needing attention,
    connection status and the most-used workflow (no customer named: the organization's
    customers together)."""
    customer = customer_id or principal.customer_id
    with db.tenant(principal.org_id, principal.customer_id or customer) as tx:
        if customer is not None:
            row = store.Customers(tx).get(principal.org_id, customer)
            if principal.test_only:
                check_environment(tx, principal, row["environment_id"])
        return customer_insights(platform, tx, principal.org_id, customer,
                                 hidden_environment=principal.hidden_environment)
