"""The durable worker: DBOS runs Standard and Long executions, each connector call a durable step.

A :class:`Worker` launches DBOS in the running event loop (so the executions it takes run on that
loop, with the process's :class:`~runtime.Platform`), registers the executions queue and holds the
process's lease, a :class:`~runtime.Scheduler` (due schedules fire from every worker, each slot
once) and a :class:`~runtime.Poller` (due polling app events, each record version once). ``switchboard worker`` runs one; ``switchboard run`` runs one in-process.

One execution is one DBOS workflow, whose id is the execution's id. Its steps, in order:

1. ``claim``: the execution becomes ``running`` (it stays so when resumed after a recovery); one
   cancelled before it started is left be. Cancelling a running one (``Runs.cancel``) cancels its
   DBOS workflow, which stops at its next step boundary.
2. The run: planned again from the execution row (the recorded version, customer, input and trigger), then
   interpreted with every connector call made through :class:`DurableInvoker`, one DBOS step per
   call, and foreach iterations one at a time (``Dependencies.sequential``), so that the calls come
   in the same order when the run is resumed.
3. ``finish``: the outcome, output, trace and run record are recorded.

The guarantee, exactly: a step that completed (its result recorded in DBOS's tables) never runs
again; when a worker is lost, the execution resumes (a restarted worker with the same id recovers
its own executions at launch) and every completed call is answered from its recorded result. A
call that was interrupted mid-call (sent, but its result not yet recorded) may run again; it
carries the same idempotency key both times (``runtime._durable.idempotency_key``), sent as the
connector's declared ``idempotency`` header, so an app that honours the key does the work once.

Sleeps (``delay`` steps) and waits for an event (``wait`` steps, Long workflows) are durable too:
DBOS keeps their deadlines and the awaited event across restarts (``runtime._waits``).

What is not (yet) durable: expressions reading ``$now()`` see the time of the attempt that runs
them (``$random()`` is seeded by the execution id, so it repeats); planning reads the customer's
connections and secrets again on resume.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import socket
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from dbos import DBOS, DBOSConfig, DBOSConfiguredInstance

import store
from engine.errors import EngineError, RecordedCallError
from engine.workflow import ActionCall, ActionInvoker, ErrorInfo, TraceRecord, TraceSink
from runtime._durable import APP_NAME, CLASS_NAME, INSTANCE_NAME, WORKFLOW_NAME, idempotency_key
from runtime._leases import ProcessLease
from runtime._access import system_principal
from runtime._escalation import carried_calls
from runtime._resume import ResumeInvoker, reusable_calls
from runtime._runs import RunOutcome, redactor
from runtime._polling import POLL_LOOP_SECONDS, Poller
from runtime._schedules import SCHEDULE_POLL_SECONDS, Scheduler
from runtime._subscriptions import Subscriber
from runtime._waits import DurableClock, DurableWaiter
from runtime.errors import ServiceError

if TYPE_CHECKING:
    from runtime._platform import Platform

log = logging.getLogger(__name__)

# Executions one worker runs at once.
WORKER_CONCURRENCY = 8
# How often an idle worker looks at the queue (DBOS's default, 1 s, adds up to that to each start).
QUEUE_POLLING_SECONDS = 0.1
# The claim step retries briefly: the request that recorded the execution may commit just after
# the hand-over.
_CLAIM = {"name": "claim", "retries_allowed": True, "max_attempts": 5, "interval_seconds": 0.2, "backoff_rate": 2.0}


class _Traces(TraceSink):
    """Passes a call's traces on to the run's sink as they come, and keeps them for the step's record."""

    def __init__(self, run_sink: TraceSink) -> None:
        super().__init__()
        self._run_sink = run_sink

    def append(self, record: TraceRecord) -> None:
        super().append(record)
        self._run_sink.append(record)


class DurableInvoker:
    """Makes each connector call of a durable run one DBOS step (named ``call <seq> <connector.action>``),
    with the call's idempotency key. A call whose step is recorded is answered from the record (its
    traces and result, or its failure), without being sent."""

    def __init__(self, inner: ActionInvoker, workflow_id: str) -> None:
        self.inner = inner
        self.workflow_id = workflow_id

    async def invoke(self, call: ActionCall) -> Any:
        keyed = dataclasses.replace(call, idempotency_key=idempotency_key(self.workflow_id, call))
        attempt: dict[str, Any] = {}

        async def send() -> dict[str, Any]:
            traces = _Traces(call.trace)
            attempt["sent"] = True
            try:
                result = await self.inner.invoke(dataclasses.replace(keyed, trace=traces))
            except EngineError as exc:
                attempt["error"] = exc
                return {"error": ErrorInfo.from_exception(exc).to_dict(), "traces": [t.to_dict() for t in traces.list()]}
            return {"result": result, "traces": [t.to_dict() for t in traces.list()]}

        recorded = await DBOS.run_step_async({"name": f"call {call.seq} {call.qualified_action}"}, send)
        if not attempt.get("sent"):
            for trace in recorded["traces"]:
                call.trace.append(TraceRecord.from_dict(trace))
        if "error" in recorded:
            if "error" in attempt:
                raise attempt["error"]
            info = recorded["error"]
            error = RecordedCallError(info["code"], info["message"], int(info.get("http_status", 502)))
            error.recorded_type = info.get("type")
            raise error
        return recorded["result"]


@DBOS.dbos_class(class_name=CLASS_NAME)
class _DurableExecutions(DBOSConfiguredInstance):
    """The DBOS workflow that runs an execution; it runs on the worker set by :class:`Worker`."""

    def __init__(self) -> None:
        super().__init__(INSTANCE_NAME)
        self.worker: Worker | None = None

    @DBOS.workflow(name=WORKFLOW_NAME)
    async def run(self, org_id: str, execution_id: str) -> str:
        if self.worker is None:
            raise RuntimeError("no worker is running in this process")
        return await self.worker.run_execution(org_id, execution_id)


# DBOS keeps its workflows and configured instances in one registry per process, filled before
# launch and found again by name when a workflow is recovered; this instance is its entry. A
# Worker sets itself as the instance's worker while it runs.
_EXECUTIONS = _DurableExecutions()


class Worker:
    """Runs queued durable executions in this process, for the life of an ``async with`` block.

    ``executor_id`` names the worker to DBOS: a worker recovers, at launch, the executions that a
    worker with the same id left unfinished, so give each concurrent worker its own stable id
    (default: the host name). One worker per process (DBOS is one per process).
    """

    def __init__(self, platform: Platform, *, executor_id: str | None = None,
                 concurrency: int = WORKER_CONCURRENCY, polling_seconds: float = QUEUE_POLLING_SECONDS,
                 schedule_seconds: float = SCHEDULE_POLL_SECONDS, poll_seconds: float = POLL_LOOP_SECONDS) -> None:
        self.platform = platform
        self.executor_id = executor_id or socket.gethostname()
        self.concurrency = concurrency
        self.polling_seconds = polling_seconds
        self._lease = ProcessLease(platform, "worker")
        # Every worker fires due schedules too (runtime._schedules: each slot once across workers).
        self.scheduler = Scheduler(platform, poll_seconds=schedule_seconds)
        # And polls the due app events (runtime._polling: each record version starts one run).
        self.poller = Poller(platform, poll_seconds=poll_seconds)
        # And registers webhook-style app events with providers as deployments change
        # (runtime._subscriptions).
        self.subscriber = Subscriber(platform)

    async def __aenter__(self) -> Worker:
        if _EXECUTIONS.worker is not None:
            raise RuntimeError("a worker is already running in this process")
        platform = self.platform
        config: DBOSConfig = {
            "name": APP_NAME,
            "system_database_url": store.durable_database_url(platform.conninfo),
            "dbos_system_schema": platform.config.durable_schema,
            "executor_id": self.executor_id,
            "sys_db_pool_size": max(4, self.concurrency),
            "log_level": "WARNING",
        }
        _EXECUTIONS.worker = self
        try:
            # Registered before the launch: DBOS's queue manager lists the queues when it starts,
            # then only once a second, so a queue registered after the launch would wait up to a
            # second before this worker took anything from it.
            await anyio.to_thread.run_sync(partial(
                platform.durable.register, worker_concurrency=self.concurrency, polling_seconds=self.polling_seconds))
            DBOS(config=config)
            # Launched from this loop: DBOS then runs the (async) executions on it.
            DBOS.launch()
            await self._lease.__aenter__()
            await self.scheduler.__aenter__()
            await self.poller.__aenter__()
            await self.subscriber.__aenter__()
        except BaseException:
            _EXECUTIONS.worker = None
            await anyio.to_thread.run_sync(DBOS.destroy)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.subscriber.__aexit__(*exc)
            await self.poller.__aexit__(*exc)
            await self.scheduler.__aexit__(*exc)
            await self._lease.__aexit__(*exc)
        finally:
            await anyio.to_thread.run_sync(DBOS.destroy)
            _EXECUTIONS.worker = None

    # -- one execution ---------------------------------------------------------------------------

    async def run_execution(self, org_id: str, execution_id: str) -> str:
        """The body of the DBOS workflow for one execution (see the module docstring); returns the
        status it ended with."""
        claimed = await DBOS.run_step_async(_CLAIM, self._claim, org_id, execution_id)
        if claimed["status"] != "running":
            return claimed["status"]  # finished or cancelled before this worker reached it
        outcome = await self._outcome(org_id, execution_id, claimed)
        return await DBOS.run_step_async({"name": "finish"}, self._finish, org_id, execution_id, outcome)

    def _claim(self, org_id: str, execution_id: str) -> dict[str, Any]:
        with self.platform.db.tenant(org_id) as tx:
            row = store.Executions(tx).claim(org_id, execution_id)
        return {key: row[key] for key in ("status", "customer_id", "workflow_id", "version", "input", "trigger", "tier",
                                          "rerun_of", "carried")}

    async def _outcome(self, org_id: str, execution_id: str, claimed: dict[str, Any]) -> RunOutcome:
        runs, config = self.platform.runs, self.platform.config
        customer_id = claimed["customer_id"]
        try:
            principal = system_principal(org_id, customer_id, f"worker:{self.executor_id}")
            plan = await runs.plan(principal, customer_id, claimed["workflow_id"], version=claimed["version"],
                                   input=claimed["input"])
        except (ServiceError, EngineError, store.StoreError) as exc:
            # The world changed since the run was accepted (a connection removed, a customer suspended).
            code = getattr(exc, "code", "runtime_error")
            return RunOutcome("failed", None, {"code": code, "step": None, "message": str(exc)}, [])
        deadline = config.long_deadline if claimed["tier"] == "long" else config.standard_deadline
        wrap = lambda inner: DurableInvoker(inner, execution_id)  # noqa: E731
        if claimed.get("carried"):
            # An Instant run escalated here: the calls it completed are answered from its record.
            carried, carried_redact = carried_calls(claimed["carried"]), await redactor(plan)
            wrap = lambda inner: DurableInvoker(ResumeInvoker(inner, carried, carried_redact), execution_id)  # noqa: E731
        async def to_long() -> float | None:
            # Standard -> Long: recorded (conditionally: a repeat after a recovery changes
            # nothing), then the run goes on under the Long limit.
            await anyio.to_thread.run_sync(self._escalate, org_id, execution_id, deadline)
            return max(config.long_deadline - deadline, 0.0) or None

        on_deadline = to_long if plan.spec.escalate and claimed["tier"] == "standard" else None
        if claimed.get("rerun_of"):
            # A re-run: the calls before the original's failed step are answered from its record
            # (inside the durable step, so a resumed re-run answers them the same way).
            original = claimed["rerun_of"]
            try:
                reuse = reusable_calls(await anyio.to_thread.run_sync(self._record, org_id, original), original)
            except ServiceError as exc:
                return RunOutcome("failed", None, {"code": exc.code, "step": None, "message": str(exc)}, [])
            redact = await redactor(plan)
            wrap = lambda inner: DurableInvoker(ResumeInvoker(inner, reuse, redact), execution_id)  # noqa: E731
        return await runs.execute(
            plan, execution_id, trigger=claimed.get("trigger"), deadline=deadline, on_deadline=on_deadline,
            wrap_invoker=wrap, sequential=True, random=random.Random(execution_id),
            run_clock=DurableClock(self.platform),
            waiter=DurableWaiter(self.platform, org_id, customer_id, execution_id),
        )

    def _escalate(self, org_id: str, execution_id: str, deadline: float) -> None:
        with self.platform.db.tenant(org_id) as tx:
            store.Executions(tx).escalate(org_id, execution_id, from_tier="standard", to_tier="long",
                                          reason=f"the run did not finish within {deadline:g} seconds")

    def _record(self, org_id: str, execution_id: str) -> dict[str, Any] | None:
        with self.platform.db.tenant(org_id) as tx:
            return store.Executions(tx).record(org_id, execution_id)

    def _finish(self, org_id: str, execution_id: str, outcome: RunOutcome) -> str:
        with self.platform.db.tenant(org_id) as tx:
            row = store.Executions(tx).finish(org_id, execution_id, status=outcome.status, output=outcome.output,
                                              error=outcome.error, trace=outcome.trace, record=outcome.record)
        return row["status"]
