"""API keys: issued with a role (and optionally bound to one end customer), shown once, revocable.

Issuing is named ``api_key.issue``, not ``api_key.create``, on purpose: the route class stores the
response of every ``.create`` POST to answer Idempotency-Key retries, and this response holds the
key itself, which must exist nowhere but in the one response. A retried issue makes a second key;
the unused one can be revoked.
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
from api._v1.people import ensure_grantable
from runtime.errors import Forbidden

router = make_router("keys")

DEFAULT_ROLE = "admin"
DEFAULT_CUSTOMER_ROLE = "end_user"


class ApiKeyOut(BaseModel):
    id: str
    name: str
    kind: Literal["test", "live"]
    prefix: str = Field(description="The first characters of the key, to tell keys apart.")
    role_id: str
    customer_id: str | None = Field(description="The one end customer this key is limited to, if any.")
    created_by: str | None
    created_at: datetime
    last_used_at: datetime | None = Field(description="Refreshed at most once a minute.")
    revoked_at: datetime | None


class ApiKeyIssued(ApiKeyOut):
    key: str = Field(description="The key itself. Shown only in this response; store it now.")


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["test", "live"] = "live"
    role: str | None = Field(
        None, min_length=1, max_length=64, description="Role id; default admin, or end_user for a customer's key."
    )
    customer: str | None = Field(
        None, min_length=1, max_length=128, description="Bind the key to this end customer (id)."
    )


def _visible(principal: Principal, row: dict[str, Any], key_id: str) -> dict[str, Any]:
    # A customer-bound caller sees only its customer's keys; others are reported as missing.
    if principal.bound_customer and row["customer_id"] != principal.customer_id:
        raise store.NotFound("api_key", key_id)
    return row


@router.get("/api-keys", name="api_key.list", response_model=PageOut[ApiKeyOut])
def list_keys(
    db: Db,
    principal: Annotated[Principal, require("keys", "read")],
    page: ListParams,
    kind: Literal["test", "live"] | None = None,
    revoked: Annotated[bool | None, Query(description="Only revoked (true) or usable (false) keys.")] = None,
    role: Annotated[str | None, Query(max_length=64)] = None,
    customer: Annotated[str | None, Query(max_length=128, description="Keys bound to this customer.")] = None,
) -> Any:
    """API keys, never the key nor its hash (sort: created_at, name)."""
    if principal.bound_customer:
        if customer and customer != principal.customer_id:
            return {"items": [], "next_cursor": None}
        customer = principal.customer_id
    with tenant_tx(db, principal) as tx:
        result = store.ApiKeys(tx).list(
            principal.org_id, page.query(), kind=kind, revoked=revoked, role_id=role, customer_id=customer
        )
    return page_out(result, dict)


@router.post("/api-keys", name="api_key.issue", response_model=ApiKeyIssued, status_code=201)
def issue_key(
    body: ApiKeyIn, response: Response, db: Db, principal: Annotated[Principal, require("keys", "write")]
) -> Any:
    """Issue a key; the response is the only place the key ever appears. A key cannot hold a role
    with permissions its issuer lacks (403), and a customer-bound caller can issue keys for its
    own customer only. The key is bound to the customer named by ``customer`` in the body, not by
    the x-fastn-account-tenant-id header. Idempotency-Key is not honoured here (see the module docstring)."""
    customer = body.customer
    if principal.bound_customer:
        if customer is not None and customer != principal.customer_id:
            raise Forbidden(None, "a key limited to one customer can only issue keys for that customer")
        customer = principal.customer_id
    role_id = body.role or (DEFAULT_CUSTOMER_ROLE if customer else DEFAULT_ROLE)
    with tenant_tx(db, principal) as tx:
        role = store.Roles(tx).get(principal.org_id, role_id)
        ensure_grantable(principal, role["permissions"], f"role {role_id!r}")
        row, key = store.ApiKeys(tx).create(
            principal.org_id, body.name, kind=body.kind, role_id=role_id, customer_id=customer,
            created_by=principal.actor_id,
        )
    response.headers["Cache-Control"] = "no-store"
    return {**row, "key": key}


@router.get("/api-keys/{key_id}", name="api_key.get", response_model=ApiKeyOut)
def get_key(key_id: str, db: Db, principal: Annotated[Principal, require("keys", "read")]) -> Any:
    """One key's metadata."""
    with tenant_tx(db, principal) as tx:
        return _visible(principal, store.ApiKeys(tx).get(principal.org_id, key_id), key_id)


@router.post("/api-keys/{key_id}/revoke", name="api_key.revoke", response_model=ApiKeyOut)
def revoke_key(key_id: str, db: Db, principal: Annotated[Principal, require("keys", "write")]) -> Any:
    """Revoke a key: it is refused (401) from the next request on. Revoking again changes nothing.
    A key whose role grants more than the caller's cannot be revoked by them (403), as with users."""
    with tenant_tx(db, principal) as tx:
        keys = store.ApiKeys(tx)
        row = _visible(principal, keys.get(principal.org_id, key_id), key_id)
        role = store.Roles(tx).get(principal.org_id, row["role_id"])
        ensure_grantable(principal, role["permissions"], f"key {key_id!r}'s role")
        return keys.revoke(principal.org_id, key_id)
