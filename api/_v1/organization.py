"""Organization settings, environments and customers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from fastapi import Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

import store
from api._auth import Principal, require
from api._deps import Db
from api._lists import ListParams, PageOut, page_out
from api._v1._common import router as make_router
from api._v1._common import tenant_tx
from runtime import check_environment

router = make_router("organization")

Residency = Literal["US", "EU", "APAC"]
_DOMAIN = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.){1,10}[a-z]{2,63}$"


class OrganizationOut(BaseModel):
    id: str
    name: str
    timezone: str
    email_domains: list[str]
    auto_approve: bool
    onboarding: dict[str, Any]
    plan: str
    created_at: datetime
    updated_at: datetime


class OrganizationPatch(BaseModel):
    """General settings; send only what changes."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    timezone: str | None = Field(None, description="IANA time zone, e.g. Europe/Berlin.")
    email_domains: list[Annotated[str, Field(pattern=_DOMAIN)]] | None = Field(
        None, max_length=50, description="Only people with these email domains may be invited (empty: anyone)."
    )
    auto_approve: bool | None = Field(None, description="Publish what agents build without a review step.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and value not in available_timezones():
            raise ValueError(f"{value!r} is not an IANA time zone")
        return value


class EnvironmentOut(BaseModel):
    id: str
    slug: str
    name: str
    created_at: datetime


class EnvironmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slug: str = Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")
    name: str = Field(min_length=1, max_length=100)


class CustomerOut(BaseModel):
    id: str
    environment_id: str
    name: str
    tier: str
    residency: Residency
    status: Literal["active", "suspended"]
    metadata: dict[str, Any]
    quota_overrides: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class CustomerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, pattern=store.CLIENT_ID_PATTERN.pattern, description="Your own id for the customer.")
    name: str = Field(min_length=1, max_length=200)
    environment: str = Field("production", min_length=1, max_length=64, description="Environment id or slug.")
    tier: str = Field("free", min_length=1, max_length=64)
    residency: Residency = "US"
    metadata: dict[str, Any] = Field(default_factory=dict)


class CustomerPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    tier: str | None = Field(None, min_length=1, max_length=64)
    residency: Residency | None = None
    status: Literal["active", "suspended"] | None = None
    metadata: dict[str, Any] | None = None


def _changes(patch: BaseModel) -> dict[str, Any]:
    return {k: v for k, v in patch.model_dump(exclude_unset=True).items() if v is not None}


@router.get("/organization", name="organization.get", response_model=OrganizationOut)
def get_organization(db: Db, principal: Annotated[Principal, require("settings", "read")]) -> Any:
    """The caller's organization and its general settings."""
    with tenant_tx(db, principal) as tx:
        return store.Organizations(tx).get(principal.org_id)


@router.patch("/organization", name="organization.update", response_model=OrganizationOut)
def update_organization(
    patch: OrganizationPatch, db: Db, principal: Annotated[Principal, require("settings", "write")]
) -> Any:
    """Change general settings: name, timezone, email domain access control, auto-approve."""
    with tenant_tx(db, principal) as tx:
        return store.Organizations(tx).update(principal.org_id, _changes(patch))


@router.post("/organization/reset-onboarding", name="organization.reset_onboarding", response_model=OrganizationOut)
def reset_onboarding(db: Db, principal: Annotated[Principal, require("settings", "write")]) -> Any:
    """Forget onboarding progress so the Setup Assistant starts again: its state, and the threads it
    ran in with their runs, events and checkpoints."""
    with tenant_tx(db, principal) as tx:
        onboarding = store.Organizations(tx).get(principal.org_id).get("onboarding") or {}
        # The Setup Assistant lists the threads it ran in; they go with the state, in one transaction.
        threads = [t for t in onboarding.get("threads") or [] if isinstance(t, str)]
        store.Threads(tx).delete(principal.org_id, threads)
        return store.Organizations(tx).update(principal.org_id, {"onboarding": {}})


@router.get("/environments", name="environment.list", response_model=PageOut[EnvironmentOut])
def list_environments(db: Db, principal: Annotated[Principal, require("settings", "read")], page: ListParams) -> Any:
    """Environments of the organization (sort: created_at, slug)."""
    with tenant_tx(db, principal) as tx:
        return page_out(store.Environments(tx).list(principal.org_id, page.query("created_at")), dict)


@router.post("/environments", name="environment.create", response_model=EnvironmentOut, status_code=201)
def create_environment(
    body: EnvironmentIn, db: Db, principal: Annotated[Principal, require("settings", "write")]
) -> Any:
    """Add an environment beside dev, staging and production."""
    with tenant_tx(db, principal) as tx:
        return store.Environments(tx).create(principal.org_id, body.slug, body.name)


@router.get("/environments/{environment_id}", name="environment.get", response_model=EnvironmentOut)
def get_environment(environment_id: str, db: Db, principal: Annotated[Principal, require("settings", "read")]) -> Any:
    """One environment, by id or slug."""
    with tenant_tx(db, principal) as tx:
        return store.Environments(tx).get(principal.org_id, environment_id)


@router.delete("/environments/{environment_id}", name="environment.delete", status_code=204)
def delete_environment(
    environment_id: str, db: Db, principal: Annotated[Principal, require("settings", "write")]
) -> Response:
    """Delete an environment no customer lives in."""
    with tenant_tx(db, principal) as tx:
        store.Environments(tx).delete(principal.org_id, environment_id)
    return Response(status_code=204)


def _reachable(tx: store.Tx, principal: Principal, customer_id: str) -> dict[str, Any]:
    """The customer, refused (403) when a Test key would reach a production one."""
    row = store.Customers(tx).get(principal.org_id, customer_id)
    check_environment(tx, principal, row["environment_id"])
    return row


@router.get("/customers", name="customer.list", response_model=PageOut[CustomerOut])
def list_customers(
    db: Db,
    principal: Annotated[Principal, require("customers", "read")],
    page: ListParams,
    environment: Annotated[str | None, Query(max_length=64)] = None,
    tier: Annotated[str | None, Query(max_length=64)] = None,
    residency: Residency | None = None,
    status: Literal["active", "suspended"] | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Search in name and id.")] = None,
) -> Any:
    """Customers (sort: created_at, name, id)."""
    with tenant_tx(db, principal) as tx:
        result = store.Customers(tx).list(
            principal.org_id, page.query(), environment_id=environment, tier=tier, residency=residency,
            status=status, search=q, hidden_environment=principal.hidden_environment,
        )
    return page_out(result, dict)


@router.post("/customers", name="customer.create", response_model=CustomerOut, status_code=201)
def create_customer(body: CustomerIn, db: Db, principal: Annotated[Principal, require("customers", "write")]) -> Any:
    """Create an end customer in an environment (default production; a Test key: not production)."""
    with tenant_tx(db, principal) as tx:
        check_environment(tx, principal, body.environment)
        return store.Customers(tx).create(
            principal.org_id, name=body.name, environment_id=body.environment, customer_id=body.id,
            tier=body.tier, residency=body.residency, metadata=body.metadata,
        )


@router.get("/customers/{customer_id}", name="customer.get", response_model=CustomerOut)
def get_customer(customer_id: str, db: Db, principal: Annotated[Principal, require("customers", "read")]) -> Any:
    """One customer."""
    with tenant_tx(db, principal) as tx:
        return _reachable(tx, principal, customer_id)


@router.patch("/customers/{customer_id}", name="customer.update", response_model=CustomerOut)
def update_customer(
    customer_id: str, patch: CustomerPatch, db: Db, principal: Annotated[Principal, require("customers", "write")]
) -> Any:
    """Change a customer's name, tier, residency, status or metadata."""
    with tenant_tx(db, principal) as tx:
        _reachable(tx, principal, customer_id)
        return store.Customers(tx).update(principal.org_id, customer_id, _changes(patch))


@router.delete("/customers/{customer_id}", name="customer.delete", status_code=204)
def delete_customer(customer_id: str, db: Db, principal: Annotated[Principal, require("customers", "write")]) -> Response:
    """Delete a customer with its connections, executions and usage."""
    with tenant_tx(db, principal) as tx:
        _reachable(tx, principal, customer_id)
        store.Customers(tx).delete(principal.org_id, customer_id)
    return Response(status_code=204)
