"""The record of a run: every step and call numbered, with its result, as JSON.

Sequence numbers (``seq``) are strings of dot-separated integers. Steps and
calls of a run's top level are numbered ``1``, ``2``, ``3``... in the order they
start. Iteration ``i`` (0-based) of a foreach step numbered ``5`` is ``5.{i+1}``
and what runs inside it is ``5.{i+1}.1``, ``5.{i+1}.2``...: numbering by
position, not by the moment an iteration ran, so concurrent iterations number
the same on every run and on replay. Sorting by :func:`seq_key` gives the run
in order (each iteration after its foreach step, iterations in item order).

Secret values never reach a record: :class:`Redactor` replaces every secret
value the run read with ``[secret:NAME]`` wherever it appears, in any letter
case and in its common encodings (see ``_redact``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._redact import Redactor

RECORD_FORMAT = 1


def seq_key(seq: str) -> tuple[int, ...]:
    """Sort key of a sequence number: ``"5.10.2"`` -> ``(5, 10, 2)``."""
    return tuple(int(part) for part in seq.split("."))


@dataclass(frozen=True)
class ErrorInfo:
    """A recorded error: class name, code, message, HTTP status, failing step and the cause's code."""

    type: str
    code: str
    message: str
    http_status: int
    step_id: str | None = None
    cause_code: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException, redact: Redactor | None = None) -> "ErrorInfo":
        """Describe ``exc`` (an engine error), with secrets redacted from the message."""
        cause = getattr(exc, "cause", None)
        message = str(exc)
        return cls(
            # a replayed failure keeps the class name it was recorded with
            type=getattr(exc, "recorded_type", None) or type(exc).__name__,
            code=getattr(exc, "code", "error"),
            message=redact(message) if redact else message,
            http_status=int(getattr(exc, "http_status", 500)),
            step_id=getattr(exc, "step_id", None),
            cause_code=getattr(cause, "code", None) if cause is not None else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (None fields left out)."""
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ErrorInfo":
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


def _error(data: Any) -> ErrorInfo | None:
    return ErrorInfo.from_dict(data) if data else None


@dataclass(frozen=True)
class StepRecord:
    """One step execution (or foreach iteration, ``kind="iteration"``): its output or error.

    ``clock`` and ``random`` are the values ``$now()``/``$millis()`` and
    ``$random()`` gave while the step evaluated its own templates, in order;
    a replay gives them back instead of reading the clock.
    """

    seq: str
    step_id: str
    step_path: str
    kind: str
    output: Any = None
    error: ErrorInfo | None = None
    clock: tuple[str, ...] = ()
    random: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``error``, ``clock`` and ``random`` only when present."""
        data: dict[str, Any] = {
            "seq": self.seq, "step_id": self.step_id, "step_path": self.step_path, "kind": self.kind,
            "output": self.output,
        }
        if self.error is not None:
            data["error"] = self.error.to_dict()
        if self.clock:
            data["clock"] = list(self.clock)
        if self.random:
            data["random"] = list(self.random)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StepRecord":
        """Inverse of :meth:`to_dict`."""
        return cls(
            seq=str(data["seq"]), step_id=data["step_id"], step_path=data["step_path"], kind=data["kind"],
            output=data.get("output"), error=_error(data.get("error")),
            clock=tuple(data.get("clock", ())), random=tuple(data.get("random", ())),
        )


@dataclass(frozen=True)
class CallRecord:
    """One action call: what was asked (secrets redacted) and what came back."""

    seq: str
    step_id: str
    step_path: str
    connector: str
    action: str
    input: Any
    output: Any = None
    error: ErrorInfo | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``error`` only when present."""
        data: dict[str, Any] = {
            "seq": self.seq, "step_id": self.step_id, "step_path": self.step_path, "connector": self.connector,
            "action": self.action, "input": self.input, "output": self.output,
        }
        if self.error is not None:
            data["error"] = self.error.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CallRecord":
        """Inverse of :meth:`to_dict`."""
        return cls(
            seq=str(data["seq"]), step_id=data["step_id"], step_path=data["step_path"],
            connector=data["connector"], action=data["action"], input=data.get("input"),
            output=data.get("output"), error=_error(data.get("error")),
        )


@dataclass(frozen=True)
class RunRecord:
    """Everything needed to replay a run without calling out.

    ``steps`` and ``calls`` are in :func:`seq_key` order; ``secrets`` names the
    secrets the run read (never their values); ``clock``/``random`` are readings
    made outside any step (the workflow's output template).
    """

    run_id: str
    workflow_id: str
    workflow_version: int
    input: Any
    started_at: str
    trigger: Any = None
    status: str = "succeeded"
    output: Any = None
    error: ErrorInfo | None = None
    steps: tuple[StepRecord, ...] = ()
    calls: tuple[CallRecord, ...] = ()
    secrets: tuple[str, ...] = ()
    clock: tuple[str, ...] = ()
    random: tuple[float, ...] = ()
    format: int = field(default=RECORD_FORMAT)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``json.dumps`` works on it as is)."""
        data: dict[str, Any] = {
            "format": self.format, "run_id": self.run_id, "workflow_id": self.workflow_id,
            "workflow_version": self.workflow_version, "input": self.input, "trigger": self.trigger,
            "started_at": self.started_at, "status": self.status, "output": self.output,
            "error": self.error.to_dict() if self.error else None,
            "secrets": list(self.secrets),
            "steps": [s.to_dict() for s in self.steps],
            "calls": [c.to_dict() for c in self.calls],
        }
        if self.clock:
            data["clock"] = list(self.clock)
        if self.random:
            data["random"] = list(self.random)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunRecord":
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: when ``data`` is not a run record of a format this code reads.
        """
        if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
            raise ValueError(f"not a run record of format {RECORD_FORMAT}")
        try:
            return cls(
                run_id=data["run_id"], workflow_id=data["workflow_id"], workflow_version=data["workflow_version"],
                input=data.get("input"), trigger=data.get("trigger"), started_at=data["started_at"],
                status=data.get("status", "succeeded"), output=data.get("output"), error=_error(data.get("error")),
                steps=tuple(StepRecord.from_dict(s) for s in data.get("steps", ())),
                calls=tuple(CallRecord.from_dict(c) for c in data.get("calls", ())),
                secrets=tuple(data.get("secrets", ())), clock=tuple(data.get("clock", ())),
                random=tuple(data.get("random", ())),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed run record: {type(exc).__name__}: {exc}") from None
