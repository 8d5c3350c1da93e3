"""The audit log: read-only through the API.

Entries are written by the route class (``api._route.PlatformRoute``) for every mutation, and the
table is append-only in the database; so this module has GET routes only, and any other method on
these paths is 405.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, Field

import store
from api._auth import Principal, require
from api._deps import Db
from api._lists import ListParams, PageOut, page_out
from api._v1._common import router as make_router
from api._v1._common import tenant_tx

router = make_router("audit")


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor_type: Literal["user", "api_key", "system"]
    actor_id: str = Field(description="The user or API key id.")
    action: str = Field(description="What was done, e.g. customer.create.")
    resource_type: str
    resource_id: str | None
    customer_id: str | None
    outcome: Literal["success", "error"]
    error_code: str | None = Field(description="The error code the caller received, when the outcome is error.")
    status: int | None = Field(description="The HTTP status of the response.")
    detail: dict[str, Any]


def _utc(value: datetime | None) -> datetime | None:
    # A time without an offset is read as UTC, not as the database session's zone.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@router.get("/audit-log", name="audit_entry.list", response_model=PageOut[AuditEntryOut])
def list_audit_log(
    db: Db,
    principal: Annotated[Principal, require("audit", "read")],
    page: ListParams,
    actor: Annotated[str | None, Query(max_length=128, description="User or API key id.")] = None,
    action: Annotated[
        str | None, Query(max_length=128, description="An action (customer.create), or a prefix ending in '.' (customer.).")
    ] = None,
    resource_type: Annotated[str | None, Query(max_length=64)] = None,
    resource_id: Annotated[str | None, Query(max_length=256)] = None,
    outcome: Literal["success", "error"] | None = None,
    customer: Annotated[str | None, Query(max_length=128, description="Entries made for this customer.")] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601; entries at or after (UTC when no offset).")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601; entries before (UTC when no offset).")] = None,
) -> Any:
    """Audit entries, newest first (sort: at, id; default -at)."""
    since, until = _utc(since), _utc(until)
    if since and until and until <= since:
        raise store.InvalidInput("audit_entry", "until", "must be later than since")
    if principal.bound_customer:
        if customer and customer != principal.customer_id:
            return {"items": [], "next_cursor": None}
        customer = principal.customer_id
    with tenant_tx(db, principal) as tx:
        result = store.AuditLog(tx).list(
            principal.org_id, page.query("-at"), actor_id=actor, action=action, resource_type=resource_type,
            resource_id=resource_id, outcome=outcome, since=since, until=until, customer_id=customer,
        )
    return page_out(result, dict)


@router.get("/audit-log/{entry_id}", name="audit_entry.get", response_model=AuditEntryOut)
def get_audit_entry(
    entry_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    db: Db,
    principal: Annotated[Principal, require("audit", "read")],
) -> Any:
    """One audit entry."""
    with tenant_tx(db, principal) as tx:
        entry = store.AuditLog(tx).get(principal.org_id, entry_id)
    if principal.bound_customer and entry["customer_id"] != principal.customer_id:
        raise store.NotFound("audit_entry", str(entry_id))
    return entry
