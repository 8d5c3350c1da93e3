"""/v1 routes: workflows (draft, validate, publish, versions, deploy), their triggers, and
executions (run now for a customer, for real or as a dry run)."""

from __future__ import annotations

import base64
from functools import partial
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from fastapi import Body, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

import store
from api._auth import Principal, require
from api._deps import Db, Encryptor, RunsDep
from api._lists import ListParams, PageOut, page_out
from api._quota import note_warnings
from api._v1._common import in_thread, tenant_tx
from api._v1._common import router as make_router
from api._v1._specs import SpecBody, loaded, problems_out, spec_data, stored, validated
from engine import check_workflow
from api._hooks import hook_path
from runtime import (
    HUBSPOT_V3,
    Runs,
    SpecInvalid,
    Transactions,
    check_customer,
    check_environment,
    filter_problem,
    new_standard_secret,
    secret_purpose,
    standard_secret_problem,
)
from engine.specs import AppEventTrigger, ConnectorSpec, ScheduleTrigger, WebhookTrigger, WorkflowSpec

router = make_router("workflows")

WorkflowStatus = Literal["draft", "published", "archived"]
WorkflowType = Literal["instant", "standard", "long"]
VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1, description="A version number.")]
ExecutionStatus = Literal["queued", "running", "completed", "failed", "timeout", "cancelled"]
TriggeredBy = Literal["webhook", "schedule", "app_event", "manual", "mcp", "agent"]


# -- models -------------------------------------------------------------------------


class DeploymentOut(BaseModel):
    environment_id: str
    environment_slug: str
    version: int
    deployed_by: str | None
    deployed_at: datetime


class WorkflowOut(BaseModel):
    id: str
    key: str = Field(description="The spec's id; unique in the organization.")
    name: str
    type: WorkflowType = Field(description="From the spec's tier: instant, standard or long.")
    status: WorkflowStatus
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    latest_version: int | None = Field(description="The highest published version, None before the first publish.")


class WorkflowDetailOut(WorkflowOut):
    draft: dict[str, Any]
    deployments: list[DeploymentOut]


class Problem(BaseModel):
    pointer: str = Field(description="JSON pointer into the spec.")
    reason: str


class ValidationOut(BaseModel):
    valid: bool
    problems: list[Problem]


class VersionOut(BaseModel):
    workflow_id: str
    version: int
    created_by: str | None
    created_at: datetime


class VersionDetailOut(VersionOut):
    spec: dict[str, Any]


class DeployIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=2**31 - 1)
    environment: str = Field("production", min_length=1, max_length=64, description="Environment id or slug.")


class WebhookTriggerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["webhook"]
    enabled: bool = True
    customer: str = Field(min_length=1, max_length=128, description="The customer whose runs the deliveries start.")
    payload: dict[str, Any] | None = Field(None, description="JSON Schema of the expected body (422 otherwise).")
    filter: str | None = Field(None, min_length=1, max_length=2000, description=(
        "A JSONata expression over {payload}; a delivery runs the workflow only when it yields true "
        "(e.g. payload.type = \"contact.created\"), and is stored as a filtered event otherwise."))
    signature: Literal["standard_webhooks", "hubspot_v3"] = Field(
        "standard_webhooks", description="How deliveries are signed: Standard Webhooks, or HubSpot's v3 signature.")
    signing_secret: str | None = Field(None, min_length=1, max_length=512, description=(
        "standard_webhooks: a whsec_ secret the sender gave you (default: one is generated and shown once); "
        "hubspot_v3: required, the HubSpot app's client secret. Stored encrypted, never shown."))


class ScheduleTriggerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["schedule"]
    enabled: bool = True
    cron: str | None = Field(None, min_length=1, max_length=200, description="A cron expression, e.g. */15 * * * *.")
    interval: str | None = Field(None, min_length=1, max_length=32, description="Every so long: 90s, 15m, 1h30m, 1d.")
    daily: dict[str, Any] | None = Field(None, description='{"at": "HH:MM"}')
    weekly: dict[str, Any] | None = Field(None, description='{"on": ["monday", ...], "at": "HH:MM"}')
    monthly: dict[str, Any] | None = Field(None, description='{"day": 1..31 or "last", "at": "HH:MM"}')
    timezone: str | None = Field(None, max_length=64, description="IANA time zone the schedule is read in "
                                                                  "(default: the organization's).")


class AppEventTriggerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["app_event"]
    enabled: bool = True
    connector: str = Field(min_length=1, max_length=100, description="Connector key.")
    event: str = Field(min_length=1, max_length=200, description="An event of the connector's spec.")


TriggerIn = Annotated[Union[WebhookTriggerIn, ScheduleTriggerIn, AppEventTriggerIn], Field(discriminator="kind")]


class TriggerPatch(BaseModel):
    """What changes; fields of another kind than the trigger's are refused."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool | None = None
    payload: dict[str, Any] | None = Field(None, description="webhook")
    customer: str | None = Field(None, min_length=1, max_length=128, description="webhook")
    filter: str | None = Field(None, min_length=1, max_length=2000, description="webhook")
    cron: str | None = Field(None, min_length=1, max_length=200, description="schedule")
    interval: str | None = Field(None, min_length=1, max_length=32, description="schedule")
    daily: dict[str, Any] | None = Field(None, description="schedule")
    weekly: dict[str, Any] | None = Field(None, description="schedule")
    monthly: dict[str, Any] | None = Field(None, description="schedule")
    timezone: str | None = Field(None, max_length=64, description="schedule")
    connector: str | None = Field(None, min_length=1, max_length=100, description="app_event")
    event: str | None = Field(None, min_length=1, max_length=200, description="app_event")


class TriggerOut(BaseModel):
    id: str
    workflow_id: str
    kind: Literal["webhook", "schedule", "app_event"]
    enabled: bool
    config: dict[str, Any] = Field(description="webhook: path (POST deliveries there), customer, signature, "
                                               "payload, filter, signing_secret_hint; schedule: cron, timezone; "
                                               "app_event: connector, event.")
    created_at: datetime
    updated_at: datetime


class TriggerCreatedOut(TriggerOut):
    signing_secret: str | None = Field(None, description="webhook only, shown once: senders sign deliveries with it.")


class ScheduleOut(BaseModel):
    id: str
    workflow_id: str
    environment_id: str
    customer_id: str
    trigger_id: str | None = Field(description="The attached schedule trigger; null: the trigger in the workflow's spec.")
    version: int = Field(description="The deployed version it runs.")
    config: dict[str, Any] = Field(description="The schedule trigger: cron, interval, daily, weekly or monthly.")
    timezone: str = Field(description="The zone its wall-clock times are read in.")
    next_due_at: datetime | None = Field(description="Its next slot; null until a worker plans it.")
    last_slot: datetime | None
    last_fired_at: datetime | None
    last_execution_id: str | None
    last_error: dict[str, Any] | None = Field(description="Why its last firing started no run (quota, input...).")
    created_at: datetime
    updated_at: datetime


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: dict[str, Any] = Field(default_factory=dict, description="The workflow's input.")
    version: int | None = Field(None, ge=1, le=2**31 - 1, description="Default: the version deployed to the "
                                                                        "customer's environment, else the latest published.")
    dry_run: bool = Field(False, description="Send only GET/HEAD requests; answer the others synthetically.")
    draft: bool = Field(False, description="Run the draft (dry runs only); recorded as version 0.")

    @model_validator(mode="after")
    def _draft_is_dry(self) -> "RunIn":
        if self.draft and not self.dry_run:
            raise ValueError("only a dry run can run the draft (set dry_run: true)")
        if self.draft and self.version is not None:
            raise ValueError("send version or draft, not both")
        return self


class ExecutionOut(BaseModel):
    id: str
    workflow_id: str
    customer_id: str
    version: int = Field(description="The workflow version run; 0 for the draft.")
    dry_run: bool
    status: ExecutionStatus
    tier: WorkflowType = Field(description="How it runs: instant (inline), standard or long (durable, by a worker).")
    triggered_by: TriggeredBy = Field(description="What started it.")
    input: dict[str, Any]
    output: Any = None
    error: dict[str, Any] | None = None
    started_at: datetime
    finished_at: datetime | None
    rerun_of: str | None = Field(None, description="The failed execution this one re-runs from its failed step.")
    escalations: list[dict[str, Any]] = Field(
        default_factory=list, description="Each move to the next tier after a timeout (the workflow's `escalate`), "
        "in order: from, to, at, reason.")


class ExecutionDetailOut(ExecutionOut):
    trace: list[dict[str, Any]] = Field(description="One record per HTTP attempt; dry runs mark each `sent`.")


# -- helpers ------------------------------------------------------------------------


def _workflow_spec(body: SpecBody) -> dict[str, Any]:
    return stored(validated(WorkflowSpec, spec_data(body, "workflow"), "workflow"))


def _check(runs: Runs, tx: store.Tx, org_id: str, spec: WorkflowSpec) -> list[dict[str, str]]:
    """Problems of ``spec`` against the organization's connectors (latest version of each)."""
    connectors = runs.specs.connectors(tx, org_id, spec.connectors(), published_only=False)
    return problems_out(check_workflow(spec, connectors))


def _version_out(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("workflow_id", "version", "created_by", "created_at")} | (
        {"spec": row["spec"]} if "spec" in row else {}
    )


def _trigger_out(row: dict[str, Any]) -> dict[str, Any]:
    config = {k: v for k, v in row["config"].items() if k not in ("signing_secret", "token")}
    return {k: row[k] for k in ("id", "workflow_id", "kind", "enabled", "created_at", "updated_at")} | {"config": config}


# A webhook trigger's delivery settings, beside what the engine's trigger model holds.
_WEBHOOK_SETTINGS = ("customer", "filter")


def _webhook_settings(tx: store.Tx, principal: Principal, fields: dict[str, Any]) -> dict[str, Any]:
    """The customer (required, must exist and be reachable by the caller) and the filter (must parse)."""
    customer_id = fields.get("customer")
    if not customer_id:
        raise SpecInvalid("trigger", [{"pointer": "/customer", "reason": "is required: the customer whose runs "
                                                                        "the webhook's deliveries start"}])
    try:
        customer = store.Customers(tx).get(principal.org_id, customer_id)
    except store.NotFound:
        raise SpecInvalid("trigger", [{"pointer": "/customer", "reason": f"no customer {customer_id!r} in this "
                                                                        "organization"}]) from None
    check_customer(tx, principal, customer)
    settings = {"customer": customer_id}
    if fields.get("filter"):
        problem = filter_problem(fields["filter"])
        if problem:
            raise SpecInvalid("trigger", [{"pointer": "/filter", "reason": problem}])
        settings["filter"] = fields["filter"]
    return settings


def _trigger_config(runs: Runs, tx: store.Tx, principal: Principal, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Validate a trigger's settings with the engine's trigger models; an app event must exist; a
    webhook needs its customer."""
    org_id = principal.org_id
    model = {"webhook": WebhookTrigger, "schedule": ScheduleTrigger, "app_event": AppEventTrigger}[kind]
    own = {k: v for k, v in fields.items() if not (kind == "webhook" and k in _WEBHOOK_SETTINGS)}
    spec = validated(model, {"kind": kind, **own}, "trigger")
    config = {k: v for k, v in stored(spec).items() if k != "kind"}
    if kind == "webhook":
        config |= _webhook_settings(tx, principal, fields)
    if kind == "app_event":
        connectors = runs.specs.connectors(tx, org_id, {spec.connector}, published_only=False)
        connector: ConnectorSpec | None = connectors.get(spec.connector)
        if connector is None:
            raise SpecInvalid("trigger", [{"pointer": "/connector", "reason": f"no connector {spec.connector!r} in this organization"}])
        if spec.event not in connector.events:
            known = ", ".join(sorted(connector.events)) or "none"
            raise SpecInvalid("trigger", [{"pointer": "/event", "reason": f"connector {spec.connector!r} has no event {spec.event!r} (events: {known})"}])
    return config


def _hint(secret: str) -> str:
    return f"{secret[:6]}...{secret[-4:]}" if len(secret) >= 16 else "..." + secret[-2:]


def _signing_secret(body: WebhookTriggerIn) -> tuple[str, bool]:
    """The trigger's signing secret and whether it was generated here (then it is shown once)."""
    if body.signature == HUBSPOT_V3:
        if not body.signing_secret:
            raise SpecInvalid("trigger", [{"pointer": "/signing_secret", "reason": "is required for hubspot_v3: "
                                                                                  "the HubSpot app's client secret"}])
        return body.signing_secret, False
    if body.signing_secret is None:
        return new_standard_secret(), True
    problem = standard_secret_problem(body.signing_secret)
    if problem:
        raise SpecInvalid("trigger", [{"pointer": "/signing_secret", "reason": problem}])
    return body.signing_secret, False


# -- workflows ------------------------------------------------------------------------


@router.get("/workflows", name="workflow.list", response_model=PageOut[WorkflowOut])
def list_workflows(
    db: Db,
    principal: Annotated[Principal, require("workflows", "read")],
    page: ListParams,
    status: WorkflowStatus | None = None,
    type: WorkflowType | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Search in key and name.")] = None,
) -> Any:
    """Workflows of the organization (sort: created_at, updated_at, key, name)."""
    with tenant_tx(db, principal) as tx:
        return page_out(store.Workflows(tx).list(principal.org_id, page.query(), status=status, type=type, search=q), dict)


@router.post("/workflows", name="workflow.create", response_model=WorkflowDetailOut, status_code=201)
def create_workflow(body: SpecBody, db: Db, principal: Annotated[Principal, require("workflows", "write")]) -> Any:
    """Create a workflow with a WorkflowSpec as its draft (JSON ``spec`` or YAML ``spec_yaml``).

    The spec's ``id`` is the workflow's key; its ``tier`` the type. A spec that does not validate
    is refused with 422 ``spec_invalid`` listing each JSON pointer in ``errors``. Whether its
    actions exist is checked by validate and publish, not here: a draft may be unfinished.
    """
    spec = _workflow_spec(body)
    with tenant_tx(db, principal) as tx:
        return store.Workflows(tx).create(principal.org_id, spec, created_by=principal.actor_id)


@router.get("/workflows/{workflow_id}", name="workflow.get", response_model=WorkflowDetailOut)
def get_workflow(workflow_id: str, db: Db, principal: Annotated[Principal, require("workflows", "read")]) -> Any:
    """One workflow (by id or key) with its draft and deployments."""
    with tenant_tx(db, principal) as tx:
        return store.Workflows(tx).get(principal.org_id, workflow_id)


@router.put("/workflows/{workflow_id}/draft", name="workflow.update_draft", response_model=WorkflowDetailOut)
def replace_draft(
    workflow_id: str, body: SpecBody, db: Db, principal: Annotated[Principal, require("workflows", "write")]
) -> Any:
    """Replace the draft. Its ``id`` must stay the workflow's key; published versions are untouched."""
    spec = _workflow_spec(body)
    with tenant_tx(db, principal) as tx:
        return store.Workflows(tx).replace_draft(principal.org_id, workflow_id, spec)


@router.post("/workflows/{workflow_id}/validate", name="workflow.validate", response_model=ValidationOut)
def validate_workflow(
    workflow_id: str,
    db: Db,
    runs: RunsDep,
    principal: Annotated[Principal, require("workflows", "read")],
    body: Annotated[SpecBody | None, Body(description="A spec to check instead of the stored draft.")] = None,
) -> Any:
    """Check the draft (or the spec sent) against the organization's connectors without saving:
    unknown connectors or actions, expressions that do not parse, references to missing steps.
    Needs only ``workflows:read``: it changes nothing and shows nothing a reader cannot see."""
    with tenant_tx(db, principal) as tx:
        workflow = store.Workflows(tx).get(principal.org_id, workflow_id)
        try:
            data = spec_data(body, "workflow") if body is not None else workflow["draft"]
            spec = validated(WorkflowSpec, data, "workflow")
        except SpecInvalid as exc:
            return {"valid": False, "problems": exc.errors}
        problems = _check(runs, tx, principal.org_id, spec)
    return {"valid": not problems, "problems": problems}


@router.post(
    "/workflows/{workflow_id}/publish", name="workflow.publish", response_model=VersionDetailOut, status_code=201,
    openapi_extra={"x-idempotent": True},
)
def publish_workflow(
    workflow_id: str, db: Db, runs: RunsDep, principal: Annotated[Principal, require("workflows", "publish")]
) -> Any:
    """Publish the draft as the next immutable version (v1, v2, ...). Refused with 422 when the
    draft does not check against the connectors, 409 when it is unchanged since the last version."""
    with tenant_tx(db, principal) as tx:
        workflows = store.Workflows(tx)
        workflow = workflows.get(principal.org_id, workflow_id)
        problems = _check(runs, tx, principal.org_id, loaded(WorkflowSpec, workflow["draft"], "workflow"))
        if problems:
            raise SpecInvalid("workflow", problems)
        return _version_out(workflows.publish(principal.org_id, workflow["id"], created_by=principal.actor_id))


@router.get("/workflows/{workflow_id}/versions", name="workflow_version.list", response_model=PageOut[VersionOut])
def list_versions(
    workflow_id: str, db: Db, principal: Annotated[Principal, require("workflows", "read")], page: ListParams
) -> Any:
    """Published versions, without specs (sort: version, created_at; default newest first)."""
    with tenant_tx(db, principal) as tx:
        return page_out(store.Workflows(tx).versions(principal.org_id, workflow_id, page.query("-version")), _version_out)


@router.get("/workflows/{workflow_id}/versions/{version}", name="workflow_version.get", response_model=VersionDetailOut)
def get_version(
    workflow_id: str, version: VersionNumber, db: Db, principal: Annotated[Principal, require("workflows", "read")]
) -> Any:
    """One published version, spec included."""
    with tenant_tx(db, principal) as tx:
        return _version_out(store.Workflows(tx).version(principal.org_id, workflow_id, version))


@router.post("/workflows/{workflow_id}/deploy", name="workflow.deploy", response_model=DeploymentOut)
def deploy_workflow(
    workflow_id: str, body: DeployIn, db: Db, principal: Annotated[Principal, require("workflows", "publish")]
) -> Any:
    """Make a published version the one that runs in an environment (replacing the one deployed there).
    A Test key cannot deploy to production (403)."""
    with tenant_tx(db, principal) as tx:
        check_environment(tx, principal, body.environment)
        return store.Workflows(tx).deploy(
            principal.org_id, workflow_id, body.environment, body.version, deployed_by=principal.actor_id
        )


@router.get("/workflows/{workflow_id}/deployments", name="workflow.deployments", response_model=list[DeploymentOut])
def list_deployments(workflow_id: str, db: Db, principal: Annotated[Principal, require("workflows", "read")]) -> Any:
    """Where each version runs, by environment."""
    with tenant_tx(db, principal) as tx:
        workflows = store.Workflows(tx)
        return workflows.deployments(principal.org_id, workflows.get(principal.org_id, workflow_id)["id"])


@router.delete("/workflows/{workflow_id}/deployments/{environment}", name="workflow.undeploy", status_code=204)
def undeploy_workflow(
    workflow_id: str, environment: str, db: Db, principal: Annotated[Principal, require("workflows", "publish")]
) -> Response:
    """Stop running the workflow in an environment (id or slug). A Test key cannot touch production (403)."""
    with tenant_tx(db, principal) as tx:
        check_environment(tx, principal, environment)
        store.Workflows(tx).undeploy(principal.org_id, workflow_id, environment)
    return Response(status_code=204)


@router.delete("/workflows/{workflow_id}", name="workflow.delete", status_code=204)
def delete_workflow(
    workflow_id: str,
    db: Db,
    principal: Annotated[Principal, require("workflows", "write")],
    archive: Annotated[bool, Query(description="Archive instead: versions and executions stay; it no longer runs.")] = False,
) -> Response:
    """Delete a workflow with its versions, triggers and executions (409 while deployed), or archive it."""
    with tenant_tx(db, principal) as tx:
        workflows = store.Workflows(tx)
        if archive:
            workflows.archive(principal.org_id, workflow_id)
        else:
            workflows.delete(principal.org_id, workflow_id)
    return Response(status_code=204)


# -- triggers -------------------------------------------------------------------------
# Webhook triggers fire on deliveries (api/_hooks.py, runtime/_webhooks.py); schedule triggers
# fire from the workers' schedulers (runtime/_schedules.py); app-event polling is stored
# configuration until the runtime polls it.


@router.get("/workflows/{workflow_id}/triggers", name="trigger.list", response_model=PageOut[TriggerOut])
def list_triggers(
    workflow_id: str,
    db: Db,
    principal: Annotated[Principal, require("workflows", "read")],
    page: ListParams,
    kind: Literal["webhook", "schedule", "app_event"] | None = None,
    enabled: bool | None = None,
) -> Any:
    """A workflow's triggers (sort: created_at, updated_at)."""
    with tenant_tx(db, principal) as tx:
        result = store.Triggers(tx).list(principal.org_id, page.query(), workflow_ref=workflow_id, kind=kind, enabled=enabled)
    return page_out(result, _trigger_out)


# Not idempotency-stored: a webhook trigger's signing secret is shown once, and a stored response
# would keep it in plaintext (a retry creates a second trigger instead).
@router.post(
    "/workflows/{workflow_id}/triggers",
    name="trigger.create",
    response_model=TriggerCreatedOut,
    status_code=201,
    openapi_extra={"x-idempotent": False},
)
def create_trigger(
    workflow_id: str,
    body: TriggerIn,
    db: Db,
    runs: RunsDep,
    encryptor: Encryptor,
    principal: Annotated[Principal, require("workflows", "write")],
) -> Any:
    """Attach a trigger.

    webhook: runs the workflow for ``customer`` on each verified delivery to its ``path``
    (``POST /v1/hooks/{org_id}/{trigger_id}``), optionally only when ``filter`` yields true.
    Deliveries are signed per ``signature``: Standard Webhooks with a secret generated here and
    returned once (or the sender's own ``signing_secret``), or HubSpot v3 with the HubSpot app's
    client secret; the secret is stored encrypted. schedule: exactly one of ``cron`` (checked with
    croniter), ``interval``, ``daily``, ``weekly`` or ``monthly``, read in ``timezone`` (default:
    the organization's); it fires, like the schedule in the workflow's spec, for every active
    customer of each environment the workflow is deployed to (``GET /v1/schedules``). app_event:
    ``connector`` (a key) and ``event``, which must be one of the connector's events (stored
    configuration: nothing polls it yet).
    """
    fields = body.model_dump(exclude={"kind", "enabled", "signature", "signing_secret"}, exclude_none=True)
    with tenant_tx(db, principal) as tx:
        store.Workflows(tx).get(principal.org_id, workflow_id)
        config = _trigger_config(runs, tx, principal, body.kind, fields)
        trigger_id = store.new_id("trg")
        shown = None
        if isinstance(body, WebhookTriggerIn):
            secret, generated = _signing_secret(body)
            shown = secret if generated else None
            sealed = encryptor.encrypt(tx, principal.org_id, secret.encode(), secret_purpose(trigger_id))
            config |= {"path": hook_path(principal.org_id, trigger_id), "signature": body.signature,
                       "signing_secret_hint": _hint(secret), "signing_secret": base64.b64encode(sealed).decode()}
        row = store.Triggers(tx).create(principal.org_id, workflow_id, body.kind, config, enabled=body.enabled,
                                        trigger_id=trigger_id)
    return _trigger_out(row) | {"signing_secret": shown}


@router.get("/triggers/{trigger_id}", name="trigger.get", response_model=TriggerOut)
def get_trigger(trigger_id: str, db: Db, principal: Annotated[Principal, require("workflows", "read")]) -> Any:
    """One trigger (a webhook's signing secret is never shown again)."""
    with tenant_tx(db, principal) as tx:
        return _trigger_out(store.Triggers(tx).get(principal.org_id, trigger_id))


@router.patch("/triggers/{trigger_id}", name="trigger.update", response_model=TriggerOut)
def update_trigger(
    trigger_id: str, patch: TriggerPatch, db: Db, runs: RunsDep,
    principal: Annotated[Principal, require("workflows", "write")],
) -> Any:
    """Switch a trigger on or off, or change its settings (of its own kind only)."""
    changes = patch.model_dump(exclude_unset=True)
    enabled = changes.pop("enabled", None)
    own = {"webhook": {"payload", "customer", "filter"},
           "schedule": {"cron", "interval", "daily", "weekly", "monthly", "timezone"},
           "app_event": {"connector", "event"}}
    with tenant_tx(db, principal) as tx:
        triggers = store.Triggers(tx)
        row = triggers.get(principal.org_id, trigger_id)
        foreign = sorted(set(changes) - own[row["kind"]])
        if foreign:
            raise store.InvalidInput("trigger", foreign[0], f"does not apply to a {row['kind']} trigger")
        config = None
        if changes:
            # null clears a setting (a webhook's payload schema); required ones are then refused.
            current = {k: v for k, v in row["config"].items() if k in own[row["kind"]]}
            merged = {k: v for k, v in (current | changes).items() if v is not None}
            settings = _trigger_config(runs, tx, principal, row["kind"], merged)
            config = {k: v for k, v in row["config"].items() if k not in own[row["kind"]]} | settings
        return _trigger_out(triggers.update(principal.org_id, trigger_id, config=config, enabled=enabled))


@router.delete("/triggers/{trigger_id}", name="trigger.delete", status_code=204)
def delete_trigger(trigger_id: str, db: Db, principal: Annotated[Principal, require("workflows", "write")]) -> Response:
    """Remove a trigger."""
    with tenant_tx(db, principal) as tx:
        store.Triggers(tx).delete(principal.org_id, trigger_id)
    return Response(status_code=204)


# -- schedules ------------------------------------------------------------------------


@router.get("/schedules", name="schedule.list", response_model=PageOut[ScheduleOut])
def list_schedules(
    db: Db,
    principal: Annotated[Principal, require("workflows", "read")],
    page: ListParams,
    workflow: Annotated[str | None, Query(max_length=128, description="Workflow id or key.")] = None,
    customer: Annotated[str | None, Query(max_length=128, description="Customer id (default: the x-fastn-account-tenant-id customer).")] = None,
) -> Any:
    """The schedules that fire (read-only): one per schedule trigger of a deployed workflow and
    active customer of the deployment's environment, with its next and last slot. Deploying,
    undeploying, archiving, customers and the organization's time zone keep them in step. A
    request naming a customer sees only that customer's."""
    with db.tenant(principal.org_id, principal.customer_id) as tx:
        workflow_id = store.Workflows(tx).get(principal.org_id, workflow)["id"] if workflow else None
        result = store.Schedules(tx).list(principal.org_id, page.query("-created_at"), workflow_id=workflow_id,
                                          customer_id=customer or principal.customer_id,
                                          hidden_environment=principal.hidden_environment)
    return page_out(result, dict)


# -- executions -----------------------------------------------------------------------


@router.post("/workflows/{workflow_id}/runs", name="execution.create", response_model=ExecutionDetailOut, status_code=201,
             responses={202: {"model": ExecutionDetailOut, "description": "A Standard or Long workflow's execution, "
                                                                        "queued for a worker (poll GET /v1/executions/{id})."}})
async def run_workflow(
    workflow_id: str,
    body: RunIn,
    request: Request,
    response: Response,
    runs: RunsDep,
    db: Db,
    principal: Annotated[Principal, require("workflows", "execute")],
) -> Any:
    """Run a workflow now, inline, for the customer named by ``x-fastn-account-tenant-id``.

    The version is ``version``, else the one deployed to the customer's environment, else the
    latest published; a dry run may run the ``draft``. The customer's connections give the
    credentials, the environment's secrets the secrets. One event is charged to the customer's
    quota before the run starts. A dry run sends only GET and HEAD requests: the others are
    answered with a synthetic response derived from the request and marked ``sent: false`` in the
    trace. By the workflow's tier: an Instant workflow (and every dry run) runs inline and answers
    201 with the finished execution, whether it completed or failed; a Standard or Long workflow's
    execution is queued for a durable worker and answered 202 with its id and status ``queued``.
    The run itself is ``runtime.Runs.start``, shared with every other way of starting one.
    """
    # The request's own transactions: the execution's row commits with the route's audit entry.
    transactions = Transactions(open=partial(tenant_tx, db), step=in_thread)
    started = await runs.start(
        principal, workflow_id, customer_id=principal.customer(), version=body.version, draft=body.draft,
        dry_run=body.dry_run, input=body.input, triggered_by="manual", transactions=transactions,
    )
    note_warnings(request, started.warnings)
    if started.durable:
        response.status_code = 202
        response.headers["Location"] = f"/v1/executions/{started.execution['id']}"
    return started.execution


@router.get("/executions", name="execution.list", response_model=PageOut[ExecutionOut])
def list_executions(
    db: Db,
    principal: Annotated[Principal, require("workflows", "read")],
    page: ListParams,
    workflow: Annotated[str | None, Query(max_length=128, description="Workflow id or key.")] = None,
    status: ExecutionStatus | None = None,
    dry_run: bool | None = None,
    customer: Annotated[str | None, Query(max_length=128, description="Customer id (default: the x-fastn-account-tenant-id customer).")] = None,
    workflow_id: Annotated[
        str | None, Query(max_length=128, deprecated=True, description="The former name of `workflow`.")
    ] = None,
    version: Annotated[int | None, Query(ge=0, le=2**31 - 1, description="Workflow version run (0: the draft).")] = None,
    triggered_by: TriggeredBy | None = None,
    started_from: Annotated[datetime | None, Query(alias="from", description=(
        "Started at or after this time (ISO 8601 with a time zone)."))] = None,
    started_to: Annotated[datetime | None, Query(alias="to", description=(
        "Started before this time (ISO 8601 with a time zone)."))] = None,
) -> Any:
    """Executions, newest first (sort: started_at), without traces. A request naming a customer
    in x-fastn-account-tenant-id (and a key bound to one) sees only that customer's; ``customer``
    filters an organization-level caller's list. Filters combine: ``status``, ``workflow`` (id or
    key), ``version``, ``customer``, ``triggered_by``, ``dry_run`` and the ``from``/``to`` range of
    ``started_at``."""
    if workflow and workflow_id and workflow != workflow_id:
        raise store.InvalidInput("execution", "workflow", "send workflow or its former name workflow_id, not both")
    with db.tenant(principal.org_id, principal.customer_id) as tx:
        result = store.Executions(tx).list(
            principal.org_id, page.query("-started_at"), workflow_ref=workflow or workflow_id, status=status, dry_run=dry_run,
            customer_id=customer or principal.customer_id, hidden_environment=principal.hidden_environment,
            version=version, triggered_by=triggered_by, started_from=started_from, started_to=started_to,
        )
    return page_out(result, dict)


@router.get("/executions/{execution_id}", name="execution.get", response_model=ExecutionDetailOut)
def get_execution(execution_id: str, db: Db, principal: Annotated[Principal, require("workflows", "read")]) -> Any:
    """One execution with its trace. Naming a customer in x-fastn-account-tenant-id scopes the
    request to it, as it scopes the list: another customer's execution is then a 404."""
    # Bound to the customer the request names (any caller), not only to a key's bound customer.
    with db.tenant(principal.org_id, principal.customer_id) as tx:
        return store.Executions(tx).get(principal.org_id, execution_id)


@router.post("/executions/{execution_id}/cancel", name="execution.cancel", response_model=ExecutionDetailOut)
async def cancel_execution(
    execution_id: str, runs: RunsDep, db: Db, principal: Annotated[Principal, require("workflows", "execute")],
) -> Any:
    """Cancel a queued or running execution: it is recorded ``cancelled`` at once. A queued one
    never starts; a running inline one stops; a running durable one stops at its next step
    boundary (the connector call in flight completes). 409 when it already finished; 404 for an
    execution of another organization (or, naming a customer, of another customer)."""
    transactions = Transactions(open=partial(tenant_tx, db, named_customer=True), step=in_thread)
    return await runs.cancel(principal, execution_id, transactions=transactions)


@router.post("/executions/{execution_id}/rerun", name="execution.rerun", response_model=ExecutionDetailOut,
             status_code=201,
             responses={202: {"model": ExecutionDetailOut, "description": "A Standard or Long workflow's re-run, "
                                                                        "queued for a worker."}})
async def rerun_execution(
    execution_id: str, request: Request, response: Response, runs: RunsDep, db: Db,
    principal: Annotated[Principal, require("workflows", "execute")],
) -> Any:
    """Re-run a failed (or timed out, or cancelled) execution from its failed step: a new
    execution (``rerun_of`` names the original) with the same version, customer, input and
    trigger, in which the calls of the steps before the failed one are answered from the
    original's run record and not sent again. Answers like a run: 201 with the finished execution
    (Instant), 202 queued (Standard, Long). 409 when the execution did not fail or has no run
    record to re-run from; 404 for another organization's (or customer's) execution."""
    transactions = Transactions(open=partial(tenant_tx, db, named_customer=True), step=in_thread)
    started = await runs.rerun(principal, execution_id, transactions=transactions)
    note_warnings(request, started.warnings)
    if started.durable:
        response.status_code = 202
        response.headers["Location"] = f"/v1/executions/{started.execution['id']}"
    return started.execution
