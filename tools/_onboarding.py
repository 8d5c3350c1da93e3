"""Onboarding tools: the Setup Assistant's record of progress, its test customer, the first live
run, and what the builder needs to embed connecting in their product.

The organization's onboarding state is ``organizations.onboarding`` (jsonb), shaped::

    {"website": "https://...", "step": "<first step not done>",
     "steps": {"use_cases": {"status": "done", "at": "<iso time>", ...what the step found},
               "connectors": {...}, "workflows": {...}, "embed": {...}, "live": {...}},
     "threads": ["<thread id>", ...]}

``POST /v1/organization/reset-onboarding`` empties it. The tools are thin calls into ``store`` and
``runtime`` like every other tool, and go through the registry's policy hook.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field

import store
from runtime import PRODUCTION, check_environment, connector_for_connections, create_connection, tenant_tx
from tools._connectors import KEY_PATTERN
from tools._context import ToolContext
from tools._registry import Tool
from tools.errors import ToolFailed

ONBOARDING_STEPS = ("use_cases", "connectors", "workflows", "embed", "live")
STEP_STATUSES = ("in_progress", "done", "waiting", "blocked", "failed")
TEST_CUSTOMER_ID = "onboarding-test-customer"
TEST_CUSTOMER_NAME = "Onboarding test customer"
# What a recorded step may hold: a proposal, ids and statuses; a bound keeps a model from storing pages.
MAX_STEP_BYTES = 64 << 10
MAX_THREADS = 50


def current_step(steps: dict[str, Any]) -> str:
    """The first step not ``done`` (``live`` once every step is)."""
    return next((step for step in ONBOARDING_STEPS if (steps.get(step) or {}).get("status") != "done"), "live")


def complete(state: dict[str, Any]) -> bool:
    """Whether every onboarding step of ``state`` is done."""
    steps = state.get("steps") or {}
    return all((steps.get(step) or {}).get("status") == "done" for step in ONBOARDING_STEPS)


def _read(ctx: ToolContext) -> dict[str, Any]:
    with tenant_tx(ctx.platform.db, ctx.principal, customer=False) as tx:
        return dict(store.Organizations(tx).get(ctx.org_id).get("onboarding") or {})


class ReadOnboardingArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


async def read_onboarding(ctx: ToolContext, args: ReadOnboardingArgs) -> dict[str, Any]:
    state = await anyio.to_thread.run_sync(_read, ctx)
    steps = state.get("steps") or {}
    return {"onboarding": state, "step": current_step(steps), "complete": complete(state), "steps": list(ONBOARDING_STEPS)}


class RecordOnboardingArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: Literal["use_cases", "connectors", "workflows", "embed", "live"]
    status: Literal["in_progress", "done", "waiting", "blocked", "failed"]
    data: dict[str, Any] = Field(default_factory=dict, description="What the step found or made (ids, proposals, "
                                                                   "reasons); replaces what was recorded for it.")
    website: str | None = Field(None, max_length=2048, pattern=r"^https?://", description="The company's website.")


def _record(ctx: ToolContext, args: RecordOnboardingArgs) -> dict[str, Any]:
    if len(json.dumps(args.data, default=str)) > MAX_STEP_BYTES:
        raise ToolFailed(f"the step's data is larger than {MAX_STEP_BYTES} bytes", pointer="/data", code="too_large",
                         http_status=413)
    with tenant_tx(ctx.platform.db, ctx.principal, customer=False) as tx:
        organizations = store.Organizations(tx)
        # Row lock: two runs recording steps at once must not drop each other's step.
        tx.execute("SELECT id FROM organizations WHERE id = %s FOR UPDATE", (ctx.org_id,))
        state = dict(organizations.get(ctx.org_id).get("onboarding") or {})
        steps = dict(state.get("steps") or {})
        steps[args.step] = {**args.data, "status": args.status, "at": ctx.platform.clock().isoformat()}
        state["steps"] = steps
        state["step"] = current_step(steps)
        if args.website:
            state["website"] = args.website
        if ctx.thread_id and ctx.thread_id not in (threads := list(state.get("threads") or [])):
            state["threads"] = (threads + [ctx.thread_id])[-MAX_THREADS:]
        row = organizations.update(ctx.org_id, {"onboarding": state})
    return {"step": args.step, "status": args.status, "current_step": row["onboarding"]["step"],
            "complete": complete(row["onboarding"])}


async def record_onboarding(ctx: ToolContext, args: RecordOnboardingArgs) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(_record, ctx, args)


class TestCustomerArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connectors: list[str] = Field(default_factory=list, max_length=20,
                                  description="Connector keys to connect to their sandboxes (none: only the customer).")
    environment: str = Field("dev", min_length=1, max_length=64, description="A non-production environment (id or slug).")


def _test_customer(ctx: ToolContext, args: TestCustomerArgs) -> dict[str, Any]:
    principal = ctx.principal
    principal.require("customers", "write")  # the tool's own permission is connections:write
    with tenant_tx(ctx.platform.db, principal, customer=False) as tx:
        environment = store.Environments(tx).get(ctx.org_id, args.environment)
        if environment["slug"] == PRODUCTION:
            raise ToolFailed("a test customer lives outside production", pointer="/environment", code="production_refused",
                             http_status=409)
        check_environment(tx, principal, environment["slug"])
        customers = store.Customers(tx)
        try:
            customer = customers.get(ctx.org_id, TEST_CUSTOMER_ID)
        except store.NotFound:
            customer = customers.create(ctx.org_id, name=TEST_CUSTOMER_NAME, environment_id=environment["id"],
                                        customer_id=TEST_CUSTOMER_ID, metadata={"purpose": "onboarding"})
        if customer["environment_id"] != environment["id"]:
            raise ToolFailed(f"the test customer lives in another environment than {args.environment!r}",
                             pointer="/environment", code="conflict", http_status=409)
        connections = store.Connections(tx)
        existing = {row["connector_key"]: row for row in connections.list(
            ctx.org_id, store.ListQuery(limit=100), customer_id=customer["id"]).items}
        out = []
        for n, key in enumerate(args.connectors):
            row = existing.get(key)
            if row is None or row.get("status") != "connected" or row.get("target") != "sandbox":
                try:
                    connector = connector_for_connections(tx, ctx.org_id, key)
                except store.NotFound:
                    raise ToolFailed(f"no connector {key!r} in this organization", pointer=f"/connectors/{n}",
                                     code="not_found", http_status=404) from None
                row = create_connection(tx, ctx.org_id, customer["id"], connector.key, name=f"{connector.key} (sandbox)",
                                        auth=None, encryptor=ctx.platform.encryptor, target="sandbox")
            out.append({"connector": key, "connection_id": row["id"], "target": "sandbox"})
    return {"customer_id": customer["id"], "environment": environment["slug"], "connections": out}


async def prepare_test_customer(ctx: ToolContext, args: TestCustomerArgs) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(_test_customer, ctx, args)


class RunWorkflowArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workflow: str = Field(min_length=1, max_length=128, pattern=KEY_PATTERN, description="Workflow key.")
    customer_id: str = Field(min_length=1, max_length=128, description="The customer to run it for.")
    input: dict[str, Any] = Field(default_factory=dict, description="The workflow's input.")


async def run_workflow(ctx: ToolContext, args: RunWorkflowArgs) -> dict[str, Any]:
    # The version deployed to the customer's environment, run now: live, not a dry run.
    started = await ctx.platform.runs.start(ctx.principal, args.workflow, customer_id=args.customer_id,
                                            input=args.input, triggered_by="agent", inline=True)
    execution = started.execution
    return {"execution_id": execution["id"], "workflow": args.workflow, "version": execution.get("version"),
            "status": execution["status"], "output": execution.get("output"), "failure": execution.get("error"),
            "customer_id": args.customer_id}


class EmbedConfigArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connectors: list[str] = Field(min_length=1, max_length=20, description="Connector keys the customers will connect.")


def _embed(ctx: ToolContext, args: EmbedConfigArgs) -> dict[str, Any]:
    # The platform has no hosted widget yet: embedding is the headless connections API, called by
    # the builder's product with a key bound to each end customer. This says exactly what that needs.
    base = (ctx.platform.config.public_url or "").rstrip("/") or "<your Switchboard URL>"
    with tenant_tx(ctx.platform.db, ctx.principal, customer=False) as tx:
        apps = {row["connector_key"] for row in store.OAuthApps(tx).list(ctx.org_id, store.ListQuery(limit=200)).items}
        entries = []
        for n, key in enumerate(args.connectors):
            try:
                connector = connector_for_connections(tx, ctx.org_id, key)
            except store.NotFound:
                raise ToolFailed(f"no connector {key!r} in this organization", pointer=f"/connectors/{n}",
                                 code="not_found", http_status=404) from None
            auth = connector.spec.auth.type
            if auth == "oauth2":
                ready = key in apps
                how = {"start": f"POST {base}/v1/connections/oauth/start", "body": {"connector": key,
                       "redirect_uri": "<your page>"}}
                needs = None if ready else f"an OAuth app for {key} (POST {base}/v1/oauth-apps) before production customers connect"
            else:
                ready, needs = True, None
                how = {"create": f"POST {base}/v1/connections", "body": {"connector": key, "auth": {
                       "type": auth, "values": {field: f"<customer's {field}>" for field in connector.spec.credential_fields()}}}}
            entries.append({"connector": key, "auth": auth, "ready": ready, "needs": needs, "connect": how,
                            "sandbox": {"create": f"POST {base}/v1/connections",
                                        "body": {"connector": key, "target": "sandbox"}}})
    headers = {"x-fastn-account-id": ctx.org_id, "x-fastn-account-tenant-id": "<your customer's id>",
               "x-fastn-access-key": "<a key issued for that customer: POST /v1/api-keys with customer>"}
    lines = [
        "// In your backend, per end customer: issue a key bound to them (role end_user); never ship your own key.",
        f"const sb = (path, body) => fetch('{base}' + path, {{method: 'POST', headers: {{",
        f"  'content-type': 'application/json', 'x-fastn-account-id': '{ctx.org_id}',",
        "  'x-fastn-account-tenant-id': customerId, 'x-fastn-access-key': customerKey}, body: JSON.stringify(body)});",
    ]
    for entry in entries:
        key = entry["connector"]
        if entry["auth"] == "oauth2":
            lines.append(f"sb('/v1/connections/oauth/start', {{connector: '{key}', redirect_uri: location.href}});")
        else:
            lines.append(f"sb('/v1/connections', {{connector: '{key}', auth: {{type: '{entry['auth']}', values}}}});")
    snippet = "\n".join(lines)
    return {"kind": "headless", "api_base": base, "headers": headers, "connectors": entries, "snippet": snippet,
            "ready": all(e["ready"] for e in entries), "needs": [e["needs"] for e in entries if e["needs"]]}


async def embed_config(ctx: ToolContext, args: EmbedConfigArgs) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(_embed, ctx, args)


TOOLS = [
    Tool("read_onboarding", "Read the organization's onboarding progress (steps use_cases, connectors, workflows, "
         "embed, live).", ReadOnboardingArgs, read_onboarding, ("settings", "read")),
    Tool("record_onboarding", "Record one onboarding step's status and what it found or made.", RecordOnboardingArgs,
         record_onboarding, ("settings", "write"), writes=True),
    Tool("prepare_test_customer", "Create (or reuse) the organization's onboarding test customer in a non-production "
         "environment, connected to the hosted sandboxes of the given connectors.", TestCustomerArgs,
         prepare_test_customer, ("connections", "write"), writes=True),
    Tool("run_workflow", "Run a published workflow's deployed version for a customer now (a live run, not a dry "
         "run) and answer its status and output.", RunWorkflowArgs, run_workflow, ("workflows", "execute"),
         writes=True, customer_arg="customer_id"),
    Tool("embed_config", "What the builder's product needs to let its customers connect the given connectors: "
         "API base, headers, routes per connector and what is missing (no secret is ever included).",
         EmbedConfigArgs, embed_config, ("settings", "read")),
]
