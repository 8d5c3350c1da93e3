"""Watching a run as it happens: step boundaries, retries, failures and HTTP traces, in order.

The interpreter tells :attr:`Dependencies.observer <engine.workflow.Dependencies>`
about each event as it happens, on the event loop, by calling
:meth:`RunObserver.on_event`. Events are small frozen dataclasses that carry
the step's sequence number (``seq``, see ``_record``) and id, never a secret
value: messages and traces pass through the run's :class:`Redactor` first,
and a finished step reports only the shape of its output. They are meant to be
streamed (SSE) and to mark step boundaries for durable execution.

For one step the order is: :class:`StepStarted`, then for each HTTP attempt of
its calls a :class:`CallTraced` (preceded by :class:`StepRetrying` when the
attempt repeats a failed one), then :class:`StepFinished` or
:class:`StepErrored`. Steps nested in a step (``if`` branches, foreach
iterations, a called workflow) start and end inside it. An invoker may write
the traces of a call only once it has its response, so a retry is reported
after the attempts it follows, not while waiting.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable


@dataclass(frozen=True)
class RunEvent:
    """Base of the events of a run. ``type`` names the kind in streams (``step_started``...)."""

    type: ClassVar[str] = "run_event"
    run_id: str
    seq: str
    step_id: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with ``type``."""
        return {"type": self.type, **asdict(self)}


@dataclass(frozen=True)
class StepStarted(RunEvent):
    """A step (``kind`` its kind, or ``iteration`` for one foreach item) is about to run."""

    type: ClassVar[str] = "step_started"
    step_path: str
    kind: str


@dataclass(frozen=True)
class StepFinished(RunEvent):
    """A step ended well. ``output_type`` is the JSON type of its output (``object``, ``array``,
    ``string``, ``number``, ``boolean``, ``null``), ``output_size`` its keys, items or characters."""

    type: ClassVar[str] = "step_finished"
    step_path: str
    kind: str
    output_type: str
    output_size: int | None = None


@dataclass(frozen=True)
class StepRetrying(RunEvent):
    """An action call of a step is trying again: ``attempt`` (2, 3...) follows a failed attempt whose
    outcome was ``error_code`` (``http_503``, ``http_429``, or ``transport_error``). ``seq`` is the
    call's. ``delay`` is the wait before the attempt in seconds, when the invoker reports it."""

    type: ClassVar[str] = "step_retrying"
    step_path: str
    attempt: int
    error_code: str
    delay: float | None = None


@dataclass(frozen=True)
class StepErrored(RunEvent):
    """A step failed: ``error_code`` is the error's code, ``message`` its message with secrets redacted."""

    type: ClassVar[str] = "step_failed"
    step_path: str
    kind: str
    error_code: str
    message: str


@dataclass(frozen=True)
class CallTraced(RunEvent):
    """One HTTP attempt of an action call: ``trace`` is its :class:`TraceRecord` as a dict, secrets
    redacted. ``seq`` is the call's sequence number, ``step_id`` the step making it."""

    type: ClassVar[str] = "call_traced"
    trace: dict[str, Any]


@runtime_checkable
class RunObserver(Protocol):
    """Told about each event of a run, in order, on the event loop.

    ``on_event`` must return quickly and must not block: an observer that does
    I/O hands the event to a queue (``asyncio.Queue.put_nowait``) and does the
    I/O elsewhere. An exception it raises is a bug and ends the run with it.
    """

    def on_event(self, event: RunEvent) -> None: ...


class NullObserver:
    """Ignores every event (the default)."""

    def on_event(self, event: RunEvent) -> None:
        return None


class RecordingObserver:
    """Keeps every event in :attr:`events`, in order (tests, and callers that read them after the run)."""

    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    def on_event(self, event: RunEvent) -> None:
        self.events.append(event)

    def of_type(self, *types: type[RunEvent]) -> list[RunEvent]:
        """The events of the given classes, in order."""
        return [e for e in self.events if isinstance(e, types)]


def output_shape(value: Any) -> tuple[str, int | None]:
    """The JSON type of ``value`` and its size (keys, items or characters; None for scalars)."""
    if value is None:
        return "null", None
    if isinstance(value, bool):
        return "boolean", None
    if isinstance(value, (int, float)):
        return "number", None
    if isinstance(value, str):
        return "string", len(value)
    if isinstance(value, dict):
        return "object", len(value)
    if isinstance(value, (list, tuple)):
        return "array", len(value)
    return type(value).__name__, None
