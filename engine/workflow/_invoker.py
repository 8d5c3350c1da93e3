"""The seam between the interpreter and whatever performs action calls, and the traces it writes.

The interpreter never speaks HTTP. It hands each action call to an
:class:`ActionInvoker` (the HTTP executor in ``engine.actions``, a sandbox, an
in-memory test app, or the replaying invoker) as an :class:`ActionCall`, and the
invoker writes one :class:`TraceRecord` per HTTP attempt to ``call.trace``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from ..specs import RetrySpec


@dataclass(frozen=True)
class TraceRecord:
    """One HTTP attempt of one connector call.

    ``url`` carries no secrets; ``request_body``/``response_body`` are None
    unless body tracing is enabled, and then have credentials redacted.
    ``seq`` and ``step_path`` are the :class:`ActionCall`'s. ``retry_delay`` is the seconds waited
    before this attempt by the step's retry policy (its backoff, or the ``Retry-After`` honoured);
    None for a first attempt.
    """

    run_id: str
    seq: str
    step_id: str
    connector: str
    action: str
    method: str
    url: str
    status: int | None
    latency_ms: float
    attempt: int = 1
    request_bytes: int = 0
    response_bytes: int = 0
    error: str | None = None
    request_body: Any = None
    response_body: Any = None
    step_path: str = ""
    retry_delay: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TraceRecord":
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


class TraceSink:
    """Collects the trace records of one run (in memory; callers persist them)."""

    def __init__(self) -> None:
        self._records: list[TraceRecord] = []

    def append(self, record: TraceRecord) -> None:
        """Add one record."""
        self._records.append(record)

    def list(self) -> list[TraceRecord]:
        """The records so far, in the order they were appended."""
        return list(self._records)

    def __len__(self) -> int:
        return len(self._records)


@dataclass(frozen=True)
class ActionCall:
    """One call of a connector action, as the interpreter asks for it.

    Args:
        run_id: the run making the call.
        seq: the call's sequence number in the run: ``"7"``, or ``"5.2.1"`` inside
            foreach iterations (see the package docs); stable across replays.
        step_id: the step making the call.
        step_path: where in the run, unique per call: ``contacts``, ``sync_customers/create/3``,
            ``each_order/2/fetch``. ``(run_id, step_path)`` suits idempotency keys.
        connector: connector id.
        action: action name within the connector.
        input: the rendered action input. The run's record shares it: invokers must not mutate it.
        paginate: walk every page of a paginated action; the result is then ``{"items": [...], "pages": n}``.
        max_pages: stop after this many pages.
        trace: where the invoker writes one :class:`TraceRecord` per HTTP attempt.
        idempotency_key: the key a durable run gives this call (the same on every attempt, and on a
            repeat after a lost worker); sent where the connector declares ``idempotency``.
        retry: the step's retry settings (None: the platform's defaults, see ``RetrySpec``).
    """

    run_id: str
    seq: str
    step_id: str
    step_path: str
    connector: str
    action: str
    input: Any
    paginate: bool
    max_pages: int | None
    trace: TraceSink
    idempotency_key: str | None = None
    retry: RetrySpec | None = None

    @property
    def qualified_action(self) -> str:
        """``connector.action``."""
        return f"{self.connector}.{self.action}"


@runtime_checkable
class ActionInvoker(Protocol):
    """Performs action calls. Raises :class:`~engine.errors.EngineError` subclasses on failure."""

    async def invoke(self, call: ActionCall) -> Any:
        """Call the action and return its result (a JSON value)."""
        ...
