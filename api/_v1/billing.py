"""/v1 billing: the plan, the quota table with usage and enforcement, per-customer usage, tiers
and customer overrides, and agent credits.

Limits are per customer. A customer's limit for a dimension comes from its overrides, else its
tier (the tier whose name is the customer's ``tier``), else the organization's plan. Every
entry is ``{"limit": int | null, "mode": "hard" | "warn"}``; ``null`` is unlimited.

Agent credits are per organization: every model call of its agents' runs costs credits by the
model's rate (the offline model costs none), counted per calendar month against the plan's
allowance or the organization's own. ``GET /billing`` shows the period's credits, the customer
usage pages show the agent tokens and credits of runs acting for each customer, and
``GET /billing/agent-usage`` lists usage per run or per thread.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

import store
from api._auth import Principal, require
from api._deps import Clock, Db
from api._lists import ListParams, PageOut, page_out
from api._v1._common import router as make_router
from api._v1._common import tenant_tx
from store._agent_usage import MAX_AGENT_CREDITS
from store._quotas import MAX_QUOTA_LIMIT, TIER_NAME_PATTERN

router = make_router("billing")

# Built from the store's constants so the documented enums cannot drift from what is enforced.
Dimension = Literal[store.DIMENSIONS]  # type: ignore[valid-type]
Mode = Literal[store.ENFORCEMENT_MODES]  # type: ignore[valid-type]
Plan = Literal[tuple(store.PLANS)]  # type: ignore[valid-type]
Window = Literal["minute", "day"]
Source = Literal["plan", "tier", "override"]


class LimitEntry(BaseModel):
    """The limit of one dimension and how it is enforced."""

    model_config = ConfigDict(extra="forbid")
    limit: int | None = Field(ge=0, le=MAX_QUOTA_LIMIT, description="Most counted in one window; null is unlimited.")
    mode: Mode = Field(description="hard: refuse with 429 past the limit; warn: let through with X-Quota-Warning.")


class Limits(BaseModel):
    """Limits for some dimensions; dimensions left out (or null) come from the layer below."""

    model_config = ConfigDict(extra="forbid")
    events_per_day: LimitEntry | None = None
    events_per_minute: LimitEntry | None = None
    api_calls_per_day: LimitEntry | None = None
    api_calls_per_minute: LimitEntry | None = None

    def entries(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump(exclude_unset=True).items() if v is not None}


class PlanQuota(BaseModel):
    limit: int | None
    mode: Mode
    window: Window
    window_start: datetime
    reset_at: datetime
    count: int = Field(description="Counted in the current window, all customers together.")


class PlanQuotas(BaseModel):
    events_per_day: PlanQuota
    events_per_minute: PlanQuota
    api_calls_per_day: PlanQuota
    api_calls_per_minute: PlanQuota


class AgentTokens(BaseModel):
    calls: int = Field(description="Model calls.")
    input_tokens: int
    output_tokens: int
    total_tokens: int


class AgentCreditsOut(AgentTokens):
    """The organization's agent credits in the current period."""

    period: Literal["month"] = Field(description="Credits are counted per calendar month (UTC).")
    period_start: datetime
    reset_at: datetime = Field(description="When the period ends and the count starts again.")
    allowance: float = Field(description="Credits per period: the plan's, or the organization's own.")
    source: Literal["plan", "organization"] = Field(description="Where the allowance comes from.")
    used: float = Field(description="Credits the period's model calls cost.")
    remaining: float = Field(description="Allowance minus used, at least 0. At 0, agents' model calls are refused (402).")


class BillingOut(BaseModel):
    plan: str
    quotas: PlanQuotas = Field(description="The plan's per-customer limits and this window's organization-wide usage.")
    plans: dict[str, dict[Dimension, LimitEntry]] = Field(description="What each plan allows a customer.")
    agent_credits: AgentCreditsOut = Field(description="Agent credits: allowance, use and remainder this period.")
    agent_credit_plans: dict[str, float] = Field(description="Agent credits each plan allows per period.")


class PlanPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plan: Plan | None = Field(None, description="The organization's plan.")
    agent_credits: float | None = Field(
        None, ge=0, le=MAX_AGENT_CREDITS,
        description="The organization's own agent credits per period; null returns to the plan's allowance.",
    )

    @model_validator(mode="after")
    def _something(self) -> PlanPatch:
        if not self.model_fields_set:
            raise ValueError("send plan, agent_credits or both")
        if "plan" in self.model_fields_set and self.plan is None:
            raise ValueError("plan cannot be null; name one of the plans")
        return self


class CustomerAgentUsage(AgentTokens):
    """Agent usage of the runs that acted for this customer (a test customer while building)."""

    period: Literal["month"]
    period_start: datetime
    reset_at: datetime
    credits: float


class AgentUsageOut(AgentTokens):
    """Agent usage of one run (``group=run``) or one thread (``group=thread``)."""

    id: str = Field(description="The run id, or the thread id with group=thread.")
    run_id: str | None = Field(None, description="The run (group=run).")
    thread_id: str | None
    customer_id: str | None = Field(None, description="The customer the run acted for (group=run).")
    runs: int | None = Field(None, description="Runs of the thread (group=thread).")
    models: list[str] = Field(description="Models called, as provider:model.")
    credits: float
    first_at: datetime
    last_at: datetime


class CustomerQuota(BaseModel):
    dimension: Dimension
    limit: int | None
    mode: Mode
    source: Source = Field(description="Where the limit comes from: the plan, the customer's tier, or an override.")
    window: Window
    window_start: datetime
    reset_at: datetime = Field(description="When the current window ends and the count starts again.")
    count: int
    remaining: int | None


class CustomerQuotas(BaseModel):
    events_per_day: CustomerQuota
    events_per_minute: CustomerQuota
    api_calls_per_day: CustomerQuota
    api_calls_per_minute: CustomerQuota


class CustomerUsageOut(BaseModel):
    customer_id: str
    name: str
    tier: str
    plan: str
    overrides: dict[Dimension, LimitEntry]
    quotas: CustomerQuotas
    agent: CustomerAgentUsage = Field(description="Agent tokens and credits of runs for this customer this period.")


class TierOut(BaseModel):
    id: str
    name: str
    limits: dict[Dimension, LimitEntry]
    customers: int = Field(description="Customers on this tier.")
    created_at: datetime
    updated_at: datetime


class TierIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=TIER_NAME_PATTERN, description="Customers whose `tier` is this name get these limits.")
    limits: Limits = Field(default_factory=Limits)


class TierPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, pattern=TIER_NAME_PATTERN, description="Renaming moves the tier's customers along.")
    limits: Limits | None = Field(None, description="Replaces all of the tier's limits.")


def _billing(tx: store.Tx, org_id: str, now: datetime) -> dict[str, Any]:
    quotas = store.Quotas(tx)
    return {
        "plan": quotas.plan(org_id), "quotas": quotas.org_usage(org_id, now), "plans": store.PLANS,
        "agent_credits": store.AgentUsage(tx).summary(org_id, now).as_dict(),
        "agent_credit_plans": store.AGENT_CREDIT_PLANS,
    }


def _with_agent(tx: store.Tx, org_id: str, rows: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Customer usage rows with their agent usage of the current credit period."""
    start, end = store.period_bounds(now)
    totals = store.AgentUsage(tx).by_customer(org_id, [row["customer_id"] for row in rows], start, end)
    period = {"period": store.AGENT_CREDIT_PERIOD, "period_start": start, "reset_at": end}
    return [{**row, "agent": {**period, **totals.get(row["customer_id"], store.UsageTotals()).as_dict()}} for row in rows]


def _tiers_out(tx: store.Tx, org_id: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    counts = store.Quotas(tx).tier_customers(org_id, [row["name"] for row in rows])
    return [{**row, "customers": counts.get(row["name"], 0)} for row in rows]


@router.get("/billing", name="billing.get", response_model=BillingOut)
def get_billing(db: Db, clock: Clock, principal: Annotated[Principal, require("billing", "read")]) -> Any:
    """The plan and its quota table: each dimension's per-customer limit and enforcement mode,
    with the organization-wide count of the current window (today, or this minute)."""
    with tenant_tx(db, principal) as tx:
        return _billing(tx, principal.org_id, clock())


@router.patch("/billing", name="billing.update", response_model=BillingOut)
def update_billing(
    patch: PlanPatch, db: Db, clock: Clock, principal: Annotated[Principal, require("billing", "write")]
) -> Any:
    """Change the plan (customers without a tier or override for a dimension get its limits at
    once) and/or the organization's own agent credits per period (null: the plan's allowance)."""
    with tenant_tx(db, principal) as tx:
        if patch.plan is not None:
            store.Quotas(tx).set_plan(principal.org_id, patch.plan)
        if "agent_credits" in patch.model_fields_set:
            store.AgentUsage(tx).set_allowance(principal.org_id, patch.agent_credits)
        return _billing(tx, principal.org_id, clock())


@router.get("/billing/usage", name="customer_usage.list", response_model=PageOut[CustomerUsageOut])
def list_usage(
    db: Db,
    clock: Clock,
    principal: Annotated[Principal, require("billing", "read")],
    page: ListParams,
    customer: Annotated[
        str | None, Query(max_length=128, description="One customer (default: the one x-fastn-account-tenant-id names).")
    ] = None,
    tier: Annotated[str | None, Query(max_length=64)] = None,
) -> Any:
    """Customers' usage per dimension: current minute and day counts, limits, modes and reset
    times, and the agent tokens and credits of runs for each this period (sort: created_at, name, id)."""
    now = clock()
    with tenant_tx(db, principal) as tx:
        result = store.Quotas(tx).usage_page(
            principal.org_id, page.query(), now, customer_id=customer or principal.customer_id, tier=tier
        )
        return {"items": _with_agent(tx, principal.org_id, result.items, now), "next_cursor": result.next_cursor}


@router.get("/billing/customers/{customer_id}/usage", name="customer_usage.get", response_model=CustomerUsageOut)
def get_customer_usage(
    customer_id: str, db: Db, clock: Clock, principal: Annotated[Principal, require("billing", "read")]
) -> Any:
    """One customer's usage per dimension, with its effective limits and where each comes from,
    and the agent tokens and credits of runs for it this period."""
    now = clock()
    with tenant_tx(db, principal) as tx:
        return _with_agent(tx, principal.org_id, store.Quotas(tx).usage(principal.org_id, [customer_id], now), now)[0]


@router.put("/billing/customers/{customer_id}/overrides", name="quota_override.update", response_model=CustomerUsageOut)
def set_overrides(
    customer_id: str,
    body: Limits,
    db: Db,
    clock: Clock,
    principal: Annotated[Principal, require("billing", "write")],
) -> Any:
    """Replace the customer's own limits (they win over its tier and the plan); `{}` removes them."""
    now = clock()
    with tenant_tx(db, principal) as tx:
        quotas = store.Quotas(tx)
        quotas.set_overrides(principal.org_id, customer_id, body.entries())
        return _with_agent(tx, principal.org_id, quotas.usage(principal.org_id, [customer_id], now), now)[0]


@router.get("/billing/agent-usage", name="agent_usage.list", response_model=PageOut[AgentUsageOut])
def list_agent_usage(
    db: Db,
    principal: Annotated[Principal, require("billing", "read")],
    page: ListParams,
    group: Annotated[Literal[store.USAGE_GROUPS], Query(description="Sum per run or per thread.")] = "run",  # type: ignore[valid-type]
    thread_id: Annotated[str | None, Query(max_length=128, description="One thread's runs (or the thread).")] = None,
    run_id: Annotated[str | None, Query(max_length=128, description="One run.")] = None,
    customer: Annotated[
        str | None, Query(max_length=128, description="Runs for one customer (default: the x-fastn-account-tenant-id one).")
    ] = None,
    called_from: Annotated[datetime | None, Query(alias="from", description=(
        "Model calls at or after this time (ISO 8601 with a time zone)."))] = None,
    called_to: Annotated[datetime | None, Query(alias="to", description=(
        "Model calls before this time (ISO 8601 with a time zone)."))] = None,
) -> Any:
    """Agent usage per run or per thread: model calls, tokens, credits and the models called,
    latest first (sort: last_at, first_at, credits). A request naming a customer (and a key bound
    to one) sees only the runs that acted for that customer."""
    with tenant_tx(db, principal, named_customer=True) as tx:
        result = store.AgentUsage(tx).page(
            principal.org_id, page.query("-last_at"), group=group, run_id=run_id, thread_id=thread_id,
            customer_id=customer or principal.customer_id, start=called_from, end=called_to,
        )
    return page_out(result, lambda row: {**row, **store.UsageTotals.from_row(row).as_dict()})


@router.get("/billing/tiers", name="quota_tier.list", response_model=PageOut[TierOut])
def list_tiers(
    db: Db,
    principal: Annotated[Principal, require("billing", "read")],
    page: ListParams,
    name: Annotated[str | None, Query(max_length=64)] = None,
) -> Any:
    """Customer tiers (sort: created_at, name)."""
    with tenant_tx(db, principal) as tx:
        result = store.Quotas(tx).list_tiers(principal.org_id, page.query(), name=name)
        return {"items": _tiers_out(tx, principal.org_id, result.items), "next_cursor": result.next_cursor}


@router.post("/billing/tiers", name="quota_tier.create", response_model=TierOut, status_code=201)
def create_tier(body: TierIn, db: Db, principal: Annotated[Principal, require("billing", "write")]) -> Any:
    """Create a tier: limits for the customers whose `tier` is its name."""
    with tenant_tx(db, principal) as tx:
        row = store.Quotas(tx).create_tier(principal.org_id, body.name, body.limits.entries())
        return _tiers_out(tx, principal.org_id, [row])[0]


@router.get("/billing/tiers/{tier_id}", name="quota_tier.get", response_model=TierOut)
def get_tier(tier_id: str, db: Db, principal: Annotated[Principal, require("billing", "read")]) -> Any:
    """One tier."""
    with tenant_tx(db, principal) as tx:
        return _tiers_out(tx, principal.org_id, [store.Quotas(tx).get_tier(principal.org_id, tier_id)])[0]


@router.patch("/billing/tiers/{tier_id}", name="quota_tier.update", response_model=TierOut)
def update_tier(
    tier_id: str, patch: TierPatch, db: Db, principal: Annotated[Principal, require("billing", "write")]
) -> Any:
    """Rename a tier (its customers follow) or replace its limits."""
    changes: dict[str, Any] = {}
    if patch.name is not None:
        changes["name"] = patch.name
    if patch.limits is not None:
        changes["limits"] = patch.limits.entries()
    with tenant_tx(db, principal) as tx:
        row = store.Quotas(tx).update_tier(principal.org_id, tier_id, changes)
        return _tiers_out(tx, principal.org_id, [row])[0]


@router.delete("/billing/tiers/{tier_id}", name="quota_tier.delete", status_code=204)
def delete_tier(tier_id: str, db: Db, principal: Annotated[Principal, require("billing", "write")]) -> Response:
    """Delete a tier; its customers fall back to the plan's limits (and their own overrides)."""
    with tenant_tx(db, principal) as tx:
        store.Quotas(tx).delete_tier(principal.org_id, tier_id)
    return Response(status_code=204)
