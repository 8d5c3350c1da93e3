"""Workflow tools: write or patch the draft, validate it against the organization's connectors,
dry-run it for a (test) customer on sandboxes seeded with sample records, request the builder's
review, and publish what the builder approved. The same store and runtime calls as the
``/v1/workflows`` routes; runs go through ``runtime.Runs.start`` (``triggered_by="agent"``)."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

import anyio
import jsonpatch
from pydantic import BaseModel, ConfigDict, Field

import store
from engine import check_workflow
from engine.errors import EngineError
from engine.specs import ConnectorSpec, WorkflowSpec
from runtime import ServiceError, SpecInvalid, check_environment, loaded, problems_out, tenant_tx, validated
from runtime import stored as stored_spec
from tools._connectors import KEY_PATTERN, JsonPatchOp, apply_patch, sandbox_route
from tools._context import ToolContext
from tools._registry import Tool
from tools.errors import ApprovalRequired, ToolFailed

# How much of a dry run's trace a model reads: method, URL path, status, sent, per call.
MAX_TRACE_ENTRIES = 50


def workflow_spec(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` validated as a workflow spec, as stored; ``SpecInvalid`` with JSON pointers otherwise."""
    return stored_spec(validated(WorkflowSpec, data, "workflow"))


def _workflow_out(row: dict[str, Any]) -> dict[str, Any]:
    return {"workflow": row["key"], "workflow_id": row["id"], "name": row["name"], "status": row["status"],
            "latest_version": row.get("latest_version")}


def check(ctx: ToolContext, tx: store.Tx, data: dict[str, Any]) -> list[dict[str, str]]:
    """Problems of workflow ``data``: the spec's own, then against the organization's connectors
    (latest version of each, drafts included)."""
    try:
        spec = validated(WorkflowSpec, data, "workflow")
    except SpecInvalid as exc:
        return exc.errors
    connectors = ctx.platform.runs.specs.connectors(tx, ctx.org_id, spec.connectors(), published_only=False)
    return problems_out(check_workflow(spec, connectors))


class WriteWorkflowArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spec: dict[str, Any] = Field(description="A whole workflow spec; its id is the workflow key.")


async def write_workflow_draft(ctx: ToolContext, args: WriteWorkflowArgs) -> dict[str, Any]:
    spec = workflow_spec(args.spec)

    def save() -> dict[str, Any]:
        with tenant_tx(ctx.platform.db, ctx.principal) as tx:
            workflows = store.Workflows(tx)
            try:
                workflows.get(ctx.org_id, spec["id"])
            except store.NotFound:
                row = workflows.create(ctx.org_id, spec, created_by=ctx.principal.actor_id)
            else:
                row = workflows.replace_draft(ctx.org_id, spec["id"], spec)
            return _workflow_out(row) | {"problems": check(ctx, tx, spec)}

    return await anyio.to_thread.run_sync(save)


class PatchWorkflowArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workflow: str = Field(min_length=1, max_length=128, description="Workflow key or id.")
    patch: list[JsonPatchOp] = Field(min_length=1, max_length=200, description="RFC 6902 operations on the draft.")


async def patch_workflow_draft(ctx: ToolContext, args: PatchWorkflowArgs) -> dict[str, Any]:
    def save() -> dict[str, Any]:
        with tenant_tx(ctx.platform.db, ctx.principal) as tx:
            workflows = store.Workflows(tx)
            row = workflows.get(ctx.org_id, args.workflow)
            patched = apply_patch(row["draft"], args.patch)
            if patched.get("id") != row["key"]:
                raise ToolFailed(f"the spec's id must stay {row['key']!r}", pointer="/patch", code="spec_invalid")
            saved = workflows.replace_draft(ctx.org_id, row["id"], workflow_spec(patched))
            return _workflow_out(saved) | {"changed": [op.path for op in args.patch], "problems": check(ctx, tx, patched)}

    return await anyio.to_thread.run_sync(save)


class ValidateWorkflowArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workflow: str = Field(min_length=1, max_length=128, description="Workflow key or id: its draft is checked.")


async def validate_workflow(ctx: ToolContext, args: ValidateWorkflowArgs) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        with tenant_tx(ctx.platform.db, ctx.principal) as tx:
            row = store.Workflows(tx).get(ctx.org_id, args.workflow)
            problems = check(ctx, tx, row["draft"])
        return {"workflow": row["key"], "valid": not problems, "problems": problems}

    return await anyio.to_thread.run_sync(run)


class DryRunArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workflow: str = Field(min_length=1, max_length=128, description="Workflow key or id: its draft is run.")
    customer_id: str | None = Field(None, max_length=128, description="The (test) customer to run for; default: "
                                                                      "the thread's customer.")
    input: dict[str, Any] = Field(default_factory=dict, description="The workflow's input.")
    sample_records: dict[str, dict[str, list[dict[str, Any]]]] = Field(
        default_factory=dict, description="Per connector key: collections of records to seed its sandbox with "
                                          "before the run, e.g. {\"cin7\": {\"/customer\": [...]}}.")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def _seed(ctx: ToolContext, connector: str, base_url: str, records: dict[str, list[dict[str, Any]]]) -> None:
    try:
        response = await ctx.platform.http.request("POST", _origin(base_url) + "/__sandbox/seed", json=records)
    except EngineError as exc:
        raise ToolFailed(f"could not seed the sandbox of {connector!r}: {exc}", pointer=f"/sample_records/{connector}",
                         code=exc.code) from None
    if response.status_code != 200:
        raise ToolFailed(f"the sandbox of {connector!r} refused the sample records: {response.text[:300]}",
                         pointer=f"/sample_records/{connector}", code="seed_refused")


def _trace_entry(entry: dict[str, Any]) -> dict[str, Any]:
    url = entry.get("url") or ""
    return {k: v for k, v in {"step": entry.get("step"), "connector": entry.get("connector"),
                              "action": entry.get("action"), "method": entry.get("method"),
                              "path": urlsplit(url).path if url else None, "status": entry.get("status"),
                              "sent": entry.get("sent")}.items() if v is not None}


async def dry_run_workflow(ctx: ToolContext, args: DryRunArgs) -> dict[str, Any]:
    customer_id = args.customer_id or ctx.customer_id
    if customer_id is None:
        raise ToolFailed("name the (test) customer to run for", pointer="/customer_id", code="customer_required")

    def connectors_of() -> list[str]:
        with tenant_tx(ctx.platform.db, ctx.principal) as tx:
            draft = store.Workflows(tx).get(ctx.org_id, args.workflow)["draft"]
        return sorted(loaded(WorkflowSpec, draft, "workflow").connectors())

    keys = await anyio.to_thread.run_sync(connectors_of)
    base_urls = {key: url for key in keys if (url := ctx.sandboxes.base_url(ctx.org_id, key)) is not None}
    # Connectors the directory does not serve run on their hosted sandboxes through the test
    # customer's sandbox connections (runtime routes those in-process).
    http, routed = await sandbox_route(ctx, keys)
    for connector, records in sorted(args.sample_records.items()):
        if connector in base_urls:
            await _seed(ctx, connector, base_urls[connector], records)
        elif connector in routed:
            try:
                await ctx.platform.sandboxes.seed(ctx.principal, connector, records)
            except ServiceError as exc:
                raise ToolFailed(f"the sandbox of {connector!r} refused the sample records: {exc}",
                                 pointer=f"/sample_records/{connector}", code=exc.code) from None
        else:
            raise ToolFailed(f"connector {connector!r} has no sandbox in this run (the workflow uses: "
                             f"{', '.join(keys) or 'none'})", pointer=f"/sample_records/{connector}", code="no_sandbox")
    started = await ctx.platform.runs.start(
        ctx.principal, args.workflow, customer_id=customer_id, draft=True, dry_run=True, input=args.input,
        triggered_by="agent", base_urls=routed, http=http,
    )
    execution = started.execution
    trace = execution.get("trace") or []
    return {
        "execution_id": execution["id"], "status": execution["status"], "output": execution.get("output"),
        "failure": execution.get("error"), "sandboxes": sorted(set(base_urls) | set(routed)),
        "unsandboxed": sorted(set(keys) - set(base_urls) - set(routed)),
        "calls": [_trace_entry(e) for e in trace[:MAX_TRACE_ENTRIES]], "calls_total": len(trace),
    }


class ReviewArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["workflow", "connector"] = "workflow"
    key: str = Field(min_length=1, max_length=128, pattern=KEY_PATTERN, description="The workflow or connector key.")
    summary: str = Field("", max_length=4000, description="What was built and why, for the builder.")


def _review(ctx: ToolContext, args: ReviewArgs) -> dict[str, Any]:
    with tenant_tx(ctx.platform.db, ctx.principal) as tx:
        auto = bool(store.Organizations(tx).get(ctx.org_id).get("auto_approve"))
        if args.kind == "workflow":
            workflows = store.Workflows(tx)
            row = workflows.get(ctx.org_id, args.key)
            current = row["draft"]
            published = (workflows.version(ctx.org_id, row["id"], row["latest_version"])["spec"]
                         if row["latest_version"] else {})
            problems = check(ctx, tx, current)
            version = None
        else:
            connectors = store.Connectors(tx)
            row = connectors.get(ctx.org_id, args.key)
            latest = connectors.version(ctx.org_id, row["id"], row["latest_version"])
            current, version = latest["spec"], latest["version"]
            published = (connectors.version(ctx.org_id, row["id"], row["published_version"])["spec"]
                         if row.get("published_version") else {})
            try:
                validated(ConnectorSpec, current, "connector")
                problems = []
            except SpecInvalid as exc:
                problems = exc.errors
    diff = jsonpatch.make_patch(published, current).patch
    return {"kind": args.kind, "key": args.key, "version": version, "review": "requested", "summary": args.summary,
            "valid": not problems, "problems": problems, "diff": diff, "first_version": not published,
            "auto_approve": auto}


async def request_review(ctx: ToolContext, args: ReviewArgs) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(_review, ctx, args)


class PublishArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["workflow", "connector"] = "workflow"
    key: str = Field(min_length=1, max_length=128, pattern=KEY_PATTERN, description="The workflow or connector key.")
    deploy_to: str | None = Field(None, min_length=1, max_length=64,
                                  description="workflow: also deploy the new version to this environment (id or slug).")


def _publish(ctx: ToolContext, args: PublishArgs) -> dict[str, Any]:
    principal = ctx.principal
    principal.require("connectors" if args.kind == "connector" else "workflows", "publish")
    with tenant_tx(ctx.platform.db, principal) as tx:
        auto = bool(store.Organizations(tx).get(ctx.org_id).get("auto_approve"))
        if not (auto or ctx.approvals.granted(args.kind, args.key)):
            raise ApprovalRequired(args.kind, args.key)
        if args.kind == "connector":
            connectors = store.Connectors(tx)
            row = connectors.get(ctx.org_id, args.key)
            version = connectors.publish(ctx.org_id, row["id"], row["latest_version"])
            return {"kind": "connector", "key": row["key"], "version": version["version"], "state": version["state"]}
        workflows = store.Workflows(tx)
        row = workflows.get(ctx.org_id, args.key)
        problems = check(ctx, tx, row["draft"])
        if problems:
            raise SpecInvalid("workflow", problems)
        version = workflows.publish(ctx.org_id, row["id"], created_by=principal.actor_id)
        out = {"kind": "workflow", "key": row["key"], "version": version["version"], "deployed_to": None}
        if args.deploy_to:
            check_environment(tx, principal, args.deploy_to)
            deployment = workflows.deploy(ctx.org_id, row["id"], args.deploy_to, version["version"],
                                          deployed_by=principal.actor_id)
            out["deployed_to"] = deployment["environment_slug"]
        return out


async def publish(ctx: ToolContext, args: PublishArgs) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(_publish, ctx, args)


TOOLS = [
    Tool("write_workflow_draft", "Save a whole workflow spec as its draft (creating the workflow if new); answers "
         "the draft's problems against the connectors.", WriteWorkflowArgs, write_workflow_draft,
         ("workflows", "write"), writes=True),
    Tool("patch_workflow_draft", "Change a workflow's draft with JSON Patch operations; answers the new draft's "
         "problems.", PatchWorkflowArgs, patch_workflow_draft, ("workflows", "write"), writes=True),
    Tool("validate_workflow", "Check a workflow's draft against the organization's connectors: unknown actions, "
         "expressions, step references, each with its JSON pointer.", ValidateWorkflowArgs, validate_workflow,
         ("workflows", "read")),
    Tool("dry_run_workflow", "Dry-run a workflow's draft for a test customer on the connectors' sandboxes, seeded "
         "first with sample records; only reads are sent, writes are answered synthetically.", DryRunArgs,
         dry_run_workflow, ("workflows", "execute"), customer_arg="customer_id"),
    Tool("request_review", "Ask the builder to review a workflow or connector before it is published: answers the "
         "diff against the published version and whether it validates.", ReviewArgs, request_review,
         ("workflows", "write"), writes=True),
    Tool("publish", "Publish an approved workflow (optionally deploying it) or connector. Refused until the "
         "builder approved it in review.", PublishArgs, publish, ("workflows", "publish"), writes=True),
]
