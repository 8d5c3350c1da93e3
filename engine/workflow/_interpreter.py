"""The workflow interpreter: runs a WorkflowSpec step by step, numbering and recording everything.

Every step execution, foreach iteration and action call gets a sequence number
(see ``_record``) and a record of its result; the run's template scope follows
the spec (``input``, ``steps``, ``trigger``, ``run``, loop variables, and
``secrets`` in action inputs only). Time, ids, randomness, actions, secrets and called workflows come
only from the injected :class:`~engine.workflow.Dependencies`; ``$now()`` and
``$random()`` are bound per step and recorded, so a replay sees what the run saw.

Guarantees:

- Events: the injected observer is told, in order, when each step (and foreach
  iteration) starts and finishes or fails, when an action call retries, and of
  each HTTP attempt's trace (see ``_observe``); events hold no secret values.
- Expressions never stall the event loop: anything beyond a plain path is
  evaluated in a worker thread (``Dependencies.evaluator``), and all of a run's
  evaluations share one budget (``Dependencies.budget``: CPU time, depth,
  sizes); going over it fails the run with :class:`ExpressionBudgetExceeded`
  naming the step and the expression's JSON pointer. ``$eval`` is refused.
- Secrets are bound only where they are sent: ``secrets`` is in scope in the
  input of action steps and the ``list_input``/``create_input``/``update_input``
  of sync targets, and nowhere else (outputs, maps, conditions, loop sources,
  call inputs read nothing from it). Every secret value the run read is
  redacted, in any case and its common encodings, from the run's output,
  records, traces, errors and events.

Failure semantics: a step that fails records its error and fails the steps
around it and then the run (``RunResult.status == "failed"``, ``error`` naming
the step). A failing foreach iteration stops new iterations from starting;
those already running finish, and the error of the lowest failed item is
raised, so a run fails the same way however its iterations interleaved. Only a
bad run input (:class:`WorkflowInputInvalid`) and a replay divergence
(:class:`ReplayDivergence`) are raised from :meth:`Interpreter.run`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import jsonata

from ..errors import (
    CallDepthExceeded,
    EngineError,
    ExpressionBudgetExceeded,
    ExpressionError,
    ExpressionLimitExceeded,
    ReplayDivergence,
    SecretNotFound,
    StepExpressionError,
    StepFailed,
    StepValueError,
    SyncConfigError,
    WaitTimedOut,
    WorkflowError,
    WorkflowNotFound,
)
from ..expressions import ExpressionMeter, Runtime, bind_runtime, render, reset_runtime
from ..specs import (ActionStep, CallStep, DelayStep, FilterStep, ForeachStep, IfStep, MapStep, RetrySpec, SyncStep,
                     WaitStep, WorkflowSpec)
from ._deps import Dependencies, EventWait, lookup_workflow
from ._invoker import ActionCall, TraceRecord, TraceSink
from ._observe import CallTraced, NullObserver, StepErrored, StepFinished, StepRetrying, StepStarted, output_shape
from ._record import CallRecord, ErrorInfo, Redactor, RunRecord, StepRecord, seq_key
from ._replay import ReplayInvoker
from ._scope import Frame, Sequencer, Tape, secret_names, secret_templates, step_kind, step_pointers, validate_input
from ._sync import as_records, expression, run_sync

MAX_CALL_DEPTH = 10


def truthy(value: Any) -> bool:
    """JSONata's effective boolean value (``$boolean``): empty string, 0, null, empty list/object are false."""
    return bool(jsonata.Functions.to_boolean(value))


@dataclass(frozen=True)
class RunResult:
    """The outcome of a run.

    ``output`` has secret values redacted (as in ``record``); ``error`` is the
    typed error that failed the run (its ``step_id`` names the step), ``record``
    the run's :class:`RunRecord` (replayable, JSON-ready with ``to_dict()``),
    ``traces`` one record per HTTP attempt, in ``seq`` order.
    """

    run_id: str
    status: Literal["succeeded", "failed"]
    output: Any
    error: WorkflowError | None
    record: RunRecord
    traces: list[TraceRecord]

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


class Interpreter:
    """Runs workflows with injected dependencies.

    Args:
        deps: clock, ids, random, action invoker, secrets and workflow lookup.
        max_call_depth: how deeply call steps may nest before :class:`CallDepthExceeded`.
    """

    def __init__(self, deps: Dependencies, *, max_call_depth: int = MAX_CALL_DEPTH):
        self.deps = deps
        self.max_call_depth = max_call_depth

    async def run(self, workflow: WorkflowSpec, input: Any = None, *, trigger: Any = None, run_id: str | None = None,
                  record: RunRecord | None = None) -> RunResult:
        """Run ``workflow`` on ``input`` (``{}`` when None) and return its result.

        With ``record``, the run is a replay: no action is called, each call is
        answered from the record, and run id, trigger (when not given) and start
        time come from it.

        Raises:
            WorkflowInputInvalid: ``input`` does not match ``workflow.input``; names each JSON pointer.
            ReplayDivergence: replaying, the run did something other than what ``record`` holds
                (a different input, trigger, step, call or result, or it stopped short).

        Every other engine error fails the run instead (``status="failed"``, typed ``error``);
        exceptions that are not engine errors (bugs) propagate.
        """
        replay = ReplayInvoker(record) if record is not None else None
        if record is not None:
            input = record.input if input is None else input
            trigger = record.trigger if trigger is None else trigger
            run_id = _check_replay_start(record, workflow, input, trigger, run_id)
        input = {} if input is None else input
        run_id = run_id or self.deps.ids()
        validate_input(workflow, input, run_id=run_id)
        return await _Run(self.deps, run_id, replay, self.max_call_depth).execute(workflow, input, trigger, record)

    async def replay(self, workflow: WorkflowSpec, record: RunRecord) -> RunResult:
        """Replay ``record`` against ``workflow``: ``run(workflow, record.input, record=record)``."""
        return await self.run(workflow, record.input, trigger=record.trigger, record=record)


def _check_replay_start(record: RunRecord, workflow: WorkflowSpec, input: Any, trigger: Any,
                        run_id: str | None) -> str:
    if run_id is not None and run_id != record.run_id:
        raise ReplayDivergence(record.run_id, "(run id)", run_id, record.run_id)
    if workflow.id != record.workflow_id:
        raise ReplayDivergence(record.run_id, "(workflow)", workflow.id, record.workflow_id)
    if record.workflow_version is not None and workflow.version != record.workflow_version:
        raise ReplayDivergence(record.run_id, "(workflow version)", workflow.version, record.workflow_version)
    if input != record.input:
        raise ReplayDivergence(record.run_id, "(input)", input, record.input)
    if trigger != record.trigger:
        raise ReplayDivergence(record.run_id, "(trigger)", trigger, record.trigger)
    return record.run_id


class _StepEnv:
    """What a step body (the sync step) needs from its run: context, pointer, and calling actions."""

    def __init__(self, run: "_Run", frame: Frame, step_id: str, path: str, pointer: str,
                 retry: RetrySpec | None = None):
        self.run_id = run.run_id
        self.retry = retry
        self.step_id = step_id
        self.pointer = pointer
        self._run = run
        self._frame = frame
        self._path = path

    def context(self) -> dict[str, Any]:
        return self._frame.context()

    def with_secrets(self, context: dict[str, Any]) -> dict[str, Any]:
        return {**context, "secrets": self._run.secrets}

    async def evaluate(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self._run.evaluate(fn, *args)

    async def call(self, action: str, input: Any, sub_path: str, *, paginate: bool) -> Any:
        connector, _, name = action.rpartition(".")
        if not connector or not name:
            raise SyncConfigError(self.run_id, self.step_id, f"{action!r} is not a connector.action name")
        return await self._run.call(self._frame, self.step_id, f"{self._path}/{sub_path}", connector, name, input,
                                    paginate=paginate, max_pages=None, retry=self.retry)


class _Run:
    """One run in progress (its called workflows included): numbering, records, secrets, replay."""

    def __init__(self, deps: Dependencies, run_id: str, replay: ReplayInvoker | None, max_call_depth: int):
        self.deps = deps
        self.run_id = run_id
        self.replay = replay
        self.redact = Redactor()
        if replay is not None:
            replay.redact = self.redact
        self.invoker = replay if replay is not None else deps.invoker
        self.max_call_depth = max_call_depth
        self.observer = deps.observer
        # events cost a little each (a trace's dict, redaction): build none when nobody listens
        self.observing = not isinstance(deps.observer, NullObserver)
        self.meter = ExpressionMeter(deps.budget)
        self.traces = _ObservedSink(self)
        self.steps: dict[str, StepRecord] = {}
        self.calls: dict[str, CallRecord] = {}
        self.secrets: dict[str, str] = {}
        self.seed = deps.random.getrandbits(64)
        self._pointers: dict[int, tuple[WorkflowSpec, dict[int, str]]] = {}
        self._secret_refs: dict[int, tuple[Any, set[str]]] = {}
        # Replaying: the recorded steps by seq (a wait step answers from its record).
        self._replayed: dict[str, StepRecord] = {}

    # -- the run ---------------------------------------------------------------

    async def execute(self, workflow: WorkflowSpec, input: Any, trigger: Any, record: RunRecord | None) -> RunResult:
        started_at = record.started_at if record is not None else self.deps.clock.now().isoformat()
        tape = Tape(self.deps.clock, self.seed, "0", record.clock if record else None,
                    record.random if record else None)
        root = Frame(workflow, input, trigger, self._run_info(self.run_id, workflow, started_at), Sequencer())
        output: Any = None
        error: WorkflowError | None = None
        token = bind_runtime(self._runtime(tape))
        try:
            output = await self._workflow_body(root)
        except ReplayDivergence:
            raise
        except WorkflowError as exc:
            error = exc
        except ExpressionError as exc:
            error = _expression_failure(exc, self.run_id, "(output)", workflow.id, "/output")
        except EngineError as exc:
            error = StepFailed(self.run_id, "(output)", "(output)", None, exc)
        finally:
            reset_runtime(token)
        if tape.diverged:
            raise ReplayDivergence(self.run_id, "(output)", *tape.diverged)

        status: Literal["succeeded", "failed"] = "failed" if error else "succeeded"
        kept = self.redact(output) if error is None else None
        run_record = RunRecord(
            run_id=self.run_id, workflow_id=workflow.id, workflow_version=workflow.version, input=input,
            trigger=self.redact(trigger), started_at=started_at, status=status, output=kept,
            error=ErrorInfo.from_exception(error, self.redact) if error else None,
            steps=tuple(self.steps[s] for s in sorted(self.steps, key=seq_key)),
            calls=tuple(self.calls[s] for s in sorted(self.calls, key=seq_key)),
            secrets=tuple(sorted(self.secrets)), clock=tuple(tape.clock), random=tuple(tape.random),
        )
        if self.replay is not None:
            self.replay.check_complete()
            if (run_record.status, run_record.output) != (record.status, record.output):
                raise ReplayDivergence(self.run_id, "(output)", {"status": status, "output": kept},
                                       {"status": record.status, "output": record.output})
        traces = sorted(self.traces.list(), key=lambda t: seq_key(t.seq))
        if self.redact:
            traces = [self._redact_trace(t) for t in traces]
        return RunResult(self.run_id, status, kept, error, run_record, traces)

    async def _workflow_body(self, frame: Frame) -> Any:
        last = await self.run_steps(frame.workflow.steps, frame, "")
        if frame.workflow.output is None:
            return last
        return await self.evaluate(render, frame.workflow.output, frame.context(), "/output")

    def _runtime(self, tape: Tape) -> Runtime:
        return Runtime(now=tape.now, random=tape.draw, meter=self.meter, cache=self.deps.evaluator.cache)

    async def evaluate(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` (template rendering) through the evaluator: off the event loop unless trivial."""
        busy = getattr(self.deps.clock, "busy", None)  # a virtual clock must not jump while a thread works
        if busy is None:
            return await self.deps.evaluator.run(fn, *args)
        with busy():
            return await self.deps.evaluator.run(fn, *args)

    @staticmethod
    def _run_info(run_id: str, workflow: WorkflowSpec, started_at: str) -> dict[str, Any]:
        return {"id": run_id, "workflow": workflow.id, "version": workflow.version, "started_at": started_at}

    def emit(self, event: Any) -> None:
        self.observer.on_event(event)

    def _redact_trace(self, trace: TraceRecord) -> TraceRecord:
        return dataclasses.replace(
            trace, url=self.redact(trace.url), error=self.redact(trace.error),
            request_body=self.redact(trace.request_body), response_body=self.redact(trace.response_body),
        )

    # -- steps -----------------------------------------------------------------

    async def run_steps(self, steps: list[Any], frame: Frame, prefix: str) -> Any:
        """Run ``steps`` in order in ``frame``; return the last one's output (None for no steps)."""
        last = None
        for step in steps:
            last = await self.step(step, frame, prefix)
        return last

    async def step(self, step: Any, frame: Frame, prefix: str) -> Any:
        """Run one step: number it, bind its clock and random, record its output or error."""
        kind = step_kind(step)
        path = prefix + step.id
        seq = frame.sequencer.next()
        handler: Callable[..., Awaitable[Any]] = getattr(self, f"_{kind}")

        async def body(tape: Tape) -> Any:
            await self._fetch_secrets(self._step_secrets(step))
            return await handler(step, frame, path, seq, tape)

        output = await self.recorded(frame, seq, step.id, path, kind, body)
        frame.steps[step.id] = output
        return output

    async def recorded(self, frame: Frame, seq: str, step_id: str, path: str, kind: str,
                       body: Callable[[Tape], Awaitable[Any]]) -> Any:
        """Run ``body`` as the step (or iteration) ``seq``, translating and recording its outcome."""
        recorded = self.replay.step(seq, step_id, path, kind) if self.replay is not None else None
        if recorded is not None:
            self._replayed[seq] = recorded
        tape = Tape(self.deps.clock, self.seed, seq, recorded.clock if recorded else None,
                    recorded.random if recorded else None)
        output: Any = None
        error: WorkflowError | None = None
        if self.observing:
            self.emit(StepStarted(self.run_id, seq, step_id, path, kind))
        token = bind_runtime(self._runtime(tape))
        try:
            output = await body(tape)
        except ReplayDivergence:
            raise
        except WorkflowError as exc:
            error = exc
        except ExpressionError as exc:
            error = _expression_failure(exc, self.run_id, step_id, frame.workflow.id, "/")
        except EngineError as exc:
            error = StepFailed(self.run_id, step_id, path, None, exc)
            error.__cause__ = exc
        finally:
            reset_runtime(token)
        if tape.diverged:
            raise ReplayDivergence(self.run_id, path, *tape.diverged, seq)
        info = ErrorInfo.from_exception(error, self.redact) if error else None
        kept = self.redact(output) if error is None else None
        self.steps[seq] = StepRecord(seq, step_id, path, kind, kept, info, tuple(tape.clock), tuple(tape.random))
        if recorded is not None:
            self.replay.finish_step(recorded, kept, info)
        if error is not None:
            if self.observing:
                self.emit(StepErrored(self.run_id, seq, step_id, path, kind, info.code, info.message))
            raise error
        if self.observing:
            self.emit(StepFinished(self.run_id, seq, step_id, path, kind, *output_shape(output)))
        return output

    async def call(self, frame: Frame, step_id: str, path: str, connector: str, action: str, input: Any, *,
                   paginate: bool, max_pages: int | None, retry: RetrySpec | None = None) -> Any:
        """Make one numbered, recorded action call through the invoker (or the record, replaying)."""
        seq = frame.sequencer.next()
        call = ActionCall(self.run_id, seq, step_id, path, connector, action, input, paginate, max_pages, self.traces,
                          retry=retry)
        try:
            result = await self.invoker.invoke(call)
        except ReplayDivergence:
            raise
        except EngineError as exc:
            self.calls[seq] = CallRecord(seq, step_id, path, connector, action, self.redact(input),
                                         error=ErrorInfo.from_exception(exc, self.redact))
            raise StepFailed(self.run_id, step_id, path, f"{connector}.{action}", exc) from exc
        self.calls[seq] = CallRecord(seq, step_id, path, connector, action, self.redact(input), self.redact(result))
        return result

    def pointer(self, frame: Frame, step: Any) -> str:
        """The JSON pointer of ``step`` in its workflow document."""
        key = id(frame.workflow)
        if key not in self._pointers:
            self._pointers[key] = (frame.workflow, step_pointers(frame.workflow))
        return self._pointers[key][1].get(id(step), "/steps")

    def _step_secrets(self, step: Any) -> set[str]:
        key = id(step)
        if key not in self._secret_refs:
            # the step is kept alongside its names so its id() cannot be reused while cached
            self._secret_refs[key] = (step, set().union(*(secret_names(t) for t in secret_templates(step))))
        return self._secret_refs[key][1]

    async def _fetch_secrets(self, names: set[str]) -> None:
        for name in sorted(names - self.secrets.keys()):
            try:
                value = await self.deps.secrets.get(name)
            except SecretNotFound:
                if self.replay is None:
                    raise
                # a replay needs no real secrets: the record holds only their names
                value = f"[secret:{name}]"
            self.secrets[name] = value
            self.redact.add(name, value)

    # -- step kinds --------------------------------------------------------------

    async def _action(self, step: ActionStep, frame: Frame, path: str, seq: str, tape: Tape) -> Any:
        # the one place (with sync targets' inputs) where secrets are in scope: what is sent
        scope = {**frame.context(), "secrets": self.secrets}
        input = await self.evaluate(render, step.input, scope, self.pointer(frame, step) + "/input")
        return await self.call(frame, step.id, path, step.connector, step.action_name, input,
                               paginate=step.paginate, max_pages=step.max_pages, retry=step.retry)

    async def _map(self, step: MapStep, frame: Frame, path: str, seq: str, tape: Tape) -> Any:
        return await self.evaluate(render, step.map, frame.context(), self.pointer(frame, step) + "/map")

    async def _filter(self, step: FilterStep, frame: Frame, path: str, seq: str, tape: Tape) -> Any:
        spec, pointer = step.filter, self.pointer(frame, step) + "/filter"
        context = frame.context()

        def kept() -> list[Any]:
            items = as_records(render(spec.items, context, pointer + "/items"), self.run_id, step.id,
                               pointer + "/items")
            where = pointer + "/where"
            return [item for item in items if truthy(expression(spec.where, {**context, spec.as_: item}, where))]

        return await self.evaluate(kept)

    async def _if(self, step: IfStep, frame: Frame, path: str, seq: str, tape: Tape) -> Any:
        condition = await self.evaluate(
            lambda: truthy(expression(step.if_, frame.context(), self.pointer(frame, step) + "/if")))
        branch = "then" if condition else "else"
        last = await self.run_steps(step.then if condition else step.else_, frame, path + "/")
        return {"branch": branch, "output": last}

    async def _delay(self, step: DelayStep, frame: Frame, path: str, seq: str, tape: Tape) -> Any:
        pointer = self.pointer(frame, step) + "/delay/seconds"
        seconds = step.delay.seconds
        if isinstance(seconds, str):
            seconds = await self.evaluate(render, seconds, frame.context(), pointer)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < float("inf"):
            raise StepValueError(self.run_id, step.id, pointer, f"expected a number of seconds >= 0, got {seconds!r}")
        if self.replay is None:
            await self.deps.clock.sleep(seconds)
        return {"seconds": seconds}

    async def _wait(self, step: WaitStep, frame: Frame, path: str, seq: str, tape: Tape) -> Any:
        spec = step.wait
        timeout = spec.timeout_seconds()
        if self.replay is not None:
            recorded = self._replayed.get(seq)
            if recorded is not None and recorded.error is not None and recorded.error.code == WaitTimedOut.code:
                raise WaitTimedOut(self.run_id, step.id, timeout)
            return recorded.output if recorded is not None else None
        match = await self.evaluate(render, spec.match, frame.context(), self.pointer(frame, step) + "/wait/match")
        event = await self.deps.waiter.wait(EventWait(
            self.run_id, seq, step.id, path, spec.event, spec.trigger, match, timeout))
        if event is None:
            if spec.on_timeout == "continue":
                return {"timed_out": True}
            raise WaitTimedOut(self.run_id, step.id, timeout)
        return {"event_id": event.get("event_id"), "payload": event.get("payload")}

    async def _sync(self, step: SyncStep, frame: Frame, path: str, seq: str, tape: Tape) -> Any:
        return await run_sync(step.sync, _StepEnv(self, frame, step.id, path, self.pointer(frame, step),
                                                    step.retry))

    async def _call(self, step: CallStep, frame: Frame, path: str, seq: str, tape: Tape) -> Any:
        spec = step.call
        if frame.depth >= self.max_call_depth:
            raise CallDepthExceeded(self.run_id, step.id, spec.workflow, self.max_call_depth)
        input = await self.evaluate(render, spec.input, frame.context(), self.pointer(frame, step) + "/call/input")
        workflow = await lookup_workflow(self.deps.workflows, spec.workflow, spec.version)
        if workflow is None:
            raise WorkflowNotFound(spec.workflow, spec.version, run_id=self.run_id, step_id=step.id)
        validate_input(workflow, input, run_id=self.run_id, step_id=step.id)
        run_info = self._run_info(f"{self.run_id}/{path}", workflow, tape.now().isoformat())
        run_info["parent"] = self.run_id
        # the child's steps continue this scope's numbering: they run in sequence with it
        child = Frame(workflow, input, None, run_info, frame.sequencer, frame.depth + 1)
        last = await self.run_steps(workflow.steps, child, path + "/")
        if workflow.output is None:
            return last
        return await self.evaluate(render, workflow.output, child.context(), "/output")

    async def _foreach(self, step: ForeachStep, frame: Frame, path: str, seq: str, tape: Tape) -> Any:
        spec, pointer = step.foreach, self.pointer(frame, step) + "/foreach"
        items = await self.evaluate(lambda: as_records(render(spec.items, frame.context(), pointer + "/items"),
                                                        self.run_id, step.id, pointer + "/items"))
        outputs: list[Any] = [None] * len(items)
        failures: dict[int, WorkflowError] = {}
        positions = iter(range(len(items)))

        async def iteration(position: int) -> Any:
            child = frame.child(Sequencer(f"{seq}.{position + 1}."), {spec.as_: items[position]})
            iteration_path = f"{path}/{position}"

            async def body(_: Tape) -> Any:
                last = await self.run_steps(spec.steps, child, iteration_path + "/")
                if spec.output is None:
                    return last
                return await self.evaluate(render, spec.output, child.context(), pointer + "/output")

            return await self.recorded(child, f"{seq}.{position + 1}", step.id, iteration_path, "iteration", body)

        async def worker() -> None:
            # workers share `positions`, so iterations start in item order
            for position in positions:
                if self.replay is not None:
                    # a replay runs exactly the iterations the run started
                    if not self.replay.has_step(f"{seq}.{position + 1}"):
                        continue
                elif failures:
                    return
                try:
                    outputs[position] = await iteration(position)
                except ReplayDivergence:
                    raise
                except WorkflowError as exc:
                    failures[position] = exc

        workers = 1 if self.deps.sequential else min(spec.concurrency, len(items))
        if workers <= 1:
            await worker()
        else:
            try:
                async with asyncio.TaskGroup() as group:
                    for _ in range(workers):
                        group.create_task(worker())
            except BaseExceptionGroup as group_error:
                raise _first_error(group_error) from None
        if failures:
            raise failures[min(failures)]
        return outputs


class _ObservedSink(TraceSink):
    """The run's traces: each one is also told to the observer as it arrives (secrets redacted),
    preceded by a :class:`StepRetrying` when it repeats a failed attempt of the same call."""

    def __init__(self, run: _Run):
        super().__init__()
        self._run = run
        self._last: dict[str, TraceRecord] = {}

    def append(self, record: TraceRecord) -> None:
        super().append(record)
        run = self._run
        if not run.observing:
            return
        previous = self._last.get(record.seq)
        self._last[record.seq] = record
        if record.attempt > 1 and previous is not None:
            failed = f"http_{previous.status}" if previous.status is not None else "transport_error"
            run.emit(StepRetrying(record.run_id, record.seq, record.step_id, record.step_path, record.attempt,
                                  failed, record.retry_delay))
        trace = run._redact_trace(record) if run.redact else record
        run.emit(CallTraced(record.run_id, record.seq, record.step_id, trace.to_dict()))


def _expression_failure(exc: ExpressionError, run_id: str, step_id: str, workflow_id: str,
                        pointer: str) -> StepExpressionError:
    """The run-level error for an expression that failed in ``step_id``."""
    if isinstance(exc, ExpressionLimitExceeded):
        return ExpressionBudgetExceeded(run_id, step_id, workflow_id, exc.pointer or pointer, exc)
    return StepExpressionError(run_id, step_id, workflow_id, exc.pointer or pointer, exc.expression, exc.reason,
                               cause=exc)


def _first_error(group: BaseExceptionGroup) -> BaseException:
    errors = list(_leaves(group))
    for error in errors:
        if isinstance(error, ReplayDivergence):
            return error
    return errors[0]


def _leaves(group: BaseExceptionGroup):
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            yield from _leaves(error)
        else:
            yield error

