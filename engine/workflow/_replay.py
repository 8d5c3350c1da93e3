"""Replaying a run from its record: recorded results instead of calls, and divergence checks.

A replay walks the workflow again. At each sequence number it expects the
record to hold the same thing the replay is doing: the same step (id, path,
kind), the same call (path, connector, action and input, compared after secret
redaction), the same output or error. The first difference raises
:class:`~engine.errors.ReplayDivergence`; so does a record entry the replay
never reached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import RecordedCallError, ReplayDivergence
from ._invoker import ActionCall
from ._record import CallRecord, ErrorInfo, RunRecord, StepRecord, seq_key


def _identity(value: Any) -> Any:
    return value


def _describe(entry: StepRecord | CallRecord | None) -> Any:
    if entry is None:
        return None
    if isinstance(entry, CallRecord):
        return {"call": f"{entry.connector}.{entry.action}", "step_path": entry.step_path, "input": entry.input}
    return {"step": entry.step_id, "step_path": entry.step_path, "kind": entry.kind}


class ReplayInvoker:
    """An :class:`~engine.workflow.ActionInvoker` that answers from a :class:`RunRecord`, calling nothing.

    Args:
        record: the run to replay.
        redact: a :class:`Redactor` (or any function) applied to each call's input
            before comparing it with the (already redacted) recorded input; when it
            has a ``restore`` method, recorded outputs get the secrets it knows back.

    ``invoke`` returns the recorded output (secrets restored), raises
    :class:`~engine.errors.RecordedCallError` for a recorded failure, and raises
    :class:`~engine.errors.ReplayDivergence` when the call differs from the record
    at its ``seq`` or the record has no call there.
    """

    def __init__(self, record: RunRecord, redact: Callable[[Any], Any] = _identity):
        self.record = record
        self.redact = redact
        self.entries: dict[str, StepRecord | CallRecord] = {s.seq: s for s in record.steps}
        self.entries.update({c.seq: c for c in record.calls})
        self.consumed: set[str] = set()
        self.calls = 0

    def _take(self, seq: str) -> StepRecord | CallRecord | None:
        entry = self.entries.get(seq)
        if entry is not None:
            self.consumed.add(seq)
        return entry

    async def invoke(self, call: ActionCall) -> Any:
        self.calls += 1
        entry = self._take(call.seq)
        asked = {"call": call.qualified_action, "step_path": call.step_path, "input": self.redact(call.input)}
        if not isinstance(entry, CallRecord) or _describe(entry) != asked:
            raise ReplayDivergence(self.record.run_id, call.step_path, asked, _describe(entry), call.seq)
        if entry.error is not None:
            error = RecordedCallError(entry.error.code, entry.error.message, entry.error.http_status)
            error.recorded_type = entry.error.type
            raise error
        restore = getattr(self.redact, "restore", None)
        return restore(entry.output) if restore else entry.output

    def has_step(self, seq: str) -> bool:
        """Whether the record holds a step (or iteration) at ``seq``."""
        return isinstance(self.entries.get(seq), StepRecord)

    def step(self, seq: str, step_id: str, step_path: str, kind: str) -> StepRecord:
        """The recorded step at ``seq``, which must be this step.

        Raises:
            ReplayDivergence: when the record holds something else, or nothing, at ``seq``.
        """
        entry = self._take(seq)
        doing = {"step": step_id, "step_path": step_path, "kind": kind}
        if not isinstance(entry, StepRecord) or _describe(entry) != doing:
            raise ReplayDivergence(self.record.run_id, step_path, doing, _describe(entry), seq)
        return entry

    def finish_step(self, recorded: StepRecord, output: Any, error: ErrorInfo | None) -> None:
        """Check that a replayed step ended as recorded (same output, or same error).

        Raises:
            ReplayDivergence: naming the step, what the replay got and what was recorded.
        """
        if error is not None or recorded.error is not None:
            got = error.to_dict() if error else None
            want = recorded.error.to_dict() if recorded.error else None
            if got != want:
                expected = {"error": got} if got else {"output": output}
                was = {"error": want} if want else {"output": recorded.output}
                raise ReplayDivergence(self.record.run_id, recorded.step_path, expected, was, recorded.seq)
        elif output != recorded.output:
            raise ReplayDivergence(self.record.run_id, recorded.step_path, {"output": output},
                                   {"output": recorded.output}, recorded.seq)

    def check_complete(self) -> None:
        """Raise :class:`ReplayDivergence` for the first record entry the replay never reached."""
        left = sorted((s for s in self.entries if s not in self.consumed), key=seq_key)
        if left:
            entry = self.entries[left[0]]
            raise ReplayDivergence(self.record.run_id, entry.step_path, "nothing: the replay ended before this",
                                   _describe(entry), entry.seq)
