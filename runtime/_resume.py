"""Re-running an execution from its failed step (``Runs.rerun``): the calls of the steps before it
are answered from the original's stored run record, and the rest are sent.

The failed step is the first top-level step whose record holds an error; every call numbered
before it (``seq`` lower at the top level: the calls of the earlier steps, nested ones included)
that succeeded is reused, when the re-run asks it again at the same ``seq``, of the same step
path, connector and action, with the same input (compared after redaction, as the record keeps
it). Anything else is sent: a call of the failed step or after it, and a call whose input changed
(an earlier step read ``$now()``, say). A re-run is a new execution with the original's version,
customer, input and trigger, and names the original (``rerun_of``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.workflow import ActionCall, ActionInvoker, CallRecord, RunRecord
from runtime.errors import RunRefused


def failed_step_seq(run: RunRecord) -> int | None:
    """The top-level sequence number of the first top-level step that failed (None: none did)."""
    for step in run.steps:
        if "." not in step.seq and step.error is not None:
            return int(step.seq)
    return None


def reusable_calls(stored_record: dict[str, Any] | None, execution_id: str) -> dict[str, CallRecord]:
    """The successful calls, by ``seq``, of the steps before the failed one in ``stored_record``
    (an ``executions.record``). Raises ``RunRefused`` (field ``record``) when there is no record
    to resume from, or no step failed in it."""
    if not stored_record or not isinstance(stored_record.get("run"), dict):
        raise RunRefused("record", f"execution {execution_id!r} has no run record to re-run from "
                                   "(it ended before its run recorded a step)")
    try:
        run = RunRecord.from_dict(stored_record["run"])
    except ValueError as exc:
        raise RunRefused("record", f"execution {execution_id!r} has an unreadable run record: {exc}") from None
    failed = failed_step_seq(run)
    if failed is None:
        raise RunRefused("record", f"no step of execution {execution_id!r} failed; there is nothing to re-run from")
    return {c.seq: c for c in run.calls if c.error is None and int(c.seq.split(".")[0]) < failed}


class ResumeInvoker:
    """An ``ActionInvoker`` answering the calls in ``reusable`` from their record (see the module
    docstring) and sending every other one through ``inner``. ``redact`` is what made the record
    (the run's redactor): it redacts a call's input before comparing, and its ``restore`` puts the
    secrets back into a reused output. ``reused`` counts the calls answered from the record."""

    def __init__(self, inner: ActionInvoker, reusable: dict[str, CallRecord], redact: Callable[[Any], Any]) -> None:
        self.inner = inner
        self.reusable = reusable
        self.redact = redact
        self.reused = 0

    async def invoke(self, call: ActionCall) -> Any:
        entry = self.reusable.get(call.seq)
        if (entry is not None and (entry.connector, entry.action, entry.step_path)
                == (call.connector, call.action, call.step_path) and entry.input == self.redact(call.input)):
            self.reused += 1
            restore = getattr(self.redact, "restore", None)
            return restore(entry.output) if restore else entry.output
        return await self.inner.invoke(call)
