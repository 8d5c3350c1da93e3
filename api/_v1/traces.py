"""/v1 routes: Activity's Traces view, one row per connector call (HTTP attempt) of the executions.

Scoped like executions: ``workflows:read``; a request naming a customer in
``x-fastn-account-tenant-id`` (and a key bound to one) sees only that customer's calls, and a
Test key does not see production customers' calls. Rows carry no URL, header or body: what a
call sent stays in its execution's trace, where credentials are already redacted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, Field

import store
from api._auth import Principal, require
from api._deps import Db
from api._lists import ListParams, PageOut, page_out
from api._v1._common import router as make_router

router = make_router("traces")

TraceStatus = Literal["success", "error", "pending"]


class TraceOut(BaseModel):
    id: str = Field(description="The execution id and the call's position in its trace.")
    execution_id: str
    workflow_id: str
    customer_id: str
    version: int = Field(description="The workflow version the execution ran (0: the draft).")
    dry_run: bool
    at: datetime = Field(description="When the execution that made the call started (calls carry no clock "
                                     "of their own).")
    step_id: str | None
    connector: str | None = Field(description="Connector key.")
    action: str | None
    method: str | None
    status: TraceStatus = Field(description="error: the attempt failed or got an HTTP status of 400 or more; "
                                            "success: it got a response below 400; pending: neither yet.")
    http_status: int | None
    latency_ms: float | None
    attempt: int | None = Field(description="1 for the first attempt, 2 for its first retry, ...")
    retry_delay: float | None = Field(default=None, description="Seconds the step's retry policy waited before "
                                      "this attempt (its backoff, the Retry-After it honoured, or a durable sleep); "
                                      "null for a first attempt.")
    error: str | None = Field(description="Why the attempt failed (credentials redacted).")
    sent: bool | None = Field(description="Dry runs only: whether the request was sent (GET/HEAD) or answered "
                                          "synthetically.")


@router.get("/traces", name="trace.list", response_model=PageOut[TraceOut])
def list_traces(
    db: Db,
    principal: Annotated[Principal, require("workflows", "read")],
    page: ListParams,
    status: TraceStatus | None = None,
    connector: Annotated[str | None, Query(max_length=100, description="Connector key.")] = None,
    workflow: Annotated[str | None, Query(max_length=128, description="Workflow id or key.")] = None,
    customer: Annotated[str | None, Query(max_length=128, description="Customer id (default: the "
                                                                     "x-fastn-account-tenant-id customer).")] = None,
    execution: Annotated[str | None, Query(max_length=128, description="Execution id.")] = None,
    dry_run: bool | None = None,
    started_from: Annotated[datetime | None, Query(alias="from", description=(
        "Calls of executions started at or after this time (ISO 8601 with a time zone)."))] = None,
    started_to: Annotated[datetime | None, Query(alias="to", description=(
        "Calls of executions started before this time (ISO 8601 with a time zone)."))] = None,
) -> Any:
    """Connector calls, newest first (sort: at), one per HTTP attempt recorded by a finished
    execution, with status, HTTP status and latency. Filters combine."""
    with db.tenant(principal.org_id, principal.customer_id) as tx:
        result = store.Traces(tx).list(
            principal.org_id, page.query("-at"), status=status, connector=connector, workflow_ref=workflow,
            customer_id=customer or principal.customer_id, execution_id=execution, dry_run=dry_run,
            started_from=started_from, started_to=started_to, hidden_environment=principal.hidden_environment,
        )
    return page_out(result, dict)
