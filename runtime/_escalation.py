"""Tier escalation: a workflow with ``escalate: true`` that reaches its tier's time limit continues
at the next tier (Instant -> Standard -> Long) instead of ending ``timeout``. The limits are the
settings ``run_deadline_seconds`` (Instant), ``standard_deadline_seconds`` and
``long_deadline_seconds``.

* Instant -> Standard (``Runs.start``): the inline run's connector calls carry the idempotency key
  a durable run of the same execution would give them (``runtime._durable.idempotency_key``), and
  :class:`CarryingInvoker` keeps each call that completed. At the deadline the run is stopped, the
  execution becomes ``queued`` at tier ``standard`` with those calls (``executions.carried``), and
  is handed to the durable queue; the caller gets 202. The worker answers the carried calls from
  the record (``ResumeInvoker``) and sends the rest: a call interrupted by the deadline is sent
  again with the same key.
* Standard -> Long (the worker): at the Standard limit the execution is recorded at tier ``long``
  and the run goes on, now bounded by the Long limit. Nothing is stopped or sent again.

Each escalation is appended to the execution's ``escalations`` (from, to, at, reason).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from engine.workflow import ActionCall, ActionInvoker, CallRecord
from runtime._durable import idempotency_key

NEXT_TIER = {"instant": "standard", "standard": "long"}


class CarryingInvoker:
    """Sends each call through ``inner`` with its durable idempotency key (execution ``run_id``),
    and keeps the completed ones (input and output redacted by ``redact``) in ``completed``."""

    def __init__(self, inner: ActionInvoker, execution_id: str, redact: Callable[[Any], Any]) -> None:
        self.inner = inner
        self.execution_id = execution_id
        self.redact = redact
        self.completed: list[dict[str, Any]] = []

    async def invoke(self, call: ActionCall) -> Any:
        if call.idempotency_key is None:
            call = dataclasses.replace(call, idempotency_key=idempotency_key(self.execution_id, call))
        result = await self.inner.invoke(call)
        self.completed.append(CallRecord(
            seq=call.seq, step_id=call.step_id, step_path=call.step_path, connector=call.connector,
            action=call.action, input=self.redact(call.input), output=self.redact(result),
        ).to_dict())
        return result


def carried_calls(carried: list[dict[str, Any]] | None) -> dict[str, CallRecord]:
    """The calls an escalated run carried (``executions.carried``), by ``seq``, as ``ResumeInvoker``
    takes them."""
    return {record.seq: record for record in (CallRecord.from_dict(item) for item in carried or [])}
