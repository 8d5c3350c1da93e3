"""Running a workflow for one customer: the use case every trigger shares (the run route, the CLI,
webhook events, schedules, later MCP calls and agents' tools).

:meth:`Runs.start` authorizes the caller, plans the run, charges one event to the customer's quota
and records the execution; by the workflow's tier it then runs the engine inline and records the
outcome with its run record (Instant), or records it ``queued`` for a durable worker (Standard,
Long). :meth:`Runs.run` always runs inline. Each part is also callable alone (:meth:`Runs.plan`,
:meth:`Runs.execute`) for callers that compose them differently (a dry run from an agent's tool,
a durable worker).

Planning reads, in one tenant transaction, the version (``version``; else the one deployed to the
customer's environment, else the latest published; or the draft for a dry run), the workflows its
call steps reach, the connectors they use (latest published versions; a dry run falls back to the
latest draft), the customer's connection for each and the environment's secrets. Then each
connection's credentials are read (OAuth tokens refreshed where they expire, each refresh committed
in its own transaction). Nothing is sent to a connector before the plan holds together.

Traces and records hold no credentials: the executor scrubs echoed credential values and masks
credential-like fields, and the interpreter replaces secret values with ``[secret:NAME]``. The
stored run record (with the specs the run used) lets :meth:`Runs.replay` re-run an execution
offline, answering every call from the record.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

import store
from engine import check_workflow
from engine.auth import StaticCredentials
from engine.errors import EngineError
from engine.specs import CallStep, ConnectorSpec, WorkflowSpec, iter_steps
from engine.workflow import (
    MAX_CALL_DEPTH,
    ActionCall,
    ActionInvoker,
    Dependencies,
    Interpreter,
    Redactor,
    RunRecord,
    RunResult,
    WorkflowLookup,
    WorkflowRegistry,
    validate_input,
)
from runtime._access import PRODUCTION, Principal, check_customer, tenant_tx
from runtime._credentials import ConnectionCredentials, connection_for_run, credentials_for_connection
from runtime._engine import build_engine, lookup_in, placeholders
from runtime._rate_limits import SharedRateLimits
from runtime._durable import queue_partition
from runtime._escalation import NEXT_TIER, CarryingInvoker
from runtime._overlap import Overlap
from runtime._resume import ResumeInvoker, reusable_calls
from runtime._specs import SpecCache, loaded, problems_out, stored
from runtime.errors import RunRefused, SpecInvalid

if TYPE_CHECKING:
    from runtime._platform import Platform

# What the run record column holds, so a stored record stays readable as the format evolves.
RECORD_FORMAT = 1
# Shorter credential values (a region code, "US") would redact ordinary words out of the record.
MIN_SCRUBBED = 4


# How a caller's transactions are opened and its blocking steps run. The API passes its own, so
# that the execution a run records commits in the same transaction as the request's audit entry.
TxOpener = Callable[[Principal], AbstractContextManager[store.Tx]]
StepRunner = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Transactions:
    """Where a run opens its transactions (``open(principal)``) and runs blocking work (``step``).
    The default: a tenant transaction of the platform's pool, work in a worker thread."""

    open: TxOpener
    step: StepRunner


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
    # Where the engine gets credentials and stores renewed tokens (``Runs.plan`` sets it).
    provider: ConnectionCredentials | None = field(default=None, repr=False)
    # connector keys whose connection targets the organization's hosted sandbox (runtime._sandboxes)
    sandboxes: tuple[str, ...] = ()


@dataclass
class RunOutcome:
    """How a run ended, with nothing secret in it: ``status`` ``completed``, ``failed`` or
    ``timeout`` (past its deadline)."""

    status: str
    output: Any
    error: dict[str, Any] | None
    trace: list[dict[str, Any]]
    record: dict[str, Any] | None = None  # the stored run record (``RECORD_FORMAT``), None when the run never started


@dataclass
class Started:
    """What :meth:`Runs.run` and :meth:`Runs.start` answer: the execution row (finished, for an
    inline run; ``queued`` for a durable one, ``durable`` true) and the quota warnings charged."""

    execution: dict[str, Any]
    warnings: tuple[str, ...] = ()
    durable: bool = False


def _failure(code: str, message: str) -> RunOutcome:
    return RunOutcome("failed", None, {"code": code, "step": None, "message": message}, [])


class _NoCalls:
    """A replay answers every call from its record; reaching the network would be a bug."""

    async def invoke(self, call: ActionCall) -> Any:
        raise EngineError(f"replay tried to call {call.connector}.{call.action} at {call.step_path}")


class Runs:
    """Workflow runs for customers, over one :class:`~runtime.Platform`."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        # Parsed connector specs, shared by the runs (and checks) of this process.
        self.specs = SpecCache()
        # This process's inline runs: their turns, and cancelling them.
        self.overlap = Overlap(platform)

    # -- the whole use case ------------------------------------------------------------------

    async def run(
        self,
        principal: Principal,
        workflow_ref: str,
        *,
        customer_id: str | None = None,
        version: int | None = None,
        draft: bool = False,
        dry_run: bool = False,
        input: dict[str, Any] | None = None,
        triggered_by: str = "manual",
        trigger: Any = None,
        charge_event: bool = True,
        transactions: Transactions | None = None,
        **seams: Any,
    ) -> Started:
        """Run ``workflow_ref`` (id or key) now, inline, for ``customer_id`` (default: the customer
        the principal acts for) and record it as an execution, whatever the workflow's tier.

        Needs ``workflows:execute``. Raises before anything is recorded or charged: ``Forbidden``,
        ``BadHeader`` (no customer), ``NotFound``, ``RunRefused``, ``SpecInvalid``,
        ``WorkflowInputInvalid``, ``ConnectionNeedsReconnect`` and the OAuth errors of
        ``credentials_for_connection``; ``store.QuotaExceeded`` when the event quota refuses.
        Whether the run then completes or fails, the finished execution is returned. ``seams``
        (an observer) go to the engine's ``Dependencies``; ``transactions`` replaces where the
        run's transactions open (default :meth:`transactions`). Triggers call :meth:`start`,
        which runs durably the workflows whose tier asks for it.
        """
        return await self.start(principal, workflow_ref, customer_id=customer_id, version=version, draft=draft,
                                dry_run=dry_run, input=input, triggered_by=triggered_by, trigger=trigger,
                                charge_event=charge_event, transactions=transactions, inline=True, **seams)

    async def start(
        self,
        principal: Principal,
        workflow_ref: str,
        *,
        customer_id: str | None = None,
        version: int | None = None,
        input: dict[str, Any] | None = None,
        triggered_by: str = "manual",
        trigger: Any = None,
        charge_event: bool = True,
        dry_run: bool = False,
        draft: bool = False,
        transactions: Transactions | None = None,
        inline: bool | None = None,
        rerun_of: str | None = None,
        **seams: Any,
    ) -> Started:
        """Start an execution of ``workflow_ref`` for ``customer_id``: the one entry point of every
        trigger (the run route, webhooks, schedules, app events, MCP and agents' tools).

        Authorizes (``workflows:execute``), plans (see :meth:`plan`), charges one event to the
        customer's quota and records the execution with its tier and ``triggered_by`` (webhook,
        schedule, app_event, manual, mcp, agent). Then, by the workflow's ``tier``: ``instant``
        (and every dry run, and ``inline=True``) runs now, within the deadline, and the finished
        execution is returned; ``standard`` and ``long`` are recorded ``queued`` and handed to the
        durable queue (a worker runs them, see ``runtime.Worker``), and the queued execution is
        returned with ``durable`` true. Raises what :meth:`run` raises, before anything is recorded.

        ``inline=True`` runs any tier inline; ``inline=False`` queues any tier, Instant included
        (the scheduler's runs: nobody waits for their result).

        ``trigger`` is what the templates see as ``trigger`` (a webhook's payload); it is recorded
        with the execution, so a worker runs a queued one with it. ``charge_event=False`` is for a
        caller that charged the event quota itself (a webhook trigger charges when the event arrives).
        ``rerun_of`` (see :meth:`rerun`) names a failed execution whose calls before its failed
        step are answered from its record.

        Overlap (the workflow's ``concurrency``, see ``engine.specs.ConcurrencySpec``): when the
        workflow limits the runs of one customer, an inline run is recorded ``queued`` and waits
        its turn in arrival order (``Executions.take_turn``; within the deadline, else it ends
        ``timeout`` with code ``overlap_wait_exceeded``), and a durable one waits in its queue
        partition (``runtime._durable``). With ``overlap: coalesce`` a run arriving while another
        is already waiting ends ``cancelled`` (code ``coalesced``) at once. Dry runs never wait.
        """
        principal.require("workflows", "execute")
        customer_id = customer_id or principal.customer()
        principal.may_act_for(customer_id)
        tx = transactions or self.transactions()
        plan = await self.plan(principal, customer_id, workflow_ref, version=version, draft=draft,
                               dry_run=dry_run, input=input or {}, transactions=tx)
        tier = plan.spec.tier
        durable = not dry_run and (inline is False or (inline is None and tier != "instant"))
        limit = None if dry_run else plan.spec.customer_limit()
        coalesce = limit is not None and plan.spec.concurrency.overlap == "coalesce"
        reuse = await self._reusable(principal, rerun_of, tx) if rerun_of else None
        warnings: tuple[str, ...] = ()
        if charge_event:
            charge = await anyio.to_thread.run_sync(self.platform.quotas.charge_event, principal, customer_id)
            warnings = tuple(charge.warnings)
        start = partial(self._start, tx, principal, plan, tier, triggered_by, trigger, rerun_of=rerun_of,
                        coalesce=coalesce)
        if durable:
            partition = queue_partition(plan.org_id, plan.customer_id, plan.workflow_id, limit)
            execution = await tx.step(partial(start, "queued", partition=partition))
            if execution["status"] == "queued":
                # Recorded first, then handed over: a process lost in between leaves it queued, and a
                # worker's sweep hands it over again (enqueueing is idempotent by execution id).
                await anyio.to_thread.run_sync(self.platform.durable.enqueue, {**execution, "queue_partition": partition})
            return Started(execution, warnings, durable=True)
        if limit is None:
            execution = await tx.step(partial(start, "running"))
        else:
            execution = await self.overlap.wait_turn(tx, principal, await tx.step(partial(start, "queued")), limit)
            if execution["status"] != "running":
                return Started(execution, warnings)  # coalesced, cancelled or timed out while it waited
        if reuse is not None:
            redact = await redactor(plan)
            seams["wrap_invoker"] = lambda inner: ResumeInvoker(inner, reuse, redact)
        # An Instant workflow that escalates keeps its completed calls, for the durable run that
        # continues it past the deadline (runtime._escalation).
        carrying: list[CarryingInvoker] = []
        if not dry_run and inline is None and plan.spec.escalate and tier in NEXT_TIER:
            redact, wrap = await redactor(plan), seams.pop("wrap_invoker", None)

            def carry(inner: ActionInvoker) -> ActionInvoker:
                carrying.append(CarryingInvoker(wrap(inner) if wrap else inner, execution["id"], redact))
                return carrying[-1]

            seams["wrap_invoker"] = carry
        try:
            with anyio.CancelScope() as scope:
                self.overlap.running(execution["id"], scope, plan.org_id)
                try:
                    outcome = await self.execute(plan, execution["id"], trigger=trigger, **seams)
                finally:
                    self.overlap.done(execution["id"])
            if scope.cancelled_caught:
                outcome = RunOutcome("cancelled", None, None, [])
        except BaseException:
            with anyio.CancelScope(shield=True):
                await tx.step(self._finish, tx, principal, execution["id"],
                              _failure("internal_error", "the run stopped unexpectedly"))
                self.overlap.finished(execution)
            raise
        if carrying and outcome.status == "timeout":
            partition = queue_partition(plan.org_id, plan.customer_id, plan.workflow_id, limit)
            escalated = await tx.step(self._escalate, tx, principal, execution["id"], tier, carrying[0].completed,
                                      partition, outcome.error)
            self.overlap.finished(execution)
            if escalated["status"] == "queued":
                await anyio.to_thread.run_sync(self.platform.durable.enqueue, {**escalated, "queue_partition": partition})
                return Started(escalated, warnings, durable=True)
        finished = await tx.step(self._finish, tx, principal, execution["id"], outcome)
        self.overlap.finished(execution)
        return Started(finished, warnings)

    async def _reusable(self, principal: Principal, execution_id: str, tx: Transactions) -> dict[str, Any]:
        def read() -> dict[str, Any] | None:
            with tx.open(principal) as t:
                return store.Executions(t).record(principal.org_id, execution_id)

        return reusable_calls(await tx.step(read), execution_id)

    # -- cancel and re-run -------------------------------------------------------------------

    async def cancel(self, principal: Principal, execution_id: str, *,
                     transactions: Transactions | None = None) -> dict[str, Any]:
        """Cancel execution ``execution_id``: it is recorded ``cancelled`` (error code
        ``cancelled``) at once. A queued one never starts; a running inline one stops at once in
        this process, or within ``CANCEL_POLL_SECONDS`` in another; a running durable one stops at
        its next step boundary (the call in flight completes; DBOS ``cancel_workflow``). Needs
        ``workflows:execute``. Raises ``NotFound`` (another tenant's or customer's execution) and
        ``store.Conflict`` (409: it already finished)."""
        principal.require("workflows", "execute")
        tx = transactions or self.transactions()
        who = f"{principal.actor_type}:{principal.actor_id}"

        def mark() -> dict[str, Any]:
            with tx.open(principal) as t:
                return store.Executions(t).cancel(principal.org_id, execution_id, by=who)

        row = await tx.step(mark)
        if row["tier"] != "instant" and row["owner"] is None:
            await anyio.to_thread.run_sync(self.platform.durable.cancel, execution_id)
        self.overlap.cancel_local(execution_id)
        self.overlap.finished(row)
        return {k: v for k, v in row.items() if k != "owner"}

    async def rerun(self, principal: Principal, execution_id: str, *,
                    transactions: Transactions | None = None, triggered_by: str | None = None) -> Started:
        """Re-run a failed execution from its failed step, as a new execution naming it
        (``rerun_of``): the same version, customer, input and trigger; the calls of the steps
        before the failed one are answered from its stored record and not sent again (see
        ``runtime._resume``); it then runs like any start (inline or queued, by tier). Needs
        ``workflows:execute``. Raises ``NotFound`` (another tenant's or customer's execution),
        ``RunRefused`` (409: it did not fail, it was a dry run, or it has no record to re-run
        from) and what :meth:`start` raises."""
        principal.require("workflows", "execute")
        tx = transactions or self.transactions()

        def read() -> dict[str, Any]:
            with tx.open(principal) as t:
                return store.Executions(t).control(principal.org_id, execution_id)

        original = await tx.step(read)
        if original["status"] not in ("failed", "timeout", "cancelled"):
            raise RunRefused("status", f"execution {execution_id!r} is {original['status']}; only a failed, timed out "
                                       "or cancelled execution can be re-run")
        if original["dry_run"]:
            raise RunRefused("dry_run", f"execution {execution_id!r} was a dry run; dry runs are not re-run")
        reusable_calls(original["record"], execution_id)  # refuse before anything is charged
        return await self.start(
            principal, original["workflow_id"], customer_id=original["customer_id"], version=original["version"],
            input=original["input"], triggered_by=triggered_by or original["triggered_by"],
            trigger=original["trigger"], transactions=tx, rerun_of=execution_id,
        )

    def transactions(self) -> Transactions:
        """The default :class:`Transactions`: ``tenant_tx`` on the platform's pool, blocking work in a
        worker thread."""
        return Transactions(open=partial(tenant_tx, self.platform.db), step=anyio.to_thread.run_sync)

    def _start(self, tx: Transactions, principal: Principal, plan: RunPlan, tier: str, triggered_by: str,
               trigger: Any, status: str, *, partition: str | None = None, rerun_of: str | None = None,
               coalesce: bool = False) -> dict[str, Any]:
        with tx.open(principal) as t:
            return store.Executions(t).start(
                plan.org_id, customer_id=plan.customer_id, workflow_id=plan.workflow_id, version=plan.version,
                dry_run=plan.dry_run, input=plan.input, tier=tier, triggered_by=triggered_by, trigger=trigger,
                status=status, rerun_of=rerun_of, queue_partition=partition, coalesce=coalesce,
                # An inline run (running, or queued for its turn) belongs to this process: if it
                # dies, the sweep fails the run. A durable one has no owner here (DBOS owns it).
                owner=self.platform.process_id if partition is None else None,
            )

    def _escalate(self, tx: Transactions, principal: Principal, execution_id: str, tier: str,
                  carried: list[dict[str, Any]], partition: str, error: dict[str, Any] | None) -> dict[str, Any]:
        reason = (error or {}).get("message") or "the run reached its time limit"
        with tx.open(principal) as t:
            return store.Executions(t).escalate(principal.org_id, execution_id, from_tier=tier, to_tier=NEXT_TIER[tier],
                                                reason=reason, carried=carried, queue_partition=partition)

    def _finish(self, tx: Transactions, principal: Principal, execution_id: str, outcome: RunOutcome) -> dict[str, Any]:
        with tx.open(principal) as t:
            return store.Executions(t).finish(
                principal.org_id, execution_id, status=outcome.status, output=outcome.output, error=outcome.error,
                trace=outcome.trace, record=outcome.record,
            )

    # -- planning ------------------------------------------------------------------------------

    async def plan(
        self, principal: Principal, customer_id: str, workflow_ref: str, *, version: int | None = None,
        draft: bool = False, dry_run: bool = False, input: dict[str, Any] | None = None,
        transactions: Transactions | None = None,
    ) -> RunPlan:
        """Read everything a run needs (see the module docstring), then the credentials of each
        connection it uses and the provider that keeps tokens the engine renews.

        Raises ``NotFound`` (workflow, version, customer), ``Forbidden`` (a Test key and a
        production customer), ``RunRefused`` (409: nothing published, an archived workflow, a
        suspended customer, a connector without a published version or a connection),
        ``ConnectionNeedsReconnect`` (409), ``SpecInvalid`` (the workflow does not check against its
        connectors), ``WorkflowInputInvalid`` (422), ``OAuthAppMissing`` and the engine's
        ``TokenEndpointUnavailable`` and ``OAuthError``.
        """
        if draft and not dry_run:
            raise RunRefused("version", "only a dry run can run the draft")

        opener = transactions or self.transactions()

        def read() -> RunPlan:
            with opener.open(principal) as tx:
                return self._read_plan(tx, principal, customer_id, workflow_ref, version, draft, dry_run, input or {})

        plan = await opener.step(read)
        db, encryptor, clock = self.platform.db, self.platform.encryptor, self.platform.clock
        for key, connection_id in sorted(plan.connections.items()):
            plan.credentials[key] = await credentials_for_connection(
                db, plan.org_id, connection_id, customer_id=customer_id, encryptor=encryptor,
                http=self.platform.http, clock=clock,
            )
        plan.provider = ConnectionCredentials(db, plan.org_id, customer_id, encryptor, plan.credentials, plan.connections)
        return plan

    def _read_plan(self, tx: store.Tx, principal: Principal, customer_id: str, workflow_ref: str,
                   version: int | None, draft: bool, dry_run: bool, input: dict[str, Any]) -> RunPlan:
        org_id = principal.org_id
        customer = store.Customers(tx).get(org_id, customer_id)
        if customer["status"] != "active":
            raise RunRefused("customer", f"customer {customer_id!r} is {customer['status']}")
        check_customer(tx, principal, customer)
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
        validate_input(spec, input)
        called: dict[tuple[str, int | None], WorkflowSpec] = {}
        self._called(tx, org_id, customer["environment_id"], spec, called)
        keys = set(spec.connectors()).union(*(s.connectors() for s in called.values()))
        connectors = self.specs.connectors(tx, org_id, keys, published_only=not dry_run)
        for key in sorted(keys - set(connectors)):
            what = "no published version" if not dry_run else "no version"
            raise RunRefused("connector", f"connector {key!r} has {what} in this organization", connector=key)
        problems = check_workflow(spec, connectors)
        if problems:
            raise SpecInvalid("workflow", problems_out(problems))
        connections: dict[str, str] = {}
        credentials: dict[str, dict[str, Any]] = {}
        sandboxes: list[str] = []
        for key, connector in sorted(connectors.items()):
            connection_id = connection_for_run(tx, org_id, customer_id, key)
            if connection_id is not None:
                connections[key] = connection_id
                if store.Connections(tx).get(org_id, connection_id)["target"] == "sandbox":
                    sandboxes.append(key)
            elif connector.credential_fields():
                if not dry_run:
                    raise RunRefused("connection", f"customer {customer_id!r} has no connection to {key!r}", connector=key)
                credentials[key] = placeholders(connector)
            else:
                credentials[key] = {}
        if sandboxes and store.Environments(tx).get(org_id, customer["environment_id"])["slug"] == PRODUCTION:
            raise RunRefused("connection", f"customer {customer_id!r} is in production, where connections cannot target"
                                           f" a sandbox ({', '.join(sandboxes)})", connector=sandboxes[0])
        return RunPlan(
            org_id=org_id, customer_id=customer_id, environment_id=customer["environment_id"], workflow_id=workflow["id"],
            version=number, spec=spec, input=input, dry_run=dry_run, connectors=connectors, called=called,
            connections=connections, credentials=credentials, sandboxes=tuple(sandboxes),
            secrets=store.Secrets(tx).values_for_run(org_id, customer["environment_id"], self.platform.encryptor),
        )

    def _called(self, tx: store.Tx, org_id: str, environment_id: str, spec: WorkflowSpec,
                found: dict[tuple[str, int | None], WorkflowSpec], depth: int = 0) -> None:
        """Collect the workflows ``spec``'s call steps run (published versions), recursively, as deep
        as the interpreter would go. A call that names nothing known is left out: the run fails at
        that step, naming it."""
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
            self._called(tx, org_id, environment_id, found[key], found, depth + 1)

    # -- executing -------------------------------------------------------------------------------

    async def execute(self, plan: RunPlan, run_id: str, *, trigger: Any = None, deadline: float | None = None,
                      wrap_invoker: Callable[[ActionInvoker], ActionInvoker] | None = None,
                      on_deadline: Callable[[], Awaitable[float | None]] | None = None,
                      run_clock: Any = None, **seams: Any) -> RunOutcome:
        """Run ``plan`` with id ``run_id`` within ``deadline`` seconds (default: the inline run
        deadline; past it the outcome is ``timeout``); ``trigger`` is what fired it, seen by
        templates as ``trigger``. The outcome holds no secret or credential value, and its
        ``record`` the run record with the specs it ran. ``wrap_invoker`` wraps the engine's action
        invoker (a durable run makes each call a durable step). ``on_deadline``, when given, is
        awaited when the deadline passes: the seconds it answers extend the run (an escalation to
        the next tier), None ends it ``timeout``. ``run_clock`` replaces the interpreter's clock (a
        durable run's sleeps are durable) and ``waiter`` (in ``seams``) answers ``wait`` steps."""
        # A caller may point connectors elsewhere (an agent's dry run on its sandboxes: the
        # ``base_urls`` seam); connections that target a hosted sandbox are routed to it in-process.
        # ``http``: the client that reaches those (an agent's view onto hosted sandboxes).
        http, base_urls = seams.pop("http", None) or self.platform.http, seams.pop("base_urls", None)
        if plan.sandboxes:
            # In-process, never over the network: see runtime._sandboxes.
            route = await self.platform.sandboxes.route(plan.org_id, plan.sandboxes)
            http, base_urls = route.http, {**(base_urls or {}), **route.base_urls}
        engine = build_engine(
            plan.connectors, http,
            credentials=plan.provider if plan.provider is not None else StaticCredentials(plan.credentials),
            dry_run=plan.dry_run, base_urls=base_urls, connection_scope=f"{plan.org_id}/{plan.customer_id}",
            rate_store=SharedRateLimits.of(self.platform, plan.org_id),
            secrets=plan.secrets, workflows=lookup_in(plan.called), evaluator=self.platform.evaluator,
            budget=self.platform.config.expression_budget, **seams,
        )
        deadline = deadline if deadline is not None else self.platform.config.run_deadline
        deps = engine.deps
        if wrap_invoker is not None:
            deps = dataclasses.replace(deps, invoker=wrap_invoker(deps.invoker))
        if run_clock is not None:
            deps = dataclasses.replace(deps, clock=run_clock)
        limit = deadline
        try:
            async with asyncio.timeout(deadline if on_deadline is None else None) as bound:
                watcher = None
                if on_deadline is not None:
                    async def watch() -> None:
                        nonlocal limit
                        wait = deadline
                        while True:
                            await asyncio.sleep(wait)
                            extra = await on_deadline()
                            if extra is None:
                                bound.reschedule(asyncio.get_running_loop().time())
                                return
                            limit, wait = limit + extra, extra

                    watcher = asyncio.create_task(watch())
                try:
                    result = await Interpreter(deps).run(plan.spec, plan.input, trigger=trigger, run_id=run_id)
                finally:
                    if watcher is not None:
                        watcher.cancel()
        except TimeoutError:
            return RunOutcome("timeout", None, {"code": "run_deadline_exceeded", "step": None,
                                                "message": f"the run did not finish within {limit:g} seconds"}, [])
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
        output = result.record.output if result.succeeded else None
        redact = await redactor(plan)
        return RunOutcome("completed" if result.succeeded else "failed", output, error, engine.traces(result), redact(_stored_record(plan, result)))

    # -- replaying -------------------------------------------------------------------------------

    async def replay(self, principal: Principal, execution_id: str) -> RunResult:
        """Replay a recorded execution offline: the specs it ran and every call's answer come from its
        stored record, so nothing is sent and the output is the one recorded (unless the engine
        changed: then ``ReplayDivergence`` names the step). Needs ``workflows:read``. Raises
        ``NotFound`` and ``RunRefused`` (field ``record``: the execution has no record)."""
        principal.require("workflows", "read")

        def read() -> dict[str, Any] | None:
            with self.platform.db.tenant(principal.org_id, principal.customer_id) as tx:
                return store.Executions(tx).record(principal.org_id, execution_id)

        stored_record = await anyio.to_thread.run_sync(read)
        return await replay_record(stored_record, execution_id)


async def replay_record(stored_record: dict[str, Any] | None, execution_id: str) -> RunResult:
    """Replay a stored run record (see ``Runs.replay``) without a database or network."""
    if not stored_record or stored_record.get("format") != RECORD_FORMAT:
        raise RunRefused("record", f"execution {execution_id!r} has no replayable run record")
    spec = loaded(WorkflowSpec, stored_record["workflow"], "workflow")
    called = {(c["key"], c["version"]): loaded(WorkflowSpec, c["spec"], "workflow") for c in stored_record["called"]}
    return await replay_offline(spec, RunRecord.from_dict(stored_record["run"]), lookup_in(called))


async def replay_offline(spec: WorkflowSpec, record: RunRecord, workflows: WorkflowLookup | None = None) -> RunResult:
    """Replay ``record`` against ``spec`` with nothing to call: every action is answered from the
    record (an unrecorded call fails the run), ``workflows`` finds the specs its call steps ran.
    Raises ``ReplayDivergence`` naming the step where the run left the record."""
    deps = Dependencies(invoker=_NoCalls(), workflows=workflows or WorkflowRegistry())
    return await Interpreter(deps).replay(spec, record)


async def redactor(plan: RunPlan) -> Redactor:
    """What the stored record must not hold: the environment's secrets and every credential the run
    had (renewed tokens included). A record keeps what APIs answered, and an API may echo a value
    it was sent, or hold a secret a workflow wrote into it."""
    redact = Redactor()
    for name, value in plan.secrets.items():
        redact.add(name, value)
    provider = plan.provider if plan.provider is not None else StaticCredentials(plan.credentials)
    for connector in sorted(plan.connectors):
        values = {**plan.credentials.get(connector, {}), **(await provider.get(connector))}
        for field_name, value in sorted(values.items()):
            if isinstance(value, str) and len(value) >= MIN_SCRUBBED:
                redact.add(f"credential:{connector}.{field_name}", value)
    return redact


def _stored_record(plan: RunPlan, result: RunResult) -> dict[str, Any]:
    return {
        "format": RECORD_FORMAT,
        "workflow": stored(plan.spec),
        "called": [{"key": key, "version": version, "spec": stored(spec)} for (key, version), spec in plan.called.items()],
        "run": result.record.to_dict(),
    }
