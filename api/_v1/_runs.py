"""Running a workflow inline for one customer ("run now"), for real or as a dry run.

A run is prepared (``prepare_run``) in two parts. First one tenant transaction (``plan_run``)
reads the version (the one deployed to the customer's environment, else the latest published,
or the draft for a dry run), the workflows its call steps reach, the connectors they use (latest
published versions; a dry run falls back to the latest draft), the customer's connection for
each and the environment's secrets. Then each connection's credentials are read
(``switchboard.credentials``), OAuth tokens refreshed where they expire, each refresh committed
in its own transaction. Nothing is sent to a connector before the plan holds together: a
workflow that does not check against its connectors, or a connector without a usable
connection, refuses the run.

``execute`` then composes the engine as the CLI does (``switchboard/engine_runtime.py``): an
``ActionExecutor`` over the process's guarded HTTP client with the credentials, secrets by name,
and the ``Interpreter``. The credentials come from a ``ConnectionCredentials`` provider: tokens
the engine renews mid-run (after a 401, or at expiry) are stored on their connection as soon as
they are issued, since the provider has revoked the refresh token the connection held. A dry
run wraps the client in ``engine.workflow.DryRunHttp``: GETs are sent, other requests are
answered synthetically and marked ``sent: false`` in the trace.

Traces hold no credentials: the executor scrubs echoed credential values and masks
credential-like fields and query parameters, and the interpreter replaces secret values with
``[secret:NAME]`` in records, outputs and traces.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


import store
from api._auth import Principal
from api._v1._common import in_thread, tenant_tx
from api._v1._specs import loaded, problems_out
from api.errors import RunInputInvalid, RunRefused, SpecInvalid
from engine import check_workflow
from engine.actions import ActionExecutor
from engine.auth import Authenticator, OAuth2Client, StaticCredentials, placeholder_credentials
from engine.errors import WorkflowInputInvalid
from engine.specs import CallStep, ConnectorSpec, WorkflowSpec, iter_steps
from engine.workflow import Dependencies, DryRunHttp, DryRunInvoker, Interpreter, StaticSecrets, validate_input
from switchboard.credentials import ConnectionCredentials, connection_for_run, credentials_for_connection

# An inline run holds a request open; longer work belongs to durable executions (later issues).
RUN_DEADLINE_SECONDS = 300.0
MAX_CALL_DEPTH = 10


@dataclass
class RunPlan:
    """Everything a run needs, read from the store before anything is sent."""

    org_id: str
    customer_id: str
    environment_id: str
    workflow_id: str
    version: int  # 0: the draft
    spec: WorkflowSpec
    input: dict[str, Any]
    dry_run: bool
    connectors: dict[str, ConnectorSpec]
    called: dict[tuple[str, int | None], WorkflowSpec] = field(default_factory=dict)
    # connector key -> the customer's connection it runs with (absent: none, or placeholders in a dry run)
    connections: dict[str, str] = field(default_factory=dict)
    credentials: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    # Where the engine gets credentials and stores renewed tokens (``prepare_run`` sets it).
    provider: Any = field(default=None, repr=False)


@dataclass
class RunOutcome:
    status: str  # "succeeded" | "failed"
    output: Any
    error: dict[str, Any] | None
    trace: list[dict[str, Any]]


def secrets_for(tx: store.Tx, org_id: str, environment_id: str, encryptor: Any) -> dict[str, str]:
    """The environment's secrets, decrypted, by name."""
    return store.Secrets(tx).values_for_run(org_id, environment_id, encryptor)


def placeholders(connector: ConnectorSpec) -> dict[str, Any]:
    """Credentials of the right shape and no value, for dry runs of connectors the customer has not connected."""
    values = placeholder_credentials(connector.auth)
    for action in connector.actions.values():
        if action.auth is not None:
            values = {**placeholder_credentials(action.auth), **values}
    return values


def _called(tx: store.Tx, org_id: str, environment_id: str, spec: WorkflowSpec,
            found: dict[tuple[str, int | None], WorkflowSpec], depth: int = 0) -> None:
    """Collect the workflows ``spec``'s call steps run (published versions), recursively. A call
    that names nothing known is left out: the run fails at that step, naming it."""
    if depth >= MAX_CALL_DEPTH:
        return
    workflows = store.Workflows(tx)
    for step in iter_steps(spec.steps):
        if not isinstance(step, CallStep):
            continue
        key = (step.call.workflow, step.call.version)
        if key in found:
            continue
        try:
            if step.call.version is not None:
                row = workflows.version(org_id, step.call.workflow, step.call.version)
            else:
                row = workflows.version_for(org_id, step.call.workflow, environment_id)
        except store.NotFound:
            row = None
        if row is None:
            continue
        found[key] = loaded(WorkflowSpec, row["spec"], "workflow")
        _called(tx, org_id, environment_id, found[key], found, depth + 1)


# Connector versions never change once stored (each edit is a new version), so a parsed spec can
# be kept by version id; parsing checks every action's JSON Schemas and costs more than the query.
_PARSED_MAX = 256
_parsed: OrderedDict[tuple[str, str], ConnectorSpec] = OrderedDict()
_parsed_lock = threading.Lock()


def _parsed_spec(org_id: str, row: dict[str, Any]) -> ConnectorSpec:
    key = (org_id, row["id"])
    with _parsed_lock:
        spec = _parsed.get(key)
        if spec is not None:
            _parsed.move_to_end(key)
            return spec
    spec = loaded(ConnectorSpec, row["spec"], "connector")
    with _parsed_lock:
        _parsed[key] = spec
        while len(_parsed) > _PARSED_MAX:
            _parsed.popitem(last=False)
    return spec


def connector_specs(tx: store.Tx, org_id: str, keys: set[str], *, published_only: bool) -> dict[str, ConnectorSpec]:
    """The specs of the connectors ``keys`` that exist (see ``store.Connectors.specs``). The specs
    are shared between runs: callers must not change them."""
    rows = store.Connectors(tx).specs(org_id, sorted(keys), published_only=published_only)
    return {key: _parsed_spec(org_id, row) for key, row in rows.items()}


def plan_run(tx: store.Tx, *, org_id: str, customer_id: str, workflow_ref: str, version: int | None, draft: bool,
             dry_run: bool, input: dict[str, Any], encryptor: Any) -> RunPlan:
    """Read everything a run needs from the store, all but the connections' credentials (see
    ``prepare_run``). Raises ``NotFound`` (workflow, version, customer), ``RunRefused`` (409:
    nothing published, an archived workflow, a suspended customer, a connector without a
    published version or a connection), ``ConnectionNeedsReconnect`` (409), ``SpecInvalid`` (the
    workflow does not check against its connectors) and ``RunInputInvalid`` (422)."""
    customer = store.Customers(tx).get(org_id, customer_id)
    if customer["status"] != "active":
        raise RunRefused("customer", f"customer {customer_id!r} is {customer['status']}")
    workflows = store.Workflows(tx)
    workflow = workflows.get(org_id, workflow_ref)
    if workflow["status"] == "archived":
        raise RunRefused("workflow", f"workflow {workflow['key']!r} is archived")
    if draft:
        number, data = store.DRAFT_VERSION, workflow["draft"]
    else:
        row = (workflows.version(org_id, workflow["id"], version) if version is not None
               else workflows.version_for(org_id, workflow["id"], customer["environment_id"]))
        if row is None:
            raise RunRefused("version", f"workflow {workflow['key']!r} has no published version; publish it, "
                                        "or dry-run the draft with draft: true")
        number, data = row["version"], row["spec"]
    spec = loaded(WorkflowSpec, data, "workflow")
    try:
        validate_input(spec, input)
    except WorkflowInputInvalid as exc:
        raise RunInputInvalid(spec.id, problems_out(exc.problems)) from None
    called: dict[tuple[str, int | None], WorkflowSpec] = {}
    _called(tx, org_id, customer["environment_id"], spec, called)
    keys = set(spec.connectors()).union(*(s.connectors() for s in called.values()))
    connectors = connector_specs(tx, org_id, keys, published_only=not dry_run)
    for key in sorted(keys - set(connectors)):
        what = "no published version" if not dry_run else "no version"
        raise RunRefused("connector", f"connector {key!r} has {what} in this organization", connector=key)
    problems = check_workflow(spec, connectors)
    if problems:
        raise SpecInvalid("workflow", problems_out(problems))
    connections: dict[str, str] = {}
    credentials: dict[str, dict[str, Any]] = {}
    for key, connector in sorted(connectors.items()):
        connection_id = connection_for_run(tx, org_id, customer_id, key)
        if connection_id is not None:
            connections[key] = connection_id
        elif connector.credential_fields():
            if not dry_run:
                raise RunRefused("connection", f"customer {customer_id!r} has no connection to {key!r}", connector=key)
            credentials[key] = placeholders(connector)
        else:
            credentials[key] = {}
    return RunPlan(
        org_id=org_id, customer_id=customer_id, environment_id=customer["environment_id"], workflow_id=workflow["id"],
        version=number, spec=spec, input=input, dry_run=dry_run, connectors=connectors, called=called,
        connections=connections, credentials=credentials,
        secrets=secrets_for(tx, org_id, customer["environment_id"], encryptor),
    )


async def prepare_run(db: store.Database, principal: Principal, *, customer_id: str, workflow_ref: str,
                      version: int | None, draft: bool, dry_run: bool, input: dict[str, Any], encryptor: Any,
                      http: Any, clock: Callable[[], datetime]) -> RunPlan:
    """``plan_run`` in the caller's tenant transaction, then the credentials of each connection the
    run uses (``credentials_for_connection``: OAuth tokens expiring within a minute of ``clock()``
    are refreshed through ``http``, each refresh committed before the run goes on) and the provider
    that keeps tokens the engine renews. Raises what ``plan_run`` raises, and
    ``ConnectionNeedsReconnect`` (a refresh got ``invalid_grant``), ``OAuthAppMissing`` and the
    engine's ``TokenEndpointUnavailable`` and ``OAuthError``."""

    def plan() -> RunPlan:
        with tenant_tx(db, principal) as tx:
            return plan_run(tx, org_id=principal.org_id, customer_id=customer_id, workflow_ref=workflow_ref,
                            version=version, draft=draft, dry_run=dry_run, input=input, encryptor=encryptor)

    run = await in_thread(plan)
    for key, connection_id in sorted(run.connections.items()):
        run.credentials[key] = await credentials_for_connection(
            db, run.org_id, connection_id, customer_id=customer_id, encryptor=encryptor, http=http, clock=clock
        )
    run.provider = ConnectionCredentials(db, run.org_id, customer_id, encryptor, run.credentials, run.connections)
    return run


async def execute(plan: RunPlan, http: Any, run_id: str) -> RunOutcome:
    """Run ``plan`` inline with id ``run_id``; the outcome holds no secret or credential value."""
    provider = plan.provider if plan.provider is not None else StaticCredentials(plan.credentials)
    auth = Authenticator(provider, OAuth2Client(http))
    # Rate limits are per connection: the customer's, qualified by the organization because
    # customer ids are chosen by each organization and may repeat across them.
    executor = ActionExecutor(
        plan.connectors, http=DryRunHttp(http) if plan.dry_run else http, auth=auth,
        trace_bodies=plan.dry_run, connection_scope=f"{plan.org_id}/{plan.customer_id}",
    )
    invoker = DryRunInvoker(executor, plan.connectors) if plan.dry_run else executor

    def lookup(key: str, version: int | None) -> WorkflowSpec | None:
        return plan.called.get((key, version))

    deps = Dependencies(invoker=invoker, secrets=StaticSecrets(plan.secrets), workflows=lookup)
    try:
        async with asyncio.timeout(RUN_DEADLINE_SECONDS):
            result = await Interpreter(deps).run(plan.spec, plan.input, run_id=run_id)
    except TimeoutError:
        error = {"code": "run_deadline_exceeded", "step": None,
                 "message": f"the run did not finish within {RUN_DEADLINE_SECONDS:g} seconds"}
        return RunOutcome("failed", None, error, [])
    error = None
    if result.error is not None:
        # The record's copy of the message has secret values redacted; the exception's may not.
        recorded = result.record.error
        error = {
            "code": result.error.code,
            "step": getattr(result.error, "step_id", None),
            "message": recorded.message if recorded is not None else "the run failed",
            "cause": recorded.cause_code if recorded is not None else None,
        }
    if plan.dry_run:
        trace = invoker.annotate(result.traces)
    else:
        trace = [t.to_dict() for t in result.traces]
    return RunOutcome(result.status, result.record.output if result.succeeded else None, error, trace)
