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

Retries: inside a call's step, by the step's policy (``ActionCall.retry``). A ``Retry-After``
longer than the policy's cap ends the step with ``ActionRetryLater``; the call is then rescheduled
by a DBOS durable sleep (recorded, so a recovered execution sleeps only what is left) and made
again in a new step with the attempts left (see :class:`DurableInvoker`).

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
from engine.errors import ActionRetryLater, EngineError, RecordedCallError
from engine.specs import RetrySpec
from engine.workflow import ActionCall, ActionInvoker, ErrorInfo, TraceRecord, TraceSink
from runtime._durable import APP_NAME, CLASS_NAME, INSTANCE_NAME, WORKFLOW_NAME, idempotency_key
from runtime._leases import ProcessLease
from runtime._access import system_principal
from runtime._escalation import carried_calls
from runtime._resume import ResumeInvoker, reusable_calls
from runtime._runs import RunOutcome, redactor
from runtime._alerts import ALERT_POLL_SECONDS, AlertEvaluator
from runtime._notifications import NOTIFICATION_POLL_SECONDS, Notifier
from runtime._polling import POLL_LOOP_SECONDS, Poller
from runtime._retention import RETENTION_POLL_SECONDS, Pruner
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
    """Passes a call's traces on to the run's sink as they come, and keeps them for the step's record.

    After a rescheduled call (see :class:`DurableInvoker`) its attempts continue the numbering of the
    attempts before the durable sleep (``offset``), and the first one records that sleep as its
    ``retry_delay``."""

    def __init__(self, run_sink: TraceSink, offset: int = 0, slept: float | None = None) -> None:
        super().__init__()
        self._run_sink = run_sink
        self._offset = offset
        self._slept = slept

    def append(self, record: TraceRecord) -> None:
        if self._offset:
            first = record.attempt == 1
            record = dataclasses.replace(record, attempt=record.attempt + self._offset,
                                         retry_delay=self._slept if first else record.retry_delay)
        super().append(record)
        self._run_sink.append(record)


class DurableInvoker:
    """Makes each connector call of a durable run one DBOS step (named ``call <seq> <connector.action>``),
    with the call's idempotency key. A call whose step is recorded is answered from the record (its
    traces and result, or its failure), without being sent.

    Retries follow the step's policy (``ActionCall.retry``) inside the step, as inline. When the app
    asks (``Retry-After``) for a longer wait than the policy's cap (``ActionRetryLater``), the call is
    rescheduled: a DBOS durable sleep of that long (a worker lost meanwhile resumes the sleep, not
    the call), then one more step (``call <seq> <connector.action> after <n>``) with the attempts left
    of the policy's ``max_attempts``. The sleep holds no thread and no connection, only the
    execution's place in the queue. A wait as long as the execution's whole ``deadline`` (its tier's
    limit) is not slept: the call fails at once with ``ActionRetryLater``, rather than sleep into a
    timeout (decided on the recorded wait and the limit only, so a recovered execution decides
    the same). ``sleep_scale`` multiplies the sleep (tests: 0)."""

    def __init__(self, inner: ActionInvoker, workflow_id: str, *, sleep_scale: float = 1.0,
                 deadline: float | None = None) -> None:
        self.inner = inner
        self.workflow_id = workflow_id
        self.sleep_scale = sleep_scale
        self.deadline = deadline

    async def invoke(self, call: ActionCall) -> Any:
        keyed = dataclasses.replace(call, idempotency_key=idempotency_key(self.workflow_id, call))
        retry = call.retry or RetrySpec()
        used, slept, round_ = 0, None, 0
        while True:
            name = f"call {call.seq} {call.qualified_action}" + (f" after {round_}" if round_ else "")
            this = keyed if not used else dataclasses.replace(
                keyed, retry=retry.model_copy(update={"max_attempts": retry.max_attempts - used}))
            try:
                return await self._step(this, name, used, slept)
            except (ActionRetryLater, RecordedCallError) as exc:
                later = _retry_later(exc)
                if later is None:
                    raise
                used += later[1]
                if used >= retry.max_attempts or (self.deadline is not None and later[0] >= self.deadline):
                    raise
                slept = later[0]
            round_ += 1
            await DBOS.sleep_async(slept * self.sleep_scale)

    async def _step(self, call: ActionCall, name: str, offset: int, slept: float | None) -> Any:
        attempt: dict[str, Any] = {}

        async def send() -> dict[str, Any]:
            traces = _Traces(call.trace, offset, slept)
            attempt["sent"] = True
            try:
                result = await self.inner.invoke(dataclasses.replace(call, trace=traces))
            except EngineError as exc:
                attempt["error"] = exc
                recorded = {"error": ErrorInfo.from_exception(exc).to_dict(), "traces": [t.to_dict() for t in traces.list()]}
                if isinstance(exc, ActionRetryLater):
                    recorded["retry_later"] = {"retry_after": exc.retry_after, "attempts": exc.attempts}
                return recorded
            return {"result": result, "traces": [t.to_dict() for t in traces.list()]}

        recorded = await DBOS.run_step_async({"name": name}, send)
        if not attempt.get("sent"):
            for trace in recorded["traces"]:
                call.trace.append(TraceRecord.from_dict(trace))
        if "error" in recorded:
            if "error" in attempt:
                raise attempt["error"]
            info = recorded["error"]
            error = RecordedCallError(info["code"], info["message"], int(info.get("http_status", 502)))
            error.recorded_type = info.get("type")
            error.retry_later = recorded.get("retry_later")
            raise error
        return recorded["result"]


def _retry_later(exc: EngineError) -> tuple[float, int] | None:
    """The wait the app asked for and the attempts made, when ``exc`` says to call again later
    (live, or as recorded by the call's step)."""
    if isinstance(exc, ActionRetryLater):
        return exc.retry_after, exc.attempts
    if isinstance(exc, RecordedCallError) and exc.retry_later is not None:
        return float(exc.retry_later["retry_after"]), int(exc.retry_later["attempts"])
    return None


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
                 schedule_seconds: float = SCHEDULE_POLL_SECONDS, poll_seconds: float = POLL_LOOP_SECONDS,
                 alert_seconds: float = ALERT_POLL_SECONDS, notification_seconds: float = NOTIFICATION_POLL_SECONDS,
                 retention_seconds: float = RETENTION_POLL_SECONDS) -> None:
        self.platform = platform
        self.executor_id = executor_id or socket.gethostname()
        self.concurrency = concurrency
        self.polling_seconds = polling_seconds
        self._lease = ProcessLease(platform, "worker")
        # Every worker fires due schedules too (runtime._schedules: each slot once across workers).
        self.scheduler = Scheduler(platform, poll_seconds=schedule_seconds)
        # And polls the due app events (runtime._polling: each record version starts one run).
        self.poller = Poller(platform, poll_seconds=poll_seconds)
        # And evaluates due alert rules, delivers due notifications and prunes old Activity
        # (runtime._alerts, runtime._notifications, runtime._retention: each row once across workers).
        self.periodic = (AlertEvaluator(platform, poll_seconds=alert_seconds),
                         Notifier(platform, poll_seconds=notification_seconds),
                         Pruner(platform, poll_seconds=retention_seconds))
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
            for loop in self.periodic:
                await loop.__aenter__()
            await self.subscriber.__aenter__()
        except BaseException:
            _EXECUTIONS.worker = None
            await anyio.to_thread.run_sync(DBOS.destroy)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.subscriber.__aexit__(*exc)
            for loop in reversed(self.periodic):
                await loop.__aexit__(*exc)
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
        scale = config.retry_delay_scale
        wrap = lambda inner: DurableInvoker(inner, execution_id, sleep_scale=scale, deadline=deadline)  # noqa: E731
        if claimed.get("carried"):
            # An Instant run escalated here: the calls it completed are answered from its record.
            carried, carried_redact = carried_calls(claimed["carried"]), await redactor(plan)
            wrap = lambda inner: DurableInvoker(ResumeInvoker(inner, carried, carried_redact), execution_id,  # noqa: E731
                                                sleep_scale=scale, deadline=deadline)
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
            wrap = lambda inner: DurableInvoker(ResumeInvoker(inner, reuse, redact), execution_id,  # noqa: E731
                                                sleep_scale=scale, deadline=deadline)
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
