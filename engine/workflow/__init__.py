"""The workflow interpreter: deterministic runs of WorkflowSpecs, recorded and replayable.

Usage::

    deps = Dependencies(invoker=executor, clock=SystemClock(), secrets=provider, workflows=registry)
    result = await Interpreter(deps).run(workflow, {"since": "2025-01-01"})
    result.status, result.output, result.error        # "succeeded" | "failed"
    saved = result.record.to_dict()                   # JSON; no secret values
    again = await Interpreter(deps).replay(workflow, RunRecord.from_dict(saved))   # calls nothing

The observer (``Dependencies.observer``) is told of each step start, finish,
retry and failure and each HTTP trace, in order (see ``_observe``).

The action invoker is the seam to the HTTP executor (``engine.actions``): it
receives an :class:`ActionCall` and writes :class:`TraceRecord` s to ``call.trace``.
Sequence numbers are described in ``engine.workflow._record``.
"""

from ._deps import (
    FAKE_EPOCH,
    Clock,
    Dependencies,
    EventWait,
    EventWaiter,
    FakeClock,
    NoEventWaiter,
    SecretProvider,
    SequentialIds,
    StaticSecrets,
    SystemClock,
    WorkflowLookup,
    WorkflowRegistry,
    new_id,
)
from ._interpreter import MAX_CALL_DEPTH, Interpreter, RunResult, truthy
from ._invoker import ActionCall, ActionInvoker, TraceRecord, TraceSink
from ._observe import (
    CallTraced,
    NullObserver,
    RecordingObserver,
    RunEvent,
    RunObserver,
    StepErrored,
    StepFinished,
    StepRetrying,
    StepStarted,
)
from ._record import CallRecord, ErrorInfo, RunRecord, StepRecord, seq_key
from ._redact import Redactor, secret_forms
from ._replay import ReplayInvoker
from ._scope import validate_input
from ._sync import is_subset
from ._dry_run import DRY_RUN_HEADER, SAFE_METHODS, DryRunHttp, DryRunInvoker, synthetic_response

__all__ = [
    "FAKE_EPOCH", "MAX_CALL_DEPTH", "ActionCall", "ActionInvoker", "CallRecord", "Clock", "Dependencies", "ErrorInfo", "EventWait", "EventWaiter", "NoEventWaiter",
    "FakeClock", "Interpreter", "Redactor", "ReplayInvoker", "RunRecord", "RunResult", "SecretProvider",
    "SequentialIds", "StaticSecrets", "StepRecord", "SystemClock", "TraceRecord", "TraceSink", "WorkflowLookup",
    "WorkflowRegistry", "is_subset", "new_id", "seq_key", "truthy", "validate_input",
    "DRY_RUN_HEADER", "SAFE_METHODS", "DryRunHttp", "DryRunInvoker", "synthetic_response",
    "CallTraced", "NullObserver", "RecordingObserver", "RunEvent", "RunObserver", "StepErrored", "StepFinished",
    "StepRetrying", "StepStarted", "secret_forms",
]
